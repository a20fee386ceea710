package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// Sandbox is one running instance of a template. Users (through the API)
// write Spec; only the reconciler writes Status.
type Sandbox struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Spec       Spec      `json:"spec"`
	Status     Status    `json:"status"`
	Generation int64     `json:"generation"` // bumped by every spec change
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	// LastActivityAt is the last request through the endpoint proxy, or
	// the last moment a logs, exec or port-forward session was open, as
	// last recorded (the server records it every few seconds). Nil before
	// any activity. It is neither spec nor status: only activity moves it,
	// and only forward.
	LastActivityAt *time.Time `json:"last_activity_at,omitempty"`

	// Lifecycle and Deadlines are computed when the API answers (the
	// policy in force now, and when it will act), never stored.
	Lifecycle *Lifecycle `json:"lifecycle,omitempty"`
	Deadlines *Deadlines `json:"deadlines,omitempty"`
}

// Spec is what the user asked for.
type Spec struct {
	Template        string `json:"template"`
	TemplateVersion int    `json:"template_version"`
	// Ref is the git ref (branch, tag or commit) to check out; empty means
	// the template's default.
	Ref string `json:"ref,omitempty"`
	// Set holds overrides given with --set KEY=VALUE, validated against the
	// template when the sandbox is created.
	Set map[string]string `json:"set,omitempty"`
	// DeletionRequestedAt is set when the user asked for the sandbox to go
	// away; the reconciler then tears it down and removes the record.
	DeletionRequestedAt *time.Time `json:"deletion_requested_at,omitempty"`
	// CreatedBy names who asked for it (the token's subject).
	CreatedBy string `json:"created_by,omitempty"`
	// Restores asks, per dependency, for its data to be reset to a
	// snapshot (`sandpit snapshot restore`). Each request bumps Seq, so
	// asking twice for the same snapshot resets twice.
	Restores map[string]Restore `json:"restores,omitempty"`

	// DeletionReason says why deletion was requested (DeletedByUser,
	// DeletedTTL, ...).
	DeletionReason string `json:"deletion_reason,omitempty"`
	// Lifecycle holds the sandbox's own lifecycle settings.
	Lifecycle *LifecycleOverrides `json:"lifecycle,omitempty"`
	// SuspendRequestedAt is set by `sandpit suspend`; the sandbox stays
	// suspended until it is resumed or a request wakes it.
	SuspendRequestedAt *time.Time `json:"suspend_requested_at,omitempty"`
	SuspendRequestedBy string     `json:"suspend_requested_by,omitempty"`
	// ExpiresAt, set by `sandpit extend`, replaces the TTL's deadline.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Pin exempts the sandbox from idle suspend, TTL and retention.
	Pin *Pin `json:"pin,omitempty"`
	// Pool names the template whose warm pool the sandbox belongs to; it
	// is cleared when someone claims the sandbox.
	Pool string `json:"pool,omitempty"`
	// ClaimedAt is when the sandbox was claimed from a pool: its TTL
	// counts from then, not from when the pool made it.
	ClaimedAt *time.Time `json:"claimed_at,omitempty"`
	// Git records the branch or pull request of a bound repository the
	// sandbox was made for (by gitsync); Ref is then the commit to run.
	Git *GitSource `json:"git,omitempty"`
	// FailRequested asks for the sandbox to be marked Failed as it is,
	// processes kept for debugging (`sandpit ci run` after a failed test
	// run); it is honoured once (see Status.FailRequestHonored).
	FailRequested *FailRequest `json:"fail_requested,omitempty"`
}

// Restore is one request to reset a dependency's data to a snapshot.
type Restore struct {
	Snapshot    string    `json:"snapshot"`
	Seq         int       `json:"seq"`
	RequestedAt time.Time `json:"requested_at"`
	RequestedBy string    `json:"requested_by,omitempty"`
}

// Deleting reports whether deletion was requested.
func (s Spec) Deleting() bool { return s.DeletionRequestedAt != nil }

// Status is what the reconciler observed and did.
type Status struct {
	Phase   Phase  `json:"phase"`
	Message string `json:"message,omitempty"`
	// ObservedGeneration is the Generation the status describes.
	ObservedGeneration int64 `json:"observed_generation,omitempty"`
	// LaunchKey digests what the last launch was made from (name,
	// template version, ref, overrides, restores): a spec change that
	// leaves it equal (a pin, an extension) needs no relaunch.
	LaunchKey string `json:"launch_key,omitempty"`
	Runtime   string `json:"runtime,omitempty"`
	// Git is the resolved source: the ref asked for and the commit found.
	Ref string `json:"ref,omitempty"`
	SHA string `json:"sha,omitempty"`

	Endpoints    []EndpointStatus   `json:"endpoints,omitempty"`
	Services     []ServiceStatus    `json:"services,omitempty"`
	Dependencies []DependencyStatus `json:"dependencies,omitempty"`
	Stages       []Stage            `json:"stages,omitempty"`
	Timing       *Timing            `json:"timing,omitempty"`

	ReadyAt  *time.Time `json:"ready_at,omitempty"`
	FailedAt *time.Time `json:"failed_at,omitempty"`
	// SuspendedAt is when the sandbox was last suspended (kept while it
	// is Suspended, cleared when it is Ready again).
	SuspendedAt *time.Time `json:"suspended_at,omitempty"`
	// SuspendReason says why it was suspended ("idle for 30m", "by
	// admin", "pool").
	SuspendReason string `json:"suspend_reason,omitempty"`
	// Resources is the resource class and whether the runtime enforces it.
	Resources *ResourceStatus `json:"resources,omitempty"`
	// Resume is the timing of the last resume from Suspended.
	Resume *ResumeTiming `json:"resume,omitempty"`
	// FailRequestHonored is the At of the Spec.FailRequested the
	// reconciler acted on, so that the request fails the sandbox once:
	// a later relaunch (a new ref) is not failed again.
	FailRequestHonored *time.Time `json:"fail_request_honored,omitempty"`
}

