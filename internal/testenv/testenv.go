package testenv

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/api"
	"sandpit.dev/sandpit/internal/auth"
	"sandpit.dev/sandpit/internal/github"
	"sandpit.dev/sandpit/internal/gitsync"
	"sandpit.dev/sandpit/internal/lifecycle"
	"sandpit.dev/sandpit/internal/notify"
	"sandpit.dev/sandpit/internal/proxy"
	"sandpit.dev/sandpit/internal/reconcile"
	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/runtime/local"
	"sandpit.dev/sandpit/internal/runtime/local/proc"
	"sandpit.dev/sandpit/internal/runtime/local/shim"
	"sandpit.dev/sandpit/internal/runtime/local/volume"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/server"
	"sandpit.dev/sandpit/internal/snapshot"
	"sandpit.dev/sandpit/internal/store"
	"sandpit.dev/sandpit/internal/store/sqlite"
	"sandpit.dev/sandpit/internal/web"
)

// Token is the admin token of every test stack.
const Token = "spt_test_0123456789abcdef0123456789abcdef"

// Version is the version every test stack reports.
const Version = "v0.0.0-test"

// Main runs the tests of a package that starts stacks. When the binary is
// started as a shim ("shim SPEC") it supervises a service instead.
func Main(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "shim" {
		os.Exit(shim.Main(os.Args[2:]))
	}
	sweep()
	os.Exit(m.Run())
}

// dataDirs is where stacks keep their data directories.
const dataDirs = "/var/tmp"

const dataDirPrefix = "sandpit-test-"

// ownerFile names the test process that owns a data directory: its pid and
// its start time (so a recycled pid is not mistaken for it).
const ownerFile = "test-owner"

