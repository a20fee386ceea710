package runtimetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/sandbox"
)

// Harness is what a runtime supplies to be checked by Run.
type Harness struct {
	// New returns a fresh runtime with state of its own (its own data
	// directory, handle store and port range), released by t.Cleanup.
	// Subtests run in parallel, each with its own runtime.
	New func(t *testing.T) runtime.Runtime
	// Leftovers describes everything rt still holds of sandbox id
	// (processes, listening ports, directories, handles, databases); it
	// must be empty after Down.
	Leftovers func(t *testing.T, rt runtime.Runtime, id string) []string
	// Testsvc is the path of the testsvc program as services see it.
	Testsvc string
}

// Run runs the conformance suite against h.
func Run(t *testing.T, h Harness) {
	if h.New == nil || h.Leftovers == nil || h.Testsvc == "" {
		t.Fatal("runtimetest: Harness needs New, Leftovers and Testsvc")
	}
	s := &suite{h: h}
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"UpServesAndReports", s.upServes},
		{"UpIsIdempotent", s.upIdempotent},
		{"UpAfterInterruptedBuildConverges", s.interruptedBuild},
		{"UpAfterInterruptedStartConverges", s.interruptedStart},
		{"UpConvergesToAChangedTemplate", s.changedTemplate},
		{"ObserveStates", s.observeStates},
		{"RestartPolicies", s.restartPolicies},
		{"ReadinessTimeoutIsPermanent", s.readinessTimeout},
		{"FailingBuildIsPermanent", s.failingBuild},
		{"CrashAtStartIsPermanent", s.crashAtStart},
		{"AfterOrdering", s.afterOrdering},
		{"InitRunsOnce", s.initOnce},
		{"FilesAreRendered", s.files},
		{"EnvLayering", s.envLayering},
		{"Logs", s.logs},
		{"LogsFollow", s.logsFollow},
		{"Exec", s.exec},
		{"DownRemovesEverything", s.down},
		{"DownUnknownSucceeds", s.downUnknown},
		{"Sandboxes", s.sandboxes},
		{"TwoSandboxesOfOneTemplate", s.twoSandboxes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t)
		})
	}
}

type suite struct{ h Harness }

// sb is one sandbox of a subtest.
type sb struct {
	s    *suite
	rt   runtime.Runtime
	inst *runtime.Instance
}

var nameSeq struct {
	sync.Mutex
	n int
}

// newSandbox makes an instance of the template and registers a cleanup that
// deletes it and checks that nothing is left.
func (s *suite) newSandbox(t *testing.T, rt runtime.Runtime, yaml string, set map[string]string) *sb {
	t.Helper()
	tpl := ParseTemplate(t, s.h.Testsvc, yaml, set)
	nameSeq.Lock()
	nameSeq.n++
	name := fmt.Sprintf("test-%d", nameSeq.n)
	nameSeq.Unlock()
	inst := &runtime.Instance{ID: sandbox.NewID(), Name: name, Template: tpl, TemplateVersion: 1, Set: set}
	b := &sb{s: s, rt: rt, inst: inst}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), UpTimeout)
		defer cancel()
		if err := rt.Down(ctx, inst.ID, &Recorder{}); err != nil {
			t.Errorf("cleanup: Down(%s): %v", inst.ID, err)
			return
		}
		if left := s.h.Leftovers(t, rt, inst.ID); len(left) > 0 {
			t.Errorf("cleanup: Down(%s) left: %s", inst.ID, strings.Join(left, "; "))
		}
	})
	return b
}

// up runs Up with a bound and returns its result.
func (b *sb) up(t *testing.T, p *Recorder) (*runtime.Observation, error) {
	t.Helper()
	if p == nil {
		p = &Recorder{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), UpTimeout)
	defer cancel()
	return b.rt.Up(ctx, b.inst, p)
}

// mustUp runs Up and fails the test unless it succeeds healthy with every
// stage it started finished.
func (b *sb) mustUp(t *testing.T) *runtime.Observation {
	t.Helper()
	p := &Recorder{}
	obs, err := b.up(t, p)
	if err != nil {
		t.Fatalf("Up: %v\nprogress:\n  %s", err, strings.Join(p.Entries(), "\n  "))
	}
	if u := p.Unbalanced(); len(u) > 0 {
		t.Errorf("Up started and finished stages unevenly: %v\nprogress:\n  %s", u, strings.Join(p.Entries(), "\n  "))
	}
	if !obs.Healthy {
		t.Fatalf("Up returned an unhealthy observation: %+v", obs)
	}
	return obs
}

func (b *sb) observe(t *testing.T) *runtime.Observation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	obs, err := b.rt.Observe(ctx, b.inst.ID)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	return obs
}

func (b *sb) logReader(t *testing.T) runtime.LogReader {
	t.Helper()
	lr, ok := b.rt.(runtime.LogReader)
	if !ok {
		t.Skip("runtime does not implement runtime.LogReader")
	}
	return lr
}

func (b *sb) execer(t *testing.T) runtime.Execer {
	t.Helper()
	ex, ok := b.rt.(runtime.Execer)
	if !ok {
		t.Skip("runtime does not implement runtime.Execer")
	}
	return ex
}

