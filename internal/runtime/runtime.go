package runtime

import (
	"context"
	"errors"
	"io"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/template"
)

// Instance is everything a runtime needs to run one sandbox.
type Instance struct {
	ID              string
	Name            string
	Template        *template.Template
	TemplateVersion int
	// BaseDir resolves a relative source.path.
	BaseDir string
	// Ref is the requested git ref; empty means the template's default.
	Ref string
	// Set holds the --set overrides (already applied to Template with
	// template.WithSet; kept for display).
	Set map[string]string
	// EndpointURLs maps endpoint name to its public URL, for
	// ${endpoints.<name>.url}.
	EndpointURLs map[string]string
	// Seeds says, per dependency, what its data starts from; a missing
	// entry means an empty database.
	Seeds map[string]Seed
	// ResolveSnapshot looks up the snapshots Seeds name; it is called only
	// when a dependency is (re)seeded.
	ResolveSnapshot SnapshotResolver
}

// Observation is what a runtime sees of a sandbox.
type Observation struct {
	Ref          string
	SHA          string
	Services     []sandbox.ServiceStatus
	Dependencies []sandbox.DependencyStatus
	// Upstreams maps service → port name → host:port, for the proxy.
	Upstreams map[string]map[string]string
	// Healthy is false when something that should run does not (a service
	// process is gone); the reconciler then calls Up again.
	Healthy bool
	// Resources is the resource class the sandbox runs under and whether
	// the runtime could enforce it (nil when the template names none).
	Resources *sandbox.ResourceStatus
}

// Progress receives a launch's stages and events as they happen. Stage names
// are the sandbox.Stage* constants, optionally with "/<part>" appended.
type Progress interface {
	StageStarted(name string)
	// StageFinished ends a stage; a nil err means it succeeded.
	StageFinished(name string, err error)
	StageSkipped(name, reason string)
	Event(typ sandbox.EventType, reason, message string)
	// External marks work the platform waits on (a child process, a probe,
	// git). Call done when it ends. Overlapping spans count once; kind is
	// "checkout" for getting the source, anything else otherwise.
	External(kind string) (done func())
}

// Runtime runs sandboxes somewhere. Implementations must be safe for
// concurrent use across different sandbox ids; the reconciler never calls
// two methods for the same id at once.
type Runtime interface {
	// Name is the runtime's name ("local", "kubernetes").
	Name() string
	// Up makes the sandbox run as inst describes. It is idempotent and
	// resumes whatever an interrupted earlier call (or a killed server)
	// left, re-adopting what still runs. It returns when every service is
	// ready, or on the first error; an error for which IsPermanent is true
	// will not go away by retrying (a build failed).
	Up(ctx context.Context, inst *Instance, p Progress) (*Observation, error)
	// Observe reports the sandbox's current state without changing it.
	Observe(ctx context.Context, id string) (*Observation, error)
	// Down stops and removes everything the sandbox has. It is idempotent
	// and succeeds for ids the runtime has never seen.
	Down(ctx context.Context, id string, p Progress) error
	// Sandboxes lists the ids the runtime holds anything for (processes,
	// directories, handles), so the reconciler can remove what no sandbox
	// owns.
	Sandboxes(ctx context.Context) ([]string, error)
}

// HandleStore persists runtime handles; the store implements it.
type HandleStore interface {
	SaveHandle(ctx context.Context, sandboxID, runtime string, data []byte) error
	LoadHandle(ctx context.Context, sandboxID string) (runtime string, data []byte, err error) // sandbox.ErrNotFound when missing
	DeleteHandle(ctx context.Context, sandboxID string) error
	ListHandles(ctx context.Context, runtime string) (map[string][]byte, error)
}

// LogLine is one line of a service's output.
type LogLine struct {
	Time    time.Time `json:"time"`
	Service string    `json:"service"`
	// Stream is "stdout", "stderr", "build", "init" or "system".
	Stream string `json:"stream"`
	Text   string `json:"text"`
}

// LogOptions selects log lines.
type LogOptions struct {
	// Service limits to one service or dependency; empty means all.
	Service string
	// Tail returns only the last n lines of history (0 means all).
	Tail int
	// Follow keeps streaming new lines until ctx ends.
	Follow bool
}

// LogReader is the optional capability to read service logs.
type LogReader interface {
	// Logs calls fn for each selected line, oldest first, until history is
	// exhausted (or, with Follow, ctx ends). fn's error stops it.
	Logs(ctx context.Context, id string, opts LogOptions, fn func(LogLine) error) error
}

