package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/runtime/local/proc"
	"sandpit.dev/sandpit/internal/runtime/local/shim"
	"sandpit.dev/sandpit/internal/runtime/runtimetest"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/template"
)

const webYAML = `
apiVersion: sandpit/v1
name: web
services:
  web:
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}}
  side:
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}}
`

// instance makes an instance of yaml and registers a cleanup that deletes
// it through *rt (read at cleanup time, so a test may swap runtimes) and
// checks that nothing is left.
func instance(t *testing.T, rt **Runtime, yaml string) *runtime.Instance {
	t.Helper()
	inst := &runtime.Instance{
		ID: sandbox.NewID(), Name: "t" + strconv.Itoa(int(portSeq.Load())), TemplateVersion: 1,
		Template: runtimetest.ParseTemplate(t, testsvc, yaml, nil),
	}
	t.Cleanup(func() {
		r := *rt
		ctx, cancel := context.WithTimeout(context.Background(), runtimetest.UpTimeout)
		defer cancel()
		if err := r.Down(ctx, inst.ID, &runtimetest.Recorder{}); err != nil {
			t.Errorf("cleanup Down: %v", err)
		}
		if left := leftovers(t, r, inst.ID); len(left) > 0 {
			t.Errorf("cleanup Down left: %v", left)
		}
	})
	return inst
}

func up(t *testing.T, r *Runtime, inst *runtime.Instance, p *runtimetest.Recorder) *runtime.Observation {
	t.Helper()
	if p == nil {
		p = &runtimetest.Recorder{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), runtimetest.UpTimeout)
	defer cancel()
	obs, err := r.Up(ctx, inst, p)
	if err != nil {
		t.Fatalf("Up: %v\n%s", err, strings.Join(p.Entries(), "\n"))
	}
	return obs
}

func pids(obs *runtime.Observation) map[string]int {
	out := map[string]int{}
	for _, s := range obs.Services {
		out[s.Name] = s.PID
	}
	return out
}