// lines returns the log lines of a service, optionally of one stream.
func (b *sb) lines(t *testing.T, service, stream string) []runtime.LogLine {
	t.Helper()
	lr := b.logReader(t)
	var all []runtime.LogLine
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	err := lr.Logs(ctx, b.inst.ID, runtime.LogOptions{Service: service}, func(l runtime.LogLine) error { all = append(all, l); return nil })
	if errors.Is(err, runtime.ErrNotFound) {
		return nil // not launched far enough yet
	}
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	var out []runtime.LogLine
	for _, l := range all {
		if stream == "" || l.Stream == stream {
			out = append(out, l)
		}
	}
	return out
}

// waitLine waits until a service logged a line containing text.
func (b *sb) waitLine(t *testing.T, service, stream, text string) runtime.LogLine {
	t.Helper()
	var found runtime.LogLine
	Eventually(t, WaitTimeout, fmt.Sprintf("%s to log %q", service, text), func() (bool, string) {
		ls := b.lines(t, service, stream)
		for _, l := range ls {
			if strings.Contains(l.Text, text) {
				found = l
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d lines: %v", len(ls), ls)
	})
	return found
}

func (b *sb) upstream(t *testing.T, obs *runtime.Observation, service, port string) string {
	t.Helper()
	addr := obs.Upstreams[service][port]
	if addr == "" {
		t.Fatalf("no upstream for %s:%s in %v", service, port, obs.Upstreams)
	}
	return addr
}

// info is testsvc's /info.
type info struct {
	PID   int    `json:"pid"`
	UID   int    `json:"uid"`
	Cwd   string `json:"cwd"`
	Start int64  `json:"start"`
}

func getJSON(t *testing.T, addr, path string, v any) {
	t.Helper()
	code, body, err := HTTPGet(addr, path)
	if err != nil || code != 200 {
		t.Fatalf("GET %s%s: %d %v %s", addr, path, code, err, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s%s: %v: %s", addr, path, err, body)
	}
}

const basicYAML = `
apiVersion: sandpit/v1
name: basic
services:
  web:
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}, {name: admin}]
    ready: {http: {port: http, path: /healthz}}
  tcp:
    run: TESTSVC http -port ${ports.main}
    ports: [{name: main, protocol: tcp}]
    ready: {tcp: {port: main}}
  worker:
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}]
`

func (s *suite) upServes(t *testing.T) {
	rt := s.h.New(t)
	b := s.newSandbox(t, rt, basicYAML, nil)
	obs := b.mustUp(t)
	for _, name := range []string{"web", "tcp", "worker"} {
		st := Service(t, obs, name)
		if st.State != sandbox.ServiceRunning || !st.Ready || st.PID <= 0 {
			t.Errorf("service %s: state %s ready %v pid %d, want running, ready, a pid", name, st.State, st.Ready, st.PID)
		}
	}
	for svc, ports := range map[string][]string{"web": {"http", "admin"}, "tcp": {"main"}, "worker": {"http"}} {
		for _, p := range ports {
			addr := b.upstream(t, obs, svc, p)
			if _, _, err := net.SplitHostPort(addr); err != nil {
				t.Errorf("upstream %s:%s = %q is not host:port", svc, p, addr)
			}
			if svc == "web" && p == "admin" {
				continue // declared, nothing listens on it
			}
			if svc == "worker" {
				// No probe: ready once started, serving a moment later.
				Eventually(t, WaitTimeout, "worker to serve", func() (bool, string) {
					code, body, err := HTTPGet(addr, "/healthz")
					return code == 200, fmt.Sprintf("%d %v %s", code, err, body)
				})
				continue
			}
			if code, body, err := HTTPGet(addr, "/healthz"); err != nil || code != 200 {
				t.Errorf("GET %s:%s /healthz at %s: %d %v %s", svc, p, addr, code, err, body)
			}
		}
	}
	// Every port is distinct.
	seen := map[string]string{}
	for svc, ports := range obs.Upstreams {
		for p, addr := range ports {
			if other, dup := seen[addr]; dup {
				t.Errorf("%s:%s and %s share %s", svc, p, other, addr)
			}
			seen[addr] = svc + ":" + p
		}
	}
	// Observe agrees with what Up returned.
	obs2 := b.observe(t)
	if !obs2.Healthy {
		t.Errorf("Observe after Up is unhealthy: %+v", obs2)
	}
	for _, st := range obs.Services {
		if got := Service(t, obs2, st.Name); got.PID != st.PID || got.State != st.State {
			t.Errorf("Observe %s = %s pid %d; Up said %s pid %d", st.Name, got.State, got.PID, st.State, st.PID)
		}
	}
}

func (s *suite) upIdempotent(t *testing.T) {
	rt := s.h.New(t)
	b := s.newSandbox(t, rt, `
apiVersion: sandpit/v1
name: idem
services:
  web:
    build: echo built >> build-count
    init: echo ran >> init-count
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}}
  other:
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}]
    after: [web]
`, nil)
	obs1 := b.mustUp(t)
	var i1 info
	getJSON(t, b.upstream(t, obs1, "web", "http"), "/info", &i1)
	obs2 := b.mustUp(t)
	for _, st := range obs1.Services {
		got := Service(t, obs2, st.Name)
		if got.PID != st.PID || got.Restarts != st.Restarts {
			t.Errorf("second Up changed %s: pid %d→%d, restarts %d→%d", st.Name, st.PID, got.PID, st.Restarts, got.Restarts)
		}
	}
	if !maps2Equal(obs1.Upstreams, obs2.Upstreams) {
		t.Errorf("second Up changed upstreams: %v → %v", obs1.Upstreams, obs2.Upstreams)
	}
	var i2 info
	getJSON(t, b.upstream(t, obs2, "web", "http"), "/info", &i2)
	if i1 != i2 {
		t.Errorf("second Up restarted web: %+v → %+v", i1, i2)
	}
	if ex, ok := b.rt.(runtime.Execer); ok {
		if _, out, _ := ExecOutput(t, ex, b.inst.ID, "web", "", "cat", "build-count", "init-count"); out != "built\nran\n" {
			t.Errorf("after two Ups, build and init ran: %q, want once each", out)
		}
	}
}

func maps2Equal(a, b map[string]map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok || len(va) != len(vb) {
			return false
		}
		for k2, x := range va {
			if vb[k2] != x {
				return false
			}
		}
	}
	return true
}

func (s *suite) interruptedBuild(t *testing.T) {
	rt := s.h.New(t)
	// The first build announces itself and hangs; any later one succeeds
	// at once (the marker file survives in the checkout).
	b := s.newSandbox(t, rt, `
apiVersion: sandpit/v1
name: interrupted
services:
  web:
    build: if [ -e .attempted ]; then echo built; else touch .attempted; echo building; exec sleep 300; fi
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}}
`, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := b.rt.Up(ctx, b.inst, &Recorder{})
		errc <- err
	}()
	b.waitLine(t, "web", "build", "building")
	cancel()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Up cancelled mid-build succeeded")
		}
		if runtime.IsPermanent(err) {
			t.Errorf("Up cancelled mid-build returned a permanent error: %v", err)
		}
	case <-time.After(WaitTimeout):
		t.Fatal("Up did not return after its context was cancelled")
	}
	obs := b.mustUp(t)
	if st := Service(t, obs, "web"); st.State != sandbox.ServiceRunning {
		t.Errorf("after the resumed Up web is %s", st.State)
	}
	if len(b.lines(t, "web", "build")) == 0 {
		t.Error("no build lines logged")
	}
	b.waitLine(t, "web", "build", "built")
}

