package notify

import "sync"

// Broker fans change notifications out to subscribers.
type Broker struct {
	mu   sync.Mutex
	subs map[*Sub]struct{}
}

// Sub is one subscription. C receives a value after every change to the
// subscribed sandbox (coalesced: one pending value at most).
type Sub struct {
	C  chan struct{}
	id string
}

// New returns an empty broker.
func New() *Broker { return &Broker{subs: map[*Sub]struct{}{}} }

// Subscribe listens to changes of sandbox id, or of every sandbox when id
// is empty. Call Unsubscribe when done.
func (b *Broker) Subscribe(id string) *Sub {
	s := &Sub{C: make(chan struct{}, 1), id: id}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Unsubscribe ends a subscription.
func (b *Broker) Unsubscribe(s *Sub) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
}

// Notify signals that sandbox id changed.
func (b *Broker) Notify(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if s.id == "" || s.id == id {
			select {
			case s.C <- struct{}{}:
			default:
			}
		}
	}
}
