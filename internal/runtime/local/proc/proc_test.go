package proc_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/runtime/local/proc"
)

var node = "proctest-" + strconv.Itoa(os.Getpid())

func TestMain(m *testing.M) {
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

// spawn starts argv in a process group of its own with env added, and
// kills the group when the test ends.
// The returned channel is closed when the process has been reaped.
func spawn(t *testing.T, env []string, argv ...string) (*exec.Cmd, chan struct{}) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = proc.SignalGroup(cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	return cmd, done
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func find(t *testing.T, pid int) (proc.Process, bool) {
	t.Helper()
	procs, err := proc.Scan(node)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if p.PID == pid {
			return p, true
		}
	}
	return proc.Process{}, false
}

func TestScanFindsMarkedProcessesOnly(t *testing.T) {
	marked, _ := spawn(t, proc.MarkerEnv(node, "sb-a", proc.RoleTask, "api"), "sleep", "1000")
	unmarked, _ := spawn(t, nil, "sleep", "1000")
	otherNode, _ := spawn(t, proc.MarkerEnv(node+"-other", "sb-a", proc.RoleTask, "api"), "sleep", "1000")
	// A node that is a prefix of ours must not match either.
	prefix, _ := spawn(t, proc.MarkerEnv(node[:len(node)-1], "sb-a", proc.RoleTask, "api"), "sleep", "1000")

	p, ok := find(t, marked.Process.Pid)
	if !ok {
		t.Fatal("Scan did not find the marked process")
	}
	want := proc.Process{PID: marked.Process.Pid, PGID: marked.Process.Pid, Sandbox: "sb-a", Role: proc.RoleTask, Unit: "api"}
	if p != want {
		t.Errorf("Scan = %+v, want %+v", p, want)
	}
	for name, c := range map[string]*exec.Cmd{"unmarked": unmarked, "other node": otherNode, "prefix node": prefix} {
		if _, ok := find(t, c.Process.Pid); ok {
			t.Errorf("Scan found the %s process", name)
		}
	}
	// Scan never reports the caller itself, even when it is marked.
	if _, ok := find(t, os.Getpid()); ok {
		t.Error("Scan found itself")
	}
}

func TestScanSkipsZombies(t *testing.T) {
	// A marked child that exits but is not reaped yet.
	cmd := exec.Command("sh", "-c", "exit 0")
	cmd.Env = append(os.Environ(), proc.MarkerEnv(node, "sb-z", proc.RoleTask, "z")...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	waitFor(t, "the child to become a zombie", func() bool {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		i := strings.LastIndexByte(string(b), ')')
		return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
	})
	if _, ok := find(t, pid); ok {
		t.Error("Scan reported a zombie")
	}
	if proc.Alive(pid, node, "sb-z") || proc.Exists(pid) {
		t.Error("Alive/Exists report a zombie")
	}
}

func TestAlive(t *testing.T) {
	marked, done := spawn(t, proc.MarkerEnv(node, "sb-alive", proc.RoleShim, "api"), "sleep", "1000")
	unmarked, _ := spawn(t, nil, "sleep", "1000")
	pid := marked.Process.Pid
	for _, tc := range []struct {
		name          string
		pid           int
		node, sandbox string
		want          bool
	}{
		{"ours", pid, node, "sb-alive", true},
		{"other sandbox", pid, node, "sb-other", false},
		{"sandbox prefix", pid, node, "sb-aliv", false},
		{"other node", pid, "someone-else", "sb-alive", false},
		{"recycled pid: an unmarked process", unmarked.Process.Pid, node, "sb-alive", false},
		{"a foreign process (init)", 1, node, "sb-alive", false},
		{"zero", 0, node, "sb-alive", false},
		{"negative", -1, node, "sb-alive", false},
	} {
		if got := proc.Alive(tc.pid, tc.node, tc.sandbox); got != tc.want {
			t.Errorf("%s: Alive(%d, %s, %s) = %v, want %v", tc.name, tc.pid, tc.node, tc.sandbox, got, tc.want)
		}
	}
	got, ok := proc.Inspect(pid, node)
	if want := (proc.Process{PID: pid, PGID: pid, Sandbox: "sb-alive", Role: proc.RoleShim, Unit: "api"}); !ok || got != want {
		t.Errorf("Inspect = %+v, %v; want %+v", got, ok, want)
	}
	for _, p := range []int{unmarked.Process.Pid, 1, 0} {
		if _, ok := proc.Inspect(p, node); ok {
			t.Errorf("Inspect(%d) found markers", p)
		}
	}
	if _, ok := proc.Inspect(pid, "someone-else"); ok {
		t.Error("Inspect matched another node")
	}
	_ = marked.Process.Kill()
	<-done
	if proc.Alive(pid, node, "sb-alive") || proc.Exists(pid) {
		t.Error("a dead process is alive")
	}
	if _, ok := proc.Inspect(pid, node); ok {
		t.Error("Inspect found a dead process")
	}
}

func TestSignalGroup(t *testing.T) {
	// A leader and two children in one group; SIGTERM to the group ends
	// them all, not just the leader.
	leader, done := spawn(t, proc.MarkerEnv(node, "sb-g", proc.RoleTask, "g"), "sh", "-c", "sleep 1000 & sleep 1000 & wait")
	pgid := leader.Process.Pid
	waitFor(t, "three processes in the group", func() bool {
		procs, _ := proc.Scan(node)
		n := 0
		for _, p := range procs {
			if p.PGID == pgid {
				n++
			}
		}
		return n == 3
	})
	if !proc.GroupExists(pgid) {
		t.Fatal("GroupExists is false for a live group")
	}
	if err := proc.SignalGroup(pgid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-done
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !proc.WaitGone(ctx, func() bool {
		procs, _ := proc.Scan(node)
		for _, p := range procs {
			if p.PGID == pgid {
				return false
			}
		}
		return true
	}) {
		t.Fatal("group members survived SIGTERM to the group")
	}
	// Signalling a gone group or process is not an error; groups 0 and 1
	// (our own group, everything) are never signalled.
	for _, pg := range []int{pgid, 0, 1, -5} {
		if err := proc.SignalGroup(pg, syscall.SIGKILL); err != nil {
			t.Errorf("SignalGroup(%d): %v", pg, err)
		}
	}
	if err := proc.Signal(pgid, syscall.SIGKILL); err != nil {
		t.Errorf("Signal of a gone pid: %v", err)
	}
	if proc.GroupExists(0) || proc.GroupExists(1) {
		t.Error("GroupExists(0 or 1) must be false")
	}
}

func TestWaitGoneHonoursContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if proc.WaitGone(ctx, func() bool { return false }) {
		t.Error("WaitGone reported gone for a condition that never holds")
	}
	n := 0
	if !proc.WaitGone(context.Background(), func() bool { n++; return n > 3 }) {
		t.Error("WaitGone did not report gone")
	}
}

func TestChildren(t *testing.T) {
	leader, _ := spawn(t, nil, "sh", "-c", "sleep 1000 & sleep 1000 & wait")
	waitFor(t, "two children", func() bool { return len(proc.Children(leader.Process.Pid)) == 2 })
	if got := proc.Children(leader.Process.Pid); len(got) != 2 {
		t.Errorf("Children = %v", got)
	}
	self := proc.Children(os.Getpid())
	found := false
	for _, c := range self {
		found = found || c == leader.Process.Pid
	}
	if !found {
		t.Errorf("Children of the test process %v lack %d", self, leader.Process.Pid)
	}
}

func TestMarkerEnv(t *testing.T) {
	got := proc.MarkerEnv("n", "sb-x", proc.RoleExec, "db")
	want := []string{"SANDPIT_NODE=n", "SANDPIT_SANDBOX_ID=sb-x", "SANDPIT_ROLE=exec", "SANDPIT_UNIT=db"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("MarkerEnv = %v", got)
	}
}

func TestResolveUser(t *testing.T) {
	if os.Geteuid() != 0 {
		cur, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		u, err := proc.ResolveUser("", true)
		if err != nil || u.Switch || u.Name != cur.Username || u.UID != os.Getuid() {
			t.Errorf("ResolveUser as non-root: %+v %v, want the current user without a switch", u, err)
		}
		if u.Credential() != nil {
			t.Error("Credential without a switch must be nil")
		}
		if _, err := proc.ResolveUser("root", true); err == nil || !strings.Contains(err.Error(), "not root") {
			t.Errorf("ResolveUser of another user as non-root: %v", err)
		}
		return
	}
	u, err := proc.ResolveUser("", true)
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "sandpit" || !u.Switch || u.UID == 0 {
		t.Errorf("ResolveUser as root: %+v, want the unprivileged sandpit user", u)
	}
	c := u.Credential()
	if c == nil || int(c.Uid) != u.UID || int(c.Gid) != u.GID || c.Groups == nil || len(c.Groups) != 0 {
		t.Errorf("Credential = %+v, want the user's ids and no supplementary groups", c)
	}
	if _, err := proc.ResolveUser("root", true); err == nil {
		t.Error("ResolveUser(root) succeeded: services must never run as root")
	}
	if _, err := proc.ResolveUser("sandpit-no-such-user", false); err == nil || !strings.Contains(err.Error(), "useradd") {
		t.Errorf("ResolveUser of a missing user without create: %v, want a hint to useradd", err)
	}
}
