package sandbox

import "fmt"

// Phase is where a sandbox is in its life:
//
//	Pending → Provisioning → Ready ⇄ Suspended → Deleting → (gone)
//
// plus Failed, kept for debugging until its retention ends. Deleting can be
// entered from every phase. A sandbox asked to suspend while it launches
// goes to Suspended too; waking it (Suspended → Ready) finishes the launch.
type Phase string

const (
	PhasePending      Phase = "Pending"
	PhaseProvisioning Phase = "Provisioning"
	PhaseReady        Phase = "Ready"
	PhaseSuspended    Phase = "Suspended"
	PhaseDeleting     Phase = "Deleting"
	PhaseFailed       Phase = "Failed"
)

// Phases lists every phase, in life order (used for metrics and help text).
var Phases = []Phase{PhasePending, PhaseProvisioning, PhaseReady, PhaseSuspended, PhaseDeleting, PhaseFailed}

var transitions = map[Phase][]Phase{
	PhasePending:      {PhaseProvisioning, PhaseSuspended, PhaseFailed, PhaseDeleting},
	PhaseProvisioning: {PhaseReady, PhaseSuspended, PhaseFailed, PhaseDeleting},
	PhaseReady:        {PhaseProvisioning, PhaseSuspended, PhaseFailed, PhaseDeleting},
	PhaseSuspended:    {PhaseProvisioning, PhaseReady, PhaseFailed, PhaseDeleting},
	PhaseFailed:       {PhaseProvisioning, PhaseDeleting},
	PhaseDeleting:     {},
}

// CanTransition reports whether a sandbox may move from p to next. Staying
// in the same phase is always allowed.
func (p Phase) CanTransition(next Phase) bool {
	if p == next {
		return true
	}
	for _, n := range transitions[p] {
		if n == next {
			return true
		}
	}
	return false
}

// Terminal reports whether the reconciler has nothing more to do for the
// phase unless the spec changes.
func (p Phase) Terminal() bool { return p == PhaseReady || p == PhaseFailed || p == PhaseSuspended }

// Valid reports whether p is a known phase.
func (p Phase) Valid() bool {
	_, ok := transitions[p]
	return ok
}

// ParsePhase accepts a phase name in any case.
func ParsePhase(s string) (Phase, error) {
	for _, p := range Phases {
		if equalFold(string(p), s) {
			return p, nil
		}
	}
	return "", fmt.Errorf("unknown phase %q: use one of Pending, Provisioning, Ready, Suspended, Deleting, Failed", s)
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		ca, cb := a[i], b[i]
		if 'A' <= ca && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			return false
		}
	}
	return true
}
