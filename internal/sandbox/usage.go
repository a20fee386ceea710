package sandbox

import (
	"strings"
	"time"
)

// UsageState is what a sandbox costs during a stretch of time: running
// (holding processes, ports, memory or pods) or suspended (holding only its
// files and data).
type UsageState string

const (
	UsageRunning   UsageState = "running"
	UsageSuspended UsageState = "suspended"
)

// UnknownOwner is the owner usage is recorded under for a sandbox whose
// Spec.CreatedBy is empty.
const UnknownOwner = "unknown"

// UsageInterval is one stretch of time a sandbox spent in one usage state
// under one name, template and owner. The store records intervals as the
// sandbox's phase changes (see UsageOf) and keeps them after the sandbox is
// deleted: they are the durable record that usage accounting (sandbox-hours
// per day, what idle suspend saved) is computed from.
type UsageInterval struct {
	SandboxID string `json:"sandbox_id"`
	Name      string `json:"name"`
	Template  string `json:"template"`
	// Owner is Spec.CreatedBy, or UnknownOwner when that is empty.
	Owner string     `json:"owner"`
	State UsageState `json:"state"`
	// Idle marks a suspended interval that idle suspend began
	// (Status.SuspendReason "idle for ..."), as opposed to a suspension by
	// hand (`sandpit suspend`) or a warm pool's.
	Idle  bool      `json:"idle,omitempty"`
	Start time.Time `json:"start"`
	// End is nil while the interval is open (the sandbox is still in that
	// state).
	End *time.Time `json:"end,omitempty"`
}

// UsageOwner is the owner usage is recorded under for a sandbox created by
// createdBy.
func UsageOwner(createdBy string) string {
	if createdBy == "" {
		return UnknownOwner
	}
	return createdBy
}

// IdleSuspension reports whether a Status.SuspendReason says the sandbox
// was suspended for being idle (lifecycle's "idle for 30m").
func IdleSuspension(reason string) bool { return strings.HasPrefix(reason, "idle") }

// UsageOf is the usage state of a sandbox whose status is st, and whether
// it is an idle suspension; prev and prevIdle are the state of its open
// interval (prev is "" when it has none).
//
// The rule, by phase:
//
//   - Suspended is suspended: its processes are stopped and its ports
//     freed (the kubernetes runtime scales it to zero), only files and
//     data remain. A sandbox being woken stays Suspended until it is Ready,
//     so the seconds a resume takes count as suspended.
//   - Pending, Provisioning and Ready are running: from the moment a
//     sandbox is asked for until it is suspended or gone it is building,
//     starting or serving, and holds what it started.
//   - Failed is running too: a failed sandbox is kept as it is for
//     debugging (nothing is stopped: `sandpit ci run` keeps its services up
//     so they can be inspected), so it holds resources until keep_failed
//     ends or it is deleted.
//   - Deleting keeps the state it was in (a running sandbox runs until its
//     teardown has stopped it, a suspended one has nothing to stop); the
//     interval closes when the sandbox is gone. A sandbox first seen
//     Deleting, with no interval yet, counts as running.
//
// Any other (unknown) phase counts as running, so nothing that may hold
// resources goes unaccounted.
func UsageOf(st Status, prev UsageState, prevIdle bool) (UsageState, bool) {
	switch st.Phase {
	case PhaseSuspended:
		return UsageSuspended, IdleSuspension(st.SuspendReason)
	case PhaseDeleting:
		if prev != "" {
			return prev, prevIdle
		}
	}
	return UsageRunning, false
}
