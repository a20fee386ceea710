package server

import (
	"sync"

	"sandpit.dev/sandpit/internal/lifecycle"
	"sandpit.dev/sandpit/internal/proxy"
	"sandpit.dev/sandpit/internal/sandbox"
)

// Routes keeps the endpoint proxy's table in step with the sandboxes'
// status. It remembers each sandbox's name, so that a sandbox renamed by a
// pool claim leaves no route (or activity) under its old name.
type Routes struct {
	table    *proxy.Table
	activity *lifecycle.Activity

	mu    sync.Mutex
	names map[string]string // id → name in the table
}

// NewRoutes returns Routes over table; activity (optional) forgets the
// names that go away.
func NewRoutes(table *proxy.Table, activity *lifecycle.Activity) *Routes {
	return &Routes{table: table, activity: activity, names: map[string]string{}}
}

// Load puts every sandbox in the table (at start).
func (r *Routes) Load(sbs []*sandbox.Sandbox) {
	for _, sb := range sbs {
		r.Update(sb, false)
	}
}

// Update is the reconciler's OnChange: it sets (or, when gone, removes) the
// sandbox's route.
func (r *Routes) Update(sb *sandbox.Sandbox, gone bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.names[sb.ID]; ok && old != sb.Name {
		r.forget(old)
	}
	if gone {
		delete(r.names, sb.ID)
		r.forget(sb.Name)
		return
	}
	r.names[sb.ID] = sb.Name
	r.table.Set(sb.Name, proxy.TargetFromStatus(sb.Status))
}

func (r *Routes) forget(name string) {
	r.table.Delete(name)
	if r.activity != nil {
		r.activity.Forget(name)
	}
}
