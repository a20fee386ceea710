package reconcile

import (
	"container/heap"
	"sync"
	"time"
)

// Queue is a work queue of keys with the semantics controllers rely on
// (client-go's workqueue): a key is queued at most once however often it is
// added; a key being processed is never handed to a second worker, and if
// it is added meanwhile it is processed again once Done; delayed adds wait
// in a heap; per-key failures back off exponentially until Forget.
type Queue struct {
	mu         sync.Mutex
	cond       *sync.Cond
	queue      []string
	dirty      map[string]bool
	processing map[string]bool
	waiting    waitHeap
	failures   map[string]int
	shutdown   bool
	now        func() time.Time
	wake       chan struct{}

	baseDelay, maxDelay time.Duration
}

// NewQueue returns a queue whose retry delay starts at base and doubles per
// failure up to max.
func NewQueue(base, max time.Duration, now func() time.Time) *Queue {
	q := &Queue{
		dirty:      map[string]bool{},
		processing: map[string]bool{},
		failures:   map[string]int{},
		now:        now,
		wake:       make(chan struct{}, 1),
		baseDelay:  base,
		maxDelay:   max,
	}
	q.cond = sync.NewCond(&q.mu)
	go q.delayLoop()
	return q
}

// Add queues key now.
func (q *Queue) Add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(key)
}

func (q *Queue) addLocked(key string) {
	if q.shutdown || q.dirty[key] {
		return
	}
	q.dirty[key] = true
	if q.processing[key] {
		return // Done re-queues it
	}
	q.queue = append(q.queue, key)
	q.cond.Signal()
}

// AddAfter queues key once d has passed. A shorter pending delay for the
// same key wins.
func (q *Queue) AddAfter(key string, d time.Duration) {
	if d <= 0 {
		q.Add(key)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown {
		return
	}
	at := q.now().Add(d)
	for i, w := range q.waiting {
		if w.key == key {
			if at.Before(w.at) {
				q.waiting[i].at = at
				heap.Fix(&q.waiting, i)
				q.poke()
			}
			return
		}
	}
	heap.Push(&q.waiting, waitItem{key: key, at: at})
	q.poke()
}

// AddRateLimited queues key after its backoff delay and counts a failure.
// It returns the delay used.
func (q *Queue) AddRateLimited(key string) time.Duration {
	q.mu.Lock()
	n := q.failures[key]
	q.failures[key] = n + 1
	q.mu.Unlock()
	d := q.baseDelay
	for i := 0; i < n && d < q.maxDelay; i++ {
		d *= 2
	}
	d = min(d, q.maxDelay)
	q.AddAfter(key, d)
	return d
}

// Forget clears key's failure count.
func (q *Queue) Forget(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.failures, key)
}

// Failures returns how often key has failed since it was last forgotten.
func (q *Queue) Failures(key string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.failures[key]
}

// Get blocks until a key is available or the queue shuts down.
func (q *Queue) Get() (key string, shutdown bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.queue) == 0 && !q.shutdown {
		q.cond.Wait()
	}
	if len(q.queue) == 0 {
		return "", true
	}
	key = q.queue[0]
	q.queue = q.queue[1:]
	q.processing[key] = true
	delete(q.dirty, key)
	return key, false
}

// Done marks key as processed; if it was added meanwhile it is queued again.
func (q *Queue) Done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	if q.dirty[key] {
		q.queue = append(q.queue, key)
		q.cond.Signal()
	}
}

// Len returns the number of keys ready to be processed.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queue)
}

// ShutDown stops handing out keys; Get returns shutdown once drained of
// waiters.
func (q *Queue) ShutDown() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.shutdown = true
	q.queue = nil
	q.cond.Broadcast()
	q.poke()
}

func (q *Queue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// delayLoop moves delayed keys into the queue when their time comes.
func (q *Queue) delayLoop() {
	for {
		q.mu.Lock()
		if q.shutdown {
			q.mu.Unlock()
			return
		}
		now := q.now()
		for len(q.waiting) > 0 && !q.waiting[0].at.After(now) {
			w := heap.Pop(&q.waiting).(waitItem)
			q.addLocked(w.key)
		}
		var next <-chan time.Time
		if len(q.waiting) > 0 {
			next = time.After(q.waiting[0].at.Sub(now))
		}
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-next:
		}
	}
}

type waitItem struct {
	key string
	at  time.Time
}

type waitHeap []waitItem

func (h waitHeap) Len() int           { return len(h) }
func (h waitHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h waitHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *waitHeap) Push(x any)        { *h = append(*h, x.(waitItem)) }
func (h *waitHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
