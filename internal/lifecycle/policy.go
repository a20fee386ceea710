package lifecycle

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/template"
)

// Policy is the server's part of the lifecycle (`sandpit serve` flags).
type Policy struct {
	// IdleSuspend, when set, overrides every template's
	// lifecycle.idle_suspend (a sandbox's own setting still wins); zero
	// disables idle suspend.
	IdleSuspend *time.Duration
	// KeepFailed is how long a Failed sandbox is kept when its template
	// and the sandbox say nothing (0 keeps it until deleted).
	KeepFailed time.Duration
	// SuspendedRetention deletes a sandbox suspended for that long (0
	// keeps it).
	SuspendedRetention time.Duration
	// MaxPinsPerUser bounds `sandpit pin` per user (0: no pins at all;
	// negative: no limit).
	MaxPinsPerUser int
	// MaxSandboxesPerUser and MaxRunningPerUser bound each user's
	// sandboxes and running (not suspended, failed or deleting) ones; 0
	// means no limit.
	MaxSandboxesPerUser int
	MaxRunningPerUser   int
}

// Sources of a resolved setting.
const (
	FromSandbox  = "sandbox"
	FromServer   = "server"
	FromTemplate = "template"
	FromDefault  = "default"
)

// Resolve returns the lifecycle in force for a sandbox: each setting comes
// from the sandbox's own overrides, else the server (idle suspend only, when
// it overrides), else the template, else the server's default.
func Resolve(t *template.Lifecycle, o *sandbox.LifecycleOverrides, p Policy) sandbox.Lifecycle {
	var l sandbox.Lifecycle
	if t == nil {
		t = &template.Lifecycle{}
	}
	if o == nil {
		o = &sandbox.LifecycleOverrides{}
	}
	switch {
	case o.IdleSuspend != nil:
		l.IdleSuspend, l.IdleSuspendFrom = *o.IdleSuspend, FromSandbox
	case p.IdleSuspend != nil:
		l.IdleSuspend, l.IdleSuspendFrom = sandbox.Duration(*p.IdleSuspend), FromServer
	case t.IdleSuspend > 0:
		l.IdleSuspend, l.IdleSuspendFrom = sandbox.Duration(t.IdleSuspend), FromTemplate
	default:
		l.IdleSuspendFrom = FromDefault
	}
	switch {
	case o.TTL != nil:
		l.TTL, l.TTLFrom = *o.TTL, FromSandbox
	case t.TTL > 0:
		l.TTL, l.TTLFrom = sandbox.Duration(t.TTL), FromTemplate
	default:
		l.TTLFrom = FromDefault
	}
	switch {
	case o.KeepFailed != nil:
		l.KeepFailed, l.KeepFailedFrom = *o.KeepFailed, FromSandbox
	case t.KeepFailed > 0:
		l.KeepFailed, l.KeepFailedFrom = sandbox.Duration(t.KeepFailed), FromTemplate
	default:
		l.KeepFailed, l.KeepFailedFrom = sandbox.Duration(p.KeepFailed), FromServer
	}
	l.SuspendedRetention = sandbox.Duration(p.SuspendedRetention)
	l.PoolSuspend = t.Pool != nil && t.Pool.Suspend
	return l
}

// Action is what the lifecycle wants done.
type Action int

const (
	// Keep: nothing to do now.
	Keep Action = iota
	// Suspend the sandbox (it is Ready and should sleep).
	Suspend
	// Wake the sandbox (it is Suspended and should run).
	Wake
	// Delete the sandbox (request its deletion).
	Delete
)

func (a Action) String() string {
	return [...]string{"keep", "suspend", "wake", "delete"}[a]
}

// Decision is the outcome of Evaluate.
type Decision struct {
	Action Action
	// Reason explains a Suspend, Wake or Delete in words ("idle for 30m",
	// or one of the sandbox.Deleted* reasons).
	Reason string
	// Deadlines are when the lifecycle will act next, for display.
	Deadlines sandbox.Deadlines
	// Next is the earliest future deadline (zero when none): the
	// reconciler looks at the sandbox again then.
	Next time.Time
}

