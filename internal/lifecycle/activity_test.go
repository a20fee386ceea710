package lifecycle_test

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/lifecycle"
)

// clock is a settable clock. It answers in a zone other than UTC so the
// tests see that Activity records UTC.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

var cet = time.FixedZone("CET", 3600)

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t.In(cet)
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

func checkLast(t *testing.T, a *lifecycle.Activity, name string, want time.Time) {
	t.Helper()
	got := a.Last(name)
	if !got.Equal(want) {
		t.Errorf("Last(%q) = %s, want %s", name, rel(got), rel(want))
	}
	if !got.IsZero() && got.Location() != time.UTC {
		t.Errorf("Last(%q) is in %s, want UTC", name, got.Location())
	}
}

func checkSessions(t *testing.T, a *lifecycle.Activity, name string, want int) {
	t.Helper()
	if got := a.Sessions(name); got != want {
		t.Errorf("Sessions(%q) = %d, want %d", name, got, want)
	}
}

// show formats an activity map with times relative to t0, sorted by name.
func show(m map[string]time.Time) string {
	var parts []string
	for name, t := range m {
		s := name + "=" + rel(t)
		if !t.IsZero() && t.Location() != time.UTC {
			s += "(" + t.Location().String() + ")"
		}
		parts = append(parts, s)
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, " ") + "}"
}

func checkDirty(t *testing.T, a *lifecycle.Activity, want map[string]time.Time) {
	t.Helper()
	if got := a.Dirty(); show(got) != show(want) {
		t.Errorf("Dirty = %s, want %s", show(got), show(want))
	}
}

func TestActivityTouchAndLast(t *testing.T) {
	c := newClock(at(time.Minute))
	a := lifecycle.NewActivity(c.Now)
	checkLast(t, a, "web", time.Time{})
	checkSessions(t, a, "web", 0)

	a.Touch("web")
	checkLast(t, a, "web", at(time.Minute))
	checkLast(t, a, "api", time.Time{})

	c.Advance(time.Minute)
	checkLast(t, a, "web", at(time.Minute)) // Last is the touch, not the clock
	a.Touch("web")
	checkLast(t, a, "web", at(2*time.Minute))

	// The clock steps back (NTP): what was recorded does not go back.
	c.Set(at(30 * time.Second))
	a.Touch("web")
	checkLast(t, a, "web", at(2*time.Minute))
	checkDirty(t, a, map[string]time.Time{"web": at(2 * time.Minute)})
}

func TestActivitySessions(t *testing.T) {
	c := newClock(at(time.Hour))
	a := lifecycle.NewActivity(c.Now)

	end1 := a.Begin("web")
	checkSessions(t, a, "web", 1)
	checkLast(t, a, "web", at(time.Hour))
	// Open: active now, whatever the time.
	checkLast(t, a, "web", at(time.Hour))
	c.Advance(10 * time.Minute)
	checkLast(t, a, "web", at(time.Hour+10*time.Minute))
	checkLast(t, a, "api", time.Time{})
	checkSessions(t, a, "api", 0)

	end2 := a.Begin("web")
	checkSessions(t, a, "web", 2)

	c.Advance(10 * time.Minute)
	end1()
	checkSessions(t, a, "web", 1)
	c.Advance(10 * time.Minute)
	checkLast(t, a, "web", at(time.Hour+30*time.Minute)) // end2 still open
	end1()                                               // twice: harmless
	checkSessions(t, a, "web", 1)

	c.Advance(10 * time.Minute)
	end2()
	checkSessions(t, a, "web", 0)
	// Closing counts as activity at that moment; after it, Last stays.
	checkLast(t, a, "web", at(time.Hour+40*time.Minute))
	c.Advance(time.Hour)
	checkLast(t, a, "web", at(time.Hour+40*time.Minute))
	end2() // twice: no second touch, no negative count
	end1()
	checkSessions(t, a, "web", 0)
	checkLast(t, a, "web", at(time.Hour+40*time.Minute))

	// A new session after all that counts from 1 again.
	end3 := a.Begin("web")
	checkSessions(t, a, "web", 1)
	end3()
	checkSessions(t, a, "web", 0)
}

