package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"sandpit.dev/sandpit/internal/lifecycle"
	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
	"sandpit.dev/sandpit/internal/template"
)

// template returns a parsed template version, cached: versions never
// change once stored.
func (r *Reconciler) template(ctx context.Context, name string, version int) (*template.Template, error) {
	key := fmt.Sprintf("%s\x00%d", name, version)
	r.tmplMu.Lock()
	t := r.templates[key]
	r.tmplMu.Unlock()
	if t != nil {
		return t, nil
	}
	tv, err := r.cfg.Store.GetTemplate(ctx, name, version)
	if err != nil {
		return nil, err
	}
	t, err = template.Parse(tv.Filename, tv.Source)
	if err != nil {
		return nil, err
	}
	r.tmplMu.Lock()
	r.templates[key] = t
	r.tmplMu.Unlock()
	return t, nil
}

// resolve is the lifecycle in force for sb under template t.
func (r *Reconciler) resolve(t *template.Template, sb *sandbox.Sandbox) *sandbox.Lifecycle {
	var tl *template.Lifecycle
	if t != nil {
		tl = t.Lifecycle
	}
	l := lifecycle.Resolve(tl, sb.Spec.Lifecycle, r.cfg.Policy)
	return &l
}

// Lifecycle returns the lifecycle in force for sb and its deadlines at now,
// for the API to show.
func (r *Reconciler) Lifecycle(ctx context.Context, sb *sandbox.Sandbox) (sandbox.Lifecycle, sandbox.Deadlines) {
	t, _ := r.template(ctx, sb.Spec.Template, sb.Spec.TemplateVersion)
	lc := r.resolve(t, sb)
	d := lifecycle.Evaluate(sb, *lc, r.lastActive(sb), r.now())
	return *lc, d.Deadlines
}

// lastActive is the latest activity known for sb: stored, or recorded in
// memory and not stored yet.
func (r *Reconciler) lastActive(sb *sandbox.Sandbox) time.Time {
	var t time.Time
	if sb.LastActivityAt != nil {
		t = *sb.LastActivityAt
	}
	if r.cfg.Activity != nil {
		if m := r.cfg.Activity(sb.Name); m.After(t) {
			t = m
		}
	}
	return t
}

func (r *Reconciler) evaluate(ctx context.Context, sb *sandbox.Sandbox) lifecycle.Decision {
	t, err := r.template(ctx, sb.Spec.Template, sb.Spec.TemplateVersion)
	if err != nil {
		// provision reports a template that is gone or broken; the
		// lifecycle still applies what the sandbox itself says.
		t = nil
	}
	return lifecycle.Evaluate(sb, *r.resolve(t, sb), r.lastActive(sb), r.now())
}

// requeue looks at the sandbox again at the next lifecycle deadline, or at
// the resync period, whichever comes first.
func (r *Reconciler) requeue(d lifecycle.Decision) Result {
	if d.Action != lifecycle.Keep {
		return Result{RequeueAfter: time.Millisecond} // due already
	}
	after := r.cfg.Resync
	if !d.Next.IsZero() {
		if until := d.Next.Sub(r.now()); until < after {
			after = max(until, time.Millisecond)
		}
	}
	return Result{RequeueAfter: after}
}

