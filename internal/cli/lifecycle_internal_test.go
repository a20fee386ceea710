package cli

import (
	"strings"
	"testing"
	"time"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/sandbox"
)

func TestApprox(t *testing.T) {
	for d, want := range map[time.Duration]string{
		400 * time.Millisecond:                   "1s",
		45 * time.Second:                         "45s",
		59*time.Second + 600*time.Millisecond:    "1m",
		12*time.Minute + 10*time.Second:          "12m",
		59*time.Minute + 50*time.Second:          "1h",
		90 * time.Minute:                         "1h30m",
		9*time.Hour + 59*time.Minute + time.Hour: "11h",
		24*time.Hour - 200*time.Millisecond:      "24h",
		47 * time.Hour:                           "47h",
		72*time.Hour - time.Second:               "3d",
		50 * time.Hour:                           "2d2h",
	} {
		if got := approx(d); got != want {
			t.Errorf("approx(%s) = %q, want %q", d, got, want)
		}
	}
	if got := fromNow(-time.Second); got != "now" {
		t.Errorf("fromNow of the past = %q", got)
	}
}

func TestResourcesOf(t *testing.T) {
	for _, c := range []struct {
		r    sandbox.ResourceStatus
		want string
	}{
		{sandbox.ResourceStatus{Class: "small", MilliCPU: 500, MemoryBytes: 512 << 20, Enforced: true}, "small (0.5 CPU, 512 MiB), enforced"},
		{sandbox.ResourceStatus{Class: "large", MilliCPU: 2000, MemoryBytes: 4 << 30}, "large (2 CPUs, 4 GiB), not enforced"},
		{sandbox.ResourceStatus{Class: "standard", MilliCPU: 1000, MemoryBytes: 1 << 30, Message: "cgroup v2 is not writable here\nmore"}, "standard (1 CPU, 1 GiB), not enforced: cgroup v2 is not writable here"},
		{sandbox.ResourceStatus{Class: "odd", MemoryBytes: 1536 << 10, Enforced: true}, "odd (1.5 MiB), enforced"},
		{sandbox.ResourceStatus{Class: "none", Enforced: true}, "none, enforced"},
	} {
		if got := resourcesOf(&c.r); got != c.want {
			t.Errorf("resourcesOf(%+v) = %q, want %q", c.r, got, c.want)
		}
	}
}

