package sandbox

import "testing"

func TestUsageOf(t *testing.T) {
	for _, c := range []struct {
		phase    Phase
		reason   string
		prev     UsageState
		prevIdle bool
		want     UsageState
		wantIdle bool
	}{
		{PhasePending, "", "", false, UsageRunning, false},
		{PhaseProvisioning, "", UsageSuspended, true, UsageRunning, false},
		{PhaseReady, "", UsageSuspended, false, UsageRunning, false},
		// Kept as it is for debugging, processes and all.
		{PhaseFailed, "", UsageRunning, false, UsageRunning, false},
		{PhaseSuspended, "idle for 30m", UsageRunning, false, UsageSuspended, true},
		{PhaseSuspended, "suspend requested by bob", UsageRunning, false, UsageSuspended, false},
		{PhaseSuspended, "pool sandboxes sleep until claimed", "", false, UsageSuspended, false},
		{PhaseSuspended, "", UsageSuspended, true, UsageSuspended, false},
		// Deleting keeps what it was doing until it is gone.
		{PhaseDeleting, "", UsageSuspended, true, UsageSuspended, true},
		{PhaseDeleting, "idle for 30m", UsageRunning, false, UsageRunning, false},
		{PhaseDeleting, "", "", false, UsageRunning, false},
		{Phase("Unheard"), "", UsageSuspended, false, UsageRunning, false},
	} {
		got, idle := UsageOf(Status{Phase: c.phase, SuspendReason: c.reason}, c.prev, c.prevIdle)
		if got != c.want || idle != c.wantIdle {
			t.Errorf("UsageOf(%s %q, after %q idle=%v) = %s idle=%v, want %s idle=%v", c.phase, c.reason, c.prev, c.prevIdle, got, idle, c.want, c.wantIdle)
		}
	}
	for _, p := range Phases {
		if s, _ := UsageOf(Status{Phase: p}, UsageRunning, false); s != UsageRunning && s != UsageSuspended {
			t.Errorf("phase %s has no usage state", p)
		}
	}
}

func TestUsageOwner(t *testing.T) {
	if got := UsageOwner(""); got != UnknownOwner {
		t.Errorf("UsageOwner(\"\") = %q", got)
	}
	if got := UsageOwner("alice"); got != "alice" {
		t.Errorf("UsageOwner(alice) = %q", got)
	}
}
