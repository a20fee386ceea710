package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/runtime/local/cgroup"
	"sandpit.dev/sandpit/internal/runtime/local/proc"
	"sandpit.dev/sandpit/internal/runtime/local/volume"
)

// Name is the runtime's name.
const Name = "local"

// Config holds the local runtime's dependencies and settings.
type Config struct {
	// DataDir is the server's data directory (absolute); the runtime uses
	// sandboxes/, git/ and, by default, home/ below it.
	DataDir string
	// HomeDir is HOME for services and builds (default DataDir/home). It is
	// shared by all sandboxes, like a developer's home across checkouts, so
	// build caches (Go's, npm's) stay warm.
	HomeDir string
	// User is who services run as (see proc.ResolveUser).
	User *proc.User
	// ShimCommand starts a shim: the command plus leading arguments, to
	// which the spec file path is appended (normally the sandpit binary
	// and "shim").
	ShimCommand []string
	// PortLow and PortHigh bound the loopback ports handed to sandboxes.
	PortLow, PortHigh int
	// Handles persists the runtime's per-sandbox handles.
	Handles runtime.HandleStore
	Logger  *slog.Logger
	// PassEnv names server environment variables passed to services and
	// builds (PATH always is).
	PassEnv []string
	// PostgresBinDir returns the directory holding initdb and postgres for
	// a major version (default /usr/lib/postgresql/<version>/bin).
	PostgresBinDir func(version string) string
	// LogMaxBytes caps each log file (default logfile.DefaultMaxBytes).
	LogMaxBytes int64
	// StopTimeout is the grace period between the stop signal and SIGKILL
	// (default 10s).
	StopTimeout time.Duration
	// Volumes is the copy-on-write store that holds dependencies' data
	// and snapshots (default: plain copies under DataDir/volumes).
	Volumes *volume.Store
	// ResourceClasses are the classes templates may name in
	// resources.class (default DefaultResourceClasses; a non-nil map is
	// used as it is). Each limits a whole sandbox: all its services and
	// dependencies share one cgroup.
	ResourceClasses map[string]ResourceClass
	// CgroupRoot is where the cgroup file systems are mounted (default
	// /sys/fs/cgroup). A host where limits cannot be enforced runs
	// sandboxes without them and says so in their status.
	CgroupRoot string
}