func handlePorts(t *testing.T, r *Runtime, id string) []int {
	t.Helper()
	h, err := r.loadHandle(context.Background(), id)
	if err != nil || h == nil {
		t.Fatalf("load handle: %v %v", h, err)
	}
	var out []int
	for _, ports := range h.Ports {
		for _, p := range ports {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func TestRestartedRuntimeReadopts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.runtime(t)
	inst := instance(t, &r, webYAML)
	before := up(t, r, inst, nil)

	r = e.runtime(t) // the server restarted
	held := r.ports.held(inst.ID)
	slices.Sort(held)
	if want := handlePorts(t, r, inst.ID); !slices.Equal(held, want) {
		t.Errorf("restarted runtime reserved %v, want the handle's %v", held, want)
	}
	p := &runtimetest.Recorder{}
	after := up(t, r, inst, p)
	if b, a := pids(before), pids(after); !maps1Equal(b, a) {
		t.Errorf("pids changed across a runtime restart: %v → %v", b, a)
	}
	adopted := 0
	for _, ev := range p.Events() {
		if ev.Reason == sandbox.ReasonAdopted {
			adopted++
		}
	}
	if adopted != 2 {
		t.Errorf("%d Adopted events, want 2: %v", adopted, p.Entries())
	}
	// A new sandbox on the restarted runtime gets other ports.
	other := instance(t, &r, webYAML)
	up(t, r, other, nil)
	for _, port := range handlePorts(t, r, other.ID) {
		if slices.Contains(held, port) {
			t.Errorf("port %d handed out twice", port)
		}
	}
}

func maps1Equal(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestKilledShimMakesObserveUnhealthyAndUpRestarts(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	inst := instance(t, &r, webYAML)
	obs := up(t, r, inst, nil)
	oldPID := runtimetest.Service(t, obs, "web").PID
	sidePID := runtimetest.Service(t, obs, "side").PID
	st, err := shim.ReadStatus(r.statusPath(inst.ID, "web"))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(st.ShimPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	runtimetest.Eventually(t, runtimetest.WaitTimeout, "the shim to die", func() (bool, string) {
		return !proc.Exists(st.ShimPID), ""
	})
	o, err := r.Observe(context.Background(), inst.ID)
	if err != nil {
		t.Fatal(err)
	}
	if o.Healthy {
		t.Errorf("Observe with a killed shim is healthy: %+v", o)
	}
	if s := runtimetest.Service(t, o, "web"); s.State != sandbox.ServiceFailed || s.Ready {
		t.Errorf("web with a killed shim: %+v, want failed", s)
	}
	// The orphaned service still holds its port; the next Up must replace it.
	obs = up(t, r, inst, nil)
	if !obs.Healthy {
		t.Fatalf("Up after a killed shim: unhealthy %+v", obs)
	}
	newPID := runtimetest.Service(t, obs, "web").PID
	if newPID == oldPID {
		t.Errorf("web kept pid %d: not restarted", oldPID)
	}
	if proc.Alive(oldPID, r.node, inst.ID) {
		t.Errorf("the orphaned service %d survived", oldPID)
	}
	if got := runtimetest.Service(t, obs, "side").PID; got != sidePID {
		t.Errorf("side was restarted too (%d → %d)", sidePID, got)
	}
	if code, _, err := runtimetest.HTTPGet(obs.Upstreams["web"]["http"], "/healthz"); code != 200 {
		t.Errorf("web after restart: %d %v", code, err)
	}
}

func TestUpKillsStaleTasks(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	inst := instance(t, &r, webYAML)
	// A build a killed server left running: the markers of this sandbox,
	// a process group of its own, a child in that group.
	cmd := exec.Command(testsvc, "sleep", "-child")
	cmd.Env = append(os.Environ(), proc.MarkerEnv(r.node, inst.ID, proc.RoleTask, "web")...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	defer func() { _ = proc.SignalGroup(cmd.Process.Pid, syscall.SIGKILL) }()
	// Wait for the child to exist, so the test shows the group goes too.
	runtimetest.Eventually(t, runtimetest.WaitTimeout, "the stale task's child", func() (bool, string) {
		procs, _ := proc.Scan(r.node)
		n := 0
		for _, p := range procs {
			if p.Sandbox == inst.ID && p.Role == proc.RoleTask {
				n++
			}
		}
		return n == 2, fmt.Sprint(procs)
	})
	up(t, r, inst, nil)
	select {
	case err := <-waited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("stale task ended with %v, want SIGKILL", err)
		}
	case <-time.After(runtimetest.WaitTimeout):
		t.Fatal("Up left the stale task running")
	}
	procs, _ := proc.Scan(r.node)
	for _, p := range procs {
		if p.Role == proc.RoleTask {
			t.Errorf("stale task process left: %+v", p)
		}
	}
}

func TestUpSparesAConcurrentExec(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	inst := instance(t, &r, webYAML)
	up(t, r, inst, nil)
	// `sandpit exec` while the reconciler re-runs Up: the exec's children
	// (head here) are not stale leftovers.
	stdinR, stdinW := io.Pipe()
	var stdout bytes.Buffer
	res := make(chan error, 1)
	code := -1
	go func() {
		var err error
		code, err = r.Exec(context.Background(), inst.ID, runtime.ExecRequest{
			Service: "web", Command: []string{"sh", "-c", "head -c1 >/dev/null && echo survived"},
			Stdin: stdinR, Stdout: &stdout, Stderr: io.Discard,
		})
		res <- err
	}()
	runtimetest.Eventually(t, runtimetest.WaitTimeout, "exec's head to run", func() (bool, string) {
		procs, _ := proc.Scan(r.node)
		for _, p := range procs {
			if p.Role == proc.RoleExec && strings.HasPrefix(cmdline(p.PID), "head") {
				return true, ""
			}
		}
		return false, fmt.Sprint(procs)
	})
	up(t, r, inst, nil)
	_, _ = stdinW.Write([]byte("x"))
	stdinW.Close()
	select {
	case err := <-res:
		if err != nil || code != 0 || stdout.String() != "survived\n" {
			t.Errorf("exec during Up: code %d, %q, %v; want it untouched", code, stdout.String(), err)
		}
	case <-time.After(runtimetest.WaitTimeout):
		t.Fatal("exec did not end")
	}
}

func TestChangedServiceIsRestartedAlone(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	inst := instance(t, &r, webYAML)
	before := pids(up(t, r, inst, nil))
	inst.Template = runtimetest.ParseTemplate(t, testsvc, strings.Replace(webYAML,
		"  side:\n    run: TESTSVC http -port ${ports.http}\n", "  side:\n    run: TESTSVC http -port ${ports.http} -stdout changed\n", 1), nil)
	after := pids(up(t, r, inst, nil))
	if before["web"] != after["web"] {
		t.Errorf("unchanged web was restarted")
	}
	if before["side"] == after["side"] {
		t.Errorf("changed side was not restarted")
	}
}

func TestServicesRunAsServiceUser(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	inst := instance(t, &r, `
apiVersion: sandpit/v1
name: who
services:
  web:
    build: id -u > build-uid
    init: id -u > init-uid
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}]
    ready: {exec: {command: "test $(id -u) = `+strconv.Itoa(svcUser.UID)+`"}}
`)
	obs := up(t, r, inst, nil)
	want := strconv.Itoa(svcUser.UID)
	runtimetest.Eventually(t, runtimetest.WaitTimeout, "web to answer /whoami as "+want, func() (bool, string) {
		_, body, err := runtimetest.HTTPGet(obs.Upstreams["web"]["http"], "/whoami")
		return strings.TrimSpace(body) == want, fmt.Sprint(body, err)
	})
	_, out, _ := runtimetest.ExecOutput(t, r, inst.ID, "web", "", "sh", "-c", "cat build-uid init-uid; id -u")
	if out != strings.Repeat(want+"\n", 3) {
		t.Errorf("build, init and exec ran as %q, want %s", out, want)
	}
	if os.Geteuid() == 0 {
		if !svcUser.Switch || svcUser.UID == 0 {
			t.Fatalf("running as root, services must switch to an unprivileged user: %+v", svcUser)
		}
		// Server-side files stay the server's.
		st, err := os.Stat(r.specPath(inst.ID, "web"))
		if err != nil || st.Mode().Perm() != 0o600 || st.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("spec file (holds env, maybe secrets): %v %v, want root-owned 0600", st, err)
		}
	}
}

func TestPortAllocatorSkipsTakenPorts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lo := e.cfg.PortLow
	// lo is in use by another program, lo+1 recorded in another sandbox's
	// handle (a previous server's).
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(lo))
	if err != nil {
		t.Skipf("port %d busy: %v", lo, err)
	}
	defer ln.Close()
	if err := e.store.SaveHandle(context.Background(), "sb-0000000000000000", Name,
		fmt.Appendf(nil, `{"v":1,"ports":{"x":{"p":%d}}}`, lo+1)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.store.DeleteHandle(context.Background(), "sb-0000000000000000") })
	r := e.runtime(t)
	if got := r.ports.held("sb-0000000000000000"); !slices.Equal(got, []int{lo + 1}) {
		t.Errorf("New reserved %v for the existing handle, want [%d]", got, lo+1)
	}
	inst := instance(t, &r, `
apiVersion: sandpit/v1
name: ports
services:
  web:
    run: TESTSVC http -port ${ports.a}
    ports: [{name: a}, {name: b}, {name: c}]
`)
	up(t, r, inst, nil)
	got := handlePorts(t, r, inst.ID)
	if slices.Contains(got, lo) || slices.Contains(got, lo+1) || len(got) != 3 {
		t.Errorf("allocated %v; ports %d (in use) and %d (in a handle) must be skipped", got, lo, lo+1)
	}
}

