package local

import (
	"fmt"
	"net"
	"strconv"
	"sync"
)

// portAllocator hands out loopback ports from a range. A port is taken from
// allocation until its sandbox is deleted, whether or not anything listens
// yet, so two sandboxes never get the same port even while one is still
// building. Candidates are also test-bound, to skip ports other programs
// on the host already use.
type portAllocator struct {
	mu     sync.Mutex
	lo, hi int
	next   int
	owner  map[int]string
}

func newPortAllocator(lo, hi int) *portAllocator {
	return &portAllocator{lo: lo, hi: hi, next: lo, owner: map[int]string{}}
}

// reserve records a port an existing sandbox already holds.
func (a *portAllocator) reserve(id string, port int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.owner[port] = id
}

func (a *portAllocator) allocate(id string) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.hi - a.lo + 1
	for i := 0; i < n; i++ {
		p := a.next
		a.next++
		if a.next > a.hi {
			a.next = a.lo
		}
		if _, taken := a.owner[p]; taken {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		a.owner[p] = id
		return p, nil
	}
	return 0, fmt.Errorf("no free port left in %d-%d: delete sandboxes or widen --port-range", a.lo, a.hi)
}

// reclaim takes port back for id (a sandbox resuming): it succeeds when id
// holds it already, or when nobody holds it and nothing else on the host
// listens on it.
func (a *portAllocator) reclaim(id string, port int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if o, taken := a.owner[port]; taken {
		return o == id
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	a.owner[port] = id
	return true
}

// release frees every port of a sandbox.
func (a *portAllocator) release(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for p, o := range a.owner {
		if o == id {
			delete(a.owner, p)
		}
	}
}

// held returns the ports a sandbox holds.
func (a *portAllocator) held(id string) []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []int
	for p, o := range a.owner {
		if o == id {
			out = append(out, p)
		}
	}
	return out
}
