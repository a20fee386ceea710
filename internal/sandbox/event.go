package sandbox

import "time"

// EventType tells whether an event is routine or needs attention.
type EventType string

const (
	EventNormal  EventType = "Normal"
	EventWarning EventType = "Warning"
)

// Event is one entry of a sandbox's event log: what happened, when, and for
// stage events how long the stage took.
type Event struct {
	Seq        int64     `json:"seq"`
	SandboxID  string    `json:"sandbox_id"`
	Time       time.Time `json:"time"`
	Type       EventType `json:"type"`
	Reason     string    `json:"reason"`
	Stage      string    `json:"stage,omitempty"`
	Message    string    `json:"message"`
	DurationMS float64   `json:"duration_ms,omitempty"`
}

// Event reasons. Clients (the CLI's progress display, the console) key on
// these, so they are part of the API.
const (
	ReasonCreated        = "Created"
	ReasonPhaseChanged   = "PhaseChanged"
	ReasonStageStarted   = "StageStarted"
	ReasonStageSucceeded = "StageSucceeded"
	ReasonStageFailed    = "StageFailed"
	ReasonStageSkipped   = "StageSkipped"
	ReasonRetrying       = "Retrying"
	ReasonDeleting       = "Deleting"
	ReasonDeleted        = "Deleted"
	ReasonAdopted        = "Adopted"
	ReasonServiceExited  = "ServiceExited"
	ReasonInfo           = "Info"
	// Snapshots: a dependency's data came from a snapshot (at launch or by
	// `sandpit snapshot restore`), or a snapshot was captured from it.
	ReasonSnapshotRestored = "SnapshotRestored"
	ReasonSnapshotCaptured = "SnapshotCaptured"
	// Lifecycle: suspend and resume (idle, by hand, by a request), TTL
	// and retention, pins and pools.
	ReasonSuspended = "Suspended"
	ReasonResuming  = "Resuming"
	ReasonExpired   = "Expired"
	ReasonLifecycle = "Lifecycle"
	ReasonClaimed   = "Claimed"
)