// ExecRequest runs a command in a service's environment.
type ExecRequest struct {
	Service string
	Command []string
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
}

// Execer is the optional capability to run a command in a service's
// environment (its workdir, env and user).
type Execer interface {
	// Exec runs req and returns the command's exit code. An error means the
	// command could not be run at all.
	Exec(ctx context.Context, id string, req ExecRequest) (exitCode int, err error)
}

// Suspender is the optional capability to suspend a sandbox: stop its
// services and dependencies and free their ports and memory while keeping
// everything on disk (checkout, builds, data), so that Up resumes it
// without rebuilding or reseeding.
type Suspender interface {
	// Suspend stops every process of the sandbox and releases its ports.
	// It is idempotent. Up resumes the sandbox, taking the same ports back
	// when they are still free.
	Suspend(ctx context.Context, id string, p Progress) error
}

// TemplateChecker is the optional capability to check a template against
// what this runtime can run (installed dependency versions, say) when the
// template is applied rather than when a sandbox launches.
type TemplateChecker interface {
	CheckTemplate(t *template.Template) error
}

// permanent marks errors that retrying will not fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent wraps err so IsPermanent reports true. It returns nil for nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// ErrNotFound reports an unknown sandbox, service or dependency (it is
// sandbox.ErrNotFound, which HandleStore also returns for a missing handle).
var ErrNotFound = sandbox.ErrNotFound

// Seed says what a dependency's data starts from.
type Seed struct {
	// Key identifies the request: a runtime (re)seeds a dependency when
	// Key differs from the key it last seeded it with, and never
	// otherwise. Empty means "an empty database of the dependency's
	// version".
	Key string
	// Snapshot names the snapshot to start from ("" = empty).
	Snapshot string
}

// SnapshotRef is a Ready snapshot as a runtime needs it to seed from.
type SnapshotRef struct {
	ID, Name, Type, Version string
	// Handle is what the runtime returned when it made the snapshot.
	Handle []byte
}

// SnapshotResolver looks a snapshot up by name when a runtime needs it. A
// missing or failed snapshot is a Permanent error; one still being created
// is not (the reconciler retries).
type SnapshotResolver func(ctx context.Context, name string) (*SnapshotRef, error)

// SnapshotData is what a runtime made for a new snapshot.
type SnapshotData struct {
	Version   string
	SizeBytes int64
	// Method is how the data is stored: "btrfs", "reflink" or "copy".
	Method string
	// Database and Format describe an import: the database the dump went
	// into and the dump's format ("custom", "tar" or "plain").
	Database, Format string
	// Handle is the runtime's private record (where the data is, the
	// cluster's credentials); it is stored and handed back in SnapshotRef.
	Handle []byte
}

// ImportRequest restores a dump into a new snapshot.
type ImportRequest struct {
	SnapshotID string
	// Type is the dependency type; Version the major version ("" lets the
	// runtime pick: the dump's own when installed, else the newest).
	Type, Version string
	// DumpPath is the dump file on the server's host.
	DumpPath string
	// Database is the database to restore into ("" = the dump's own).
	Database string
}

// Snapshotter is the optional capability to capture, import and keep
// dependency snapshots, and to seed dependencies from them (Instance.Seeds).
type Snapshotter interface {
	// SnapshotStore says how snapshots are kept ("btrfs", "reflink" or
	// "copy") and describes the store in one line for logs and the API.
	SnapshotStore() (method, description string)
	// CaptureSnapshot makes a consistent copy of a sandbox's dependency:
	// it stops the dependency, copies its data, and starts it again.
	CaptureSnapshot(ctx context.Context, sandboxID, dependency, snapshotID string) (*SnapshotData, error)
	// ImportSnapshot restores a dump, once, into a fresh cluster that
	// becomes the snapshot's data.
	ImportSnapshot(ctx context.Context, req ImportRequest) (*SnapshotData, error)
	// DeleteSnapshot removes a snapshot's data (and anything a creation
	// interrupted by a crash left). Sandboxes seeded from it keep theirs.
	// It succeeds for ids it has never seen.
	DeleteSnapshot(ctx context.Context, snapshotID string) error
	// SnapshotIDs lists the snapshot ids the runtime holds anything for,
	// finished or not, so leftovers of a crash can be removed.
	SnapshotIDs(ctx context.Context) ([]string, error)
}

// Renderer is the optional capability to show, for review, the objects a
// sandbox is made of (the kubernetes runtime's final manifests), exactly as
// they would be applied but with secret values redacted.
type Renderer interface {
	RenderYAML(ctx context.Context, inst *Instance) ([]byte, error)
}
