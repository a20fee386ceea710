package shim_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/runtime/local/cgroup"
	"sandpit.dev/sandpit/internal/runtime/local/logfile"
	"sandpit.dev/sandpit/internal/runtime/local/proc"
	"sandpit.dev/sandpit/internal/runtime/local/shim"
	"sandpit.dev/sandpit/internal/runtime/runtimetest"
)

// node marks every process these tests start, for the leftover scan.
var node = "shimtest-" + strconv.Itoa(os.Getpid())

const sandboxID = "sb-shimtest"

// The shim under test is this binary: `shim.test shim SPEC`.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "shim" {
		os.Exit(shim.Main(os.Args[2:]))
	}
	code := m.Run()
	procs, err := proc.Scan(node)
	if err != nil {
		fmt.Fprintln(os.Stderr, "leftover scan:", err)
		code = 1
	}
	for _, p := range procs {
		fmt.Fprintf(os.Stderr, "LEFTOVER process: %+v\n", p)
		_ = syscall.Kill(p.PID, syscall.SIGKILL)
		code = 1
	}
	os.Exit(code)
}

type running struct {
	t      *testing.T
	spec   *shim.Spec
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// start runs a real shim process for spec, filling in the log and status
// paths under a temp dir, markers and a short stop timeout.
func start(t *testing.T, spec shim.Spec) *running {
	t.Helper()
	dir := spec.Dir
	if dir == "" {
		dir = t.TempDir()
		spec.Dir = dir
	}
	if spec.Log == "" {
		spec.Log = filepath.Join(dir, "svc.log")
	}
	spec.Status = filepath.Join(dir, "svc.status.json")
	if spec.StopTimeout == 0 {
		spec.StopTimeout = 10 * time.Second
	}
	spec.Env = append(spec.Env, "PATH="+os.Getenv("PATH"))
	spec.Env = append(spec.Env, proc.MarkerEnv(node, sandboxID, proc.RoleService, spec.Name)...)
	specPath := filepath.Join(dir, "svc.spec.json")
	if err := shim.WriteJSON(specPath, spec, 0o600); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/env", "GORACE=atexit_sleep_ms=0", exe, "shim", specPath)
	cmd.Env = append(proc.MarkerEnv(node, sandboxID, proc.RoleShim, spec.Name), "PATH="+os.Getenv("PATH"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &running{t: t, spec: &spec, cmd: cmd, exited: make(chan struct{})}
	go func() { r.err = cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() {
		select {
		case <-r.exited:
		default:
			_ = cmd.Process.Kill()
			<-r.exited
		}
		// Whatever the shim failed to stop goes too.
		procs, _ := proc.Scan(node)
		for _, p := range procs {
			if p.Unit == spec.Name {
				t.Errorf("left behind: %+v", p)
				_ = proc.SignalGroup(p.PGID, syscall.SIGKILL)
				_ = proc.Signal(p.PID, syscall.SIGKILL)
			}
		}
	})
	return r
}

func (r *running) status() *shim.Status {
	st, err := shim.ReadStatus(r.spec.Status)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		r.t.Fatalf("status: %v", err)
	}
	return st
}

func (r *running) waitStatus(what string, ok func(*shim.Status) bool) *shim.Status {
	r.t.Helper()
	var st *shim.Status
	runtimetest.Eventually(r.t, runtimetest.WaitTimeout, what, func() (bool, string) {
		st = r.status()
		return st != nil && ok(st), fmt.Sprintf("%+v", st)
	})
	return st
}

func (r *running) lines() []logfile.Line {
	r.t.Helper()
	var out []logfile.Line
	err := logfile.Read(context.Background(), []logfile.Source{{Unit: r.spec.Name, Path: r.spec.Log}}, 0, false, func(l logfile.Line) error {
		out = append(out, l)
		return nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

func (r *running) hasLine(stream, text string) bool {
	for _, l := range r.lines() {
		if (stream == "" || l.Stream == stream) && strings.Contains(l.Text, text) {
			return true
		}
	}
	return false
}

func (r *running) waitLine(stream, text string) {
	r.t.Helper()
	runtimetest.Eventually(r.t, runtimetest.WaitTimeout, fmt.Sprintf("log line %q", text), func() (bool, string) {
		return r.hasLine(stream, text), fmt.Sprint(r.lines())
	})
}

// waitExit waits for the shim process to end and returns its exit code.
func (r *running) waitExit() int {
	r.t.Helper()
	select {
	case <-r.exited:
	case <-time.After(runtimetest.WaitTimeout):
		r.t.Fatalf("shim did not exit; status %+v; log %v", r.status(), r.lines())
	}
	return r.cmd.ProcessState.ExitCode()
}

func (r *running) stop() int {
	r.t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		r.t.Fatal(err)
	}
	return r.waitExit()
}

func gone(pid int) bool { return !proc.Exists(pid) }

func TestRunsRecordsAndStops(t *testing.T) {
	t.Parallel()
	r := start(t, shim.Spec{
		Name: "basic", Hash: "abc123", Restart: "always",
		Argv: []string{"/bin/sh", "-c", "echo out-line; echo err-line >&2; printf partial; exec sleep 1000"},
	})
	st := r.waitStatus("running", func(s *shim.Status) bool { return s.State == shim.StateRunning })
	if st.ShimPID != r.cmd.Process.Pid || st.PID <= 0 || st.Hash != "abc123" || st.StartedAt.IsZero() || st.Restarts != 0 {
		t.Errorf("running status: %+v (shim pid %d)", st, r.cmd.Process.Pid)
	}
	if !proc.Alive(st.ShimPID, node, sandboxID) || !proc.Alive(st.PID, node, sandboxID) {
		t.Errorf("shim or service not found alive with its markers")
	}
	r.waitLine("stdout", "out-line")
	r.waitLine("stderr", "err-line")
	if code := r.stop(); code != 0 {
		t.Errorf("shim exit code %d after SIGTERM, want 0", code)
	}
	st = r.status()
	if st.State != shim.StateStopped || st.Message != "stopped on request" || st.PID != 0 || st.Final() != true {
		t.Errorf("status after stop: %+v", st)
	}
	if !gone(st.ShimPID) {
		t.Errorf("shim still runs")
	}
	// The partial last line was flushed when the stream ended.
	if !r.hasLine("stdout", "partial") {
		t.Errorf("partial line lost: %v", r.lines())
	}
}

func TestRestartPolicies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, policy, script string
		restarts             bool
		code                 int
		signal               string
	}{
		{"always restarts a clean exit", "always", "exit 0", true, 0, ""},
		{"always restarts a failure", "always", "exit 3", true, 3, ""},
		{"empty policy means always", "", "exit 3", true, 3, ""},
		{"on-failure restarts a failure", "on-failure", "exit 3", true, 3, ""},
		{"on-failure restarts a kill", "on-failure", "kill -9 $$", true, 137, "SIGKILL"},
		{"on-failure keeps a clean exit", "on-failure", "exit 0", false, 0, ""},
		{"never keeps a failure", "never", "echo bye; exit 3", false, 3, ""},
		{"never keeps a kill", "never", "kill -9 $$", false, 137, "SIGKILL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			unit := strings.ReplaceAll(tc.name, " ", "-")
			r := start(t, shim.Spec{Name: unit, Restart: tc.policy, Argv: []string{"/bin/sh", "-c", tc.script}})
			if tc.restarts {
				st := r.waitStatus("two restarts", func(s *shim.Status) bool { return s.Restarts >= 2 })
				if st.State == shim.StateExited || st.State == shim.StateStopped {
					t.Errorf("restarting service reported %s", st.State)
				}
				// Backoff doubles from its start.
				r.waitLine("system", "restarting in 500ms")
				if !r.hasLine("system", "restarting in 250ms") {
					t.Errorf("no first backoff of 250ms: %v", r.lines())
				}
				r.waitStatus("backoff with the exit code", func(s *shim.Status) bool {
					return s.State == shim.StateBackoff && s.ExitCode != nil && *s.ExitCode == tc.code && s.ExitSignal == tc.signal
				})
				if code := r.stop(); code != 0 {
					t.Errorf("shim exit code %d", code)
				}
				if st := r.status(); st.State != shim.StateStopped {
					t.Errorf("after stop in backoff: %+v", st)
				}
				return
			}
			if code := r.waitExit(); code != 0 {
				t.Errorf("shim exit code %d", code)
			}
			st := r.status()
			if st.State != shim.StateExited || st.Restarts != 0 || st.ExitCode == nil || *st.ExitCode != tc.code || st.ExitSignal != tc.signal {
				t.Errorf("status: %+v, want exited with code %d signal %q and no restart", st, tc.code, tc.signal)
			}
			if !strings.Contains(st.Message, strconv.Itoa(tc.code)) && !strings.Contains(st.Message, tc.signal) {
				t.Errorf("message %q says nothing of how it ended", st.Message)
			}
		})
	}
}

func TestStopEscalatesToSIGKILL(t *testing.T) {
	t.Parallel()
	r := start(t, shim.Spec{
		Name: "stubborn", Restart: "always", StopTimeout: 300 * time.Millisecond,
		Argv: []string{"/bin/sh", "-c", `trap "" TERM; sleep 1000 & echo ready; wait`},
	})
	r.waitStatus("running", func(s *shim.Status) bool { return s.State == shim.StateRunning })
	r.waitLine("stdout", "ready")
	if code := r.stop(); code != 0 {
		t.Errorf("shim exit code %d", code)
	}
	st := r.status()
	if st.State != shim.StateStopped || st.ExitSignal != "SIGKILL" {
		t.Errorf("status: %+v, want stopped by SIGKILL", st)
	}
	if !r.hasLine("system", "sending SIGKILL") {
		t.Errorf("no SIGKILL escalation logged: %v", r.lines())
	}
}

func TestStopSignalIsConfigurable(t *testing.T) {
	t.Parallel()
	r := start(t, shim.Spec{
		Name: "intonly", Restart: "always", StopSignal: syscall.SIGINT, StopTimeout: 300 * time.Millisecond,
		Argv: []string{"/bin/sh", "-c", `trap "" TERM; trap "echo got INT; exit 0" INT; echo ready; while :; do sleep 0.05; done`},
	})
	r.waitLine("stdout", "ready")
	r.stop()
	if !r.hasLine("stdout", "got INT") || r.hasLine("system", "sending SIGKILL") {
		t.Errorf("service not stopped by SIGINT: %v", r.lines())
	}
}

// A shell that dies of SIGTERM at once must not cut short the clean
// shutdown of the program it started.
func TestStopWaitsForTheWholeGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := filepath.Join(dir, "run.sh")
	inner := `trap "echo draining; sleep 0.3; echo drained; exit 0" TERM; echo ready; while :; do sleep 0.05; done`
	if err := os.WriteFile(script, []byte("sh -c '"+inner+"'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := start(t, shim.Spec{Name: "graceful", Restart: "always", Dir: dir, Argv: []string{"/bin/sh", script}})
	r.waitLine("stdout", "ready")
	r.stop()
	if !r.hasLine("stdout", "drained") {
		t.Errorf("the program was killed before it finished its shutdown: %v", r.lines())
	}
	if r.hasLine("system", "sending SIGKILL") {
		t.Errorf("SIGKILL sent though the group ended within the grace period: %v", r.lines())
	}
}

// daemons returns the marked processes of unit outside the service's own
// process group.
func daemons(t *testing.T, unit string, servicePGID int) []proc.Process {
	procs, err := proc.Scan(node)
	if err != nil {
		t.Fatal(err)
	}
	var out []proc.Process
	for _, p := range procs {
		if p.Unit == unit && p.Role == proc.RoleService && p.PGID != servicePGID {
			out = append(out, p)
		}
	}
	return out
}

func TestKillsDaemonisedGrandchildOnStop(t *testing.T) {
	t.Parallel()
	r := start(t, shim.Spec{
		Name: "daemonstop", Restart: "always",
		// The daemon keeps the service's stdout open, as careless ones do.
		Argv: []string{"/bin/sh", "-c", "setsid sleep 1000 & echo started; exec sleep 1000"},
	})
	st := r.waitStatus("running", func(s *shim.Status) bool { return s.State == shim.StateRunning })
	r.waitLine("stdout", "started")
	runtimetest.Eventually(t, runtimetest.WaitTimeout, "the daemon", func() (bool, string) {
		return len(daemons(t, "daemonstop", st.PID)) == 1, ""
	})
	d := daemons(t, "daemonstop", st.PID)[0]
	r.stop()
	if !gone(d.PID) {
		t.Errorf("daemonised grandchild %d survived the stop", d.PID)
	}
}

func TestKillsDaemonisedGrandchildOnExit(t *testing.T) {
	t.Parallel()
	r := start(t, shim.Spec{
		Name: "daemonexit", Restart: "always",
		Argv: []string{"/bin/sh", "-c", "setsid sleep 1000 & echo started; exit 1"},
	})
	// The daemon holds the output pipe: the shim must still notice the
	// exit and restart (the daemon of each run is killed).
	r.waitStatus("two restarts", func(s *shim.Status) bool { return s.Restarts >= 2 })
	r.stop()
	if ds := daemons(t, "daemonexit", -1); len(ds) > 0 {
		t.Errorf("daemons survived: %+v", ds)
	}
}

func TestStatusFileIsAlwaysValidJSON(t *testing.T) {
	t.Parallel()
	r := start(t, shim.Spec{Name: "json", Restart: "always", Argv: []string{"/bin/sh", "-c", "echo hi; exit 1"}})
	var reads, bad atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(r.spec.Status)
			if err != nil {
				time.Sleep(time.Millisecond)
				continue // not written yet
			}
			reads.Add(1)
			var st shim.Status
			if json.Unmarshal(b, &st) != nil || st.State == "" {
				bad.Add(1)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	r.waitStatus("three restarts", func(s *shim.Status) bool { return s.Restarts >= 3 })
	r.stop()
	close(stop)
	<-done
	if bad.Load() > 0 || reads.Load() == 0 {
		t.Errorf("%d of %d reads of the status file were not valid JSON", bad.Load(), reads.Load())
	}
	// No temp files left beside it.
	entries, _ := os.ReadDir(filepath.Dir(r.spec.Status))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temp file left: %s", e.Name())
		}
	}
}

func TestStartFailure(t *testing.T) {
	t.Parallel()
	r := start(t, shim.Spec{Name: "missing", Restart: "never", Argv: []string{"/no/such/program"}})
	if code := r.waitExit(); code != 0 {
		t.Errorf("shim exit code %d", code)
	}
	st := r.status()
	if st.State != shim.StateExited || st.ExitCode == nil || *st.ExitCode != 127 {
		t.Errorf("status: %+v, want exited 127", st)
	}
	if !r.hasLine("system", "cannot start") {
		t.Errorf("no start error logged: %v", r.lines())
	}
}

// The service starts with default signal dispositions and as the spec's
// user: nothing of the shim's own signal handling or identity leaks.
func TestServiceEnvironment(t *testing.T) {
	t.Parallel()
	spec := shim.Spec{
		Name: "env", Restart: "never",
		Argv: []string{"/bin/sh", "-c", `grep -E '^Sig(Ign|Blk):' /proc/self/status; echo "uid $(id -u)"; echo "pwd $(pwd)"; echo "FOO=$FOO"`},
		Env:  []string{"FOO=bar"},
	}
	uid := os.Getuid()
	if os.Geteuid() == 0 {
		u, err := proc.ResolveUser("", true)
		if err != nil {
			t.Fatal(err)
		}
		dir, err := runtimetest.SharedTempDir("sandpit-shim-test-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chown(dir, u.UID, u.GID); err != nil {
			t.Fatal(err)
		}
		spec.Dir, spec.Switch, spec.UID, spec.GID = dir, true, u.UID, u.GID
		uid = u.UID
	}
	r := start(t, spec)
	r.waitExit()
	for _, want := range []string{"SigIgn:\t0000000000000000", "SigBlk:\t0000000000000000", "uid " + strconv.Itoa(uid), "pwd " + r.spec.Dir, "FOO=bar"} {
		if !r.hasLine("stdout", want) {
			t.Errorf("service output lacks %q: %v", want, r.lines())
		}
	}
}

func TestLogIsCapped(t *testing.T) {
	t.Parallel()
	r := start(t, shim.Spec{
		Name: "chatty", Restart: "never", LogMaxBytes: 4096,
		Argv: []string{"/bin/sh", "-c", `i=0; while [ $i -lt 300 ]; do echo "line $i of output"; i=$((i+1)); done`},
	})
	r.waitExit()
	for _, p := range []string{r.spec.Log, r.spec.Log + ".1"} {
		fi, err := os.Stat(p)
		if err != nil || fi.Size() > 4096 {
			t.Errorf("%s: %v, want at most 4096 bytes", p, err)
		}
	}
	if _, err := os.Stat(r.spec.Log + ".2"); err == nil {
		t.Errorf("more than one rotated file")
	}
	ls := r.lines()
	if len(ls) == 0 || !strings.Contains(ls[len(ls)-1].Text, "not restarting") {
		t.Errorf("the newest lines were lost: %v", ls)
	}
}

func TestMainUsage(t *testing.T) {
	if code := shim.Main(nil); code != 2 {
		t.Errorf("Main without a spec: %d, want 2", code)
	}
	if code := shim.Main([]string{filepath.Join(t.TempDir(), "none.json")}); code != 1 {
		t.Errorf("Main with a missing spec: %d, want 1", code)
	}
}

func TestCgroupJoinFailureIsReportedAndTheServiceRuns(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "no-such-group", "cgroup.procs")
	r := start(t, shim.Spec{Name: "nocg", Argv: []string{"/bin/sh", "-c", "echo up; exec sleep 60"}, Cgroups: []string{missing}})
	st := r.waitStatus("running", func(s *shim.Status) bool { return s.State == shim.StateRunning })
	if !strings.Contains(st.CgroupError, "no-such-group") || !strings.Contains(st.CgroupError, "without CPU and memory limits") {
		t.Errorf("CgroupError = %q, want the file and the consequence", st.CgroupError)
	}
	r.waitLine("stdout", "up")
	r.waitLine("system", "could not join its resource group")
	if code := r.stop(); code != 0 {
		t.Errorf("shim exit code %d", code)
	}
	// The error stays for the status' whole life, not just until the
	// service started.
	if st := r.status(); st.CgroupError == "" {
		t.Errorf("CgroupError cleared by a later state: %+v", st)
	}
}