func TestActivityDirty(t *testing.T) {
	c := newClock(at(time.Minute))
	a := lifecycle.NewActivity(c.Now)
	checkDirty(t, a, map[string]time.Time{})

	a.Touch("a")
	c.Advance(time.Minute)
	a.Touch("b")
	c.Advance(time.Minute)
	a.Touch("a")
	checkDirty(t, a, map[string]time.Time{"a": at(3 * time.Minute), "b": at(2 * time.Minute)})
	// Dirty forgets what it returned, Last does not.
	checkDirty(t, a, map[string]time.Time{})
	checkLast(t, a, "a", at(3*time.Minute))
	checkLast(t, a, "b", at(2*time.Minute))

	// An open session is active at every Dirty.
	c.Set(at(10 * time.Minute))
	end := a.Begin("c")
	c.Set(at(11 * time.Minute))
	checkDirty(t, a, map[string]time.Time{"c": at(11 * time.Minute)})
	c.Set(at(12 * time.Minute))
	a.Touch("a")
	c.Set(at(13 * time.Minute))
	checkDirty(t, a, map[string]time.Time{"a": at(12 * time.Minute), "c": at(13 * time.Minute)})
	c.Set(at(14 * time.Minute))
	end()
	c.Set(at(20 * time.Minute))
	checkDirty(t, a, map[string]time.Time{"c": at(14 * time.Minute)}) // when it closed
	checkDirty(t, a, map[string]time.Time{})

	// The returned map is the caller's.
	a.Touch("d")
	m := a.Dirty()
	m["e"] = at(time.Hour)
	delete(m, "d")
	checkDirty(t, a, map[string]time.Time{})
	checkLast(t, a, "d", at(20*time.Minute))
	checkLast(t, a, "e", time.Time{})
}

func TestActivityRequeue(t *testing.T) {
	type touch struct {
		name string
		at   time.Time
	}
	tests := []struct {
		name    string
		before  []touch // touched before the failed flush
		after   []touch // touched between the failed flush and the requeue
		requeue map[string]time.Time
		want    map[string]time.Time
	}{
		{
			name:   "everything comes back",
			before: []touch{{"a", at(1 * time.Minute)}, {"b", at(2 * time.Minute)}},
			want:   map[string]time.Time{"a": at(1 * time.Minute), "b": at(2 * time.Minute)},
		},
		{
			name:   "newer activity than the requeued wins",
			before: []touch{{"a", at(1 * time.Minute)}, {"b", at(2 * time.Minute)}},
			after:  []touch{{"a", at(5 * time.Minute)}},
			want:   map[string]time.Time{"a": at(5 * time.Minute), "b": at(2 * time.Minute)},
		},
		{
			name:    "a later requeued time wins over older activity",
			after:   []touch{{"a", at(3 * time.Minute)}},
			requeue: map[string]time.Time{"a": at(9 * time.Minute)},
			want:    map[string]time.Time{"a": at(9 * time.Minute)},
		},
		{
			name:    "equal times stay",
			after:   []touch{{"a", at(3 * time.Minute)}},
			requeue: map[string]time.Time{"a": at(3 * time.Minute)},
			want:    map[string]time.Time{"a": at(3 * time.Minute)},
		},
		{
			name:   "new names are added",
			before: []touch{{"a", at(1 * time.Minute)}},
			after:  []touch{{"b", at(4 * time.Minute)}},
			want:   map[string]time.Time{"a": at(1 * time.Minute), "b": at(4 * time.Minute)},
		},
		{
			name:    "an empty requeue changes nothing",
			after:   []touch{{"b", at(4 * time.Minute)}},
			requeue: map[string]time.Time{},
			want:    map[string]time.Time{"b": at(4 * time.Minute)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock(t0)
			a := lifecycle.NewActivity(c.Now)
			for _, tc := range tt.before {
				c.Set(tc.at)
				a.Touch(tc.name)
			}
			failed := a.Dirty() // the store refused it
			for _, tc := range tt.after {
				c.Set(tc.at)
				a.Touch(tc.name)
			}
			if tt.requeue != nil {
				failed = tt.requeue
			}
			a.Requeue(failed)
			checkDirty(t, a, tt.want)
			checkDirty(t, a, map[string]time.Time{})
		})
	}
}

func TestActivityForget(t *testing.T) {
	c := newClock(at(time.Minute))
	a := lifecycle.NewActivity(c.Now)
	a.Touch("a")
	a.Touch("b")
	end := a.Begin("a")
	a.Begin("a")
	checkSessions(t, a, "a", 2)

	a.Forget("a")
	checkLast(t, a, "a", time.Time{})
	checkSessions(t, a, "a", 0)
	checkLast(t, a, "b", at(time.Minute))
	checkDirty(t, a, map[string]time.Time{"b": at(time.Minute)})
	a.Forget("never-seen") // harmless

	// A session of the forgotten sandbox that ends late leaves no
	// negative count behind.
	end()
	checkSessions(t, a, "a", 0)
	end2 := a.Begin("a")
	checkSessions(t, a, "a", 1)
	end2()
	checkSessions(t, a, "a", 0)
}