// Evaluate decides what should happen to sb at now. lc is its resolved
// lifecycle; lastActive is the latest activity known (the store's, or a
// newer one the server has not stored yet; the current time while a session
// is open). It only looks at settled sandboxes: one being created, deleted
// or relaunched is left alone except for deletion by TTL.
func Evaluate(sb *sandbox.Sandbox, lc sandbox.Lifecycle, lastActive time.Time, now time.Time) Decision {
	var d Decision
	if sb.Spec.Deleting() {
		return d
	}
	pinned := sb.Spec.Pin != nil
	pool := sb.Spec.Pool != ""
	phase := sb.Status.Phase

	// Deletion deadlines first: a sandbox past its TTL is deleted whatever
	// it is doing. Pool sandboxes have no TTL or retention until claimed,
	// but a failed one goes like any other, so the pool can replace it.
	if !pinned {
		if exp := ExpiresAt(sb, lc); exp != nil && !pool {
			d.Deadlines.ExpiresAt = exp
			if !now.Before(*exp) {
				return Decision{Action: Delete, Reason: sandbox.DeletedTTL, Deadlines: d.Deadlines}
			}
			d.next(*exp)
		}
		switch {
		case phase == sandbox.PhaseFailed && lc.KeepFailed > 0 && sb.Status.FailedAt != nil:
			at := sb.Status.FailedAt.Add(lc.KeepFailed.D())
			d.Deadlines.DeleteAt = &at
			if !now.Before(at) {
				return Decision{Action: Delete, Reason: sandbox.DeletedKeepFailed, Deadlines: d.Deadlines}
			}
			d.next(at)
		case phase == sandbox.PhaseSuspended && lc.SuspendedRetention > 0 && sb.Status.SuspendedAt != nil && !pool:
			at := sb.Status.SuspendedAt.Add(lc.SuspendedRetention.D())
			d.Deadlines.DeleteAt = &at
			if !now.Before(at) {
				return Decision{Action: Delete, Reason: sandbox.DeletedRetention, Deadlines: d.Deadlines}
			}
			d.next(at)
		}
	}

	switch phase {
	case sandbox.PhasePending, sandbox.PhaseProvisioning:
		if sb.Spec.SuspendRequestedAt != nil {
			// Asked to sleep while launching: stop the launch where it is;
			// waking resumes it.
			d.Action, d.Reason = Suspend, "suspend requested"
			if by := sb.Spec.SuspendRequestedBy; by != "" {
				d.Reason += " by " + by
			}
		}
	case sandbox.PhaseReady:
		switch {
		case sb.Spec.SuspendRequestedAt != nil:
			d.Action, d.Reason = Suspend, "suspend requested"
			if by := sb.Spec.SuspendRequestedBy; by != "" {
				d.Reason += " by " + by
			}
		case pool && lc.PoolSuspend:
			d.Action, d.Reason = Suspend, "pool sandboxes sleep until claimed"
		case !pinned && !pool && lc.IdleSuspend > 0:
			at := idleBase(sb, lastActive).Add(lc.IdleSuspend.D())
			d.Deadlines.SuspendAt = &at
			if !now.Before(at) {
				d.Action, d.Reason = Suspend, "idle for "+sandbox.ShortDuration(lc.IdleSuspend.D())
			} else {
				d.next(at)
			}
		}
	case sandbox.PhaseSuspended:
		// A member of a pool that sleeps stays asleep until it is claimed
		// (the claim clears Spec.Pool), whatever requests reach it: waking
		// it would only suspend it again once Ready.
		if !(pool && lc.PoolSuspend) && Awake(sb, lastActive) {
			d.Action, d.Reason = Wake, "woken"
		}
	}
	return d
}

func (d *Decision) next(t time.Time) {
	if d.Next.IsZero() || t.Before(d.Next) {
		d.Next = t
	}
}

// Awake reports whether a Suspended sandbox should run again: nobody asks
// for it to sleep (no pending `sandpit suspend`) and there was activity
// after it was suspended (a request woke it, or `sandpit resume` recorded
// some). It does not know the lifecycle: Evaluate also keeps a member of a
// pool that sleeps (lifecycle.pool.suspend) asleep until it is claimed.
func Awake(sb *sandbox.Sandbox, lastActive time.Time) bool {
	if sb.Spec.SuspendRequestedAt != nil {
		return false
	}
	if sb.Status.SuspendedAt == nil {
		return true
	}
	// Not before, rather than after: `sandpit resume` records activity
	// at the current time, which a coarse (or a test's) clock may give as
	// the suspension's own instant.
	return !lastActive.IsZero() && !lastActive.Before(*sb.Status.SuspendedAt)
}

// idleBase is when idleness started: the last activity, or the moment the
// sandbox became Ready if that is later (a sandbox nobody has used yet, or
// one just woken, gets the full idle period).
func idleBase(sb *sandbox.Sandbox, lastActive time.Time) time.Time {
	base := lastActive
	if r := sb.Status.ReadyAt; r != nil && r.After(base) {
		base = *r
	}
	if base.IsZero() {
		base = sb.CreatedAt
	}
	return base
}