// ResumeTiming is how long the last resume took and what asked for it.
type ResumeTiming struct {
	StartedAt time.Time `json:"started_at"`
	TookMS    float64   `json:"took_ms,omitempty"`
	Reason    string    `json:"reason,omitempty"`
}

// EndpointStatus is one endpoint's public URL and where its routes go.
type EndpointStatus struct {
	Name   string  `json:"name"`
	URL    string  `json:"url"`
	Routes []Route `json:"routes"`
}

// Route sends requests whose path starts with PathPrefix to Upstream
// (host:port on the runtime's network). Service and Port name the target
// as the template wrote it.
type Route struct {
	PathPrefix string `json:"path"`
	Service    string `json:"service"`
	Port       string `json:"port"`
	Upstream   string `json:"upstream,omitempty"`
}

// ServiceState is the coarse state of one service process.
type ServiceState string

const (
	ServicePending    ServiceState = "pending"
	ServiceBuilding   ServiceState = "building"
	ServiceStarting   ServiceState = "starting"
	ServiceRunning    ServiceState = "running"
	ServiceRestarting ServiceState = "restarting"
	ServiceExited     ServiceState = "exited"
	ServiceFailed     ServiceState = "failed"
	ServiceStopped    ServiceState = "stopped"
)

// ServiceStatus is one service as observed.
type ServiceStatus struct {
	Name     string         `json:"name"`
	State    ServiceState   `json:"state"`
	Ready    bool           `json:"ready"`
	Restarts int            `json:"restarts"`
	PID      int            `json:"pid,omitempty"`
	Ports    map[string]int `json:"ports,omitempty"`
	ExitCode *int           `json:"exit_code,omitempty"`
	Message  string         `json:"message,omitempty"`
}

// DependencyStatus is one managed dependency as observed. Credentials are
// never part of it.
type DependencyStatus struct {
	Name      string       `json:"name"`
	Type      string       `json:"type"`
	Version   string       `json:"version"`
	State     ServiceState `json:"state"`
	Ready     bool         `json:"ready"`
	Host      string       `json:"host,omitempty"`
	Port      int          `json:"port,omitempty"`
	Databases []string     `json:"databases,omitempty"`
	// Snapshot names the snapshot the data was last seeded (or restored)
	// from; empty for a database that started empty.
	Snapshot string `json:"snapshot,omitempty"`
	Message  string `json:"message,omitempty"`
}

// StageState is where one launch stage is.
type StageState string

const (
	StageRunning   StageState = "running"
	StageSucceeded StageState = "succeeded"
	StageFailed    StageState = "failed"
	StageSkipped   StageState = "skipped"
)

// Well-known stage names, in launch order. A runtime may report sub-stages
// named "<stage>/<part>" (for example "build/api").
const (
	StageCheckout     = "checkout"
	StageBuild        = "build"
	StageDependencies = "dependencies"
	StageStart        = "start"
	StageReady        = "ready"
)

// Stage is one step of a launch with its timing.
type Stage struct {
	Name       string     `json:"name"`
	State      StageState `json:"state"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Message    string     `json:"message,omitempty"`
}

// Duration is how long the stage took, or has taken so far at now.
func (s Stage) Duration(now time.Time) time.Duration {
	if s.FinishedAt != nil {
		return s.FinishedAt.Sub(s.StartedAt)
	}
	return now.Sub(s.StartedAt)
}

// Timing splits a launch's wall time between the platform and the work it
// waited on (git, dependency start, the app's build, init, start and probes).
type Timing struct {
	// Total is from the request being accepted to the sandbox being Ready.
	TotalMS float64 `json:"total_ms"`
	// ExternalMS is the wall time during which at least one external step
	// (a child process, a probe) was in flight.
	ExternalMS float64 `json:"external_ms"`
	// CheckoutMS is the part of ExternalMS spent getting the source.
	CheckoutMS float64 `json:"checkout_ms"`
	// OverheadMS is TotalMS-ExternalMS: the platform's own time (queueing,
	// store writes, rendering, port allocation, bookkeeping).
	OverheadMS float64 `json:"overhead_ms"`
}

// NewID returns a new random sandbox id ("sb-" and 16 hex digits). IDs name
// directories and processes, so they are short and shell-safe.
func NewID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return "sb-" + hex.EncodeToString(b[:])
}
