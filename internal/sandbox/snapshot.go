package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// SnapshotPhase is where a snapshot is in its life. A snapshot is usable
// only when Ready; it never goes back from Ready.
type SnapshotPhase string

const (
	// SnapshotCreating: the data is being captured or imported. A server
	// restart resumes it; sandboxes that name it wait.
	SnapshotCreating SnapshotPhase = "Creating"
	// SnapshotReady: complete and immutable.
	SnapshotReady SnapshotPhase = "Ready"
	// SnapshotFailed: creation failed (Message says why); no data is kept.
	// Creating a snapshot of the same name replaces it.
	SnapshotFailed SnapshotPhase = "Failed"
)

// Snapshot source kinds.
const (
	SnapshotFromSandbox = "sandbox"
	SnapshotFromImport  = "import"
)

// MaxSnapshotNameLength bounds snapshot names.
const MaxSnapshotNameLength = 63

// ValidateSnapshotName checks a snapshot name (same rules as sandbox names).
func ValidateSnapshotName(name string) error {
	return ValidateName("snapshot", name, MaxSnapshotNameLength)
}

// Snapshot is a named, immutable copy of a dependency's data that new
// sandboxes start from.
type Snapshot struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Type is the dependency type ("postgres") and Version its major
	// version ("15"); a dependency can only start from a snapshot of the
	// same type and version.
	Type    string        `json:"type"`
	Version string        `json:"version"`
	Phase   SnapshotPhase `json:"phase"`
	Message string        `json:"message,omitempty"`
	// SizeBytes is the size of the data on disk (0 until Ready).
	SizeBytes int64 `json:"size_bytes"`
	// Method is how the snapshot store keeps it and clones it: "btrfs",
	// "reflink" or "copy".
	Method    string         `json:"method,omitempty"`
	Source    SnapshotSource `json:"source"`
	CreatedBy string         `json:"created_by,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
	ReadyAt   *time.Time     `json:"ready_at,omitempty"`
	// UsedBy names the sandboxes that start from this snapshot or were
	// restored from it. It is computed when read, not stored.
	UsedBy []string `json:"used_by"`
	// Handle is the runtime's opaque record of where the data is and how
	// to open it (it may hold the cluster's password): stored, never shown.
	Handle []byte `json:"-"`
}

// SnapshotSource says where a snapshot's data came from.
type SnapshotSource struct {
	// Kind is SnapshotFromSandbox or SnapshotFromImport.
	Kind string `json:"kind"`
	// Sandbox and SandboxID name the sandbox captured (at capture time),
	// Dependency its dependency.
	Sandbox    string `json:"sandbox,omitempty"`
	SandboxID  string `json:"sandbox_id,omitempty"`
	Dependency string `json:"dependency,omitempty"`
	// File is the base name of the imported dump; Format is "custom" or
	// "plain"; Database is the database it was restored into.
	File     string `json:"file,omitempty"`
	Format   string `json:"format,omitempty"`
	Database string `json:"database,omitempty"`
}

// NewSnapshotID returns a random snapshot id, "snap-" and 16 hex digits.
func NewSnapshotID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return "snap-" + hex.EncodeToString(b[:])
}