// DefaultPassEnv are passed through to services unless configured
// otherwise: what toolchains need to find themselves and the network.
var DefaultPassEnv = []string{"PATH", "LANG", "LC_ALL", "TZ", "GOPROXY", "GOFLAGS", "GONOSUMDB", "GOPRIVATE", "GOSUMDB", "GOTOOLCHAIN", "NPM_CONFIG_REGISTRY", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"}

// Runtime is the local runtime.
type Runtime struct {
	cfg   Config
	node  string
	log   *slog.Logger
	ports *portAllocator

	mu sync.Mutex
	// tasks holds the pids of build/init/exec processes this server
	// started, per sandbox; any other task process found by marker is a
	// leftover of a previous server and is killed before Up redoes its
	// step.
	tasks map[string]map[int]bool
	// gitLocks serialises fetches into one mirror.
	gitLocks map[string]*sync.Mutex
	// sandboxLocks serialise what changes one sandbox's processes and data
	// (Up, Down, capturing a snapshot of it).
	sandboxLocks map[string]chan struct{}
	vols         *volume.Store
	// cg makes the sandboxes' cgroups; cgroupJoin holds, per sandbox,
	// the cgroup.procs files its shims join (set by each Up, see
	// ensureResources; absent when the sandbox has no group).
	cg         *cgroup.Manager
	cgroupJoin map[string][]string
}

var _ runtime.Runtime = (*Runtime)(nil)
var _ runtime.LogReader = (*Runtime)(nil)
var _ runtime.Execer = (*Runtime)(nil)
var _ runtime.TemplateChecker = (*Runtime)(nil)
var _ runtime.Snapshotter = (*Runtime)(nil)

// New returns a local runtime. It reserves the ports recorded in existing
// handles, so a restarted server never hands them out twice.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if !filepath.IsAbs(cfg.DataDir) {
		return nil, fmt.Errorf("local runtime: data dir %q must be absolute", cfg.DataDir)
	}
	if cfg.Handles == nil || cfg.User == nil || len(cfg.ShimCommand) == 0 {
		return nil, errors.New("local runtime: Handles, User and ShimCommand are required")
	}
	if cfg.HomeDir == "" {
		cfg.HomeDir = filepath.Join(cfg.DataDir, "home")
	}
	if cfg.PortLow == 0 {
		cfg.PortLow, cfg.PortHigh = 20000, 29999
	}
	if cfg.PortLow < 1024 || cfg.PortHigh > 65535 || cfg.PortLow > cfg.PortHigh {
		return nil, fmt.Errorf("local runtime: port range %d-%d is invalid: use two ports between 1024 and 65535, low first", cfg.PortLow, cfg.PortHigh)
	}
	if cfg.PassEnv == nil {
		cfg.PassEnv = DefaultPassEnv
	}
	if cfg.PostgresBinDir == nil {
		cfg.PostgresBinDir = func(v string) string { return "/usr/lib/postgresql/" + v + "/bin" }
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ResourceClasses == nil {
		cfg.ResourceClasses = DefaultResourceClasses()
	}
	classes := make(map[string]ResourceClass, len(cfg.ResourceClasses))
	for name, c := range cfg.ResourceClasses {
		c.Name = name
		classes[name] = c
	}
	cfg.ResourceClasses = classes
	if cfg.Volumes == nil {
		v, err := volume.Open(ctx, volume.Options{Root: filepath.Join(cfg.DataDir, "volumes"), Want: volume.Copy, Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("local runtime: %w", err)
		}
		cfg.Volumes = v
	}
	r := &Runtime{
		cfg:      cfg,
		node:     NodeID(cfg.DataDir),
		log:      cfg.Logger.With("runtime", Name),
		ports:    newPortAllocator(cfg.PortLow, cfg.PortHigh),
		tasks:    map[string]map[int]bool{},
		gitLocks: map[string]*sync.Mutex{},

		sandboxLocks: map[string]chan struct{}{},
		vols:         cfg.Volumes,
		cg:           cgroup.Open(cfg.CgroupRoot),
		cgroupJoin:   map[string][]string{},
	}
	if ok, why := r.cg.Supported(); ok {
		r.log.Info("resource classes are enforced with cgroup "+string(r.cg.Version()), "classes", r.classNames())
	} else {
		r.log.Info("resource classes cannot be enforced here: sandboxes that name one run without limits", "why", why)
	}
	for _, d := range []string{r.sandboxesDir(), filepath.Join(cfg.DataDir, "git")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("local runtime: %w", err)
		}
	}
	if err := r.ensureHome(); err != nil {
		return nil, err
	}
	if err := checkTraversable(cfg.DataDir, cfg.User); err != nil {
		return nil, err
	}
	handles, err := cfg.Handles.ListHandles(ctx, Name)
	if err != nil {
		return nil, fmt.Errorf("local runtime: list handles: %w", err)
	}
	for id := range handles {
		h, err := r.loadHandle(ctx, id)
		if err != nil || h == nil {
			r.log.Warn("cannot read handle; its ports stay free", "sandbox", id, "err", err)
			continue
		}
		if h.Suspended {
			continue // its ports were given back; Up takes them again
		}
		for _, ports := range h.Ports {
			for _, p := range ports {
				r.ports.reserve(id, p)
			}
		}
	}
	return r, nil
}

// NodeID derives the marker that tells this server's processes from other
// servers' on the same host: a digest of the data directory.
func NodeID(dataDir string) string {
	sum := sha256.Sum256([]byte(filepath.Clean(dataDir)))
	return hex.EncodeToString(sum[:6])
}

// Name implements runtime.Runtime.
func (r *Runtime) Name() string { return Name }

// Node returns the marker value of this server's processes.
func (r *Runtime) Node() string { return r.node }

func (r *Runtime) sandboxesDir() string { return filepath.Join(r.cfg.DataDir, "sandboxes") }

// SandboxDir is the directory that holds everything of sandbox id.
func (r *Runtime) SandboxDir(id string) string { return filepath.Join(r.sandboxesDir(), id) }

func (r *Runtime) runDir(id string) string   { return filepath.Join(r.SandboxDir(id), "run") }
func (r *Runtime) logDir(id string) string   { return filepath.Join(r.SandboxDir(id), "logs") }
func (r *Runtime) stateDir(id string) string { return filepath.Join(r.SandboxDir(id), "state") }
func (r *Runtime) depDir(id, dep string) string {
	return filepath.Join(r.SandboxDir(id), "deps", dep)
}