// TestLifecycleView covers what a real stack does not show on cue: a
// sandbox in a sleeping pool, past its retention, being deleted, waking.
func TestLifecycleView(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	lc := func(idle, ttl time.Duration) *sandbox.Lifecycle {
		return &sandbox.Lifecycle{
			IdleSuspend: sandbox.Duration(idle), IdleSuspendFrom: "template",
			TTL: sandbox.Duration(ttl), TTLFrom: "sandbox",
			KeepFailed: sandbox.Duration(24 * time.Hour), KeepFailedFrom: "server",
			SuspendedRetention: sandbox.Duration(7 * 24 * time.Hour),
		}
	}
	cases := []struct {
		name string
		sb   client.Sandbox
		next string
		want string
	}{{
		name: "idle soon, expires later",
		sb: client.Sandbox{
			LastActivityAt: at(-3 * time.Minute), Lifecycle: lc(15*time.Minute, 72*time.Hour),
			Deadlines: &sandbox.Deadlines{SuspendAt: at(12 * time.Minute), ExpiresAt: at(71 * time.Hour)},
			Status:    sandbox.Status{Phase: sandbox.PhaseReady},
		},
		next: "suspends in 12m",
		want: `Last activity: 3m ago
Idle suspend: 15m (template), suspends 2026-11-22 12:12 UTC (in 12m) unless it is used
TTL: 72h (sandbox), expires 2026-11-25 11:00 UTC (in 2d23h)`,
	}, {
		name: "suspended, deleted by retention",
		sb: client.Sandbox{
			Lifecycle: lc(30*time.Minute, 0),
			Deadlines: &sandbox.Deadlines{DeleteAt: at(6*24*time.Hour + 23*time.Hour)},
			Status: sandbox.Status{Phase: sandbox.PhaseSuspended, SuspendedAt: at(-time.Hour), SuspendReason: "idle for 30m",
				Resume: &sandbox.ResumeTiming{StartedAt: now.Add(-3 * time.Hour), TookMS: 850, Reason: "woken by a request"}},
		},
		next: "deleted in 6d23h",
		want: `Last activity: never
Idle suspend: 30m (template)
TTL: none (sandbox)
Retention: after 168h suspended (server), deleted 2026-11-29 11:00 UTC (in 6d23h)
Suspended: 1h ago (idle for 30m)
Last resume: took 850ms, 3h ago (woken by a request)`,
	}, {
		name: "asleep in a pool",
		sb: client.Sandbox{
			Lifecycle: &sandbox.Lifecycle{TTL: sandbox.Duration(time.Hour), TTLFrom: "template", IdleSuspendFrom: "default", PoolSuspend: true,
				SuspendedRetention: sandbox.Duration(time.Hour)},
			Deadlines: &sandbox.Deadlines{},
			Spec:      sandbox.Spec{Template: "shop", Pool: "shop"},
			Status:    sandbox.Status{Phase: sandbox.PhaseSuspended, SuspendedAt: at(-time.Minute), SuspendReason: "pool sandboxes sleep until claimed"},
		},
		next: "pool",
		want: `Last activity: never
Idle suspend: off
TTL: 1h (template), from when it is claimed
Pool: kept asleep in the warm pool of template shop; sandpit create NAME --template shop claims it
Suspended: 1m ago (pool sandboxes sleep until claimed)`,
	}, {
		name: "deleting after its TTL",
		sb: client.Sandbox{
			Spec:   sandbox.Spec{DeletionRequestedAt: at(-5 * time.Second), DeletionReason: sandbox.DeletedTTL},
			Status: sandbox.Status{Phase: sandbox.PhaseDeleting},
		},
		next: "-",
		want: `Deletion: ttl expired, 5s ago`,
	}, {
		name: "waking, suspend requested by hand before",
		sb: client.Sandbox{
			LastActivityAt: at(-2 * time.Second), Lifecycle: lc(0, 0), Deadlines: &sandbox.Deadlines{},
			Spec:   sandbox.Spec{Pin: &sandbox.Pin{By: "ann", At: now.Add(-2 * time.Hour)}, ExpiresAt: at(time.Hour)},
			Status: sandbox.Status{Phase: sandbox.PhaseSuspended, SuspendedAt: at(-time.Minute), Resume: &sandbox.ResumeTiming{StartedAt: now.Add(-time.Second)}},
		},
		next: "pinned",
		want: `Last activity: 2s ago
Idle suspend: off (template)
TTL: none (sandbox), extended, not while pinned
Retention: after 168h suspended (server), not while pinned
Pinned: by ann, 2h ago
Suspended: 1m ago
Last resume: in progress, started 1s ago`,
	}, {
		name: "suspend requested while launching",
		sb: client.Sandbox{
			Lifecycle: lc(0, 0), Deadlines: &sandbox.Deadlines{},
			Spec:   sandbox.Spec{SuspendRequestedAt: at(-time.Second), SuspendRequestedBy: "admin", ClaimedAt: at(-time.Minute), Template: "shop"},
			Status: sandbox.Status{Phase: sandbox.PhaseProvisioning},
		},
		next: "-",
		want: `Last activity: never
Idle suspend: off (template)
TTL: none (sandbox)
Claimed: from the warm pool of template shop, 1m ago
Suspend: requested by admin, 1s ago`,
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := nextLifecycle(&c.sb, now); got != c.next {
				t.Errorf("list column: %q, want %q", got, c.next)
			}
			var lines []string
			for _, l := range lifecycleLines(&c.sb, now) {
				lines = append(lines, l[0]+": "+l[1])
			}
			if got := strings.Join(lines, "\n"); got != c.want {
				t.Errorf("get shows:\n%s\nwant:\n%s", got, c.want)
			}
		})
	}
}
