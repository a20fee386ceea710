package sandbox

import (
	"fmt"
	"strings"
	"time"
)

// Duration is a time.Duration that reads and writes Go duration text
// ("30m0s") in JSON, so API answers and `-o json` stay readable.
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes "30m0s"-style text.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses Go duration text; negative durations are refused.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration: write a number and a unit, like 30m or 72h", b)
	}
	if v < 0 {
		return fmt.Errorf("%q is negative: durations must be zero or more", b)
	}
	*d = Duration(v)
	return nil
}

// ShortDuration formats a lifecycle setting without trailing zero units:
// 30m, 1h30m, 72h (time.Duration says 30m0s, 72h0m0s).
func ShortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// LifecycleOverrides are a sandbox's own lifecycle settings, given when it
// is created; each set field wins over the server's and the template's.
// Zero means "never" (no idle suspend, no TTL, keep a failure forever).
type LifecycleOverrides struct {
	IdleSuspend *Duration `json:"idle_suspend,omitempty"`
	TTL         *Duration `json:"ttl,omitempty"`
	KeepFailed  *Duration `json:"keep_failed,omitempty"`
}

// Pin exempts a sandbox from automatic suspend and deletion.
type Pin struct {
	By string    `json:"by"`
	At time.Time `json:"at"`
}

// Lifecycle is the lifecycle policy in force for a sandbox, resolved from
// its own overrides, the server's settings and its template; each value
// says where it came from ("sandbox", "server", "template" or "default").
// Zero durations mean "never".
type Lifecycle struct {
	IdleSuspend     Duration `json:"idle_suspend"`
	IdleSuspendFrom string   `json:"idle_suspend_from"`
	TTL             Duration `json:"ttl"`
	TTLFrom         string   `json:"ttl_from"`
	KeepFailed      Duration `json:"keep_failed"`
	KeepFailedFrom  string   `json:"keep_failed_from"`
	// SuspendedRetention is how long a suspended sandbox is kept (server
	// setting; zero keeps it).
	SuspendedRetention Duration `json:"suspended_retention"`
	// PoolSuspend: a pool member is suspended once ready.
	PoolSuspend bool `json:"pool_suspend,omitempty"`
}

// Deadlines are the moments the lifecycle will act on a sandbox, computed
// from its policy, its activity and its history. Nil means "not planned".
type Deadlines struct {
	// SuspendAt is when idle suspend happens unless there is activity.
	SuspendAt *time.Time `json:"suspend_at,omitempty"`
	// ExpiresAt is when the TTL deletes the sandbox.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// DeleteAt is when a Failed sandbox's keep_failed, or a suspended
	// one's retention, ends.
	DeleteAt *time.Time `json:"delete_at,omitempty"`
}

// ResourceStatus says which resource class a sandbox runs under and whether
// its limits are enforced.
type ResourceStatus struct {
	Class       string `json:"class"`
	MilliCPU    int64  `json:"millicpu,omitempty"`
	MemoryBytes int64  `json:"memory_bytes,omitempty"`
	// Enforced is false when the host cannot apply the limits; Message
	// says why.
	Enforced bool   `json:"enforced"`
	Message  string `json:"message,omitempty"`
}

// Deletion reasons recorded in Spec.DeletionReason.
const (
	DeletedByUser       = "requested"
	DeletedTTL          = "ttl expired"
	DeletedKeepFailed   = "keep_failed ended"
	DeletedRetention    = "suspended past the server's retention"
	DeletedPoolSurplus  = "pool has more sandboxes than it needs"
	DeletedPoolOutdated = "pool sandbox of an older template version"
)

// PoolOwner is the CreatedBy of a pool's sandboxes until one is claimed.
const PoolOwner = "pool"

// FailRequest asks for a sandbox to be marked Failed without stopping
// anything, so it is kept for debugging (for its keep_failed) as it was.
type FailRequest struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	By     string    `json:"by,omitempty"`
}

// Pending reports whether the request r has not been acted on by a status
// that records honored (Status.FailRequestHonored).
func (r *FailRequest) Pending(honored *time.Time) bool {
	return r != nil && (honored == nil || !honored.Equal(r.At))
}