func (s *suite) interruptedStart(t *testing.T) {
	rt := s.h.New(t)
	b := s.newSandbox(t, rt, `
apiVersion: sandpit/v1
name: interrupted-start
services:
  slow:
    run: TESTSVC http -port ${ports.http} -ready-after 1s
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}, interval: 100ms}
  next:
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}}
    after: [slow]
`, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := &Recorder{OnStageStarted: func(name string) {
		if name == sandbox.StageReady+"/slow" {
			cancel()
		}
	}}
	_, err := b.rt.Up(ctx, b.inst, p)
	if err == nil {
		t.Fatal("Up cancelled while waiting for readiness succeeded")
	}
	if runtime.IsPermanent(err) || !isCanceled(err) {
		t.Errorf("Up cancelled mid-start returned %v, want a (non-permanent) cancellation", err)
	}
	obs := b.mustUp(t)
	for _, name := range []string{"slow", "next"} {
		if st := Service(t, obs, name); st.State != sandbox.ServiceRunning || !st.Ready {
			t.Errorf("after the resumed Up %s is %s ready=%v", name, st.State, st.Ready)
		}
		if code, _, err := HTTPGet(b.upstream(t, obs, name, "http"), "/healthz"); code != 200 {
			t.Errorf("%s /healthz: %d %v", name, code, err)
		}
	}
}

func (s *suite) observeStates(t *testing.T) {
	rt := s.h.New(t)
	b := s.newSandbox(t, rt, `
apiVersion: sandpit/v1
name: states
services:
  steady:
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}}
  ends:
    run: TESTSVC http -port ${ports.http} -exit-after 1s -exit 3
    ports: [{name: http}]
    restart: never
`, nil)
	obs := b.mustUp(t)
	if st := Service(t, obs, "ends"); st.State != sandbox.ServiceRunning {
		t.Fatalf("ends: %s right after Up, want running", st.State)
	}
	Eventually(t, WaitTimeout, "ends to exit", func() (bool, string) {
		o := b.observe(t)
		st := Service(t, o, "ends")
		return st.State == sandbox.ServiceExited, fmt.Sprintf("%+v", st)
	})
	o := b.observe(t)
	st := Service(t, o, "ends")
	if st.ExitCode == nil || *st.ExitCode != 3 || st.Ready || st.PID != 0 {
		t.Errorf("exited service: %+v, want exit code 3, not ready, no pid", st)
	}
	if !o.Healthy {
		t.Errorf("a service that exited by its restart policy made the sandbox unhealthy: %+v", o)
	}
	if st := Service(t, o, "steady"); st.State != sandbox.ServiceRunning || !st.Ready {
		t.Errorf("steady: %+v", st)
	}
}

func (s *suite) restartPolicies(t *testing.T) {
	rt := s.h.New(t)
	b := s.newSandbox(t, rt, `
apiVersion: sandpit/v1
name: restarts
services:
  crashy:
    run: TESTSVC http -port ${ports.http} -exit-after 300ms -exit 1
    ports: [{name: http}]
  never:
    run: TESTSVC http -port ${ports.http} -exit-after 1s -exit 1
    ports: [{name: http}]
    restart: never
  clean:
    run: TESTSVC http -port ${ports.http} -exit-after 1s -exit 0
    ports: [{name: http}]
    restart: on-failure
  failing:
    run: TESTSVC http -port ${ports.http} -exit-after 1s -exit 2
    ports: [{name: http}]
    restart: on-failure
`, nil)
	b.mustUp(t)
	seen := map[sandbox.ServiceState]bool{}
	pids := map[int]bool{}
	Eventually(t, WaitTimeout, "crashy to restart twice and the others to settle", func() (bool, string) {
		o := b.observe(t)
		c := Service(t, o, "crashy")
		seen[c.State] = true
		if c.PID > 0 {
			pids[c.PID] = true
		}
		n, cl, f := Service(t, o, "never"), Service(t, o, "clean"), Service(t, o, "failing")
		ok := c.Restarts >= 2 && seen[sandbox.ServiceRestarting] && len(pids) >= 2 &&
			n.State == sandbox.ServiceExited && cl.State == sandbox.ServiceExited && f.Restarts >= 1
		return ok, fmt.Sprintf("crashy %+v (seen %v), never %+v, clean %+v, failing %+v", c, seen, n, cl, f)
	})
	o := b.observe(t)
	if n := Service(t, o, "never"); n.Restarts != 0 || n.ExitCode == nil || *n.ExitCode != 1 {
		t.Errorf("restart: never: %+v, want exited with code 1 and no restart", n)
	}
	if c := Service(t, o, "clean"); c.Restarts != 0 || c.ExitCode == nil || *c.ExitCode != 0 {
		t.Errorf("restart: on-failure with exit 0: %+v, want exited with code 0 and no restart", c)
	}
	if !o.Healthy {
		t.Errorf("restarting services made the sandbox unhealthy: %+v", o)
	}
}

func (s *suite) readinessTimeout(t *testing.T) {
	rt := s.h.New(t)
	b := s.newSandbox(t, rt, `
apiVersion: sandpit/v1
name: never-ready
services:
  sleepy:
    run: TESTSVC http -port ${ports.http} -ready-after 1h
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}, timeout: 1s, interval: 100ms}
`, nil)
	_, err := b.up(t, nil)
	if err == nil {
		t.Fatal("Up of a service that never becomes ready succeeded")
	}
	if !runtime.IsPermanent(err) {
		t.Errorf("readiness timeout is not permanent: %v", err)
	}
	for _, want := range []string{"sleepy", "ready", "503", "logs"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("readiness timeout error %q does not mention %q", err, want)
		}
	}
}