func (r *Runtime) specPath(id, unit string) string {
	return filepath.Join(r.runDir(id), unit+".spec.json")
}
func (r *Runtime) statusPath(id, unit string) string {
	return filepath.Join(r.runDir(id), unit+".status.json")
}
func (r *Runtime) runLog(id, unit string) string { return filepath.Join(r.logDir(id), unit+".log") }
func (r *Runtime) taskLog(id, unit string) string {
	return filepath.Join(r.logDir(id), unit+".task.log")
}

// done markers record completed steps; a step is redone when its marker is
// missing or holds a different key.
func (r *Runtime) markerPath(id, name string) string { return filepath.Join(r.stateDir(id), name) }

func (r *Runtime) isDone(id, name, key string) bool {
	b, err := os.ReadFile(r.markerPath(id, name))
	return err == nil && string(b) == key
}

func (r *Runtime) markDone(id, name, key string) error {
	p := r.markerPath(id, name)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(key), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// ensureHome creates the shared HOME owned by the service user.
func (r *Runtime) ensureHome() error {
	if err := os.MkdirAll(r.cfg.HomeDir, 0o755); err != nil {
		return fmt.Errorf("local runtime: create home %s: %w", r.cfg.HomeDir, err)
	}
	if err := r.cfg.User.Chown(r.cfg.HomeDir); err != nil {
		return fmt.Errorf("local runtime: chown home %s: %w", r.cfg.HomeDir, err)
	}
	return nil
}

// checkTraversable fails early, with the fix, when the service user could
// not reach the data directory (a 0700 parent, typically a home directory
// or a test's temp dir): otherwise every sandbox would fail much later with
// "permission denied" from inside a build.
func checkTraversable(dir string, u *proc.User) error {
	if !u.Switch {
		return nil
	}
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("local runtime: %w", err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("local runtime: services run as user %q, who cannot enter %s (mode %v) on the way to the data dir %s: choose a --data-dir outside it (e.g. /var/lib/sandpit) or run chmod o+x %s", u.Name, d, st.Mode().Perm(), dir, d)
		}
		if d == "/" {
			return nil
		}
	}
}

// Sandboxes implements runtime.Runtime: every id with a handle, a
// directory or a live process.
func (r *Runtime) Sandboxes(ctx context.Context) ([]string, error) {
	ids := map[string]bool{}
	handles, err := r.cfg.Handles.ListHandles(ctx, Name)
	if err != nil {
		return nil, err
	}
	for id := range handles {
		ids[id] = true
	}
	entries, err := os.ReadDir(r.sandboxesDir())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "sb-") {
			ids[e.Name()] = true
		}
	}
	procs, err := proc.Scan(r.node)
	if err != nil {
		return nil, err
	}
	for _, p := range procs {
		// Imports run under their snapshot's id ("snap-..."): not a sandbox.
		if strings.HasPrefix(p.Sandbox, "sb-") {
			ids[p.Sandbox] = true
		}
	}
	vols, err := r.vols.List(ctx, "deps")
	if err != nil {
		return nil, err
	}
	for _, id := range vols {
		ids[id] = true
	}
	// A group whose sandbox is gone (a crash mid-Down) is collected by a
	// Down of its id like any other leftover.
	groups, err := r.cg.List(r.node)
	if err != nil {
		return nil, err
	}
	for _, id := range groups {
		if strings.HasPrefix(id, "sb-") {
			ids[id] = true
		}
	}
	out := make([]string, 0, len(ids))
	for id := range ids {
		out = append(out, id)
	}
	sort.Strings(out)
	return out, nil
}

func (r *Runtime) trackTask(id string, pid int, add bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if add {
		if r.tasks[id] == nil {
			r.tasks[id] = map[int]bool{}
		}
		r.tasks[id][pid] = true
		return
	}
	delete(r.tasks[id], pid)
	if len(r.tasks[id]) == 0 {
		delete(r.tasks, id)
	}
}

func (r *Runtime) ownTask(id string, pid int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tasks[id][pid]
}

// lockSandbox waits until nothing else changes sandbox id (or ctx ends)
// and returns the function that lets the next one in.
func (r *Runtime) lockSandbox(ctx context.Context, id string) (unlock func(), err error) {
	r.mu.Lock()
	ch := r.sandboxLocks[id]
	if ch == nil {
		ch = make(chan struct{}, 1)
		r.sandboxLocks[id] = ch
	}
	r.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *Runtime) gitLock(key string) *sync.Mutex {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.gitLocks[key]
	if l == nil {
		l = &sync.Mutex{}
		r.gitLocks[key] = l
	}
	return l
}
