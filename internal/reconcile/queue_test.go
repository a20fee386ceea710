package reconcile

import (
	"sync"
	"testing"
	"time"
)

func get(t *testing.T, q *Queue) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		k, shutdown := q.Get()
		if shutdown {
			k = "<shutdown>"
		}
		ch <- k
	}()
	select {
	case k := <-ch:
		return k
	case <-time.After(10 * time.Second):
		t.Fatal("Get did not return")
		return ""
	}
}

func TestQueueDeduplicates(t *testing.T) {
	q := NewQueue(time.Millisecond, time.Second, time.Now)
	defer q.ShutDown()
	q.Add("a")
	q.Add("b")
	q.Add("a")
	if n := q.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2 (a queued once)", n)
	}
	if k := get(t, q); k != "a" {
		t.Fatalf("first = %q, want a (FIFO)", k)
	}
}

func TestQueueReaddWhileProcessing(t *testing.T) {
	q := NewQueue(time.Millisecond, time.Second, time.Now)
	defer q.ShutDown()
	q.Add("a")
	k := get(t, q)
	q.Add("a") // changed while being processed
	if n := q.Len(); n != 0 {
		t.Fatalf("Len = %d while a is processed, want 0: a key must not go to two workers", n)
	}
	q.Done(k)
	if k := get(t, q); k != "a" {
		t.Fatalf("after Done got %q, want a again", k)
	}
}

func TestQueueAddAfterKeepsEarliest(t *testing.T) {
	q := NewQueue(time.Millisecond, time.Second, time.Now)
	defer q.ShutDown()
	q.AddAfter("a", time.Hour)
	q.AddAfter("a", 10*time.Millisecond)
	if k := get(t, q); k != "a" {
		t.Fatalf("got %q", k)
	}
}

func TestQueueBackoff(t *testing.T) {
	tests := []struct {
		failures int
		want     time.Duration
	}{
		{0, 100 * time.Millisecond},
		{1, 200 * time.Millisecond},
		{3, 800 * time.Millisecond},
		{10, time.Second}, // capped
	}
	for _, tt := range tests {
		q := NewQueue(100*time.Millisecond, time.Second, time.Now)
		for i := 0; i < tt.failures; i++ {
			q.AddRateLimited("k")
		}
		if got := q.AddRateLimited("k"); got != tt.want {
			t.Errorf("after %d failures delay = %v, want %v", tt.failures, got, tt.want)
		}
		q.Forget("k")
		if q.Failures("k") != 0 {
			t.Errorf("Forget did not reset failures")
		}
		q.ShutDown()
	}
}

func TestQueueShutdownWakesGetters(t *testing.T) {
	q := NewQueue(time.Millisecond, time.Second, time.Now)
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, shutdown := q.Get(); !shutdown {
				t.Error("Get returned a key from an empty queue")
			}
		}()
	}
	q.ShutDown()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("ShutDown did not wake waiting workers")
	}
}

func TestQueueConcurrentWorkersNeverShareKey(t *testing.T) {
	q := NewQueue(time.Millisecond, time.Second, time.Now)
	var mu sync.Mutex
	active := map[string]bool{}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k, shutdown := q.Get()
				if shutdown {
					return
				}
				mu.Lock()
				if active[k] {
					t.Errorf("key %s handed to two workers at once", k)
				}
				active[k] = true
				mu.Unlock()
				time.Sleep(time.Millisecond)
				mu.Lock()
				active[k] = false
				mu.Unlock()
				q.Done(k)
			}
		}()
	}
	for i := 0; i < 500; i++ {
		q.Add(string(rune('a' + i%5)))
	}
	deadline := time.Now().Add(10 * time.Second)
	for q.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	q.ShutDown()
	wg.Wait()
}