func (s *suite) failingBuild(t *testing.T) {
	rt := s.h.New(t)
	b := s.newSandbox(t, rt, `
apiVersion: sandpit/v1
name: broken
services:
  api:
    build: |
      echo compiling; echo 'main.go:3:2: undefined: frobnicate' >&2; exit 7
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}]
  other:
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}]
`, nil)
	p := &Recorder{}
	_, err := b.up(t, p)
	if err == nil {
		t.Fatal("Up with a failing build succeeded")
	}
	if !runtime.IsPermanent(err) {
		t.Errorf("failing build is not permanent: %v", err)
	}
	for _, want := range []string{"api", "7", "undefined: frobnicate", "logs"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("build error %q does not mention %q", err, want)
		}
	}
	// Retrying fails the same way: nothing about it was marked done.
	if _, err2 := b.up(t, nil); err2 == nil || !runtime.IsPermanent(err2) {
		t.Errorf("second Up after a failing build: %v, want the permanent error again", err2)
	}
}

func (s *suite) crashAtStart(t *testing.T) {
	rt := s.h.New(t)
	b := s.newSandbox(t, rt, `
apiVersion: sandpit/v1
name: crash
services:
  api:
    run: "TESTSVC http -port ${ports.http} -stderr 'fatal: no config' -exit 4"
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}}
    restart: never
`, nil)
	_, err := b.up(t, nil)
	if err == nil {
		t.Fatal("Up of a service that exits at once with restart: never succeeded")
	}
	if !runtime.IsPermanent(err) {
		t.Errorf("crash at start is not permanent: %v", err)
	}
	for _, want := range []string{"api", "4", "logs"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("crash error %q does not mention %q", err, want)
		}
	}
}

// stamp parses the "<prefix> <ns>" timestamps testsvc and init commands
// print.
func stamp(t *testing.T, l runtime.LogLine, prefix string) int64 {
	t.Helper()
	rest := strings.TrimPrefix(l.Text, prefix)
	f := strings.Fields(rest)
	if len(f) == 0 {
		t.Fatalf("no timestamp in %q", l.Text)
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		t.Fatalf("bad timestamp in %q: %v", l.Text, err)
	}
	return n
}

