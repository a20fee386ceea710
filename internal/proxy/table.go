package proxy

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"sandpit.dev/sandpit/internal/sandbox"
)

// Target is what the proxy knows about one sandbox: enough to route a
// request or to explain why it cannot be routed.
type Target struct {
	Phase   sandbox.Phase
	Message string
	// Endpoints are the sandbox's endpoints with their routes. A route whose
	// Upstream is empty has no address yet; requests to it get a 502 that
	// names the service and port.
	Endpoints []sandbox.EndpointStatus
}

// TargetFromStatus is the Target for a sandbox's observed status.
func TargetFromStatus(st sandbox.Status) Target {
	return Target{Phase: st.Phase, Message: st.Message, Endpoints: st.Endpoints}
}

// Table maps sandbox names to targets. The server calls Set and Delete when
// a sandbox's status changes; the proxy reads it on every request.
//
// Reads are one atomic load and one map lookup. Writes copy the whole map,
// which is fine because they happen a few times per sandbox launch, not per
// request, and it keeps the request path free of locks. The zero value is an
// empty table ready to use.
//
// Requests held while a suspended sandbox wakes up wait for its entry to
// change through watch, which takes the writers' lock: that is off the
// request path of a Ready sandbox.
type Table struct {
	mu sync.Mutex // serialises writers and watch; lookups never take it
	m  atomic.Pointer[map[string]*entry]
	// changed holds, for sandboxes that someone watches, a channel that
	// the next Set or Delete of that sandbox closes. Only names in the
	// table have one, so it never outgrows the table.
	changed map[string]chan struct{}
}

// NewTable returns an empty table.
func NewTable() *Table { return &Table{} }

// entry is a Target compiled for the request path: endpoints and routes in
// the order lookups want them, and strings precomputed so that routing a
// request allocates nothing.
type entry struct {
	name      string
	target    Target // a private deep copy, returned by Get
	endpoints []*endpoint
}

type endpoint struct {
	name     string
	routes   []*route // longest prefix first, for matching
	declared []*route // in the template's order, for messages
}

type route struct {
	// prefix has no trailing slash, except for the root route "/".
	prefix   string
	service  string
	port     string
	upstream string // host:port; empty while the runtime has no address
	// desc names the route in messages, e.g. "/api → api:http".
	desc string
}

// Set adds or replaces the target of a sandbox.
func (t *Table) Set(sandboxName string, tg Target) {
	e := compile(sandboxName, tg)
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.load()
	m := make(map[string]*entry, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[sandboxName] = e
	t.m.Store(&m)
	t.notify(sandboxName)
}

// Delete forgets a sandbox; requests for it get a 404 from then on.
func (t *Table) Delete(sandboxName string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.load()
	if _, ok := old[sandboxName]; !ok {
		return
	}
	m := make(map[string]*entry, len(old))
	for k, v := range old {
		if k != sandboxName {
			m[k] = v
		}
	}
	t.m.Store(&m)
	t.notify(sandboxName)
}

// watch returns a sandbox's entry, nil if it is not in the table, and a
// channel that is closed when the entry is next replaced or deleted (nil
// with a nil entry). Both are read under the writers' lock, so a change
// made after watch returns always closes the channel: a caller that checks
// the entry and then waits on the channel cannot miss a change.
func (t *Table) watch(name string) (*entry, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.load()[name]
	if e == nil {
		return nil, nil
	}
	ch := t.changed[name]
	if ch == nil {
		if t.changed == nil {
			t.changed = map[string]chan struct{}{}
		}
		ch = make(chan struct{})
		t.changed[name] = ch
	}
	return e, ch
}

// notify wakes the watchers of a sandbox. t.mu must be held.
func (t *Table) notify(name string) {
	if ch, ok := t.changed[name]; ok {
		close(ch)
		delete(t.changed, name)
	}
}

// Get returns a copy of the target last Set for a sandbox.
func (t *Table) Get(sandboxName string) (Target, bool) {
	e := t.lookup(sandboxName)
	if e == nil {
		return Target{}, false
	}
	return copyTarget(e.target), true
}

// Len is the number of sandboxes in the table.
func (t *Table) Len() int { return len(t.load()) }

func (t *Table) load() map[string]*entry {
	if p := t.m.Load(); p != nil {
		return *p
	}
	return nil
}

func (t *Table) lookup(name string) *entry { return t.load()[name] }

func compile(name string, tg Target) *entry {
	e := &entry{name: name, target: copyTarget(tg)}
	for _, es := range e.target.Endpoints {
		ep := &endpoint{name: es.Name}
		for _, r := range es.Routes {
			rt := &route{
				prefix:   normalizePrefix(r.PathPrefix),
				service:  r.Service,
				port:     r.Port,
				upstream: r.Upstream,
			}
			rt.desc = rt.prefix + " → " + r.Service + ":" + r.Port
			ep.routes = append(ep.routes, rt)
		}
		ep.declared = slices.Clone(ep.routes)
		// Longest prefix first, so the first match is the most specific.
		// Stable, so that of two routes with the same prefix the one
		// written first wins, as in the template.
		slices.SortStableFunc(ep.routes, func(a, b *route) int { return len(b.prefix) - len(a.prefix) })
		e.endpoints = append(e.endpoints, ep)
	}
	slices.SortFunc(e.endpoints, func(a, b *endpoint) int { return strings.Compare(a.name, b.name) })
	return e
}

func copyTarget(tg Target) Target {
	out := tg
	out.Endpoints = make([]sandbox.EndpointStatus, len(tg.Endpoints))
	for i, es := range tg.Endpoints {
		es.Routes = slices.Clone(es.Routes)
		out.Endpoints[i] = es
	}
	return out
}

// normalizePrefix makes "/api/" and "api" mean "/api", so that a prefix
// always matches on path-segment boundaries.
func normalizePrefix(p string) string {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	for len(p) > 1 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
	}
	return p
}

func (e *entry) endpoint(name string) *endpoint {
	// A sandbox has a handful of endpoints; a linear scan beats a map here.
	for _, ep := range e.endpoints {
		if ep.name == name {
			return ep
		}
	}
	return nil
}

// match returns the route with the longest prefix that matches path on a
// segment boundary: "/api" matches "/api" and "/api/x" but not "/apix".
func (ep *endpoint) match(path string) *route {
	if path == "" {
		path = "/"
	}
	for _, r := range ep.routes {
		if prefixMatch(r.prefix, path) {
			return r
		}
	}
	return nil
}

func prefixMatch(prefix, path string) bool {
	if prefix == "/" {
		return true
	}
	return strings.HasPrefix(path, prefix) && (len(path) == len(prefix) || path[len(prefix)] == '/')
}