func TestJoinsCgroupsBeforeStartingTheService(t *testing.T) {
	t.Parallel()
	m := cgroup.Open("")
	if ok, why := m.Supported(); !ok {
		if os.Getenv("CI") != "" {
			t.Fatalf("cgroups are unusable here and CI is set: %s", why)
		}
		t.Skipf("cgroups are unusable here (%s): run the tests as root on a host with cgroup v1 or v2", why)
	}
	files, err := m.Ensure(node, sandboxID, cgroup.Limits{MilliCPU: 500, MemoryBytes: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Remove(node, sandboxID); err != nil {
			t.Error(err)
		}
	})
	// The service reports its cgroups as the first thing it does: it was
	// born in the group, not moved there after it started.
	r := start(t, shim.Spec{Name: "cg", Argv: []string{"/bin/sh", "-c", "cat /proc/self/cgroup; exec sleep 60"}, Cgroups: files})
	st := r.waitStatus("running", func(s *shim.Status) bool { return s.State == shim.StateRunning })
	if st.CgroupError != "" {
		t.Errorf("CgroupError = %q", st.CgroupError)
	}
	group := "/" + cgroup.Group(node, sandboxID)
	runtimetest.Eventually(t, runtimetest.WaitTimeout, "the service's cgroup lines", func() (bool, string) {
		var in []string
		for _, l := range r.lines() {
			if l.Stream == "stdout" && strings.HasSuffix(l.Text, ":"+group) {
				in = append(in, l.Text)
			}
		}
		want := 2 // memory and cpu
		if m.Version() == cgroup.V2 {
			want = 1
		}
		return len(in) >= want, fmt.Sprintf("%v", r.lines())
	})
	for _, pid := range []int{st.ShimPID, st.PID} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if err != nil || !strings.Contains(string(b), ":"+group+"\n") {
			t.Errorf("process %d is not in %s: %s %v", pid, group, b, err)
		}
	}
	if code := r.stop(); code != 0 {
		t.Errorf("shim exit code %d", code)
	}
}
