package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/runtime/local/cgroup"
	"sandpit.dev/sandpit/internal/runtime/local/proc"
	"sandpit.dev/sandpit/internal/runtime/local/shim"
	"sandpit.dev/sandpit/internal/runtime/runtimetest"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store/sqlite"
)

// Set up once by TestMain.
var (
	testsvc string     // the testsvc binary, reachable by the service user
	shimCmd []string   // this test binary re-executed as a shim
	baseDir string     // 0755 parent of every data dir
	svcUser *proc.User // who services run as
	nodes   sync.Map   // node id → data dir, for the leftover scan
	portSeq atomic.Int32
)

// The shim is this test binary: `local.test shim SPEC` runs shim.Main, the
// way `sandpit shim SPEC` does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "shim" {
		os.Exit(shim.Main(os.Args[2:]))
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := runtimetest.SharedTempDir("sandpit-local-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	baseDir = dir
	if testsvc, err = runtimetest.BuildTestsvc(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// A race-enabled binary sleeps a second at exit (GORACE's
	// atexit_sleep_ms): every stopped shim would cost one.
	shimCmd = []string{"/usr/bin/env", "GORACE=atexit_sleep_ms=0", exe, "shim"}
	if svcUser, err = proc.ResolveUser("", true); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	// Nothing a test started may outlive it.
	nodes.Range(func(k, v any) bool {
		procs, err := proc.Scan(k.(string))
		if err != nil {
			fmt.Fprintln(os.Stderr, "leftover scan:", err)
			code = 1
		}
		for _, p := range procs {
			fmt.Fprintf(os.Stderr, "LEFTOVER process of data dir %s: %+v %s\n", v, p, cmdline(p.PID))
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
			code = 1
		}
		return true
	})
	return code
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
}

// testEnv is one runtime's configuration and store, so a test can build a
// second runtime over the same state (a server restart).
type testEnv struct {
	cfg   Config
	store *sqlite.Store
}

// newEnv makes a data dir reachable by the service user, a SQLite store and
// a port range of its own (runtimes in parallel tests must not hand out the
// same free port to two sandboxes).
func newEnv(t *testing.T) *testEnv {
	t.Helper()
	data, err := os.MkdirTemp(baseDir, "data-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(data, 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sandpit.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	block := int(portSeq.Add(1)-1) % 160
	lo := 21000 + block*50
	nodes.Store(NodeID(data), data)
	return &testEnv{store: st, cfg: Config{
		DataDir: data, User: svcUser, ShimCommand: shimCmd, Handles: st,
		PortLow: lo, PortHigh: lo + 49, StopTimeout: 2 * time.Second,
	}}
}

// runtime builds a runtime over the env's state.
func (e *testEnv) runtime(t *testing.T) *Runtime {
	t.Helper()
	r, err := New(context.Background(), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newRuntime(t *testing.T) *Runtime { return newEnv(t).runtime(t) }

// leftovers lists what r still holds of sandbox id.
func leftovers(t *testing.T, rt runtime.Runtime, id string) []string {
	t.Helper()
	r := rt.(*Runtime)
	var out []string
	procs, err := proc.Scan(r.node)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if p.Sandbox == id {
			out = append(out, fmt.Sprintf("process %d (%s of %s): %s", p.PID, p.Role, p.Unit, cmdline(p.PID)))
		}
	}
	if _, err := os.Stat(r.SandboxDir(id)); !errors.Is(err, os.ErrNotExist) {
		out = append(out, "directory "+r.SandboxDir(id))
	}
	if _, _, err := r.cfg.Handles.LoadHandle(context.Background(), id); !errors.Is(err, sandbox.ErrNotFound) {
		out = append(out, fmt.Sprintf("handle (%v)", err))
	}
	if held := r.ports.held(id); len(held) > 0 {
		out = append(out, fmt.Sprintf("ports %v", held))
	}
	groups, err := r.cg.List(r.node)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(groups, id) {
		out = append(out, "cgroup "+cgroup.Group(r.node, id))
	}
	return out
}

func TestConformance(t *testing.T) {
	runtimetest.Run(t, runtimetest.Harness{
		New:       func(t *testing.T) runtime.Runtime { return newRuntime(t) },
		Leftovers: leftovers,
		Testsvc:   testsvc,
	})
}