func processStart(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// Field 22, counted after the parenthesised command name.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// sweep removes what test processes that died without cleaning up (a test
// binary killed at its timeout, say) left: services keep running under
// their shims after the server is gone, by design, so without this a hung
// run would leave them for good.
func sweep() {
	dirs, _ := filepath.Glob(filepath.Join(dataDirs, dataDirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not made by this harness, or being set up
		}
		var pid int
		var start string
		if _, err := fmt.Sscan(string(b), &pid, &start); err != nil || processStart(pid) == start {
			continue // its test process still runs
		}
		procs, _ := proc.Scan(local.NodeID(dir))
		for _, p := range procs {
			_ = proc.SignalGroup(p.PGID, syscall.SIGKILL)
			_ = proc.Signal(p.PID, syscall.SIGKILL)
		}
		// A snapshot store's image stays mounted when its test died; the
		// image file goes with the directory once it is unmounted.
		_ = syscall.Unmount(filepath.Join(dir, "volumes"), syscall.MNT_DETACH)
		os.RemoveAll(dir)
	}
}

// Stack is one running Sandpit: store, runtime, reconciler and API.
type Stack struct {
	// URL is the API's base URL.
	URL string
	// DataDir is the server data directory (reachable by the service user).
	DataDir string
	Store   *sqlite.Store
	Runtime *local.Runtime
	// Client talks to the API with Token.
	Client   *client.Client
	Registry *prometheus.Registry
	// API is the API handler the stack serves.
	API *api.Server
	// Reconciler is the stack's running reconciler.
	Reconciler *reconcile.Reconciler
	Snapshots  *snapshot.Manager
	Volumes    *volume.Store
	// Activity is the stack's activity recorder.
	Activity *lifecycle.Activity
	// ProxyAddr is the endpoint proxy's address (with Options.Proxy).
	ProxyAddr string
	// GitSync is the stack's running branch reconciler (with
	// Options.GitSync).
	GitSync *gitsync.Syncer
}

// Options adjust a stack.
type Options struct {
	// WrapRuntime puts something between the reconciler (and API) and the
	// local runtime: a test injects faults the real runtime cannot be made
	// to produce on cue (a transient error, say).
	WrapRuntime func(runtime.Runtime) runtime.Runtime
	// Resync is how often settled sandboxes are looked at again (default:
	// the reconciler's).
	Resync time.Duration
	// SnapshotStore picks how dependency data and snapshots are kept:
	// "" means plain copies (cheap for tests that do not care); "auto"
	// does what `sandpit serve` does as root (a loop-mounted btrfs image);
	// "btrfs", "reflink" and "copy" force one.
	SnapshotStore string
	// Now is the clock of the reconciler, the API and activity (default
	// time.Now); see Clock.
	Now func() time.Time
	// Lifecycle is the server's lifecycle policy.
	Lifecycle lifecycle.Policy
	// Proxy starts the endpoint proxy, wired as `sandpit serve` wires it
	// (activity, wake on request); ProxyOptions adjust it.
	Proxy        bool
	ProxyOptions func(*proxy.Config)
	// GitSync runs the branch reconciler (Stack.GitSync), wired as `sandpit
	// serve` wires it; GitSyncOptions adjust it.
	GitSync        bool
	GitSyncOptions func(*gitsync.Config)
	// OnChange also sees what the reconciler changed (as `sandpit serve`'s
	// GitHub reporter does).
	OnChange func(sb *sandbox.Sandbox, gone bool)
}

// Clock is a controllable clock for stacks: it stands still until the test
// moves it.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// portBlock is where this process starts looking for a free block of
// ports: derived from the pid, so test binaries of different packages
// running at once start apart.
var portBlock atomic.Int64

const (
	portsLow   = 30000
	portsBlock = 100
	portBlocks = 300 // 30000-59999: always five digits
	// portLocks holds one lock file per block: a stack holds an exclusive
	// flock on its block for its lifetime, so stacks of different test
	// processes never share ports. (The allocator's check that a port is
	// free is not enough: a port handed out but not yet bound — PostgreSQL
	// binds only after initdb — looks free to another process.)
	portLocks = "/var/tmp/sandpit-test-ports"
)

// ports claims a block of ports for one stack until release is called.
func ports(t testing.TB) (lo, hi int, release func()) {
	t.Helper()
	if err := os.MkdirAll(portLocks, 0o777); err != nil {
		t.Fatal(err)
	}
	start := int64(os.Getpid())*7 + portBlock.Add(1)
	for i := int64(0); i < portBlocks; i++ {
		n := (start + i) % portBlocks
		f, err := os.OpenFile(filepath.Join(portLocks, fmt.Sprintf("block-%d.lock", n)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		lo = portsLow + int(n)*portsBlock
		return lo, lo + portsBlock - 1, func() { f.Close() }
	}
	t.Fatal("every block of test ports is held by another stack")
	return 0, 0, nil
}

// EndpointURL is how test stacks name endpoint URLs.
func EndpointURL(sb, ep string) string { return "http://" + ep + "--" + sb + ".sandpit.test" }

// Start starts a stack for t and registers its teardown: every sandbox is
// deleted (and waited for), no process of the stack may be left, and the
// data directory is removed.
func Start(t testing.TB) *Stack {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, opts Options) *Stack {
	t.Helper()
	// Not t.TempDir(): its parents are 0700, and services run as the
	// unprivileged service user, who must reach the data directory.
	dir, err := os.MkdirTemp(dataDirs, dataDirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	owner := fmt.Sprintf("%d %s\n", os.Getpid(), processStart(os.Getpid()))
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(owner), 0o644); err != nil {
		t.Fatal(err)
	}
	var log *slog.Logger
	if os.Getenv("SANDPIT_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	} else {
		log = slog.New(slog.DiscardHandler)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "sandpit.db"), log)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	user, err := proc.ResolveUser("", true)
	if err != nil {
		st.Close()
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	exe, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	lo, hi, releasePorts := ports(t)
	t.Cleanup(releasePorts)
	vopts := volume.Options{Root: filepath.Join(dir, "volumes"), Want: volume.Copy, Logger: log}
	switch opts.SnapshotStore {
	case "":
	case "auto":
		vopts.Want = ""
		vopts.Image, vopts.ImageSize = filepath.Join(dir, "volumes.img"), 8<<30
	default:
		vopts.Want = volume.Method(opts.SnapshotStore)
		vopts.Image, vopts.ImageSize = filepath.Join(dir, "volumes.img"), 8<<30
	}
	vols, err := volume.Open(ctx, vopts)
	if err != nil {
		st.Close()
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	rt, err := local.New(ctx, local.Config{
		DataDir: dir, User: user, ShimCommand: []string{exe, "shim"},
		PortLow: lo, PortHigh: hi, Handles: st, Logger: log, StopTimeout: 5 * time.Second,
		Volumes: vols,
	})
	if err != nil {
		st.Close()
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	broker := notify.New()
	var driven runtime.Runtime = rt
	if opts.WrapRuntime != nil {
		driven = opts.WrapRuntime(rt)
	}
	var rec *reconcile.Reconciler
	var syncer *gitsync.Syncer // with opts.GitSync
	snaps := snapshot.New(snapshot.Config{
		Store: st, Runtime: rt, Logger: log, SpoolDir: filepath.Join(dir, "incoming"), Notify: broker.Notify,
		OnReady: func(*sandbox.Snapshot) {
			sbs, _ := st.ListSandboxes(context.Background(), store.ListOptions{})
			for _, sb := range sbs {
				rec.Enqueue(sb.ID)
			}
		},
	})
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	activity := lifecycle.NewActivity(now)
	table := proxy.NewTable()
	routes := server.NewRoutes(table, activity)
	rec = reconcile.New(reconcile.Config{
		Store: st, Runtime: driven, Logger: log, Workers: 4, EndpointURL: EndpointURL, Registerer: reg, Resync: opts.Resync,
		OnChange: func(sb *sandbox.Sandbox, gone bool) {
			routes.Update(sb, gone)
			broker.Notify(sb.ID)
			if opts.OnChange != nil {
				opts.OnChange(sb, gone)
			}
		},
		ResolveSnapshot: snaps.Resolve,
		Now:             now, Policy: opts.Lifecycle, Activity: activity.Last,
	})
	streams, endStreams := context.WithCancel(context.Background())
	sessions := auth.NewSessions(Token, 0, now)
	handler := api.New(api.Config{
		Store: st, Runtime: driven, Enqueue: rec.Enqueue, Broker: broker, Logger: log, Token: Token, Sessions: sessions,
		Gatherer: reg, Registerer: reg, Version: Version, BaseContext: streams, Heartbeat: time.Second,
		Snapshots: snaps,
		Now:       now, Policy: opts.Lifecycle, Activity: activity, Lifecycle: rec.Lifecycle, PoolChanged: rec.WantPoolCheck,
		RepoChanged: func(name string) {
			if syncer != nil {
				syncer.Enqueue(name)
			}
		},
		PullRequestEvent: func(name string, pr github.PullRequest) {
			if syncer != nil {
				syncer.ObservePullRequest(name, pr)
			}
		},
	})
	// The console wraps the API as in `sandpit serve`.
	srv := httptest.NewServer(web.New(web.Config{API: handler, Sessions: sessions, Logger: log, Version: Version,
		CheckToken: func(tok string) (string, bool) { return "admin", handler.ValidToken(tok) }}))
	var proxySrv *httptest.Server
	if opts.Proxy {
		pcfg := proxy.Config{Domain: "localhost", Table: table, Logger: log.With("component", "proxy"),
			OnRequest: func(sb, _ string) { activity.Touch(sb) }, Wake: handler.Wake}
		if opts.ProxyOptions != nil {
			opts.ProxyOptions(&pcfg)
		}
		proxySrv = httptest.NewServer(proxy.New(pcfg))
	}
	recCtx, stopRec := context.WithCancel(context.Background())
	if err := snaps.Start(recCtx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := rec.Run(recCtx); err != nil {
			t.Errorf("reconciler: %v", err)
		}
	}()
	c, err := client.New(srv.URL, Token)
	if err != nil {
		t.Fatal(err)
	}
	s := &Stack{URL: srv.URL, DataDir: dir, Store: st, Runtime: rt, Client: c, Registry: reg, API: handler, Reconciler: rec, Snapshots: snaps, Volumes: vols, Activity: activity}
	if proxySrv != nil {
		s.ProxyAddr = proxySrv.Listener.Addr().String()
	}
	stopGitSync := func() {}
	if opts.GitSync {
		gcfg := gitsync.Config{Store: st, Enqueue: rec.Enqueue, Notify: broker.Notify, Logger: log, Now: now, Tick: 50 * time.Millisecond}
		if opts.GitSyncOptions != nil {
			opts.GitSyncOptions(&gcfg)
		}
		syncer = gitsync.New(gcfg)
		s.GitSync = syncer
		gctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = s.GitSync.Run(gctx)
		}()
		stopGitSync = func() { cancel(); <-done }
	}
	t.Cleanup(func() {
		// Or gitsync would recreate branch sandboxes, and pools refill,
		// behind deleteAll.
		stopGitSync()
		rec.StopPools()
		s.deleteAll(t)
		endStreams()
		srv.Close()
		if proxySrv != nil {
			proxySrv.Close()
		}
		stopRec()
		wg.Wait()
		snaps.Wait()
		s.deleteSnapshots(t)
		s.checkNoProcesses(t)
		if err := vols.Unmount(); err != nil {
			t.Errorf("cleanup: unmount the snapshot store: %v", err)
		}
		st.Close()
		if !t.Failed() || os.Getenv("SANDPIT_TEST_KEEP") == "" {
			os.RemoveAll(dir)
		} else {
			t.Logf("kept data dir %s", dir)
		}
	})
	return s
}

// deleteAll deletes every sandbox through the API and waits until they are
// gone.
func (s *Stack) deleteAll(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sbs, err := s.Store.ListSandboxes(ctx, store.ListOptions{})
	if err != nil {
		t.Errorf("cleanup: list sandboxes: %v", err)
		return
	}
	for _, sb := range sbs {
		if _, err := s.Client.DeleteSandbox(ctx, sb.Name); err != nil && !client.IsNotFound(err) {
			t.Errorf("cleanup: delete %s: %v", sb.Name, err)
		}
	}
	for {
		left, err := s.Store.ListSandboxes(ctx, store.ListOptions{})
		if err != nil {
			t.Errorf("cleanup: list sandboxes: %v", err)
			return
		}
		if len(left) == 0 {
			break
		}
		for _, sb := range left {
			// Made after the first listing (a warm pool refilling just
			// before StopPools took effect).
			if !sb.Spec.Deleting() {
				if _, err := s.Client.DeleteSandbox(ctx, sb.Name); err != nil && !client.IsNotFound(err) {
					t.Errorf("cleanup: delete %s: %v", sb.Name, err)
				}
			}
		}
		select {
		case <-ctx.Done():
			var names []string
			for _, sb := range left {
				names = append(names, sb.Name+" ("+string(sb.Status.Phase)+": "+sb.Status.Message+")")
			}
			t.Errorf("cleanup: sandboxes not deleted after 60s: %s", strings.Join(names, ", "))
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	held, err := s.Runtime.Sandboxes(ctx)
	if err != nil || len(held) > 0 {
		t.Errorf("cleanup: the runtime still holds %v (err %v) after every sandbox was deleted", held, err)
	}
}

// deleteSnapshots removes every snapshot's data (read-only btrfs
// snapshots would defeat RemoveAll), then checks that no data volume of a
// sandbox is left.
func (s *Stack) deleteSnapshots(t testing.TB) {
	ctx := context.Background()
	ids, err := s.Runtime.SnapshotIDs(ctx)
	if err != nil {
		t.Errorf("cleanup: list snapshot data: %v", err)
	}
	for _, id := range ids {
		if err := s.Runtime.DeleteSnapshot(ctx, id); err != nil {
			t.Errorf("cleanup: delete snapshot data %s: %v", id, err)
		}
	}
	if left, err := s.Volumes.List(ctx, "deps"); err != nil || len(left) > 0 {
		t.Errorf("cleanup: data volumes left after every sandbox was deleted: %v (err %v)", left, err)
	}
}

// checkNoProcesses fails the test if a process of the stack survived (and
// kills it, so one failure does not leak into the machine).
func (s *Stack) checkNoProcesses(t testing.TB) {
	procs, err := proc.Scan(s.Runtime.Node())
	if err != nil {
		t.Errorf("cleanup: scan processes: %v", err)
		return
	}
	for _, p := range procs {
		t.Errorf("cleanup: process left behind: pid %d role %s unit %s sandbox %s", p.PID, p.Role, p.Unit, p.Sandbox)
		_ = proc.SignalGroup(p.PGID, syscall.SIGKILL)
		_ = proc.Signal(p.PID, syscall.SIGKILL)
	}
}

// Apply applies a template and fails the test if it is refused.
func (s *Stack) Apply(t testing.TB, source string) *client.TemplateInfo {
	t.Helper()
	res, err := s.Client.ApplyTemplate(context.Background(), client.ApplyTemplateRequest{Filename: "test.yaml", Source: source})
	if err != nil {
		t.Fatalf("apply template: %v", err)
	}
	return &res.Template
}

// Create creates a sandbox and fails the test if it is refused.
func (s *Stack) Create(t testing.TB, name, tmpl string) *client.Sandbox {
	t.Helper()
	sb, err := s.Client.CreateSandbox(context.Background(), client.CreateSandboxRequest{Name: name, Template: tmpl})
	if err != nil {
		t.Fatalf("create sandbox %s: %v", name, err)
	}
	return sb
}

// WaitTimeout bounds every wait of a test; it is a safety net against
// hanging, not an expectation of speed.
const WaitTimeout = 60 * time.Second

// WaitPhase waits until the sandbox has settled in phase (for Ready and
// Failed: the reconciler observed its latest spec).
func (s *Stack) WaitPhase(t testing.TB, name string, phase sandbox.Phase) *client.Sandbox {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	var last *client.Sandbox
	sb, err := s.Client.WaitFor(ctx, name, 10*time.Millisecond, func(sb *client.Sandbox) bool {
		last = sb
		return sb != nil && sb.Status.Phase == phase && (!phase.Terminal() || sb.Status.ObservedGeneration == sb.Generation)
	})
	if err != nil {
		desc := "gone"
		if last != nil {
			desc = fmt.Sprintf("%s (%s)", last.Status.Phase, last.Status.Message)
		}
		t.Fatalf("sandbox %s did not reach %s: %v; last seen %s", name, phase, err, desc)
	}
	return sb
}

// WaitGone waits until the sandbox no longer exists.
func (s *Stack) WaitGone(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	if _, err := s.Client.WaitFor(ctx, name, 10*time.Millisecond, func(sb *client.Sandbox) bool { return sb == nil }); err != nil {
		t.Fatalf("sandbox %s is not gone: %v", name, err)
	}
}

// Eventually polls cond until it holds; it fails the test after
// WaitTimeout.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