// ExpiresAt is when the TTL deletes sb: the deadline `sandpit extend` set,
// else its TTL after creation (or after it was claimed from a pool). Nil
// when it has no TTL.
func ExpiresAt(sb *sandbox.Sandbox, lc sandbox.Lifecycle) *time.Time {
	if sb.Spec.ExpiresAt != nil {
		t := *sb.Spec.ExpiresAt
		return &t
	}
	if lc.TTL <= 0 {
		return nil
	}
	start := sb.CreatedAt
	if sb.Spec.ClaimedAt != nil {
		start = *sb.Spec.ClaimedAt
	}
	t := start.Add(lc.TTL.D())
	return &t
}

// Running reports whether sb counts as running for quotas: it is not
// suspended, failed or on its way out.
func Running(sb *sandbox.Sandbox) bool {
	if sb.Spec.Deleting() {
		return false
	}
	switch sb.Status.Phase {
	case sandbox.PhaseSuspended, sandbox.PhaseFailed, sandbox.PhaseDeleting:
		return false
	}
	return true
}

// QuotaError is a refused request: a per-user limit is reached.
type QuotaError struct {
	// Limit names the limit ("sandboxes", "running sandboxes", "pins").
	Limit string
	User  string
	Max   int
	// Holding names the user's sandboxes that count against it.
	Holding []string
	// Hint says how to free room.
	Hint string
}

func (e *QuotaError) Error() string {
	msg := fmt.Sprintf("%s has %d %s, the limit per user is %d", e.User, len(e.Holding), e.Limit, e.Max)
	if len(e.Holding) > 0 {
		msg += " (" + strings.Join(e.Holding, ", ") + ")"
	}
	return msg
}

func owned(user string, sbs []*sandbox.Sandbox, keep func(*sandbox.Sandbox) bool, except string) []string {
	var out []string
	for _, sb := range sbs {
		if sb.Spec.CreatedBy == user && sb.ID != except && keep(sb) {
			out = append(out, sb.Name)
		}
	}
	sort.Strings(out)
	return out
}

// CheckCreate refuses a new sandbox (or a claimed one) for user when they
// are at their limit of sandboxes or of running sandboxes. except is the id
// of a sandbox that is not counted (the pool sandbox being claimed).
func CheckCreate(p Policy, user string, sbs []*sandbox.Sandbox, except string) error {
	if p.MaxSandboxesPerUser > 0 {
		if have := owned(user, sbs, func(sb *sandbox.Sandbox) bool { return !sb.Spec.Deleting() }, except); len(have) >= p.MaxSandboxesPerUser {
			return &QuotaError{Limit: "sandboxes", User: user, Max: p.MaxSandboxesPerUser, Holding: have,
				Hint: "delete one with `sandpit delete NAME` to make room"}
		}
	}
	return CheckRunning(p, user, sbs, except)
}

// CheckRunning refuses to start (or wake) one more sandbox for user when
// they are at their limit of running sandboxes.
func CheckRunning(p Policy, user string, sbs []*sandbox.Sandbox, except string) error {
	if p.MaxRunningPerUser <= 0 {
		return nil
	}
	if have := owned(user, sbs, Running, except); len(have) >= p.MaxRunningPerUser {
		return &QuotaError{Limit: "running sandboxes", User: user, Max: p.MaxRunningPerUser, Holding: have,
			Hint: "suspend one with `sandpit suspend NAME` or delete one with `sandpit delete NAME` to make room"}
	}
	return nil
}

// CheckPin refuses a pin when user already has as many as the server
// allows. The pins user made count, whoever created the sandboxes.
func CheckPin(p Policy, user string, sbs []*sandbox.Sandbox) error {
	if p.MaxPinsPerUser < 0 {
		return nil
	}
	var have []string
	for _, sb := range sbs {
		if sb.Spec.Pin != nil && sb.Spec.Pin.By == user && !sb.Spec.Deleting() {
			have = append(have, sb.Name)
		}
	}
	sort.Strings(have)
	if len(have) >= p.MaxPinsPerUser {
		hint := "unpin one with `sandpit unpin NAME` first"
		if p.MaxPinsPerUser == 0 {
			hint = "this server allows no pins; its admin can allow some with `sandpit serve --max-pins-per-user N`"
		}
		return &QuotaError{Limit: "pins", User: user, Max: p.MaxPinsPerUser, Holding: have, Hint: hint}
	}
	return nil
}
