package store

import (
	"context"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
)

// Sentinel errors. Adapters wrap them so callers can use errors.Is.
var (
	// ErrNotFound: no such template, version, sandbox, handle or snapshot.
	ErrNotFound = sandbox.ErrNotFound
	// ErrConflict: the name is taken, or a concurrent change won.
	ErrConflict = sandbox.ErrConflict
)

// TemplateVersion is one stored version of a template. Versions are
// immutable; applying changed content creates the next version.
type TemplateVersion struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	// Source is the YAML exactly as applied.
	Source []byte `json:"-"`
	// Filename is the name the client read it from (for error positions).
	Filename string `json:"filename"`
	// BaseDir is the absolute directory relative source paths resolve
	// against (the template file's directory on the server host).
	BaseDir string `json:"base_dir,omitempty"`
	// Digest is a hex SHA-256 over Source and BaseDir; equal digests mean an
	// unchanged template.
	Digest    string    `json:"digest"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// ListOptions filters ListSandboxes. Zero values match everything.
type ListOptions struct {
	Template string
	Phase    sandbox.Phase
}

// Store is Sandpit's persistent state. Every method is safe for concurrent
// use. Methods that take a name or id return an error wrapping ErrNotFound
// when nothing matches.
//
// Times are returned in UTC; adapters may keep only microseconds (as
// PostgreSQL does), and what a write returns equals what later reads return.
// List methods return empty, non-nil slices and maps when nothing matches.
// The conformance suite in storetest checks all of this.
type Store interface {
	// ApplyTemplate stores tv (Name, Source, Filename, BaseDir, Digest,
	// CreatedBy) as the next version of tv.Name unless the latest version
	// has the same Digest. It returns the stored version (the existing one
	// when unchanged) and whether a new version was created.
	ApplyTemplate(ctx context.Context, tv TemplateVersion) (TemplateVersion, bool, error)
	// GetTemplate returns one version; version 0 means the latest.
	GetTemplate(ctx context.Context, name string, version int) (TemplateVersion, error)
	// ListTemplates returns the latest version of every template, by name.
	ListTemplates(ctx context.Context) ([]TemplateVersion, error)
	// ListTemplateVersions returns every version of a template, oldest first.
	ListTemplateVersions(ctx context.Context, name string) ([]TemplateVersion, error)

	// CreateSandbox inserts sb. It fails with ErrConflict when the name (or
	// the id) is taken. It sets UpdatedAt, Generation (1), CreatedAt when
	// zero (a given one is kept, at the store's precision: the caller's
	// clock decides when TTLs start), and
	// ID (sandbox.NewID) and Status.Phase (Pending) when empty; sb is updated
	// in place, and only on success.
	CreateSandbox(ctx context.Context, sb *sandbox.Sandbox) error
	GetSandbox(ctx context.Context, id string) (*sandbox.Sandbox, error)
	GetSandboxByName(ctx context.Context, name string) (*sandbox.Sandbox, error)
	// ListSandboxes returns sandboxes ordered by creation time, oldest first.
	ListSandboxes(ctx context.Context, opts ListOptions) ([]*sandbox.Sandbox, error)
	// UpdateSpec runs fn on the current spec inside a transaction and
	// stores the result, bumping Generation and UpdatedAt, unless fn returns
	// an error (which UpdateSpec returns unchanged). fn must not call the
	// Store: it runs while the write lock is held.
	UpdateSpec(ctx context.Context, id string, fn func(*sandbox.Spec) error) (*sandbox.Sandbox, error)
	// RenameSandbox is UpdateSpec that also renames the sandbox, in the
	// same transaction (claiming a pool's sandbox). A taken name is
	// ErrConflict, and nothing changes.
	RenameSandbox(ctx context.Context, id, name string, fn func(*sandbox.Spec) error) (*sandbox.Sandbox, error)
	// TouchSandboxes records activity: each sandbox's LastActivityAt moves
	// to the given time unless it is already later. Unknown ids are
	// ignored (a sandbox deleted since). Spec, status, Generation and
	// UpdatedAt stay.
	TouchSandboxes(ctx context.Context, activity map[string]time.Time) error
	// UpdateStatus replaces the status and sets UpdatedAt; Spec and
	// Generation stay. Only the reconciler calls it.
	UpdateStatus(ctx context.Context, id string, st sandbox.Status) error
	// DeleteSandbox removes the sandbox and its events. Its usage
	// intervals stay (the open one is closed).
	DeleteSandbox(ctx context.Context, id string) error

	// UsageIntervals returns the recorded usage intervals that overlap
	// [from, to) (Start < to, and End after from or still open), ordered by
	// Start, then sandbox id; an empty window (to not after from) overlaps
	// nothing. Intervals are returned whole, not cut to the window, and
	// outlive their sandboxes.
	//
	// The store records them itself, in the transaction of the write that
	// changes the state (times from the store's clock): CreateSandbox opens
	// one; UpdateStatus closes the open one and opens the next when the
	// phase moves the sandbox to another state (sandbox.UsageOf says which)
	// or changes whether a suspension is idle; UpdateSpec and RenameSandbox
	// close it and open the same state again when the name, template or
	// owner change (a claim from a warm pool); DeleteSandbox closes it. A
	// sandbox has at most one open interval, and the intervals of one
	// sandbox never overlap.
	UsageIntervals(ctx context.Context, from, to time.Time) ([]sandbox.UsageInterval, error)

	// AppendEvent stores ev, assigning Seq (increasing across the store,
	// never reused even after deletes; a caller's Seq is ignored) and Time
	// when zero, and returns it as stored. The sandbox must exist.
	AppendEvent(ctx context.Context, ev sandbox.Event) (sandbox.Event, error)
	// ListEvents returns a sandbox's events with Seq > afterSeq, oldest
	// first, at most limit (0 means no limit). An unknown (or deleted)
	// sandbox is ErrNotFound, so that a client tailing events learns it is
	// gone.
	ListEvents(ctx context.Context, sandboxID string, afterSeq int64, limit int) ([]sandbox.Event, error)

	// Handles are runtime-owned, serialised records of what a runtime made
	// for a sandbox, so a restarted server can re-adopt it. They are keyed
	// by sandbox id and outlive the sandbox row until the runtime deletes
	// them.
	SaveHandle(ctx context.Context, sandboxID, runtime string, data []byte) error
	LoadHandle(ctx context.Context, sandboxID string) (runtime string, data []byte, err error)
	DeleteHandle(ctx context.Context, sandboxID string) error
	// ListHandles returns every handle of one runtime, by sandbox id.
	ListHandles(ctx context.Context, runtime string) (map[string][]byte, error)

	// CreateSnapshot inserts s. It fails with ErrConflict when the name or
	// the id is taken. It sets ID (sandbox.NewSnapshotID) when empty,
	// CreatedAt (now) when zero and Phase (SnapshotCreating) when empty; s is
	// updated in place, and only on success. A given CreatedAt or ReadyAt
	// is kept as stored (UTC, microseconds). An empty Name or a negative
	// SizeBytes is refused.
	CreateSnapshot(ctx context.Context, s *sandbox.Snapshot) error
	// GetSnapshot and GetSnapshotByName return one snapshot. Like every
	// read of a snapshot they return UsedBy as nil: it is computed
	// elsewhere, never stored. Handle is returned byte for byte, and as nil
	// when the snapshot has none (an empty Handle is stored as none).
	GetSnapshot(ctx context.Context, id string) (*sandbox.Snapshot, error)
	GetSnapshotByName(ctx context.Context, name string) (*sandbox.Snapshot, error)
	// ListSnapshots returns every snapshot, ordered by name.
	ListSnapshots(ctx context.Context) ([]*sandbox.Snapshot, error)
	// UpdateSnapshot stores s's mutable fields (Phase, Message, SizeBytes,
	// Method, Version, ReadyAt, Handle, Source.Database, Source.Format),
	// found by ID. Name, Type, the rest of Source, CreatedBy and CreatedAt
	// never change, whatever s holds. ErrNotFound when it is gone. An empty
	// Phase or a negative SizeBytes is refused. s itself is not modified:
	// read the snapshot back for what was stored (ReadyAt to the
	// microsecond).
	UpdateSnapshot(ctx context.Context, s *sandbox.Snapshot) error
	// DeleteSnapshot removes a snapshot record.
	DeleteSnapshot(ctx context.Context, id string) error

	// CreateRepo inserts a repository binding (Name, URL, Template, Every,
	// CreatedBy; CreatedAt when zero is now, Status as given). A taken name
	// is ErrConflict; an empty Name, URL or Template is refused. r is
	// updated in place, and only on success.
	CreateRepo(ctx context.Context, r *sandbox.Repo) error
	GetRepo(ctx context.Context, name string) (*sandbox.Repo, error)
	// ListRepos returns every binding, ordered by name.
	ListRepos(ctx context.Context) ([]*sandbox.Repo, error)
	// UpdateRepoStatus replaces a binding's status; nothing else changes.
	UpdateRepoStatus(ctx context.Context, name string, st sandbox.RepoStatus) error
	// DeleteRepo removes a binding (not its sandboxes).
	DeleteRepo(ctx context.Context, name string) error

	Close() error
}