func (s *suite) afterOrdering(t *testing.T) {
	rt := s.h.New(t)
	// fast is declared first and would start first if after were ignored.
	b := s.newSandbox(t, rt, `
apiVersion: sandpit/v1
name: ordering
services:
  fast:
    init: echo "init at $(date +%s%N)"
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}}
    after: [middle]
  middle:
    run: TESTSVC http -port ${ports.http} -ready-after 300ms
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}, interval: 50ms}
    after: [slow]
  slow:
    run: TESTSVC http -port ${ports.http} -ready-after 700ms
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}, interval: 50ms}
`, nil)
	b.mustUp(t)
	slowReady := stamp(t, b.waitLine(t, "slow", "stdout", "http ready at "), "http ready at ")
	middleStart := stamp(t, b.waitLine(t, "middle", "stdout", "http start at "), "http start at ")
	middleReady := stamp(t, b.waitLine(t, "middle", "stdout", "http ready at "), "http ready at ")
	fastInit := stamp(t, b.waitLine(t, "fast", "init", "init at "), "init at ")
	fastStart := stamp(t, b.waitLine(t, "fast", "stdout", "http start at "), "http start at ")
	if middleStart <= slowReady {
		t.Errorf("middle started %v before slow was ready", time.Duration(slowReady-middleStart))
	}
	if fastInit <= middleReady {
		t.Errorf("fast's init ran %v before middle was ready", time.Duration(middleReady-fastInit))
	}
	if fastStart <= fastInit {
		t.Errorf("fast started before its init ran")
	}
}

func (s *suite) initOnce(t *testing.T) {
	rt := s.h.New(t)
	b := s.newSandbox(t, rt, `
apiVersion: sandpit/v1
name: init
services:
  api:
    init: echo ran >> init-count; echo init-done
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}]
`, nil)
	b.mustUp(t)
	b.mustUp(t)
	ex := b.execer(t)
	if _, out, _ := ExecOutput(t, ex, b.inst.ID, "api", "", "cat", "init-count"); out != "ran\n" {
		t.Errorf("init ran %q, want once", out)
	}
	n := 0
	for _, l := range b.lines(t, "api", "init") {
		if l.Text == "init-done" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("init logged init-done %d times, want 1", n)
	}
}

func (s *suite) files(t *testing.T) {
	rt := s.h.New(t)
	b := s.newSandbox(t, rt, `
apiVersion: sandpit/v1
name: files
services:
  api:
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}, {name: grpc, protocol: tcp}]
  web:
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}]
    files:
      - path: conf/app.conf
        content: |
          port=${ports.http}
          api=${services.api.url}
          grpc=${services.api.ports.grpc}
          name=${sandbox.name}
          id=${sandbox.id}
          shell=$${HOME}
      - path: secret.txt
        content: s3cret
        mode: "0600"
`, nil)
	obs := b.mustUp(t)
	ex := b.execer(t)
	_, webPort, _ := net.SplitHostPort(b.upstream(t, obs, "web", "http"))
	_, grpcPort, _ := net.SplitHostPort(b.upstream(t, obs, "api", "grpc"))
	want := fmt.Sprintf("port=%s\napi=http://%s\ngrpc=%s\nname=%s\nid=%s\nshell=${HOME}\n",
		webPort, b.upstream(t, obs, "api", "http"), grpcPort, b.inst.Name, b.inst.ID)
	if code, out, errOut := ExecOutput(t, ex, b.inst.ID, "web", "", "cat", "conf/app.conf"); code != 0 || out != want {
		t.Errorf("conf/app.conf = %q (exit %d, %s), want %q", out, code, errOut, want)
	}
	if _, out, _ := ExecOutput(t, ex, b.inst.ID, "web", "", "stat", "-c", "%a", "secret.txt"); strings.TrimSpace(out) != "600" {
		t.Errorf("secret.txt mode %q, want 600", out)
	}
	// The service may write next to its rendered files.
	if code, _, errOut := ExecOutput(t, ex, b.inst.ID, "web", "", "sh", "-c", "touch conf/written-by-service && cat secret.txt"); code != 0 {
		t.Errorf("service cannot write into its rendered directory or read its file: exit %d: %s", code, errOut)
	}
}

func (s *suite) envLayering(t *testing.T) {
	rt := s.h.New(t)
	set := map[string]string{
		"services.api.env.C": "from-set",
		"env.D":              "from-set-all",
	}
	b := s.newSandbox(t, rt, `
apiVersion: sandpit/v1
name: env
env:
  A: from-template
  B: from-template
  C: from-template
  D: from-template
  NAME: ${sandbox.name}
services:
  api:
    run: TESTSVC http
    env:
      PORT: ${ports.http}
      B: from-service
      C: from-service
      D: from-service
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}}
`, set)
	obs := b.mustUp(t)
	var env map[string]string
	getJSON(t, b.upstream(t, obs, "api", "http"), "/env", &env)
	want := map[string]string{"A": "from-template", "B": "from-service", "C": "from-set", "D": "from-set-all", "NAME": b.inst.Name}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("service env %s = %q, want %q", k, env[k], v)
		}
	}
	if env["PATH"] == "" || env["HOME"] == "" {
		t.Errorf("service env lacks PATH or HOME: %v", env)
	}
	if ex, ok := b.rt.(runtime.Execer); ok {
		if _, out, _ := ExecOutput(t, ex, b.inst.ID, "api", "", "sh", "-c", `echo "$A $B $C $D"`); out != "from-template from-service from-set from-set-all\n" {
			t.Errorf("exec env: %q", out)
		}
	}
}