func TestNewActivityDefaultsToTheWallClock(t *testing.T) {
	a := lifecycle.NewActivity(nil)
	before := time.Now()
	a.Touch("web")
	after := time.Now()
	got := a.Last("web")
	if got.Before(before.Truncate(0)) || got.After(after) || got.Location() != time.UTC {
		t.Errorf("Last = %v, want a UTC time between %v and %v", got, before, after)
	}
}

// TestActivityTouchKeepsTheLaterTime replays a race between two Touches
// of the same sandbox: the first reads the clock, the second reads it
// later and stores its time, then the first stores. The later time stays.
func TestActivityTouchKeepsTheLaterTime(t *testing.T) {
	early, late := at(time.Minute), at(2*time.Minute)
	var calls atomic.Int32
	read, release := make(chan struct{}), make(chan struct{})
	a := lifecycle.NewActivity(func() time.Time {
		if calls.Add(1) == 1 {
			close(read) // the first Touch has its time...
			<-release   // ...and stalls before it stores it
			return early
		}
		return late
	})
	done := make(chan struct{})
	go func() {
		a.Touch("web")
		close(done)
	}()
	<-read
	a.Touch("web")
	close(release)
	<-done
	checkLast(t, a, "web", late)
	checkDirty(t, a, map[string]time.Time{"web": late})
}

// TestActivityConcurrent hammers one recorder from many goroutines (run
// it with -race): touches, sessions, flushes that sometimes fail and
// requeue, and forgets. Nothing recorded may be lost and Last never goes
// back.
func TestActivityConcurrent(t *testing.T) {
	var tick atomic.Int64
	now := func() time.Time { return t0.Add(time.Duration(tick.Add(1)) * time.Microsecond) }
	peek := func() time.Time { return t0.Add(time.Duration(tick.Load()) * time.Microsecond) }
	a := lifecycle.NewActivity(now)

	touched := []string{"hot", "warm", "cold"} // only touched
	const workers, rounds = 16, 400

	// The flusher stores what Dirty returns, or, one time in three,
	// pretends the store failed and requeues it.
	stored := map[string]time.Time{}
	store := func(m map[string]time.Time) {
		for name, t := range m {
			if t.After(stored[name]) {
				stored[name] = t
			}
		}
	}
	stop, flushed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(flushed)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			m := a.Dirty()
			if i%3 == 0 {
				a.Requeue(m)
			} else {
				store(m)
			}
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan string, workers*rounds)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				name := touched[(w+i)%len(touched)]
				switch i % 4 {
				case 0, 1:
					before := peek()
					a.Touch(name)
					if got := a.Last(name); !got.After(before) {
						errs <- fmt.Sprintf("worker %d: Last(%s) = %s right after a Touch later than %s", w, name, rel(got), rel(before))
					}
				case 2:
					end := a.Begin("sess")
					a.Touch("sess")
					if a.Sessions("sess") < 1 {
						errs <- fmt.Sprintf("worker %d: no session counted while one is open", w)
					}
					before := peek()
					if got := a.Last("sess"); !got.After(before) {
						errs <- fmt.Sprintf("worker %d: Last(sess) = %s while a session is open, want now (after %s)", w, rel(got), rel(before))
					}
					end()
					if i%8 == 2 {
						end()
					}
				case 3:
					a.Touch("gone")
					a.Forget("gone")
					_ = a.Last("gone")
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-flushed
	close(errs)
	for e := range errs {
		t.Error(e)
	}

	store(a.Dirty())
	checkSessions(t, a, "sess", 0)
	for _, name := range touched {
		if got := a.Last(name); !got.Equal(stored[name]) {
			t.Errorf("%s: Last = %s but flushes stored %s", name, rel(got), rel(stored[name]))
		}
	}
	// Dirty reports an open session as active at its own now, which may
	// be later than the session's last touch: stored can only be ahead.
	if got := a.Last("sess"); stored["sess"].Before(got) {
		t.Errorf("sess: Last = %s but flushes stored only %s", rel(got), rel(stored["sess"]))
	}
	checkDirty(t, a, map[string]time.Time{})
}