func TestPortAllocator(t *testing.T) {
	t.Parallel()
	// A range of its own, far from the runtimes' blocks.
	const lo = 29900
	busy, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(lo+2))
	if err != nil {
		t.Skipf("port busy: %v", err)
	}
	defer busy.Close()
	a := newPortAllocator(lo, lo+4)
	a.reserve("old", lo)
	var got []int
	for range 3 {
		p, err := a.allocate("new")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
	if want := []int{lo + 1, lo + 3, lo + 4}; !slices.Equal(got, want) {
		t.Errorf("allocated %v, want %v (skipping the reserved %d and the busy %d)", got, want, lo, lo+2)
	}
	if _, err := a.allocate("new"); err == nil || !strings.Contains(err.Error(), "no free port") {
		t.Errorf("allocate from a full range: %v", err)
	}
	a.release("new")
	if held := a.held("new"); len(held) != 0 {
		t.Errorf("held after release: %v", held)
	}
	if p, err := a.allocate("again"); err != nil || p == lo || p == lo+2 {
		t.Errorf("allocate after release: %d %v", p, err)
	}
}

func TestDataDirMustBeTraversable(t *testing.T) {
	t.Parallel()
	priv, err := os.MkdirTemp(baseDir, "private-") // mode 0700
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(priv, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	u := &proc.User{Name: "sandpit", UID: 12345, GID: 12345, Switch: true}
	err = checkTraversable(data, u)
	if err == nil || !strings.Contains(err.Error(), "chmod o+x "+priv) || !strings.Contains(err.Error(), `"sandpit"`) {
		t.Errorf("checkTraversable under a 0700 dir: %v", err)
	}
	if err := checkTraversable(data, &proc.User{Name: "me"}); err != nil {
		t.Errorf("checkTraversable without a user switch: %v", err)
	}
	if os.Geteuid() == 0 {
		e := newEnv(t)
		cfg := e.cfg
		cfg.DataDir = data
		if _, err := New(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "chmod o+x "+priv) {
			t.Errorf("New over an untraversable data dir: %v", err)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for name, mod := range map[string]func(*Config){
		"relative data dir": func(c *Config) { c.DataDir = "data" },
		"no handles":        func(c *Config) { c.Handles = nil },
		"no shim":           func(c *Config) { c.ShimCommand = nil },
		"inverted range":    func(c *Config) { c.PortLow, c.PortHigh = 30000, 20000 },
		"privileged range":  func(c *Config) { c.PortLow, c.PortHigh = 80, 90 },
	} {
		cfg := e.cfg
		mod(&cfg)
		if _, err := New(context.Background(), cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestCheckTemplateReportsMissingPostgres(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	src := `apiVersion: sandpit/v1
name: pg
dependencies:
  db:
    type: postgres
    version: "7"
services:
  web:
    run: TESTSVC http
`
	tpl := runtimetest.ParseTemplate(t, testsvc, src, nil)
	err := r.CheckTemplate(tpl)
	var list *template.ErrorList
	if !errors.As(err, &list) || len(*list) != 1 {
		t.Fatalf("CheckTemplate: %v, want one template error", err)
	}
	e := (*list)[0]
	if e.Pos.File != "sandpit.yaml" || e.Pos.Line != 6 || e.Pos.Column == 0 {
		t.Errorf("error at %v, want sandpit.yaml:6 (the version)", e.Pos)
	}
	for _, want := range []string{"sandpit.yaml:6:", "PostgreSQL 7 is not installed", "apt-get install"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("CheckTemplate error %q does not mention %q", err, want)
		}
	}
	if havePostgres() {
		ok := runtimetest.ParseTemplate(t, testsvc, strings.Replace(src, `"7"`, `"15"`, 1), nil)
		if err := r.CheckTemplate(ok); err != nil {
			t.Errorf("CheckTemplate with PostgreSQL 15 installed: %v", err)
		}
	}
}

const postgresBin = "/usr/lib/postgresql/15/bin/postgres"

func havePostgres() bool {
	_, err := os.Stat(postgresBin)
	return err == nil
}

func needPostgres(t *testing.T) {
	t.Helper()
	if havePostgres() {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing and CI is set: install postgresql-15", postgresBin)
	}
	t.Skipf("%s is missing (apt-get install postgresql-15); skipping the PostgreSQL tests", postgresBin)
}

func TestPostgresDependency(t *testing.T) {
	t.Parallel()
	needPostgres(t)
	r := newRuntime(t)
	inst := instance(t, &r, `
apiVersion: sandpit/v1
name: pg
dependencies:
  db: {type: postgres, version: "15", databases: [app, extra]}
services:
  api:
    init: psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -c 'CREATE TABLE IF NOT EXISTS notes (body text)' -c "INSERT INTO notes VALUES ('seeded')"
    run: TESTSVC http -port ${ports.http}
    env: {DATABASE_URL: "${dependencies.db.url}"}
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}}
    after: [db]
`)
	obs := up(t, r, inst, nil)
	if len(obs.Dependencies) != 1 {
		t.Fatalf("dependencies: %+v", obs.Dependencies)
	}
	dep := obs.Dependencies[0]
	if dep.State != sandbox.ServiceRunning || !dep.Ready || dep.Port == 0 {
		t.Errorf("db: %+v, want running and ready on a port", dep)
	}
	st, err := shim.ReadStatus(r.statusPath(inst.ID, "db"))
	if err != nil {
		t.Fatal(err)
	}
	// The cluster runs as the service user and owns its data.
	if uid := procUID(t, st.PID); uid != svcUser.UID {
		t.Errorf("postgres runs as uid %d, want %d", uid, svcUser.UID)
	}
	dataDir := r.dataDir(inst.ID, "db")
	if fi, err := os.Stat(dataDir); err != nil || int(fi.Sys().(*syscall.Stat_t).Uid) != svcUser.UID {
		t.Errorf("data dir %s: %v, want owned by uid %d", dataDir, err, svcUser.UID)
	}

	// ${dependencies.db.url} reaches the first database, from the service
	// (its init seeded it) and from here.
	var env map[string]string
	_, body, _ := runtimetest.HTTPGet(obs.Upstreams["api"]["http"], "/env")
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		t.Fatal(err)
	}
	url := env["DATABASE_URL"]
	if !strings.Contains(url, ":"+strconv.Itoa(dep.Port)+"/app") {
		t.Fatalf("DATABASE_URL %q does not name port %d and database app", url, dep.Port)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runtimetest.WaitTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect with DATABASE_URL: %v", err)
	}
	var db, user, note string
	var n int
	if err := conn.QueryRow(ctx, "SELECT current_database(), current_user, (SELECT body FROM notes), (SELECT count(*) FROM pg_database WHERE datname IN ('app', 'extra'))").Scan(&db, &user, &note, &n); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if db != "app" || user != "postgres" || note != "seeded" || n != 2 {
		t.Errorf("got database %q user %q note %q, %d databases; want app, postgres, seeded, 2", db, user, note, n)
	}
	code, out, errOut := runtimetest.ExecOutput(t, r, inst.ID, "api", "", "sh", "-c", `psql "$DATABASE_URL" -tAc 'SELECT count(*) FROM notes'`)
	if code != 0 || strings.TrimSpace(out) != "1" {
		t.Errorf("psql from the service: exit %d %q %s", code, out, errOut)
	}
	// Exec into the dependency: psql finds it through PG* variables.
	code, out, errOut = runtimetest.ExecOutput(t, r, inst.ID, "db", "", "psql", "-tAc", "SELECT current_user || ',' || current_database()")
	if code != 0 || strings.TrimSpace(out) != "postgres,postgres" {
		t.Errorf("psql in db: exit %d %q %s", code, out, errOut)
	}

	// Re-Up adopts the cluster and keeps its data.
	obs2 := up(t, r, inst, nil)
	if obs2.Dependencies[0].Port != dep.Port {
		t.Errorf("port changed on re-Up")
	}
	if st2, _ := shim.ReadStatus(r.statusPath(inst.ID, "db")); st2 == nil || st2.PID != st.PID {
		t.Errorf("postgres restarted on re-Up")
	}

	// Down removes the data and frees the port.
	if err := r.Down(ctx, inst.ID, &runtimetest.Recorder{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data dir survived Down: %v", err)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(dep.Port), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d still accepts connections after Down", dep.Port)
	}
	if left := leftovers(t, r, inst.ID); len(left) > 0 {
		t.Errorf("Down left %v", left)
	}
}

func procUID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatalf("no Uid in /proc/%d/status", pid)
	return -1
}

func TestServiceLogsRotateAndStayReadable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.cfg.LogMaxBytes = 8 << 10
	r := e.runtime(t)
	inst := instance(t, &r, `
apiVersion: sandpit/v1
name: chatty
services:
  web:
    run: TESTSVC http -port ${ports.http} -log-bytes 50000
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}}
`)
	up(t, r, inst, nil)
	var tail []runtime.LogLine
	runtimetest.Eventually(t, runtimetest.WaitTimeout, "the flood to be logged", func() (bool, string) {
		tail = runtimetest.CollectLogs(t, r, inst.ID, runtime.LogOptions{Service: "web", Tail: 3})
		for _, l := range tail {
			if strings.HasPrefix(l.Text, "http listening on ") {
				return true, ""
			}
		}
		return false, fmt.Sprint(tail)
	})
	for _, p := range []string{r.runLog(inst.ID, "web"), r.runLog(inst.ID, "web") + ".1"} {
		fi, err := os.Stat(p)
		if err != nil || fi.Size() > e.cfg.LogMaxBytes {
			t.Errorf("%s: %v, want at most %d bytes", p, err, e.cfg.LogMaxBytes)
		}
	}
	all := runtimetest.CollectLogs(t, r, inst.ID, runtime.LogOptions{Service: "web"})
	if n := len(all); n < 50 || n > 2*int(e.cfg.LogMaxBytes)/100 {
		t.Errorf("%d lines kept of the flood", n)
	}
}

// A status file naming a pid that now belongs to another process of the
// same sandbox (pids are recycled) does not count as a live shim.
func TestRecycledShimPIDIsNotAlive(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	inst := instance(t, &r, webYAML)
	obs := up(t, r, inst, nil)
	path := r.statusPath(inst.ID, "web")
	st, err := shim.ReadStatus(path)
	if err != nil {
		t.Fatal(err)
	}
	// The side service's process stands in for the recycled pid.
	st.ShimPID = runtimetest.Service(t, obs, "side").PID
	if err := shim.WriteJSON(path, st, 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := r.Observe(context.Background(), inst.ID)
	if err != nil {
		t.Fatal(err)
	}
	if s := runtimetest.Service(t, o, "web"); o.Healthy || s.State != sandbox.ServiceFailed {
		t.Errorf("web with a recycled shim pid: %+v, healthy %v; want failed and unhealthy", s, o.Healthy)
	}
}

// A service reads its rendered files at start, so a change to one restarts
// it even though its command did not change.
func TestChangedRenderedFileRestartsTheService(t *testing.T) {
	t.Parallel()
	const yaml = `apiVersion: sandpit/v1
name: files
services:
  app:
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}]
    files:
      - path: conf/app.json
        content: '{"greeting": "hello"}'
  other:
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}]
`
	r := newRuntime(t)
	inst := instance(t, &r, yaml)
	before := pids(up(t, r, inst, nil))
	inst.Template = runtimetest.ParseTemplate(t, testsvc, strings.Replace(yaml, "hello", "bonjour", 1), nil)
	after := pids(up(t, r, inst, nil))
	if before["app"] == after["app"] {
		t.Errorf("app kept running with its old configuration file")
	}
	if before["other"] != after["other"] {
		t.Errorf("other was restarted though nothing of it changed")
	}
}

// An exec probe's command is interpolated like every other command.
func TestExecProbeIsInterpolated(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	inst := instance(t, &r, `apiVersion: sandpit/v1
name: probe
services:
  app:
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}]
    ready:
      exec: {command: 'test "${ports.http}" -gt 0 && test "${sandbox.name}" = "$SANDPIT_SANDBOX_NAME"'}
      timeout: 20s
`)
	up(t, r, inst, nil)
}

func TestCheckTemplateRefusesImageOnlyService(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	src := `apiVersion: sandpit/v1
name: img
services:
  web:
    run: TESTSVC http
  api:
    image: registry.example.com/api:1
`
	err := r.CheckTemplate(runtimetest.ParseTemplate(t, testsvc, src, nil))
	var list *template.ErrorList
	if !errors.As(err, &list) || len(*list) != 1 {
		t.Fatalf("CheckTemplate: %v, want one template error", err)
	}
	if e := (*list)[0]; e.Pos.File != "sandpit.yaml" || e.Pos.Line != 6 || e.Path != "services.api.run" {
		t.Errorf("error at %v (%s), want sandpit.yaml:6 (services.api.run)", e.Pos, e.Path)
	}
	want := "sandpit.yaml:6:3: service api has no run command: the local runtime runs commands; add run: (its image registry.example.com/api:1 is only used by the kubernetes runtime)"
	if err.Error() != want {
		t.Errorf("CheckTemplate error\n%s\nwant\n%s", err, want)
	}
}