// launchKey digests the part of a sandbox that its runtime state is made
// from; lifecycle fields (pins, deadlines, suspend requests) are not in it.
func launchKey(sb *sandbox.Sandbox) string {
	b, _ := json.Marshal(struct {
		Name     string
		Template string
		Version  int
		Ref      string
		Set      map[string]string
		Restores map[string]sandbox.Restore
	}{sb.Name, sb.Spec.Template, sb.Spec.TemplateVersion, sb.Spec.Ref, sb.Spec.Set, sb.Spec.Restores})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// expire requests the deletion of a sandbox whose time is up, then deletes
// it. The request is stored first, so a restart mid-delete finishes it.
func (r *Reconciler) expire(ctx context.Context, sb *sandbox.Sandbox, reason string) (Result, error) {
	now := r.now()
	cur, err := r.cfg.Store.UpdateSpec(ctx, sb.ID, func(sp *sandbox.Spec) error {
		if sp.DeletionRequestedAt == nil {
			sp.DeletionRequestedAt = &now
			sp.DeletionReason = reason
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return Result{}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("request deletion of %s (%s): %w", sb.Name, reason, err)
	}
	r.event(ctx, cur, sandbox.Event{Type: sandbox.EventNormal, Reason: sandbox.ReasonExpired, Message: "deleting: " + reason})
	r.log.Info("lifecycle deletes sandbox", "sandbox", sb.Name, "id", sb.ID, "reason", reason)
	r.metrics.lifecycle.WithLabelValues("delete").Inc()
	if cur.Spec.Pool != "" {
		r.WantPoolCheck()
	}
	return r.delete(ctx, cur)
}

// suspend stops a sandbox's processes and frees its ports, keeping its
// files and data, and marks it Suspended.
func (r *Reconciler) suspend(ctx context.Context, sb *sandbox.Sandbox, reason string) (Result, error) {
	sus, ok := r.cfg.Runtime.(runtime.Suspender)
	if !ok {
		r.log.Warn("the runtime cannot suspend sandboxes; leaving it running", "sandbox", sb.Name, "runtime", r.cfg.Runtime.Name())
		return Result{RequeueAfter: r.cfg.Resync}, nil
	}
	started := r.now()
	st := sb.Status
	p := r.newProgress(ctx, sb, st)
	if err := sus.Suspend(ctx, sb.ID, p); err != nil {
		st = p.snapshot()
		st.Message = "suspending: " + firstLine(err.Error())
		r.writeStatus(ctx, sb, st)
		return Result{}, fmt.Errorf("suspend %s: %w", sb.Name, err)
	}
	st = p.snapshot()
	now := r.now()
	if sb.Status.Phase != sandbox.PhaseReady {
		// Asked to sleep mid-launch: the launch resumes when it wakes.
		st.ObservedGeneration = 0
	}
	r.setPhase(ctx, sb, &st, sandbox.PhaseSuspended, reason)
	st.SuspendedAt, st.SuspendReason = &now, reason
	if obs, err := r.cfg.Runtime.Observe(ctx, sb.ID); err == nil {
		st.Services, st.Dependencies = obs.Services, mergeDeps(st.Dependencies, obs.Dependencies)
	}
	r.writeStatus(ctx, sb, st)
	d := now.Sub(started)
	r.event(ctx, sb, sandbox.Event{Type: sandbox.EventNormal, Reason: sandbox.ReasonSuspended, DurationMS: ms(d),
		Message: fmt.Sprintf("suspended (%s): processes stopped and ports freed in %s; files and data kept", reason, round(d))})
	r.metrics.lifecycle.WithLabelValues("suspend").Inc()
	r.log.Info("sandbox suspended", "sandbox", sb.Name, "id", sb.ID, "reason", reason, "took", round(d))
	return r.requeue(r.evaluate(ctx, sb)), nil
}

// resume wakes a Suspended sandbox: Up starts it again from what is on
// disk.
func (r *Reconciler) resume(ctx context.Context, sb *sandbox.Sandbox) (Result, error) {
	// What woke it (a request, `sandpit resume`, a claim) is in the event
	// that recorded it; here, how long it slept.
	reason := "woken"
	if at := sb.Status.SuspendedAt; at != nil {
		reason = fmt.Sprintf("woken after %s asleep", round(r.now().Sub(*at)))
	}
	r.metrics.lifecycle.WithLabelValues("resume").Inc()
	return r.provision(ctx, sb, reason)
}

// WantPoolCheck asks for the warm pools to be checked soon (after a claim,
// a template change, or a pool sandbox's change).
func (r *Reconciler) WantPoolCheck() {
	select {
	case r.pools <- struct{}{}:
	default:
	}
}

// StopPools stops keeping warm pools (no more pool sandboxes are made or
// removed), so that everything can be deleted before a shutdown without the
// pools refilling behind it. Tests use it.
func (r *Reconciler) StopPools() { r.poolsStopped.Store(true) }

// poolNamePrefix starts the names of pool sandboxes.
const poolNamePrefix = "pool-"

// checkPools creates and deletes pool sandboxes so that every template
// with lifecycle.pool.min = N has N unclaimed sandboxes of its latest
// version, and none of older versions.
func (r *Reconciler) checkPools(ctx context.Context) {
	if r.poolsStopped.Load() {
		return
	}
	tvs, err := r.cfg.Store.ListTemplates(ctx)
	if err != nil {
		r.log.Warn("list templates for pools", "err", err)
		return
	}
	sbs, err := r.cfg.Store.ListSandboxes(ctx, store.ListOptions{})
	if err != nil {
		r.log.Warn("list sandboxes for pools", "err", err)
		return
	}
	members := map[string][]*sandbox.Sandbox{}
	for _, sb := range sbs {
		if sb.Spec.Pool != "" && !sb.Spec.Deleting() {
			members[sb.Spec.Pool] = append(members[sb.Spec.Pool], sb)
		}
	}
	latest := map[string]bool{}
	for _, tv := range tvs {
		latest[tv.Name] = true
		t, err := r.template(ctx, tv.Name, tv.Version)
		want := 0
		if err == nil && t.Lifecycle != nil && t.Lifecycle.Pool != nil {
			want = t.Lifecycle.Pool.Min
		}
		var current []*sandbox.Sandbox
		for _, sb := range members[tv.Name] {
			if sb.Spec.TemplateVersion != tv.Version {
				r.poolDelete(ctx, sb, sandbox.DeletedPoolOutdated)
				continue
			}
			current = append(current, sb)
		}
		// Surplus: the newest go first (the oldest are likeliest Ready).
		for len(current) > want {
			r.poolDelete(ctx, current[len(current)-1], sandbox.DeletedPoolSurplus)
			current = current[:len(current)-1]
		}
		for i := len(current); i < want; i++ {
			r.poolCreate(ctx, tv.Name, tv.Version)
		}
	}
	for name, list := range members {
		if !latest[name] {
			for _, sb := range list {
				r.poolDelete(ctx, sb, sandbox.DeletedPoolOutdated)
			}
		}
	}
}

func (r *Reconciler) poolCreate(ctx context.Context, tmpl string, version int) {
	for attempt := 0; attempt < 3; attempt++ {
		sb := &sandbox.Sandbox{
			ID:        sandbox.NewID(),
			Spec:      sandbox.Spec{Template: tmpl, TemplateVersion: version, Pool: tmpl, CreatedBy: sandbox.PoolOwner},
			CreatedAt: r.now(),
		}
		sb.Name = PoolSandboxName(tmpl, sb.ID)
		err := r.cfg.Store.CreateSandbox(ctx, sb)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			r.log.Warn("create pool sandbox", "template", tmpl, "err", err)
			return
		}
		r.event(ctx, sb, sandbox.Event{Type: sandbox.EventNormal, Reason: sandbox.ReasonCreated,
			Message: fmt.Sprintf("created for the warm pool of template %s version %d", tmpl, version)})
		r.metrics.lifecycle.WithLabelValues("pool_create").Inc()
		r.log.Info("pool sandbox created", "sandbox", sb.Name, "template", tmpl, "version", version)
		r.Enqueue(sb.ID)
		return
	}
}

// PoolSandboxName names a pool sandbox: "pool-", as much of the template's
// name as fits, and part of its id.
func PoolSandboxName(tmpl, id string) string {
	suffix := "-" + id[len(id)-6:]
	room := sandbox.MaxNameLength - len(poolNamePrefix) - len(suffix)
	base := tmpl
	if len(base) > room {
		base = base[:room]
	}
	for len(base) > 0 && base[len(base)-1] == '-' {
		base = base[:len(base)-1]
	}
	return poolNamePrefix + base + suffix
}

func (r *Reconciler) poolDelete(ctx context.Context, sb *sandbox.Sandbox, reason string) {
	now := r.now()
	_, err := r.cfg.Store.UpdateSpec(ctx, sb.ID, func(sp *sandbox.Spec) error {
		if sp.Pool == "" {
			return errClaimed // claimed meanwhile: not the pool's any more
		}
		if sp.DeletionRequestedAt == nil {
			sp.DeletionRequestedAt, sp.DeletionReason = &now, reason
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, errClaimed) && !errors.Is(err, store.ErrNotFound) {
			r.log.Warn("delete pool sandbox", "sandbox", sb.Name, "err", err)
		}
		return
	}
	r.event(ctx, sb, sandbox.Event{Type: sandbox.EventNormal, Reason: sandbox.ReasonDeleting, Message: "deleting: " + reason})
	r.Enqueue(sb.ID)
}

var errClaimed = errors.New("claimed")
