package e2e

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/kubetest"
	"sandpit.dev/sandpit/internal/pgtest"
)

var (
	binary   string // the sandpit binary under test
	repoRoot string
	// sharedHome is HOME for services across all test servers, so the
	// example's Go build cache stays warm between tests and runs.
	sharedHome = "/var/tmp/sandpit-e2e-home"
	portBase   atomic.Int32
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		os.Exit(0)
	}
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Dir(filepath.Dir(file))
	dir, err := os.MkdirTemp("/var/tmp", "sandpit-e2e-bin-")
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755)
	binary = filepath.Join(dir, "sandpit")
	build := exec.Command("go", "build", "-o", binary, "./cmd/sandpit")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Printf("build sandpit: %v\n%s", err, out)
		os.Exit(1)
	}
	portBase.Store(61000) // above the ephemeral range and the ranges unit tests use (21000-28999, 30000-59999)
	// Run the tests, then stop the shared test clusters (Kubernetes, then
	// PostgreSQL) that started.
	code := pgtest.Main(func() int { return kubetest.Main(m) })
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireTools skips (or, under CI, fails) when what the example needs is
// missing.
func requireTools(t *testing.T) {
	t.Helper()
	var missing []string
	if _, err := os.Stat("/usr/lib/postgresql/15/bin/postgres"); err != nil {
		missing = append(missing, "PostgreSQL 15 (apt-get install postgresql-15)")
	}
	for _, tool := range []string{"git", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "end-to-end tests need " + strings.Join(missing, ", ") + ": run scripts/test.sh, which installs them"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// server is one `sandpit serve` process over a data dir. Restarting keeps
// the data dir and the addresses, as a real restart would.
type server struct {
	t       *testing.T
	dataDir string
	api     string
	proxy   string
	ports   string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the server process is reaped
	logPath string
	token   string
	client  *client.Client
	// args are added to every start (runtime, store, leader election).
	args []string
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func newServer(t *testing.T, extraArgs ...string) *server {
	t.Helper()
	requireTools(t)
	dir, err := os.MkdirTemp("/var/tmp", "sandpit-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	lo := int(portBase.Add(500)) - 500
	s := &server{
		t:       t,
		dataDir: filepath.Join(dir, "data"),
		api:     "127.0.0.1:" + strconv.Itoa(freePort(t)),
		proxy:   "127.0.0.1:" + strconv.Itoa(freePort(t)),
		ports:   fmt.Sprintf("%d-%d", lo, lo+499),
		logPath: filepath.Join(dir, "server.log"),
		args:    extraArgs,
	}
	t.Cleanup(func() {
		s.cleanupAll()
		if t.Failed() {
			b, _ := os.ReadFile(s.logPath)
			t.Logf("server log:\n%s", tail(string(b), 80))
		}
		// The server leaves its snapshot store mounted (databases keep
		// running across its restarts); nothing uses it any more.
		if err := syscall.Unmount(filepath.Join(s.dataDir, "volumes"), 0); err != nil && err != syscall.EINVAL && err != syscall.ENOENT {
			t.Errorf("unmount the snapshot store: %v", err)
			_ = syscall.Unmount(filepath.Join(s.dataDir, "volumes"), syscall.MNT_DETACH)
		}
		os.RemoveAll(dir)
	})
	s.start()
	return s
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (s *server) start() {
	s.t.Helper()
	logf, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logf.Close()
	s.cmd = exec.Command(binary, "serve", "--data-dir", s.dataDir, "--listen", s.api, "--proxy-listen", s.proxy,
		"--home-dir", sharedHome, "--port-range", s.ports, "--stop-timeout", "3s", "--log-level", "debug",
		"--snapshot-image-size", "8G")
	s.cmd.Args = append(s.cmd.Args, s.args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.Env = os.Environ()
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	// Wait returns only once every thread of the server is gone: the
	// group leader turns zombie earlier, while other threads may still
	// hold the data-dir lock's file table.
	s.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(s.cmd, s.exited)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + s.api + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(s.logPath)
			s.t.Fatalf("server did not become healthy: %v\n%s", err, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tokenFile := filepath.Join(s.dataDir, "admin.token")
	for i, a := range s.args {
		if a == "--token-file" && i+1 < len(s.args) {
			tokenFile = s.args[i+1]
		}
	}
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		s.t.Fatal(err)
	}
	s.token = strings.TrimSpace(string(tok))
	if s.client, err = client.New("http://"+s.api, s.token); err != nil {
		s.t.Fatal(err)
	}
}

// kill ends the server with SIGKILL, as a crash or an OOM kill would.
func (s *server) kill() {
	s.t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	// A process in uninterruptible I/O (an fsync on a busy disk) dies only
	// when that I/O ends; its data-dir lock goes with it.
	start := time.Now()
	select {
	case <-s.exited:
	case <-time.After(time.Minute):
		s.t.Fatalf("the killed server (pid %d) is still alive after a minute", s.cmd.Process.Pid)
	}
	if d := time.Since(start); d > time.Second {
		s.t.Logf("the killed server took %s to exit", d.Round(time.Millisecond))
	}
}

func processExists(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// cleanupAll deletes every sandbox and stops the server, so a failed test
// leaves nothing running.
func (s *server) cleanupAll() {
	if s.cmd == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if sbs, err := s.client.ListSandboxes(ctx, client.ListOptions{}); err == nil {
		for _, sb := range sbs {
			_, _ = s.client.DeleteSandbox(ctx, sb.Name)
		}
		for _, sb := range sbs {
			_, _ = s.client.WaitFor(ctx, sb.Name, 100*time.Millisecond, func(x *client.Sandbox) bool { return x == nil })
		}
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
	}
	// Anything still marked with this server's node is a leak.
	if procs := markedProcesses(localNodeID(s.dataDir), ""); len(procs) > 0 {
		s.t.Errorf("processes of this server survived its sandboxes' deletion: %v", procs)
		for _, p := range procs {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

// cli runs the sandpit binary against the server.
func (s *server) cli(args ...string) (stdout, stderr string, code int) {
	s.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "SANDPIT_SERVER=http://"+s.api, "SANDPIT_TOKEN="+s.token)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatalf("run sandpit %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func (s *server) mustCLI(args ...string) string {
	s.t.Helper()
	out, errOut, code := s.cli(args...)
	if code != 0 {
		s.t.Fatalf("sandpit %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// waitPhase waits until the sandbox reaches phase (or is gone, for "").
func (s *server) waitPhase(name string, phase client.Phase, within time.Duration) *client.Sandbox {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	sb, err := s.client.WaitFor(ctx, name, 100*time.Millisecond, func(sb *client.Sandbox) bool {
		if phase == "" {
			return sb == nil
		}
		return sb != nil && sb.Status.Phase == phase && sb.Status.ObservedGeneration == sb.Generation
	})
	if err != nil {
		cur, _ := s.client.GetSandbox(context.Background(), name)
		evs, _ := s.client.Events(context.Background(), name, 0)
		var b strings.Builder
		for _, ev := range evs {
			fmt.Fprintf(&b, "  %s %s %s\n", ev.Time.Format("15:04:05.000"), ev.Reason, ev.Message)
		}
		st := ""
		if cur != nil {
			st = fmt.Sprintf("%s %s", cur.Status.Phase, cur.Status.Message)
		}
		s.t.Fatalf("sandbox %s did not reach %q within %s (now %s): %v\nevents:\n%s", name, phase, within, st, err, b.String())
	}
	return sb
}

// get fetches a page through the endpoint proxy.
func (s *server) get(host, path string) (int, string) {
	s.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+s.proxy+path, nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("GET %s%s through the proxy: %v", host, path, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// markedProcesses lists live pids whose environment carries the node
// marker (and the sandbox id, when given).
func markedProcesses(node, sandboxID string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !processExists(pid) {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		vars := "\x00" + string(env)
		if !strings.Contains(vars, "\x00SANDPIT_NODE="+node+"\x00") {
			continue
		}
		if sandboxID != "" && !strings.Contains(vars, "\x00SANDPIT_SANDBOX_ID="+sandboxID+"\x00") {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// listening reports whether anything listens on a TCP port (from
// /proc/net/tcp and tcp6, state 0A).
func listening(port int) bool {
	hex := fmt.Sprintf(":%04X ", port)
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 3 && strings.HasSuffix(fields[1], hex[:len(hex)-1]) && fields[3] == "0A" {
				fh.Close()
				return true
			}
		}
		fh.Close()
	}
	return false
}

// assertGone checks that nothing of a deleted sandbox survives: processes,
// listening ports, its directory (checkout, logs, the PostgreSQL data dir)
// and its database (nothing accepts connections on its port).
func (s *server) assertGone(sb *client.Sandbox) {
	s.t.Helper()
	if pids := markedProcesses(localNodeID(s.dataDir), sb.ID); len(pids) > 0 {
		s.t.Errorf("sandbox %s: processes survived: %v", sb.Name, pids)
	}
	var ports []int
	for _, svc := range sb.Status.Services {
		for _, p := range svc.Ports {
			ports = append(ports, p)
		}
	}
	for _, d := range sb.Status.Dependencies {
		if d.Port > 0 {
			ports = append(ports, d.Port)
			if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", d.Port), time.Second); err == nil {
				c.Close()
				s.t.Errorf("sandbox %s: database port %d still accepts connections", sb.Name, d.Port)
			}
		}
	}
	if len(ports) == 0 {
		s.t.Errorf("sandbox %s: status recorded no ports to check", sb.Name)
	}
	for _, p := range ports {
		if listening(p) {
			s.t.Errorf("sandbox %s: port %d is still listening", sb.Name, p)
		}
	}
	for _, dir := range []string{filepath.Join(s.dataDir, "sandboxes", sb.ID), filepath.Join(s.dataDir, "volumes", "deps", sb.ID)} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			s.t.Errorf("sandbox %s: directory %s survived (%v)", sb.Name, dir, err)
		}
	}
	// Nothing of it is mounted (the store's own mount is above it).
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), sb.ID) {
		s.t.Errorf("sandbox %s: a mount survived:\n%s", sb.Name, mounts)
	}
}