func (s *suite) logs(t *testing.T) {
	rt := s.h.New(t)
	b := s.newSandbox(t, rt, `
apiVersion: sandpit/v1
name: logs
services:
  talker:
    build: echo build-line
    init: echo init-line; echo init-err >&2
    run: TESTSVC http -port ${ports.http} -stdout out-line -stderr err-line
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}}
  quiet:
    run: TESTSVC http -port ${ports.http} -stdout quiet-line
    ports: [{name: http}]
    after: [talker]
`, nil)
	b.mustUp(t)
	lr := b.logReader(t)
	b.waitLine(t, "talker", "stderr", "err-line")
	b.waitLine(t, "quiet", "stdout", "quiet-line")
	all := CollectLogs(t, lr, b.inst.ID, runtime.LogOptions{})
	pos := func(service, stream, text string) int {
		for i, l := range all {
			if l.Service == service && l.Stream == stream && l.Text == text {
				return i
			}
		}
		t.Errorf("no %s %s line %q in %v", service, stream, text, all)
		return -1
	}
	order := []int{
		pos("talker", "build", "build-line"),
		pos("talker", "init", "init-line"),
		pos("talker", "stdout", "out-line"),
		pos("quiet", "stdout", "quiet-line"),
	}
	pos("talker", "init", "init-err")
	pos("talker", "stderr", "err-line")
	if !slices.IsSorted(order) {
		t.Errorf("build, init, run and a later service's lines are out of order: positions %v in %v", order, all)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Time.Before(all[i-1].Time) {
			t.Errorf("line %d (%v) is older than line %d (%v)", i, all[i], i-1, all[i-1])
		}
	}
	// One service only.
	for _, l := range CollectLogs(t, lr, b.inst.ID, runtime.LogOptions{Service: "quiet"}) {
		if l.Service != "quiet" {
			t.Errorf("Logs of quiet returned %v", l)
		}
	}
	// Tail: the last lines of the same history.
	tail := CollectLogs(t, lr, b.inst.ID, runtime.LogOptions{Service: "talker", Tail: 2})
	full := CollectLogs(t, lr, b.inst.ID, runtime.LogOptions{Service: "talker"})
	if len(tail) != 2 || len(full) < 2 || tail[0] != full[len(full)-2] || tail[1] != full[len(full)-1] {
		t.Errorf("Tail 2 = %v, want the last two of %v", tail, full)
	}
	// Unknown service and sandbox.
	err := lr.Logs(context.Background(), b.inst.ID, runtime.LogOptions{Service: "nope"}, func(runtime.LogLine) error { return nil })
	if !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Logs of an unknown service: %v, want ErrNotFound", err)
	}
	err = lr.Logs(context.Background(), sandbox.NewID(), runtime.LogOptions{}, func(runtime.LogLine) error { return nil })
	if !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Logs of an unknown sandbox: %v, want ErrNotFound", err)
	}
	// fn's error stops Logs and is returned.
	stop := errors.New("stop here")
	n := 0
	err = lr.Logs(context.Background(), b.inst.ID, runtime.LogOptions{}, func(runtime.LogLine) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("Logs with a failing fn: %v after %d lines, want the fn's error after 1", err, n)
	}
}

func (s *suite) logsFollow(t *testing.T) {
	rt := s.h.New(t)
	b := s.newSandbox(t, rt, `
apiVersion: sandpit/v1
name: follow
services:
  talker:
    run: TESTSVC http -port ${ports.http} -stdout first
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}}
`, nil)
	obs := b.mustUp(t)
	lr := b.logReader(t)
	b.waitLine(t, "talker", "stdout", "first")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lines := make(chan runtime.LogLine, 1000)
	done := make(chan error, 1)
	go func() {
		done <- lr.Logs(ctx, b.inst.ID, runtime.LogOptions{Service: "talker", Tail: 1, Follow: true}, func(l runtime.LogLine) error {
			lines <- l
			return nil
		})
	}()
	addr := b.upstream(t, obs, "talker", "http")
	expect := func(text string) {
		t.Helper()
		timeout := time.After(WaitTimeout)
		for {
			select {
			case l := <-lines:
				if l.Text == text {
					return
				}
			case err := <-done:
				t.Fatalf("Logs with Follow ended early: %v", err)
			case <-timeout:
				t.Fatalf("Follow did not deliver %q", text)
			}
		}
	}
	for i, stream := range []string{"stdout", "stderr", "stdout"} {
		text := fmt.Sprintf("followed-%d", i)
		if code, _, err := HTTPGet(addr, "/print?stream="+stream+"&text="+text); code != 200 {
			t.Fatalf("print: %d %v", code, err)
		}
		expect(text)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil && !isCanceled(err) {
			t.Errorf("Logs with Follow ended with %v after its context was cancelled", err)
		}
	case <-time.After(WaitTimeout):
		t.Fatal("Logs with Follow did not end when its context was cancelled")
	}
}

