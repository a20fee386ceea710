package lifecycle_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/lifecycle"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/template"
)

// t0 is when the sandboxes under test were created; every other moment is
// an offset from it, so failures read as "t0+30m".
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func ptr[T any](v T) *T { return &v }

func dur(d time.Duration) *sandbox.Duration { return ptr(sandbox.Duration(d)) }

func rel(t time.Time) string {
	if t.IsZero() {
		return "zero"
	}
	return "t0+" + t.Sub(t0).String()
}

func relp(t *time.Time) string {
	if t == nil {
		return "nil"
	}
	return rel(*t)
}

// sb builds a sandbox in phase, created at t0 by alice, then applies opts.
func sb(phase sandbox.Phase, opts ...func(*sandbox.Sandbox)) *sandbox.Sandbox {
	s := &sandbox.Sandbox{
		ID: "sb-0000000000000001", Name: "web", CreatedAt: t0,
		Spec:   sandbox.Spec{Template: "app", TemplateVersion: 1, CreatedBy: "alice"},
		Status: sandbox.Status{Phase: phase},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func readyAt(t time.Time) func(*sandbox.Sandbox) {
	return func(s *sandbox.Sandbox) { s.Status.ReadyAt = ptr(t) }
}

func failedAt(t time.Time) func(*sandbox.Sandbox) {
	return func(s *sandbox.Sandbox) { s.Status.FailedAt = ptr(t) }
}

func suspendedAt(t time.Time) func(*sandbox.Sandbox) {
	return func(s *sandbox.Sandbox) { s.Status.SuspendedAt = ptr(t) }
}

func suspendRequested(t time.Time, by string) func(*sandbox.Sandbox) {
	return func(s *sandbox.Sandbox) { s.Spec.SuspendRequestedAt, s.Spec.SuspendRequestedBy = ptr(t), by }
}

func pinned(s *sandbox.Sandbox) { s.Spec.Pin = &sandbox.Pin{By: "alice", At: t0} }

func poolMember(s *sandbox.Sandbox) {
	s.Spec.Pool, s.Spec.CreatedBy, s.Name = "app", sandbox.PoolOwner, "pool-app-000001"
}

func extendedTo(t time.Time) func(*sandbox.Sandbox) {
	return func(s *sandbox.Sandbox) { s.Spec.ExpiresAt = ptr(t) }
}

func claimedAt(t time.Time) func(*sandbox.Sandbox) {
	return func(s *sandbox.Sandbox) { s.Spec.ClaimedAt = ptr(t) }
}

func deleting(s *sandbox.Sandbox) {
	s.Spec.DeletionRequestedAt, s.Spec.DeletionReason = ptr(t0), sandbox.DeletedByUser
}

func TestResolve(t *testing.T) {
	tmpl := &template.Lifecycle{
		IdleSuspend: template.Duration(30 * time.Minute),
		TTL:         template.Duration(24 * time.Hour),
		KeepFailed:  template.Duration(2 * time.Hour),
	}
	serverIdle := lifecycle.Policy{IdleSuspend: ptr(time.Hour), KeepFailed: 6 * time.Hour, SuspendedRetention: 7 * 24 * time.Hour}

	tests := []struct {
		name string
		tmpl *template.Lifecycle
		o    *sandbox.LifecycleOverrides
		p    lifecycle.Policy
		want sandbox.Lifecycle
	}{
		{
			name: "nothing set anywhere",
			want: sandbox.Lifecycle{IdleSuspendFrom: "default", TTLFrom: "default", KeepFailedFrom: "server"},
		},
		{
			name: "nil template and overrides take the server's keep_failed and retention",
			p:    lifecycle.Policy{KeepFailed: 6 * time.Hour, SuspendedRetention: 72 * time.Hour},
			want: sandbox.Lifecycle{IdleSuspendFrom: "default", TTLFrom: "default",
				KeepFailed: sandbox.Duration(6 * time.Hour), KeepFailedFrom: "server",
				SuspendedRetention: sandbox.Duration(72 * time.Hour)},
		},
		{
			name: "empty template and overrides are like nil",
			tmpl: &template.Lifecycle{},
			o:    &sandbox.LifecycleOverrides{},
			p:    lifecycle.Policy{KeepFailed: time.Hour},
			want: sandbox.Lifecycle{IdleSuspendFrom: "default", TTLFrom: "default",
				KeepFailed: sandbox.Duration(time.Hour), KeepFailedFrom: "server"},
		},
		{
			name: "template wins over the server's defaults",
			tmpl: tmpl,
			p:    lifecycle.Policy{KeepFailed: 6 * time.Hour},
			want: sandbox.Lifecycle{
				IdleSuspend: sandbox.Duration(30 * time.Minute), IdleSuspendFrom: "template",
				TTL: sandbox.Duration(24 * time.Hour), TTLFrom: "template",
				KeepFailed: sandbox.Duration(2 * time.Hour), KeepFailedFrom: "template",
			},
		},
		{
			name: "server idle_suspend overrides the template's",
			tmpl: tmpl,
			p:    serverIdle,
			want: sandbox.Lifecycle{
				IdleSuspend: sandbox.Duration(time.Hour), IdleSuspendFrom: "server",
				TTL: sandbox.Duration(24 * time.Hour), TTLFrom: "template",
				KeepFailed: sandbox.Duration(2 * time.Hour), KeepFailedFrom: "template",
				SuspendedRetention: sandbox.Duration(7 * 24 * time.Hour),
			},
		},
		{
			name: "server idle_suspend applies without a template",
			p:    lifecycle.Policy{IdleSuspend: ptr(15 * time.Minute)},
			want: sandbox.Lifecycle{IdleSuspend: sandbox.Duration(15 * time.Minute), IdleSuspendFrom: "server",
				TTLFrom: "default", KeepFailedFrom: "server"},
		},
		{
			name: "server idle_suspend 0 disables the template's",
			tmpl: tmpl,
			p:    lifecycle.Policy{IdleSuspend: ptr(time.Duration(0))},
			want: sandbox.Lifecycle{
				IdleSuspend: 0, IdleSuspendFrom: "server",
				TTL: sandbox.Duration(24 * time.Hour), TTLFrom: "template",
				KeepFailed: sandbox.Duration(2 * time.Hour), KeepFailedFrom: "template",
			},
		},
		{
			name: "sandbox overrides win over server and template",
			tmpl: tmpl,
			o:    &sandbox.LifecycleOverrides{IdleSuspend: dur(10 * time.Minute), TTL: dur(48 * time.Hour), KeepFailed: dur(5 * time.Minute)},
			p:    serverIdle,
			want: sandbox.Lifecycle{
				IdleSuspend: sandbox.Duration(10 * time.Minute), IdleSuspendFrom: "sandbox",
				TTL: sandbox.Duration(48 * time.Hour), TTLFrom: "sandbox",
				KeepFailed: sandbox.Duration(5 * time.Minute), KeepFailedFrom: "sandbox",
				SuspendedRetention: sandbox.Duration(7 * 24 * time.Hour),
			},
		},
		{
			name: "sandbox overrides of 0 turn each setting off",
			tmpl: tmpl,
			o:    &sandbox.LifecycleOverrides{IdleSuspend: dur(0), TTL: dur(0), KeepFailed: dur(0)},
			p:    serverIdle,
			want: sandbox.Lifecycle{
				IdleSuspendFrom: "sandbox", TTLFrom: "sandbox", KeepFailedFrom: "sandbox",
				SuspendedRetention: sandbox.Duration(7 * 24 * time.Hour),
			},
		},
		{
			name: "a partial override leaves the rest to template and server",
			tmpl: &template.Lifecycle{IdleSuspend: template.Duration(30 * time.Minute)},
			o:    &sandbox.LifecycleOverrides{TTL: dur(8 * time.Hour)},
			p:    lifecycle.Policy{KeepFailed: 6 * time.Hour},
			want: sandbox.Lifecycle{
				IdleSuspend: sandbox.Duration(30 * time.Minute), IdleSuspendFrom: "template",
				TTL: sandbox.Duration(8 * time.Hour), TTLFrom: "sandbox",
				KeepFailed: sandbox.Duration(6 * time.Hour), KeepFailedFrom: "server",
			},
		},
		{
			name: "overrides without a template",
			o:    &sandbox.LifecycleOverrides{IdleSuspend: dur(time.Minute)},
			want: sandbox.Lifecycle{IdleSuspend: sandbox.Duration(time.Minute), IdleSuspendFrom: "sandbox",
				TTLFrom: "default", KeepFailedFrom: "server"},
		},
		{
			name: "pool that suspends",
			tmpl: &template.Lifecycle{Pool: &template.Pool{Min: 2, Suspend: true}},
			want: sandbox.Lifecycle{IdleSuspendFrom: "default", TTLFrom: "default", KeepFailedFrom: "server", PoolSuspend: true},
		},
		{
			name: "pool that stays running",
			tmpl: &template.Lifecycle{Pool: &template.Pool{Min: 2}},
			want: sandbox.Lifecycle{IdleSuspendFrom: "default", TTLFrom: "default", KeepFailedFrom: "server"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := lifecycle.Resolve(tt.tmpl, tt.o, tt.p)
			if got != tt.want {
				t.Errorf("Resolve =\n  %+v\nwant\n  %+v", got, tt.want)
			}
		})
	}
}

func TestResolveDoesNotModifyItsArguments(t *testing.T) {
	tmpl := &template.Lifecycle{IdleSuspend: template.Duration(time.Minute)}
	o := &sandbox.LifecycleOverrides{TTL: dur(time.Hour)}
	lifecycle.Resolve(tmpl, o, lifecycle.Policy{IdleSuspend: ptr(time.Hour)})
	if tmpl.IdleSuspend != template.Duration(time.Minute) || o.IdleSuspend != nil || o.KeepFailed != nil || *o.TTL != sandbox.Duration(time.Hour) {
		t.Errorf("Resolve changed its arguments: template %+v, overrides %+v", tmpl, o)
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[lifecycle.Action]string{lifecycle.Keep: "keep", lifecycle.Suspend: "suspend", lifecycle.Wake: "wake", lifecycle.Delete: "delete"} {
		if got := a.String(); got != want {
			t.Errorf("Action(%d).String() = %q, want %q", int(a), got, want)
		}
	}
}

// want describes an expected Decision with plain values; nil pointers
// mean "no such deadline".
type want struct {
	action    lifecycle.Action
	reason    string
	suspendAt *time.Time
	expiresAt *time.Time
	deleteAt  *time.Time
	next      time.Time
}

func checkDecision(t *testing.T, got lifecycle.Decision, w want) {
	t.Helper()
	eqp := func(a, b *time.Time) bool { return (a == nil) == (b == nil) && (a == nil || a.Equal(*b)) }
	if got.Action != w.action || got.Reason != w.reason || !got.Next.Equal(w.next) ||
		!eqp(got.Deadlines.SuspendAt, w.suspendAt) || !eqp(got.Deadlines.ExpiresAt, w.expiresAt) || !eqp(got.Deadlines.DeleteAt, w.deleteAt) {
		t.Errorf("Evaluate:\n  got  %s %q suspend_at=%s expires_at=%s delete_at=%s next=%s\n  want %s %q suspend_at=%s expires_at=%s delete_at=%s next=%s",
			got.Action, got.Reason, relp(got.Deadlines.SuspendAt), relp(got.Deadlines.ExpiresAt), relp(got.Deadlines.DeleteAt), rel(got.Next),
			w.action, w.reason, relp(w.suspendAt), relp(w.expiresAt), relp(w.deleteAt), rel(w.next))
	}
}

func TestEvaluate(t *testing.T) {
	const (
		m = time.Minute
		h = time.Hour
		d = 24 * time.Hour
	)
	ready := at(5 * m) // when the sandboxes under test became Ready
	idle := sandbox.Lifecycle{IdleSuspend: sandbox.Duration(30 * m)}
	ttl := sandbox.Lifecycle{TTL: sandbox.Duration(24 * h)}
	keepFailed := sandbox.Lifecycle{KeepFailed: sandbox.Duration(h)}
	retention := sandbox.Lifecycle{SuspendedRetention: sandbox.Duration(7 * d)}
	poolSuspend := sandbox.Lifecycle{PoolSuspend: true}
	all := sandbox.Lifecycle{
		IdleSuspend: sandbox.Duration(30 * m), TTL: sandbox.Duration(24 * h), KeepFailed: sandbox.Duration(h),
		SuspendedRetention: sandbox.Duration(7 * d), PoolSuspend: true,
	}

	tests := []struct {
		name string
		sb   *sandbox.Sandbox
		lc   sandbox.Lifecycle
		last time.Time // lastActive
		now  time.Time
		want want
	}{
		// Idle suspend.
		{
			name: "ready and never used: idle counts from ReadyAt, a nanosecond before the deadline",
			sb:   sb(sandbox.PhaseReady, readyAt(ready)), lc: idle,
			now:  ready.Add(30*m - 1),
			want: want{action: lifecycle.Keep, suspendAt: ptr(ready.Add(30 * m)), next: ready.Add(30 * m)},
		},
		{
			name: "ready and never used: suspended exactly at the deadline",
			sb:   sb(sandbox.PhaseReady, readyAt(ready)), lc: idle,
			now:  ready.Add(30 * m),
			want: want{action: lifecycle.Suspend, reason: "idle for 30m", suspendAt: ptr(ready.Add(30 * m))},
		},
		{
			name: "ready and idle long past the deadline",
			sb:   sb(sandbox.PhaseReady, readyAt(ready)), lc: idle,
			now:  ready.Add(5 * d),
			want: want{action: lifecycle.Suspend, reason: "idle for 30m", suspendAt: ptr(ready.Add(30 * m))},
		},
		{
			name: "activity resets the countdown",
			sb:   sb(sandbox.PhaseReady, readyAt(ready)), lc: idle,
			last: ready.Add(20 * m), now: ready.Add(30 * m),
			want: want{action: lifecycle.Keep, suspendAt: ptr(ready.Add(50 * m)), next: ready.Add(50 * m)},
		},
		{
			name: "idle period after the last activity: a nanosecond before",
			sb:   sb(sandbox.PhaseReady, readyAt(ready)), lc: idle,
			last: ready.Add(20 * m), now: ready.Add(50*m - 1),
			want: want{action: lifecycle.Keep, suspendAt: ptr(ready.Add(50 * m)), next: ready.Add(50 * m)},
		},
		{
			name: "idle period after the last activity: exactly at the deadline",
			sb:   sb(sandbox.PhaseReady, readyAt(ready)), lc: idle,
			last: ready.Add(20 * m), now: ready.Add(50 * m),
			want: want{action: lifecycle.Suspend, reason: "idle for 30m", suspendAt: ptr(ready.Add(50 * m))},
		},
		{
			name: "freshly woken: ReadyAt later than the waking request is the base",
			sb:   sb(sandbox.PhaseReady, readyAt(at(3*h+20*time.Second))), lc: idle,
			last: at(3 * h), now: at(3*h + 30*m),
			want: want{action: lifecycle.Keep, suspendAt: ptr(at(3*h + 30*m + 20*time.Second)), next: at(3*h + 30*m + 20*time.Second)},
		},
		{
			name: "an open session (lastActive = now) keeps it awake however old ReadyAt is",
			sb:   sb(sandbox.PhaseReady, readyAt(ready)), lc: idle,
			last: at(10 * h), now: at(10 * h),
			want: want{action: lifecycle.Keep, suspendAt: ptr(at(10*h + 30*m)), next: at(10*h + 30*m)},
		},
		{
			name: "without ReadyAt or activity idle counts from creation",
			sb:   sb(sandbox.PhaseReady), lc: idle,
			now:  at(30 * m),
			want: want{action: lifecycle.Suspend, reason: "idle for 30m", suspendAt: ptr(at(30 * m))},
		},
		{
			name: "idle suspend off",
			sb:   sb(sandbox.PhaseReady, readyAt(ready)),
			now:  at(100 * d),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "reason in hours and minutes",
			sb:   sb(sandbox.PhaseReady, readyAt(ready)), lc: sandbox.Lifecycle{IdleSuspend: sandbox.Duration(90 * m)},
			now:  ready.Add(90 * m),
			want: want{action: lifecycle.Suspend, reason: "idle for 1h30m", suspendAt: ptr(ready.Add(90 * m))},
		},
		{
			name: "reason in whole hours",
			sb:   sb(sandbox.PhaseReady, readyAt(ready)), lc: sandbox.Lifecycle{IdleSuspend: sandbox.Duration(2 * h)},
			now:  ready.Add(2 * h),
			want: want{action: lifecycle.Suspend, reason: "idle for 2h", suspendAt: ptr(ready.Add(2 * h))},
		},
		{
			name: "reason in seconds",
			sb:   sb(sandbox.PhaseReady, readyAt(ready)), lc: sandbox.Lifecycle{IdleSuspend: sandbox.Duration(45 * time.Second)},
			now:  ready.Add(45 * time.Second),
			want: want{action: lifecycle.Suspend, reason: "idle for 45s", suspendAt: ptr(ready.Add(45 * time.Second))},
		},
		{
			name: "pinned: never idle-suspended",
			sb:   sb(sandbox.PhaseReady, readyAt(ready), pinned), lc: idle,
			now:  at(100 * d),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "pool member: never idle-suspended",
			sb:   sb(sandbox.PhaseReady, readyAt(ready), poolMember), lc: idle,
			now:  at(100 * d),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "launching: no idle suspend while Pending",
			sb:   sb(sandbox.PhasePending), lc: idle,
			now:  at(10 * h),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "launching: no idle suspend while Provisioning",
			sb:   sb(sandbox.PhaseProvisioning), lc: idle,
			now:  at(10 * h),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "failed: no idle suspend",
			sb:   sb(sandbox.PhaseFailed, failedAt(ready)), lc: idle,
			now:  at(10 * h),
			want: want{action: lifecycle.Keep},
		},

		// Manual suspend.
		{
			name: "suspend requested while Ready, before it is idle",
			sb:   sb(sandbox.PhaseReady, readyAt(ready), suspendRequested(ready.Add(m), "bob")), lc: idle,
			last: ready.Add(m), now: ready.Add(m),
			want: want{action: lifecycle.Suspend, reason: "suspend requested by bob"},
		},
		{
			name: "suspend requested by nobody named",
			sb:   sb(sandbox.PhaseReady, readyAt(ready), suspendRequested(at(m), "")),
			now:  at(m),
			want: want{action: lifecycle.Suspend, reason: "suspend requested"},
		},
		{
			name: "suspend requested while Pending",
			sb:   sb(sandbox.PhasePending, suspendRequested(at(m), "bob")),
			now:  at(m),
			want: want{action: lifecycle.Suspend, reason: "suspend requested by bob"},
		},
		{
			name: "suspend requested while Provisioning",
			sb:   sb(sandbox.PhaseProvisioning, suspendRequested(at(m), "carol")),
			now:  at(m),
			want: want{action: lifecycle.Suspend, reason: "suspend requested by carol"},
		},
		{
			name: "suspend requested of a pinned sandbox: a pin only stops automatic suspend",
			sb:   sb(sandbox.PhaseReady, readyAt(ready), pinned, suspendRequested(at(m), "bob")), lc: idle,
			now:  at(m),
			want: want{action: lifecycle.Suspend, reason: "suspend requested by bob"},
		},
		{
			name: "suspend requested of a pool member",
			sb:   sb(sandbox.PhaseReady, readyAt(ready), poolMember, suspendRequested(at(m), "bob")), lc: poolSuspend,
			now:  at(m),
			want: want{action: lifecycle.Suspend, reason: "suspend requested by bob"},
		},
		{
			name: "suspend requested of a failed sandbox: nothing to do",
			sb:   sb(sandbox.PhaseFailed, failedAt(ready), suspendRequested(at(m), "bob")),
			now:  at(m),
			want: want{action: lifecycle.Keep},
		},

		// Pools.
		{
			name: "pool member of a pool that suspends: suspended once Ready",
			sb:   sb(sandbox.PhaseReady, readyAt(ready), poolMember), lc: poolSuspend,
			now:  ready,
			want: want{action: lifecycle.Suspend, reason: "pool sandboxes sleep until claimed"},
		},
		{
			name: "pool member of a pool that suspends: left to launch",
			sb:   sb(sandbox.PhaseProvisioning, poolMember), lc: poolSuspend,
			now:  at(m),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "PoolSuspend does not apply to a sandbox outside the pool",
			sb:   sb(sandbox.PhaseReady, readyAt(ready)), lc: poolSuspend,
			now:  at(100 * d),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "sleeping pool member stays asleep when a request reaches it",
			sb:   sb(sandbox.PhaseSuspended, poolMember, readyAt(ready), suspendedAt(ready)), lc: poolSuspend,
			last: at(h), now: at(h),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "pool member that was suspended by hand wakes when resumed (the pool does not suspend)",
			sb:   sb(sandbox.PhaseSuspended, poolMember, suspendedAt(ready)),
			last: at(h), now: at(h),
			want: want{action: lifecycle.Wake, reason: "woken"},
		},
		{
			name: "pool member has no TTL",
			sb:   sb(sandbox.PhaseReady, readyAt(ready), poolMember), lc: ttl,
			now:  at(100 * d),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "pool member has no suspended retention",
			sb:   sb(sandbox.PhaseSuspended, poolMember, suspendedAt(ready)), lc: sandbox.Lifecycle{SuspendedRetention: sandbox.Duration(7 * d), PoolSuspend: true},
			now:  at(100 * d),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "pool member that failed is kept for keep_failed",
			sb:   sb(sandbox.PhaseFailed, poolMember, failedAt(at(10*m))), lc: all,
			now:  at(10*m + h - 1),
			want: want{action: lifecycle.Keep, deleteAt: ptr(at(10*m + h)), next: at(10*m + h)},
		},
		{
			name: "pool member that failed is deleted when keep_failed ends",
			sb:   sb(sandbox.PhaseFailed, poolMember, failedAt(at(10*m))), lc: all,
			now:  at(10*m + h),
			want: want{action: lifecycle.Delete, reason: sandbox.DeletedKeepFailed, deleteAt: ptr(at(10*m + h))},
		},

		// Wake.
		{
			name: "suspended, activity after SuspendedAt: wake",
			sb:   sb(sandbox.PhaseSuspended, suspendedAt(at(h))),
			last: at(h + 1), now: at(2 * h),
			want: want{action: lifecycle.Wake, reason: "woken"},
		},
		{
			// `sandpit resume` records activity at the current time, which
			// a coarse clock may give as the suspension's own instant.
			name: "suspended, activity at the very instant of SuspendedAt: wake",
			sb:   sb(sandbox.PhaseSuspended, suspendedAt(at(h))),
			last: at(h), now: at(2 * h),
			want: want{action: lifecycle.Wake, reason: "woken"},
		},
		{
			name: "suspended, activity a nanosecond before SuspendedAt: stays asleep",
			sb:   sb(sandbox.PhaseSuspended, suspendedAt(at(h))),
			last: at(h - 1), now: at(2 * h),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "suspended, activity before SuspendedAt: stays asleep",
			sb:   sb(sandbox.PhaseSuspended, suspendedAt(at(h))),
			last: at(30 * m), now: at(2 * h),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "suspended, no activity ever: stays asleep",
			sb:   sb(sandbox.PhaseSuspended, suspendedAt(at(h))),
			now:  at(2 * h),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "suspended by request: activity does not wake it",
			sb:   sb(sandbox.PhaseSuspended, suspendedAt(at(h)), suspendRequested(at(h-m), "bob")),
			last: at(2 * h), now: at(2 * h),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "suspended, idle suspend does not matter",
			sb:   sb(sandbox.PhaseSuspended, suspendedAt(at(h))), lc: idle,
			now:  at(100 * d),
			want: want{action: lifecycle.Keep},
		},

		// TTL.
		{
			name: "TTL from creation: a nanosecond before",
			sb:   sb(sandbox.PhaseReady, readyAt(ready)), lc: ttl,
			now:  at(24*h - 1),
			want: want{action: lifecycle.Keep, expiresAt: ptr(at(24 * h)), next: at(24 * h)},
		},
		{
			name: "TTL from creation: deleted exactly at the deadline",
			sb:   sb(sandbox.PhaseReady, readyAt(ready)), lc: ttl,
			now:  at(24 * h),
			want: want{action: lifecycle.Delete, reason: sandbox.DeletedTTL, expiresAt: ptr(at(24 * h))},
		},
		{
			name: "TTL from the claim, not from when the pool made it",
			sb:   sb(sandbox.PhaseReady, readyAt(ready), claimedAt(at(3*h))), lc: ttl,
			now:  at(24 * h),
			want: want{action: lifecycle.Keep, expiresAt: ptr(at(27 * h)), next: at(27 * h)},
		},
		{
			name: "TTL from the claim: deleted at claim+TTL",
			sb:   sb(sandbox.PhaseReady, readyAt(ready), claimedAt(at(3*h))), lc: ttl,
			now:  at(27 * h),
			want: want{action: lifecycle.Delete, reason: sandbox.DeletedTTL, expiresAt: ptr(at(27 * h))},
		},
		{
			name: "extended: Spec.ExpiresAt replaces the TTL's deadline",
			sb:   sb(sandbox.PhaseReady, readyAt(ready), extendedTo(at(48*h))), lc: ttl,
			now:  at(30 * h),
			want: want{action: lifecycle.Keep, expiresAt: ptr(at(48 * h)), next: at(48 * h)},
		},
		{
			name: "extended: deleted at Spec.ExpiresAt",
			sb:   sb(sandbox.PhaseReady, readyAt(ready), extendedTo(at(48*h))), lc: ttl,
			now:  at(48 * h),
			want: want{action: lifecycle.Delete, reason: sandbox.DeletedTTL, expiresAt: ptr(at(48 * h))},
		},
		{
			name: "extended to before the TTL's deadline: the extension still rules",
			sb:   sb(sandbox.PhaseReady, readyAt(ready), extendedTo(at(2*h))), lc: ttl,
			now:  at(2 * h),
			want: want{action: lifecycle.Delete, reason: sandbox.DeletedTTL, expiresAt: ptr(at(2 * h))},
		},
		{
			name: "extended beyond a claim",
			sb:   sb(sandbox.PhaseReady, readyAt(ready), claimedAt(at(3*h)), extendedTo(at(72*h))), lc: ttl,
			now:  at(27 * h),
			want: want{action: lifecycle.Keep, expiresAt: ptr(at(72 * h)), next: at(72 * h)},
		},
		{
			name: "Spec.ExpiresAt without a TTL still applies",
			sb:   sb(sandbox.PhaseReady, readyAt(ready), extendedTo(at(5*h))),
			now:  at(5 * h),
			want: want{action: lifecycle.Delete, reason: sandbox.DeletedTTL, expiresAt: ptr(at(5 * h))},
		},
		{
			name: "no TTL: no deadline",
			sb:   sb(sandbox.PhaseReady, readyAt(ready)),
			now:  at(1000 * d),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "pinned: exempt from the TTL",
			sb:   sb(sandbox.PhaseReady, readyAt(ready), pinned), lc: ttl,
			now:  at(100 * d),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "pinned: exempt from an extension's deadline too",
			sb:   sb(sandbox.PhaseReady, readyAt(ready), pinned, extendedTo(at(h))), lc: ttl,
			now:  at(100 * d),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "TTL deletes a sandbox still launching",
			sb:   sb(sandbox.PhaseProvisioning), lc: ttl,
			now:  at(24 * h),
			want: want{action: lifecycle.Delete, reason: sandbox.DeletedTTL, expiresAt: ptr(at(24 * h))},
		},
		{
			name: "TTL deletes a Pending sandbox",
			sb:   sb(sandbox.PhasePending), lc: ttl,
			now:  at(24 * h),
			want: want{action: lifecycle.Delete, reason: sandbox.DeletedTTL, expiresAt: ptr(at(24 * h))},
		},
		{
			name: "TTL deletes a suspended sandbox",
			sb:   sb(sandbox.PhaseSuspended, suspendedAt(at(h))), lc: ttl,
			now:  at(24 * h),
			want: want{action: lifecycle.Delete, reason: sandbox.DeletedTTL, expiresAt: ptr(at(24 * h))},
		},
		{
			name: "TTL deletes before a wake",
			sb:   sb(sandbox.PhaseSuspended, suspendedAt(at(h))), lc: ttl,
			last: at(24 * h), now: at(24 * h),
			want: want{action: lifecycle.Delete, reason: sandbox.DeletedTTL, expiresAt: ptr(at(24 * h))},
		},
		{
			name: "TTL wins over a suspend request",
			sb:   sb(sandbox.PhaseReady, readyAt(ready), suspendRequested(at(h), "bob")), lc: ttl,
			now:  at(24 * h),
			want: want{action: lifecycle.Delete, reason: sandbox.DeletedTTL, expiresAt: ptr(at(24 * h))},
		},
		{
			name: "TTL wins over keep_failed",
			sb:   sb(sandbox.PhaseFailed, failedAt(at(24*h-m))), lc: all,
			now:  at(24 * h),
			want: want{action: lifecycle.Delete, reason: sandbox.DeletedTTL, expiresAt: ptr(at(24 * h))},
		},

		// keep_failed.
		{
			name: "failed: kept until keep_failed ends, a nanosecond before",
			sb:   sb(sandbox.PhaseFailed, failedAt(at(10*m))), lc: keepFailed,
			now:  at(10*m + h - 1),
			want: want{action: lifecycle.Keep, deleteAt: ptr(at(10*m + h)), next: at(10*m + h)},
		},
		{
			name: "failed: deleted exactly when keep_failed ends",
			sb:   sb(sandbox.PhaseFailed, failedAt(at(10*m))), lc: keepFailed,
			now:  at(10*m + h),
			want: want{action: lifecycle.Delete, reason: sandbox.DeletedKeepFailed, deleteAt: ptr(at(10*m + h))},
		},
		{
			name: "failed: keep_failed 0 keeps it until deleted",
			sb:   sb(sandbox.PhaseFailed, failedAt(at(10*m))),
			now:  at(1000 * d),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "failed without FailedAt: no deadline",
			sb:   sb(sandbox.PhaseFailed), lc: keepFailed,
			now:  at(1000 * d),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "pinned failed sandbox is kept",
			sb:   sb(sandbox.PhaseFailed, failedAt(at(10*m)), pinned), lc: keepFailed,
			now:  at(1000 * d),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "keep_failed applies only to Failed",
			sb:   sb(sandbox.PhaseReady, readyAt(ready), failedAt(at(m))), lc: keepFailed,
			now:  at(1000 * d),
			want: want{action: lifecycle.Keep},
		},

		// Suspended retention.
		{
			name: "suspended: kept until retention ends, a nanosecond before",
			sb:   sb(sandbox.PhaseSuspended, suspendedAt(at(h))), lc: retention,
			now:  at(h + 7*d - 1),
			want: want{action: lifecycle.Keep, deleteAt: ptr(at(h + 7*d)), next: at(h + 7*d)},
		},
		{
			name: "suspended: deleted exactly when retention ends",
			sb:   sb(sandbox.PhaseSuspended, suspendedAt(at(h))), lc: retention,
			now:  at(h + 7*d),
			want: want{action: lifecycle.Delete, reason: sandbox.DeletedRetention, deleteAt: ptr(at(h + 7*d))},
		},
		{
			name: "suspended by request: retention applies too",
			sb:   sb(sandbox.PhaseSuspended, suspendedAt(at(h)), suspendRequested(at(h), "bob")), lc: retention,
			now:  at(h + 7*d),
			want: want{action: lifecycle.Delete, reason: sandbox.DeletedRetention, deleteAt: ptr(at(h + 7*d))},
		},
		{
			name: "suspended: retention 0 keeps it",
			sb:   sb(sandbox.PhaseSuspended, suspendedAt(at(h))),
			now:  at(1000 * d),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "suspended without SuspendedAt: no retention deadline (and it wakes)",
			sb:   sb(sandbox.PhaseSuspended), lc: retention,
			now:  at(1000 * d),
			want: want{action: lifecycle.Wake, reason: "woken"},
		},
		{
			name: "pinned suspended sandbox is kept",
			sb:   sb(sandbox.PhaseSuspended, suspendedAt(at(h)), pinned), lc: retention,
			now:  at(1000 * d),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "retention applies only to Suspended",
			sb:   sb(sandbox.PhaseReady, readyAt(ready), suspendedAt(at(m))), lc: retention,
			now:  at(1000 * d),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "suspended, woken before retention ends: the deadline is still shown",
			sb:   sb(sandbox.PhaseSuspended, suspendedAt(at(h))), lc: retention,
			last: at(2 * h), now: at(2 * h),
			want: want{action: lifecycle.Wake, reason: "woken", deleteAt: ptr(at(h + 7*d)), next: at(h + 7*d)},
		},

		// Deleting.
		{
			name: "deleting: left alone whatever is due",
			sb:   sb(sandbox.PhaseSuspended, suspendedAt(at(h)), deleting), lc: all,
			last: at(2 * h), now: at(1000 * d),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "deleting while Ready and idle: left alone",
			sb:   sb(sandbox.PhaseReady, readyAt(ready), deleting, suspendRequested(at(h), "bob")), lc: all,
			now:  at(1000 * d),
			want: want{action: lifecycle.Keep},
		},
		{
			name: "deleting failed sandbox: left alone",
			sb:   sb(sandbox.PhaseFailed, failedAt(ready), deleting), lc: all,
			now:  at(1000 * d),
			want: want{action: lifecycle.Keep},
		},

		// Several deadlines: all shown, Next is the earliest.
		{
			name: "idle deadline before the TTL's",
			sb:   sb(sandbox.PhaseReady, readyAt(ready)), lc: sandbox.Lifecycle{IdleSuspend: sandbox.Duration(30 * m), TTL: sandbox.Duration(h)},
			now:  at(10 * m),
			want: want{action: lifecycle.Keep, suspendAt: ptr(ready.Add(30 * m)), expiresAt: ptr(at(h)), next: ready.Add(30 * m)},
		},
		{
			name: "TTL's deadline before the idle one",
			sb:   sb(sandbox.PhaseReady, readyAt(ready)), lc: sandbox.Lifecycle{IdleSuspend: sandbox.Duration(2 * h), TTL: sandbox.Duration(h)},
			now:  at(10 * m),
			want: want{action: lifecycle.Keep, suspendAt: ptr(ready.Add(2 * h)), expiresAt: ptr(at(h)), next: at(h)},
		},
		{
			name: "suspending for idleness still shows the TTL, Next is the TTL",
			sb:   sb(sandbox.PhaseReady, readyAt(ready)), lc: all,
			now:  ready.Add(30 * m),
			want: want{action: lifecycle.Suspend, reason: "idle for 30m", suspendAt: ptr(ready.Add(30 * m)), expiresAt: ptr(at(24 * h)), next: at(24 * h)},
		},
		{
			name: "suspended: retention before the TTL",
			sb:   sb(sandbox.PhaseSuspended, suspendedAt(at(h))), lc: sandbox.Lifecycle{TTL: sandbox.Duration(10 * d), SuspendedRetention: sandbox.Duration(7 * d)},
			now:  at(2 * h),
			want: want{action: lifecycle.Keep, expiresAt: ptr(at(10 * d)), deleteAt: ptr(at(h + 7*d)), next: at(h + 7*d)},
		},
		{
			name: "suspended: TTL before retention",
			sb:   sb(sandbox.PhaseSuspended, suspendedAt(at(h))), lc: all,
			now:  at(2 * h),
			want: want{action: lifecycle.Keep, expiresAt: ptr(at(24 * h)), deleteAt: ptr(at(h + 7*d)), next: at(24 * h)},
		},
		{
			name: "failed: keep_failed before the TTL",
			sb:   sb(sandbox.PhaseFailed, failedAt(at(10*m))), lc: all,
			now:  at(20 * m),
			want: want{action: lifecycle.Keep, expiresAt: ptr(at(24 * h)), deleteAt: ptr(at(10*m + h)), next: at(10*m + h)},
		},
		{
			name: "pinned with everything set: nothing planned",
			sb:   sb(sandbox.PhaseReady, readyAt(ready), pinned), lc: all,
			now:  at(1000 * d),
			want: want{action: lifecycle.Keep},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := fmt.Sprintf("%+v", *tt.sb)
			got := lifecycle.Evaluate(tt.sb, tt.lc, tt.last, tt.now)
			checkDecision(t, got, tt.want)
			if after := fmt.Sprintf("%+v", *tt.sb); after != before {
				t.Errorf("Evaluate changed the sandbox:\n  before %s\n  after  %s", before, after)
			}
		})
	}
}

// TestEvaluateIdleCycle steps a clock through a sandbox's idle life:
// ready, used, idle-suspended, woken by a request, ready again with a full
// idle period, suspended again.
func TestEvaluateIdleCycle(t *testing.T) {
	lc := sandbox.Lifecycle{IdleSuspend: sandbox.Duration(10 * time.Minute)}
	s := sb(sandbox.PhaseReady, readyAt(at(time.Minute)))
	var last time.Time
	step := func(now time.Time, wantAction lifecycle.Action, wantNext time.Time) lifecycle.Decision {
		t.Helper()
		d := lifecycle.Evaluate(s, lc, last, now)
		if d.Action != wantAction || !d.Next.Equal(wantNext) {
			t.Fatalf("at %s: got %s next %s, want %s next %s", rel(now), d.Action, rel(d.Next), wantAction, rel(wantNext))
		}
		return d
	}
	step(at(time.Minute), lifecycle.Keep, at(11*time.Minute))
	last = at(8 * time.Minute) // a request
	step(at(11*time.Minute), lifecycle.Keep, at(18*time.Minute))
	step(at(18*time.Minute-1), lifecycle.Keep, at(18*time.Minute))
	d := step(at(18*time.Minute), lifecycle.Suspend, time.Time{})
	if d.Reason != "idle for 10m" {
		t.Errorf("reason %q, want %q", d.Reason, "idle for 10m")
	}

	// The reconciler suspends it.
	s.Status.Phase, s.Status.SuspendedAt = sandbox.PhaseSuspended, ptr(at(18*time.Minute+2*time.Second))
	step(at(time.Hour), lifecycle.Keep, time.Time{})
	last = at(2 * time.Hour) // a request wakes it
	step(at(2*time.Hour), lifecycle.Wake, time.Time{})

	// The reconciler resumes it: Ready 15s after the request.
	s.Status.Phase, s.Status.SuspendedAt, s.Status.ReadyAt = sandbox.PhaseReady, nil, ptr(at(2*time.Hour+15*time.Second))
	step(at(2*time.Hour+10*time.Minute), lifecycle.Keep, at(2*time.Hour+10*time.Minute+15*time.Second))
	step(at(2*time.Hour+10*time.Minute+15*time.Second), lifecycle.Suspend, time.Time{})
}

func TestAwake(t *testing.T) {
	tests := []struct {
		name string
		sb   *sandbox.Sandbox
		last time.Time
		want bool
	}{
		{"activity after suspension", sb(sandbox.PhaseSuspended, suspendedAt(at(time.Hour))), at(time.Hour + 1), true},
		{"activity at the instant of suspension", sb(sandbox.PhaseSuspended, suspendedAt(at(time.Hour))), at(time.Hour), true},
		{"activity a nanosecond before suspension", sb(sandbox.PhaseSuspended, suspendedAt(at(time.Hour))), at(time.Hour - 1), false},
		{"activity before suspension", sb(sandbox.PhaseSuspended, suspendedAt(at(time.Hour))), at(time.Minute), false},
		{"no activity", sb(sandbox.PhaseSuspended, suspendedAt(at(time.Hour))), time.Time{}, false},
		{"suspend requested", sb(sandbox.PhaseSuspended, suspendedAt(at(time.Hour)), suspendRequested(at(time.Hour), "bob")), at(2 * time.Hour), false},
		{"suspend requested, no SuspendedAt", sb(sandbox.PhaseSuspended, suspendRequested(at(time.Hour), "bob")), at(2 * time.Hour), false},
		{"no SuspendedAt", sb(sandbox.PhaseSuspended), time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lifecycle.Awake(tt.sb, tt.last); got != tt.want {
				t.Errorf("Awake = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestExpiresAt(t *testing.T) {
	ttl := sandbox.Lifecycle{TTL: sandbox.Duration(24 * time.Hour)}
	tests := []struct {
		name string
		sb   *sandbox.Sandbox
		lc   sandbox.Lifecycle
		want *time.Time
	}{
		{"no TTL", sb(sandbox.PhaseReady), sandbox.Lifecycle{}, nil},
		{"TTL from creation", sb(sandbox.PhaseReady), ttl, ptr(at(24 * time.Hour))},
		{"TTL from the claim", sb(sandbox.PhaseReady, claimedAt(at(time.Hour))), ttl, ptr(at(25 * time.Hour))},
		{"extension without TTL", sb(sandbox.PhaseReady, extendedTo(at(3*time.Hour))), sandbox.Lifecycle{}, ptr(at(3 * time.Hour))},
		{"extension over TTL and claim", sb(sandbox.PhaseReady, claimedAt(at(time.Hour)), extendedTo(at(3*time.Hour))), ttl, ptr(at(3 * time.Hour))},
		// ExpiresAt does not look at pins or pools: Evaluate does.
		{"pinned", sb(sandbox.PhaseReady, pinned), ttl, ptr(at(24 * time.Hour))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := lifecycle.ExpiresAt(tt.sb, tt.lc)
			if relp(got) != relp(tt.want) {
				t.Fatalf("ExpiresAt = %s, want %s", relp(got), relp(tt.want))
			}
			if got != nil && tt.sb.Spec.ExpiresAt != nil {
				// The answer is a copy: changing it leaves the spec alone.
				*got = got.Add(time.Hour)
				if tt.sb.Spec.ExpiresAt.Equal(*got) {
					t.Error("ExpiresAt returned the spec's own pointer")
				}
			}
		})
	}
}

func TestRunning(t *testing.T) {
	tests := []struct {
		sb   *sandbox.Sandbox
		want bool
	}{
		{sb(""), true}, // created, not yet seen by the reconciler
		{sb(sandbox.PhasePending), true},
		{sb(sandbox.PhaseProvisioning), true},
		{sb(sandbox.PhaseReady), true},
		{sb(sandbox.PhaseSuspended), false},
		{sb(sandbox.PhaseFailed), false},
		{sb(sandbox.PhaseDeleting), false},
		{sb(sandbox.PhaseReady, deleting), false},
		{sb(sandbox.PhaseProvisioning, deleting), false},
	}
	for _, tt := range tests {
		name := string(tt.sb.Status.Phase)
		if tt.sb.Spec.Deleting() {
			name += "+deletion requested"
		}
		if got := lifecycle.Running(tt.sb); got != tt.want {
			t.Errorf("Running(%s) = %v, want %v", name, got, tt.want)
		}
	}
}

// owner builds a sandbox named name of user in phase.
func owner(user, name string, phase sandbox.Phase, opts ...func(*sandbox.Sandbox)) *sandbox.Sandbox {
	s := sb(phase, opts...)
	s.ID, s.Name, s.Spec.CreatedBy = "id-"+name, name, user
	return s
}

func pinnedBy(user string) func(*sandbox.Sandbox) {
	return func(s *sandbox.Sandbox) { s.Spec.Pin = &sandbox.Pin{By: user, At: t0} }
}

// fleet is the sandboxes the quota tests count, deliberately not in name
// order: alice has a Ready, a Suspended, a Failed, a Provisioning and a
// deleting one; bob has one; the pool has one.
func fleet() []*sandbox.Sandbox {
	return []*sandbox.Sandbox{
		owner("alice", "a5", sandbox.PhaseProvisioning),
		owner("bob", "b1", sandbox.PhaseReady),
		owner("alice", "a1", sandbox.PhaseReady),
		owner("alice", "a3", sandbox.PhaseFailed),
		owner("alice", "a4", sandbox.PhaseReady, deleting),
		owner(sandbox.PoolOwner, "pool-app-1", sandbox.PhaseReady, poolMember),
		owner("alice", "a2", sandbox.PhaseSuspended),
	}
}

// quota is the expected refusal (nil: allowed).
type quota struct {
	msg, hint string
}

func checkQuota(t *testing.T, err error, want *quota) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	var qe *lifecycle.QuotaError
	if !errors.As(err, &qe) {
		t.Fatalf("got %v (%T), want a *QuotaError", err, err)
	}
	if err.Error() != want.msg {
		t.Errorf("message:\n  got  %q\n  want %q", err.Error(), want.msg)
	}
	if qe.Hint != want.hint {
		t.Errorf("hint:\n  got  %q\n  want %q", qe.Hint, want.hint)
	}
	if !strings.Contains(qe.Hint, "sandpit ") {
		t.Errorf("hint %q does not name a command to run", qe.Hint)
	}
}

const (
	hintSandboxes = "delete one with `sandpit delete NAME` to make room"
	hintRunning   = "suspend one with `sandpit suspend NAME` or delete one with `sandpit delete NAME` to make room"
	hintPins      = "unpin one with `sandpit unpin NAME` first"
	hintNoPins    = "this server allows no pins; its admin can allow some with `sandpit serve --max-pins-per-user N`"
)

func TestCheckCreate(t *testing.T) {
	tests := []struct {
		name   string
		p      lifecycle.Policy
		user   string
		sbs    []*sandbox.Sandbox
		except string
		want   *quota
	}{
		{name: "no limits", user: "alice", sbs: fleet()},
		{name: "no sandboxes yet", p: lifecycle.Policy{MaxSandboxesPerUser: 1, MaxRunningPerUser: 1}, user: "carol", sbs: fleet()},
		{name: "no sandboxes at all", p: lifecycle.Policy{MaxSandboxesPerUser: 1, MaxRunningPerUser: 1}, user: "carol"},
		{
			// a1, a2, a3, a5 count; a4 is being deleted.
			name: "below the limit", p: lifecycle.Policy{MaxSandboxesPerUser: 5}, user: "alice", sbs: fleet(),
		},
		{
			name: "at the limit", p: lifecycle.Policy{MaxSandboxesPerUser: 4}, user: "alice", sbs: fleet(),
			want: &quota{"alice has 4 sandboxes, the limit per user is 4 (a1, a2, a3, a5)", hintSandboxes},
		},
		{
			name: "above the limit (lowered since)", p: lifecycle.Policy{MaxSandboxesPerUser: 2}, user: "alice", sbs: fleet(),
			want: &quota{"alice has 4 sandboxes, the limit per user is 2 (a1, a2, a3, a5)", hintSandboxes},
		},
		{
			name: "except is not counted", p: lifecycle.Policy{MaxSandboxesPerUser: 4}, user: "alice", sbs: fleet(), except: "id-a2",
		},
		{
			name: "except of another user changes nothing", p: lifecycle.Policy{MaxSandboxesPerUser: 4}, user: "alice", sbs: fleet(), except: "id-b1",
			want: &quota{"alice has 4 sandboxes, the limit per user is 4 (a1, a2, a3, a5)", hintSandboxes},
		},
		{
			name: "other users' sandboxes do not count", p: lifecycle.Policy{MaxSandboxesPerUser: 2}, user: "bob", sbs: fleet(),
		},
		{
			name: "bob at his limit", p: lifecycle.Policy{MaxSandboxesPerUser: 1}, user: "bob", sbs: fleet(),
			want: &quota{"bob has 1 sandboxes, the limit per user is 1 (b1)", hintSandboxes},
		},
		{
			name: "claiming bob's last slot: the pool sandbox is not his", p: lifecycle.Policy{MaxSandboxesPerUser: 2}, user: "bob", sbs: fleet(), except: "id-pool-app-1",
		},
		{
			// a1 and a5 run; a2 is suspended, a3 failed, a4 deleting.
			name: "running: at the limit", p: lifecycle.Policy{MaxRunningPerUser: 2}, user: "alice", sbs: fleet(),
			want: &quota{"alice has 2 running sandboxes, the limit per user is 2 (a1, a5)", hintRunning},
		},
		{
			name: "running: below the limit", p: lifecycle.Policy{MaxRunningPerUser: 3}, user: "alice", sbs: fleet(),
		},
		{
			name: "running: except is not counted", p: lifecycle.Policy{MaxRunningPerUser: 2}, user: "alice", sbs: fleet(), except: "id-a1",
		},
		{
			name: "both limits reached: the number of sandboxes is reported", p: lifecycle.Policy{MaxSandboxesPerUser: 4, MaxRunningPerUser: 2}, user: "alice", sbs: fleet(),
			want: &quota{"alice has 4 sandboxes, the limit per user is 4 (a1, a2, a3, a5)", hintSandboxes},
		},
		{
			name: "room for sandboxes but not for running ones", p: lifecycle.Policy{MaxSandboxesPerUser: 10, MaxRunningPerUser: 2}, user: "alice", sbs: fleet(),
			want: &quota{"alice has 2 running sandboxes, the limit per user is 2 (a1, a5)", hintRunning},
		},
		{
			name: "negative limits mean none", p: lifecycle.Policy{MaxSandboxesPerUser: -1, MaxRunningPerUser: -1}, user: "alice", sbs: fleet(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkQuota(t, lifecycle.CheckCreate(tt.p, tt.user, tt.sbs, tt.except), tt.want)
		})
	}
}

func TestCheckRunning(t *testing.T) {
	onlyIdle := []*sandbox.Sandbox{
		owner("alice", "s", sandbox.PhaseSuspended),
		owner("alice", "f", sandbox.PhaseFailed),
		owner("alice", "d", sandbox.PhaseDeleting),
		owner("alice", "r", sandbox.PhaseReady, deleting),
	}
	launching := []*sandbox.Sandbox{
		owner("alice", "new", ""),
		owner("alice", "pend", sandbox.PhasePending),
		owner("alice", "prov", sandbox.PhaseProvisioning),
		owner("alice", "ready", sandbox.PhaseReady),
		owner("bob", "bobs", sandbox.PhaseReady),
	}
	tests := []struct {
		name   string
		p      lifecycle.Policy
		user   string
		sbs    []*sandbox.Sandbox
		except string
		want   *quota
	}{
		{name: "no limit", user: "alice", sbs: launching},
		{name: "suspended, failed and deleting ones do not count", p: lifecycle.Policy{MaxRunningPerUser: 1}, user: "alice", sbs: onlyIdle},
		{
			name: "new, pending, provisioning and ready ones count", p: lifecycle.Policy{MaxRunningPerUser: 4}, user: "alice", sbs: launching,
			want: &quota{"alice has 4 running sandboxes, the limit per user is 4 (new, pend, prov, ready)", hintRunning},
		},
		{name: "below the limit", p: lifecycle.Policy{MaxRunningPerUser: 5}, user: "alice", sbs: launching},
		{
			name: "waking one of them: itself is not counted", p: lifecycle.Policy{MaxRunningPerUser: 4}, user: "alice", sbs: launching, except: "id-ready",
		},
		{
			name: "the number of sandboxes is not CheckRunning's business", p: lifecycle.Policy{MaxSandboxesPerUser: 1}, user: "alice", sbs: launching,
		},
		{name: "other users' do not count", p: lifecycle.Policy{MaxRunningPerUser: 2}, user: "bob", sbs: launching},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkQuota(t, lifecycle.CheckRunning(tt.p, tt.user, tt.sbs, tt.except), tt.want)
		})
	}
}

func TestCheckPin(t *testing.T) {
	sbs := []*sandbox.Sandbox{
		owner("alice", "a2", sandbox.PhaseReady, pinnedBy("alice")),
		owner("alice", "a1", sandbox.PhaseSuspended, pinnedBy("alice")),
		owner("alice", "a3", sandbox.PhaseReady, pinnedBy("bob")), // bob's pin
		owner("alice", "a4", sandbox.PhaseReady),                  // not pinned
		owner("bob", "b1", sandbox.PhaseReady, pinnedBy("alice")), // alice pinned bob's sandbox
		owner("alice", "a5", sandbox.PhaseReady, pinnedBy("alice"), deleting),
	}
	tests := []struct {
		name string
		p    lifecycle.Policy
		user string
		sbs  []*sandbox.Sandbox
		want *quota
	}{
		{
			name: "0 allows no pins at all", p: lifecycle.Policy{MaxPinsPerUser: 0}, user: "carol",
			want: &quota{"carol has 0 pins, the limit per user is 0", hintNoPins},
		},
		{
			name: "0 allows no pins, whatever exists", p: lifecycle.Policy{MaxPinsPerUser: 0}, user: "alice", sbs: sbs,
			want: &quota{"alice has 3 pins, the limit per user is 0 (a1, a2, b1)", hintNoPins},
		},
		{name: "negative: no limit", p: lifecycle.Policy{MaxPinsPerUser: -1}, user: "alice", sbs: sbs},
		{
			// a1, a2 and b1 are pinned by alice; a3 is bob's pin; a5 is
			// being deleted.
			name: "at the limit", p: lifecycle.Policy{MaxPinsPerUser: 3}, user: "alice", sbs: sbs,
			want: &quota{"alice has 3 pins, the limit per user is 3 (a1, a2, b1)", hintPins},
		},
		{
			name: "above the limit", p: lifecycle.Policy{MaxPinsPerUser: 1}, user: "alice", sbs: sbs,
			want: &quota{"alice has 3 pins, the limit per user is 1 (a1, a2, b1)", hintPins},
		},
		{name: "below the limit", p: lifecycle.Policy{MaxPinsPerUser: 4}, user: "alice", sbs: sbs},
		{name: "only pins by that user count", p: lifecycle.Policy{MaxPinsPerUser: 2}, user: "bob", sbs: sbs},
		{
			name: "bob at his limit with a pin on alice's sandbox", p: lifecycle.Policy{MaxPinsPerUser: 1}, user: "bob", sbs: sbs,
			want: &quota{"bob has 1 pins, the limit per user is 1 (a3)", hintPins},
		},
		{name: "a user with no pins", p: lifecycle.Policy{MaxPinsPerUser: 1}, user: "carol", sbs: sbs},
		{name: "other limits do not matter", p: lifecycle.Policy{MaxPinsPerUser: 4, MaxSandboxesPerUser: 1, MaxRunningPerUser: 1}, user: "alice", sbs: sbs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkQuota(t, lifecycle.CheckPin(tt.p, tt.user, tt.sbs), tt.want)
		})
	}
}

func TestQuotaErrorFields(t *testing.T) {
	err := lifecycle.CheckCreate(lifecycle.Policy{MaxSandboxesPerUser: 4}, "alice", fleet(), "")
	var qe *lifecycle.QuotaError
	if !errors.As(err, &qe) {
		t.Fatalf("got %v, want a *QuotaError", err)
	}
	want := lifecycle.QuotaError{Limit: "sandboxes", User: "alice", Max: 4, Holding: []string{"a1", "a2", "a3", "a5"}, Hint: hintSandboxes}
	if fmt.Sprintf("%+v", *qe) != fmt.Sprintf("%+v", want) {
		t.Errorf("QuotaError =\n  %+v\nwant\n  %+v", *qe, want)
	}
}
