package lifecycle

import (
	"sync"
	"time"
)

// Activity records when each sandbox was last used, in memory, on the
// request path: Touch is a map lookup and an atomic-free store under a
// mutex held for nanoseconds. The server flushes it to the store every few
// seconds (Dirty), so a restart forgets at most that much activity, which
// can only make an idle suspend come a little early, never late.
//
// Sessions (logs -f, exec, port-forward) are open intervals: while one is
// open the sandbox counts as active now.
type Activity struct {
	now func() time.Time

	mu       sync.Mutex
	last     map[string]time.Time // by sandbox name
	dirty    map[string]time.Time
	sessions map[string]int
}

// NewActivity returns an empty recorder; now is the clock.
func NewActivity(now func() time.Time) *Activity {
	if now == nil {
		now = time.Now
	}
	return &Activity{now: now, last: map[string]time.Time{}, dirty: map[string]time.Time{}, sessions: map[string]int{}}
}

// Touch records activity of a sandbox now. Recorded activity only moves
// forward: a Touch that read the clock before a concurrent one but takes
// the lock after it does not undo the later time.
func (a *Activity) Touch(name string) {
	t := a.now().UTC()
	a.mu.Lock()
	if t.After(a.last[name]) {
		a.last[name] = t
	}
	if t.After(a.dirty[name]) {
		a.dirty[name] = t
	}
	a.mu.Unlock()
}

// Begin opens a session; the returned func closes it (and counts as
// activity at that moment). Calling it twice is harmless.
func (a *Activity) Begin(name string) (end func()) {
	a.Touch(name)
	a.mu.Lock()
	a.sessions[name]++
	a.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			a.Touch(name)
			a.mu.Lock()
			if a.sessions[name]--; a.sessions[name] <= 0 {
				delete(a.sessions, name)
			}
			a.mu.Unlock()
		})
	}
}

// Last returns the latest activity of a sandbox known in memory: now while
// a session is open, zero when nothing was recorded since the server
// started.
func (a *Activity) Last(name string) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sessions[name] > 0 {
		return a.now().UTC()
	}
	return a.last[name]
}

// Sessions is the number of open sessions of a sandbox.
func (a *Activity) Sessions(name string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sessions[name]
}

// Dirty returns the activity recorded since the last call (sandboxes with
// open sessions count as active now) and forgets it, for the caller to
// store. Give it back with Requeue if storing failed.
func (a *Activity) Dirty() map[string]time.Time {
	now := a.now().UTC()
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.dirty
	for name := range a.sessions {
		if now.After(out[name]) {
			out[name] = now
		}
	}
	a.dirty = map[string]time.Time{}
	return out
}

// Requeue puts activity that could not be stored back for the next Dirty.
func (a *Activity) Requeue(m map[string]time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for name, t := range m {
		if t.After(a.dirty[name]) {
			a.dirty[name] = t
		}
	}
}

// Forget drops what is known of a sandbox (deleted or renamed).
func (a *Activity) Forget(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.last, name)
	delete(a.dirty, name)
	delete(a.sessions, name)
}