func (s *suite) exec(t *testing.T) {
	rt := s.h.New(t)
	b := s.newSandbox(t, rt, `
apiVersion: sandpit/v1
name: exec
services:
  api:
    run: TESTSVC http -port ${ports.http}
    env: {FOO: bar baz}
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}}
`, nil)
	obs := b.mustUp(t)
	ex := b.execer(t)
	var in info
	getJSON(t, b.upstream(t, obs, "api", "http"), "/info", &in)
	code, out, errOut := ExecOutput(t, ex, b.inst.ID, "api", "", "sh", "-c", `pwd; id -u; echo "$FOO"`)
	if want := fmt.Sprintf("%s\n%d\nbar baz\n", in.Cwd, in.UID); code != 0 || out != want {
		t.Errorf("exec in api: exit %d, %q (stderr %q), want the service's workdir, uid and env: %q", code, out, errOut, want)
	}
	if code, _, _ := ExecOutput(t, ex, b.inst.ID, "api", "", "sh", "-c", "echo oops >&2; exit 3"); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	if _, _, errOut := ExecOutput(t, ex, b.inst.ID, "api", "", "sh", "-c", "echo oops >&2"); errOut != "oops\n" {
		t.Errorf("stderr %q, want oops", errOut)
	}
	if code, out, _ := ExecOutput(t, ex, b.inst.ID, "api", "hello\nworld\n", "cat"); code != 0 || out != "hello\nworld\n" {
		t.Errorf("stdin: exit %d %q", code, out)
	}
	ctx := context.Background()
	if _, err := ex.Exec(ctx, b.inst.ID, runtime.ExecRequest{Service: "nope", Command: []string{"true"}}); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("exec in an unknown service: %v, want ErrNotFound", err)
	}
	if _, err := ex.Exec(ctx, sandbox.NewID(), runtime.ExecRequest{Service: "api", Command: []string{"true"}}); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("exec in an unknown sandbox: %v, want ErrNotFound", err)
	}
	if code, err := ex.Exec(ctx, b.inst.ID, runtime.ExecRequest{Service: "api", Command: []string{"no-such-command-here"}}); err == nil && code == 0 {
		t.Errorf("exec of a missing command succeeded")
	}
	// Cancelling the context ends a command that would run for ever.
	cctx, cancel := context.WithCancel(ctx)
	res := make(chan error, 1)
	go func() {
		_, err := ex.Exec(cctx, b.inst.ID, runtime.ExecRequest{Service: "api", Command: []string{"sleep", "300"}})
		res <- err
	}()
	time.Sleep(50 * time.Millisecond) // not an assertion: any moment works
	cancel()
	select {
	case <-res:
	case <-time.After(WaitTimeout):
		t.Fatal("Exec did not end when its context was cancelled")
	}
}

func (s *suite) down(t *testing.T) {
	rt := s.h.New(t)
	b := s.newSandbox(t, rt, `
apiVersion: sandpit/v1
name: down
services:
  daemon:
    build: echo built
    run: TESTSVC http -port ${ports.http} -daemon -child
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}}
  stubborn:
    run: TESTSVC http -port ${ports.http} -ignore-term -child
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}}
  crashy:
    run: TESTSVC http -port ${ports.http} -exit-after 200ms -exit 1
    ports: [{name: http}]
`, nil)
	obs := b.mustUp(t)
	var pids []int
	if _, ok := b.rt.(runtime.LogReader); ok {
		for _, l := range []string{"spawned daemon ", "spawned child "} {
			for _, svc := range []string{"daemon", "stubborn"} {
				if l == "spawned daemon " && svc == "stubborn" {
					continue
				}
				line := b.waitLine(t, svc, "stdout", l)
				pid, _ := strconv.Atoi(strings.TrimPrefix(line.Text, l))
				pids = append(pids, pid)
			}
		}
	}
	if left := s.h.Leftovers(t, rt, b.inst.ID); len(left) == 0 {
		t.Fatal("Leftovers reports nothing for a running sandbox: it cannot be trusted after Down")
	}
	var addrs []string
	for _, ports := range obs.Upstreams {
		for _, a := range ports {
			addrs = append(addrs, a)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), UpTimeout)
	defer cancel()
	p := &Recorder{}
	downStart := time.Now()
	if err := b.rt.Down(ctx, b.inst.ID, p); err != nil {
		t.Fatalf("Down: %v", err)
	}
	t.Logf("Down took %s", time.Since(downStart))
	if u := p.Unbalanced(); len(u) > 0 {
		t.Errorf("Down left stages open: %v", u)
	}
	if left := s.h.Leftovers(t, rt, b.inst.ID); len(left) > 0 {
		t.Errorf("Down left: %s", strings.Join(left, "; "))
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("grandchild %d survived Down", pid)
		}
	}
	for _, a := range addrs {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Down", a)
		}
	}
	if _, err := b.rt.Observe(ctx, b.inst.ID); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Observe after Down: %v, want ErrNotFound", err)
	}
	if err := b.rt.Down(ctx, b.inst.ID, &Recorder{}); err != nil {
		t.Errorf("second Down: %v", err)
	}
}

// alive reports whether pid runs (a zombie does not: nothing reaps orphans
// in some containers).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || (b[i+2] != 'Z' && b[i+2] != 'X')
}

func (s *suite) downUnknown(t *testing.T) {
	rt := s.h.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	p := &Recorder{}
	if err := rt.Down(ctx, sandbox.NewID(), p); err != nil {
		t.Errorf("Down of an unknown id: %v", err)
	}
	if _, err := rt.Observe(ctx, sandbox.NewID()); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Observe of an unknown id: %v, want ErrNotFound", err)
	}
}

func (s *suite) sandboxes(t *testing.T) {
	rt := s.h.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	ids, err := rt.Sandboxes(ctx)
	if err != nil || len(ids) != 0 {
		t.Fatalf("Sandboxes of a fresh runtime: %v, %v", ids, err)
	}
	b1 := s.newSandbox(t, rt, basicYAML, nil)
	b2 := s.newSandbox(t, rt, basicYAML, nil)
	b1.mustUp(t)
	b2.mustUp(t)
	ids, err = rt.Sandboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{b1.inst.ID, b2.inst.ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("Sandboxes = %v, want %v", ids, want)
	}
	if err := rt.Down(ctx, b1.inst.ID, &Recorder{}); err != nil {
		t.Fatal(err)
	}
	if ids, _ = rt.Sandboxes(ctx); !slices.Equal(ids, []string{b2.inst.ID}) {
		t.Errorf("Sandboxes after one Down = %v, want [%s]", ids, b2.inst.ID)
	}
}

func (s *suite) twoSandboxes(t *testing.T) {
	rt := s.h.New(t)
	b1 := s.newSandbox(t, rt, basicYAML, nil)
	b2 := s.newSandbox(t, rt, basicYAML, nil)
	var obs1, obs2 *runtime.Observation
	var wg sync.WaitGroup
	wg.Add(2)
	var err1, err2 error
	go func() { defer wg.Done(); obs1, err1 = b1.up(t, nil) }()
	go func() { defer wg.Done(); obs2, err2 = b2.up(t, nil) }()
	wg.Wait()
	if err1 != nil || err2 != nil {
		t.Fatalf("concurrent Ups: %v; %v", err1, err2)
	}
	used := map[string]string{}
	for i, obs := range []*runtime.Observation{obs1, obs2} {
		for svc, ports := range obs.Upstreams {
			for p, a := range ports {
				who := fmt.Sprintf("sandbox %d %s:%s", i+1, svc, p)
				if other, dup := used[a]; dup {
					t.Errorf("%s and %s share %s", who, other, a)
				}
				used[a] = who
			}
		}
	}
	var i1, i2 info
	getJSON(t, b1.upstream(t, obs1, "web", "http"), "/info", &i1)
	getJSON(t, b2.upstream(t, obs2, "web", "http"), "/info", &i2)
	if i1.Cwd == i2.Cwd {
		t.Errorf("both sandboxes' web run in %s", i1.Cwd)
	}
	// Deleting one leaves the other alone.
	ctx, cancel := context.WithTimeout(context.Background(), UpTimeout)
	defer cancel()
	if err := b1.rt.Down(ctx, b1.inst.ID, &Recorder{}); err != nil {
		t.Fatal(err)
	}
	var after info
	getJSON(t, b2.upstream(t, obs2, "web", "http"), "/info", &after)
	if after != i2 {
		t.Errorf("Down of one sandbox disturbed the other: %+v → %+v", i2, after)
	}
	if o := b2.observe(t); !o.Healthy {
		t.Errorf("the other sandbox is unhealthy after Down of the first: %+v", o)
	}
}

func (s *suite) changedTemplate(t *testing.T) {
	rt := s.h.New(t)
	srcs := map[string]string{}
	for _, v := range []string{"one", "two"} {
		dir := t.TempDir()
		if err := os.WriteFile(dir+"/input.txt", []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		srcs[v] = dir
	}
	const yaml = `
apiVersion: sandpit/v1
name: changing
source: {path: SOURCE}
services:
  web:
    build: cp input.txt built.txt
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}}
`
	const extra = `  extra:
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}}
`
	b := s.newSandbox(t, rt, strings.ReplaceAll(yaml, "SOURCE", srcs["one"])+extra, nil)
	obs1 := b.mustUp(t)
	ex := b.execer(t)
	if _, out, _ := ExecOutput(t, ex, b.inst.ID, "web", "", "cat", "built.txt"); out != "one\n" {
		t.Fatalf("built from %q, want one", out)
	}
	extraAddr := b.upstream(t, obs1, "extra", "http")

	// A new template version: another source, and no extra service.
	b.inst.Template = ParseTemplate(t, s.h.Testsvc, strings.ReplaceAll(yaml, "SOURCE", srcs["two"]), nil)
	b.inst.TemplateVersion = 2
	obs2 := b.mustUp(t)
	if _, out, _ := ExecOutput(t, ex, b.inst.ID, "web", "", "cat", "built.txt"); out != "two\n" {
		t.Errorf("after the source changed, built.txt = %q, want two (a new checkout is built again)", out)
	}
	if Service(t, obs1, "web").PID == Service(t, obs2, "web").PID {
		t.Errorf("web still runs in the old checkout: not restarted")
	}
	if len(obs2.Services) != 1 || obs2.Upstreams["extra"] != nil {
		t.Errorf("removed service still observed: %+v %v", obs2.Services, obs2.Upstreams)
	}
	if c, err := net.DialTimeout("tcp", extraAddr, time.Second); err == nil {
		c.Close()
		t.Errorf("removed service extra still listens on %s", extraAddr)
	}
}
