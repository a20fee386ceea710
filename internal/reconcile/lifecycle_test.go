package reconcile_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/lifecycle"
	"sandpit.dev/sandpit/internal/runtime/local/proc"
	"sandpit.dev/sandpit/internal/runtime/runtimetest"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/testenv"
)

// These tests drive every lifecycle transition through a real stack (real
// processes, real SQLite, the real endpoint proxy) with a controlled clock:
// the test moves time, then asks the reconciler to look, exactly as the
// deadline timers would.

var (
	testsvcOnce sync.Once
	testsvcPath string
	testsvcErr  error
)

// testsvc builds the test service once per test binary, where the service
// user can run it.
func testsvc(t *testing.T) string {
	t.Helper()
	testsvcOnce.Do(func() {
		// Earlier runs' copies (a test binary cannot remove its own when
		// it exits): anything older than an hour is no longer in use.
		old, _ := filepath.Glob("/var/tmp/sandpit-testsvc-*")
		for _, d := range old {
			if fi, err := os.Stat(d); err == nil && time.Since(fi.ModTime()) > time.Hour {
				os.RemoveAll(d)
			}
		}
		dir, err := os.MkdirTemp("/var/tmp", "sandpit-testsvc-")
		if err != nil {
			testsvcErr = err
			return
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			testsvcErr = err
			return
		}
		testsvcPath, testsvcErr = runtimetest.BuildTestsvc(dir)
	})
	if testsvcErr != nil {
		t.Fatal(testsvcErr)
	}
	return testsvcPath
}

// webTemplate is one HTTP service answering /env with its environment.
func webTemplate(t *testing.T, name, lifecycleYAML string) string {
	return fmt.Sprintf(`apiVersion: sandpit/v1
name: %s
services:
  web:
    run: exec %s http
    env: {PORT: "${ports.http}", WHO: "${sandbox.name}"}
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}, interval: 50ms}
endpoints:
  app:
    routes: [{path: /, to: "web:http"}]
%s`, name, testsvc(t), lifecycleYAML)
}

// lifecycleStack starts a stack whose clock stands still at the current
// time (the store stamps creation with the real clock, so the controlled
// one starts there) until the test moves it.
func lifecycleStack(t *testing.T, policy lifecycle.Policy) (*testenv.Stack, *testenv.Clock) {
	clock := testenv.NewClock(time.Now().UTC().Truncate(time.Second))
	s := testenv.StartWith(t, testenv.Options{Now: clock.Now, Lifecycle: policy, Proxy: true})
	return s, clock
}

// look asks the reconciler to look at a sandbox now (as its deadline timer
// would once the clock passed it).
func look(t *testing.T, s *testenv.Stack, name string) {
	t.Helper()
	sb, err := s.Store.GetSandboxByName(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	s.Reconciler.Enqueue(sb.ID)
}

// settle waits until the reconciler has looked at the sandbox after the
// last change: a no-op pass leaves no trace, so it waits for the queue to
// drain and the state to stay put.
func settle(t *testing.T, s *testenv.Stack, name string, phase sandbox.Phase) *client.Sandbox {
	t.Helper()
	var sb *client.Sandbox
	for range 3 {
		time.Sleep(50 * time.Millisecond)
		sb = s.WaitPhase(t, name, phase)
	}
	return sb
}

// get fetches through the proxy: "<endpoint>--<sandbox>.localhost".
func get(t *testing.T, s *testenv.Stack, name, path string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+s.ProxyAddr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "app--" + name + ".localhost"
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s via the proxy: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// processesOf lists the live processes of a sandbox.
func processesOf(t *testing.T, s *testenv.Stack, name string) []proc.Process {
	t.Helper()
	sb, err := s.Store.GetSandboxByName(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	all, err := proc.Scan(s.Runtime.Node())
	if err != nil {
		t.Fatal(err)
	}
	var out []proc.Process
	for _, p := range all {
		if p.Sandbox == sb.ID {
			out = append(out, p)
		}
	}
	return out
}

func countEvents(t *testing.T, s *testenv.Stack, name, reason string) int {
	t.Helper()
	n := 0
	for _, ev := range events(t, s, name) {
		if ev.Reason == reason {
			n++
		}
	}
	return n
}

func TestIdleSuspendThenWakeOnRequest(t *testing.T) {
	t.Parallel()
	s, clock := lifecycleStack(t, lifecycle.Policy{})
	t0 := clock.Now()
	s.Apply(t, webTemplate(t, "idle", "lifecycle: {idle_suspend: 10m}\n"))
	s.Create(t, "nap", "idle")
	sb := s.WaitPhase(t, "nap", sandbox.PhaseReady)
	if sb.Deadlines == nil || sb.Deadlines.SuspendAt == nil || !sb.Deadlines.SuspendAt.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("deadlines = %+v, want suspend_at %v", sb.Deadlines, t0.Add(10*time.Minute))
	}
	if sb.Lifecycle == nil || sb.Lifecycle.IdleSuspend.D() != 10*time.Minute || sb.Lifecycle.IdleSuspendFrom != lifecycle.FromTemplate {
		t.Fatalf("lifecycle = %+v, want idle_suspend 10m from the template", sb.Lifecycle)
	}

	// 9 minutes without activity: still running.
	clock.Advance(9 * time.Minute)
	look(t, s, "nap")
	settle(t, s, "nap", sandbox.PhaseReady)

	// A request is activity: the countdown starts again from it.
	if code, _ := get(t, s, "nap", "/healthz", nil); code != 200 {
		t.Fatalf("GET /healthz = %d", code)
	}
	clock.Advance(9 * time.Minute) // 18m after Ready, 9m after the request
	look(t, s, "nap")
	sb = settle(t, s, "nap", sandbox.PhaseReady)
	if sb.LastActivityAt == nil || !sb.LastActivityAt.Equal(t0.Add(9*time.Minute)) {
		t.Errorf("last_activity_at = %v, want %v", sb.LastActivityAt, t0.Add(9*time.Minute))
	}

	// 10 minutes after the request: suspended, no process left, ports free.
	clock.Advance(time.Minute)
	look(t, s, "nap")
	sb = s.WaitPhase(t, "nap", sandbox.PhaseSuspended)
	if !strings.Contains(sb.Status.SuspendReason, "idle for 10m") {
		t.Errorf("suspend reason = %q, want it to say idle for 10m", sb.Status.SuspendReason)
	}
	if ps := processesOf(t, s, "nap"); len(ps) != 0 {
		t.Fatalf("a suspended sandbox still has processes: %+v", ps)
	}
	port := sb.Status.Endpoints[0].Routes[0].Upstream
	if c, err := net.DialTimeout("tcp", port, time.Second); err == nil {
		c.Close()
		t.Errorf("something still listens on the suspended service's port %s", port)
	}

	// A request wakes it, is held, and is served by the woken service.
	clock.Advance(time.Hour)
	code, body := get(t, s, "nap", "/env", nil)
	if code != 200 || !strings.Contains(body, `"WHO":"nap"`) {
		t.Fatalf("request to the suspended sandbox = %d %q, want 200 from the woken service", code, body)
	}
	sb = s.WaitPhase(t, "nap", sandbox.PhaseReady)
	// (The clock stands still while it resumes, so took_ms is 0 here.)
	if sb.Status.Resume == nil || !sb.Status.Resume.StartedAt.Equal(t0.Add(79*time.Minute)) {
		t.Errorf("status.resume = %+v, want the resume's start", sb.Status.Resume)
	}
	if n := countEvents(t, s, "nap", sandbox.ReasonResuming); n != 1 {
		t.Errorf("%d Resuming events, want 1", n)
	}
	// Woken (at 79m), it gets a full idle period again.
	if sb.Deadlines == nil || sb.Deadlines.SuspendAt == nil || !sb.Deadlines.SuspendAt.Equal(t0.Add(89*time.Minute)) {
		t.Errorf("after waking, suspend_at = %+v, want %v", sb.Deadlines, t0.Add(89*time.Minute))
	}
}

// TestRealClockSuspendAndWake lets real time pass: the idle deadline fires
// by itself, the suspended sandbox holds no process, and the request that
// wakes it is the one served.
func TestRealClockSuspendAndWake(t *testing.T) {
	t.Parallel()
	s := testenv.StartWith(t, testenv.Options{Proxy: true})
	s.Apply(t, webTemplate(t, "realtime", "lifecycle: {idle_suspend: 1s}\n"))
	s.Create(t, "rt", "realtime")
	s.WaitPhase(t, "rt", sandbox.PhaseReady)
	s.WaitPhase(t, "rt", sandbox.PhaseSuspended)
	if ps := processesOf(t, s, "rt"); len(ps) != 0 {
		t.Fatalf("a suspended sandbox still has processes: %+v", ps)
	}
	code, body := get(t, s, "rt", "/print?stream=stdout&text=the-original-request", nil)
	if code != 200 {
		t.Fatalf("the waking request got %d %q", code, body)
	}
	var printed bool
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.Client.Logs(ctx, "rt", client.LogOptions{Service: "web"}, func(l client.LogLine) error {
		printed = printed || l.Text == "the-original-request"
		return nil
	})
	if !printed {
		t.Error("the woken service did not serve the original request")
	}
}

func TestFiftyConcurrentRequestsWakeOnce(t *testing.T) {
	t.Parallel()
	s, clock := lifecycleStack(t, lifecycle.Policy{})
	s.Apply(t, webTemplate(t, "crowd", "lifecycle: {idle_suspend: 5m}\n"))
	s.Create(t, "busy", "crowd")
	s.WaitPhase(t, "busy", sandbox.PhaseReady)
	clock.Advance(6 * time.Minute)
	look(t, s, "busy")
	s.WaitPhase(t, "busy", sandbox.PhaseSuspended)

	const n = 50
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := fmt.Sprintf("/print?stream=stdout&text=req-%d", i)
			req, _ := http.NewRequest("GET", "http://"+s.ProxyAddr+path, nil)
			req.Host = "app--busy.localhost"
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				b, _ := io.ReadAll(resp.Body)
				errs <- fmt.Sprintf("request %d: %d %s", i, resp.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	s.WaitPhase(t, "busy", sandbox.PhaseReady)
	if got := countEvents(t, s, "busy", sandbox.ReasonResuming); got != 1 {
		t.Errorf("%d Resuming events for %d concurrent requests, want exactly 1", got, n)
	}
	woken := 0
	for _, ev := range events(t, s, "busy") {
		if ev.Reason == sandbox.ReasonLifecycle && strings.HasPrefix(ev.Message, "woken by a request") {
			woken++
		}
	}
	if woken != 1 {
		t.Errorf("%d wake events, want exactly 1", woken)
	}
	// Every request reached the service: each printed its own line.
	var seen []string
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.Client.Logs(ctx, "busy", client.LogOptions{Service: "web"}, func(l client.LogLine) error {
		if strings.HasPrefix(l.Text, "req-") {
			seen = append(seen, l.Text)
		}
		return nil
	})
	if len(seen) != n {
		t.Errorf("the service printed %d of the %d requests' lines", len(seen), n)
	}
}

func TestSuspendAndResumeByHand(t *testing.T) {
	t.Parallel()
	s, clock := lifecycleStack(t, lifecycle.Policy{})
	s.Apply(t, webTemplate(t, "manual", ""))
	s.Create(t, "hand", "manual")
	s.WaitPhase(t, "hand", sandbox.PhaseReady)
	ctx := context.Background()

	if _, err := s.Client.SuspendSandbox(ctx, "hand"); err != nil {
		t.Fatal(err)
	}
	sb := s.WaitPhase(t, "hand", sandbox.PhaseSuspended)
	if !strings.Contains(sb.Status.SuspendReason, "suspend requested by admin") {
		t.Errorf("suspend reason = %q", sb.Status.SuspendReason)
	}
	if ps := processesOf(t, s, "hand"); len(ps) != 0 {
		t.Fatalf("processes left after suspend: %+v", ps)
	}
	// Time passing does not wake it, and neither does exec.
	clock.Advance(24 * time.Hour)
	look(t, s, "hand")
	settle(t, s, "hand", sandbox.PhaseSuspended)
	_, err := s.Client.Exec(ctx, "hand", client.ExecRequest{Service: "web", Command: []string{"true"}}, client.ExecIO{Stdout: io.Discard, Stderr: io.Discard})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != "suspended" {
		t.Errorf("exec in a suspended sandbox = %v, want a 'suspended' error", err)
	}

	if _, err := s.Client.ResumeSandbox(ctx, "hand"); err != nil {
		t.Fatal(err)
	}
	sb = s.WaitPhase(t, "hand", sandbox.PhaseReady)
	if sb.Spec.SuspendRequestedAt != nil {
		t.Errorf("suspend request still set after resume")
	}
	if code, body := get(t, s, "hand", "/env", nil); code != 200 || !strings.Contains(body, `"WHO":"hand"`) {
		t.Errorf("after resume: %d %q", code, body)
	}
}

func TestTTLExtendAndPin(t *testing.T) {
	t.Parallel()
	s, clock := lifecycleStack(t, lifecycle.Policy{MaxPinsPerUser: 1})
	t0 := clock.Now()
	s.Apply(t, webTemplate(t, "shortlived", "lifecycle: {ttl: 1h}\n"))
	s.Create(t, "brief", "shortlived")
	sb := s.WaitPhase(t, "brief", sandbox.PhaseReady)
	if sb.Deadlines == nil || sb.Deadlines.ExpiresAt == nil || !sb.Deadlines.ExpiresAt.Equal(sb.CreatedAt.Add(time.Hour)) {
		t.Fatalf("expires_at = %+v, want created_at + 1h", sb.Deadlines)
	}
	ctx := context.Background()

	// Extend at 30m by 2h: the deadline becomes 2h30m after creation.
	clock.Advance(30 * time.Minute)
	sb, err := s.Client.ExtendSandbox(ctx, "brief", "2h")
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(150 * time.Minute); sb.Deadlines == nil || sb.Deadlines.ExpiresAt == nil || !sb.Deadlines.ExpiresAt.Equal(want) {
		t.Fatalf("after extend, expires_at = %+v, want %v", sb.Deadlines, want)
	}
	clock.Advance(time.Hour) // past the original TTL
	look(t, s, "brief")
	settle(t, s, "brief", sandbox.PhaseReady)

	// Pinned: past the extended deadline it stays.
	if _, err := s.Client.PinSandbox(ctx, "brief"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(5 * time.Hour)
	look(t, s, "brief")
	sb = settle(t, s, "brief", sandbox.PhaseReady)
	if sb.Spec.Pin == nil || sb.Spec.Pin.By != "admin" {
		t.Errorf("pin = %+v", sb.Spec.Pin)
	}
	// A pin changes nothing the sandbox runs: no relaunch.
	if n := countEvents(t, s, "brief", sandbox.ReasonStageStarted); n == 0 {
		t.Fatal("no stage events at all")
	}
	phases := 0
	for _, ev := range events(t, s, "brief") {
		if ev.Reason == sandbox.ReasonPhaseChanged {
			phases++
		}
	}
	if phases != 2 {
		t.Errorf("%d phase changes, want 2 (Pending → Provisioning → Ready): pin, extend and look must not relaunch", phases)
	}

	// The pin limit is per user.
	s.Create(t, "other", "shortlived")
	s.WaitPhase(t, "other", sandbox.PhaseReady)
	_, err = s.Client.PinSandbox(ctx, "other")
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != "quota_exceeded" || !strings.Contains(ce.Message, "pins") || !strings.Contains(ce.Message, "brief") {
		t.Errorf("second pin = %v, want quota_exceeded naming the pins limit and brief", err)
	}

	// Unpinned, it goes: the extended deadline passed long ago.
	if _, err := s.Client.UnpinSandbox(ctx, "brief"); err != nil {
		t.Fatal(err)
	}
	s.WaitGone(t, "brief")
	// "other" was created 6h30m after t0 with a 1h TTL.
	clock.Advance(59 * time.Minute)
	look(t, s, "other")
	settle(t, s, "other", sandbox.PhaseReady)
	clock.Advance(time.Minute)
	look(t, s, "other")
	s.WaitGone(t, "other")

	// extend without a TTL is refused.
	s.Apply(t, webTemplate(t, "forever", ""))
	s.Create(t, "keeps", "forever")
	_, err = s.Client.ExtendSandbox(ctx, "keeps", "1h")
	if !errors.As(err, &ce) || ce.Status != http.StatusConflict || !strings.Contains(ce.Message, "no TTL") {
		t.Errorf("extend without a TTL = %v, want a conflict saying there is no TTL", err)
	}
}

func TestKeepFailedThenDeleted(t *testing.T) {
	t.Parallel()
	s, clock := lifecycleStack(t, lifecycle.Policy{KeepFailed: 72 * time.Hour, MaxPinsPerUser: 1})
	s.Apply(t, `apiVersion: sandpit/v1
name: broken
services:
  web:
    build: echo compiling; exit 3
    run: exec sleep 1000
lifecycle: {keep_failed: 1h}
`)
	s.Create(t, "oops", "broken")
	sb := s.WaitPhase(t, "oops", sandbox.PhaseFailed)
	if sb.Lifecycle == nil || sb.Lifecycle.KeepFailed.D() != time.Hour || sb.Lifecycle.KeepFailedFrom != lifecycle.FromTemplate {
		t.Errorf("lifecycle = %+v, want keep_failed 1h from the template", sb.Lifecycle)
	}
	if sb.Deadlines == nil || sb.Deadlines.DeleteAt == nil || !sb.Deadlines.DeleteAt.Equal(sb.Status.FailedAt.Add(time.Hour)) {
		t.Errorf("delete_at = %+v, want failed_at + 1h", sb.Deadlines)
	}
	// Pinning (a lifecycle change) does not relaunch a failed sandbox;
	// pinned, it outlives keep_failed.
	stages := countEvents(t, s, "oops", sandbox.ReasonStageStarted)
	if _, err := s.Client.PinSandbox(context.Background(), "oops"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	look(t, s, "oops")
	settle(t, s, "oops", sandbox.PhaseFailed)
	if n := countEvents(t, s, "oops", sandbox.ReasonStageStarted); n != stages {
		t.Errorf("pinning the failed sandbox relaunched it (%d stage events, was %d)", n, stages)
	}
	if _, err := s.Client.UnpinSandbox(context.Background(), "oops"); err != nil {
		t.Fatal(err)
	}
	s.WaitGone(t, "oops") // 2h after failing, past keep_failed
}

func TestKeepFailedDeadline(t *testing.T) {
	t.Parallel()
	s, clock := lifecycleStack(t, lifecycle.Policy{})
	s.Apply(t, `apiVersion: sandpit/v1
name: broken
services:
  web:
    build: exit 3
    run: exec sleep 1000
lifecycle: {keep_failed: 1h}
`)
	s.Create(t, "oops", "broken")
	s.WaitPhase(t, "oops", sandbox.PhaseFailed)
	clock.Advance(59 * time.Minute)
	look(t, s, "oops")
	settle(t, s, "oops", sandbox.PhaseFailed)
	clock.Advance(time.Minute)
	look(t, s, "oops")
	s.WaitGone(t, "oops")
}

func TestSuspendedPastRetentionIsDeleted(t *testing.T) {
	t.Parallel()
	s, clock := lifecycleStack(t, lifecycle.Policy{SuspendedRetention: 24 * time.Hour})
	s.Apply(t, webTemplate(t, "sleepy", ""))
	s.Create(t, "zz", "sleepy")
	s.WaitPhase(t, "zz", sandbox.PhaseReady)
	if _, err := s.Client.SuspendSandbox(context.Background(), "zz"); err != nil {
		t.Fatal(err)
	}
	sb := s.WaitPhase(t, "zz", sandbox.PhaseSuspended)
	if sb.Deadlines == nil || sb.Deadlines.DeleteAt == nil || !sb.Deadlines.DeleteAt.Equal(sb.Status.SuspendedAt.Add(24*time.Hour)) {
		t.Errorf("delete_at = %+v, want suspended_at + 24h", sb.Deadlines)
	}
	clock.Advance(23 * time.Hour)
	look(t, s, "zz")
	settle(t, s, "zz", sandbox.PhaseSuspended)
	clock.Advance(time.Hour)
	look(t, s, "zz")
	s.WaitGone(t, "zz")
}

func TestQuotas(t *testing.T) {
	t.Parallel()
	s, _ := lifecycleStack(t, lifecycle.Policy{MaxSandboxesPerUser: 2, MaxRunningPerUser: 1})
	s.Apply(t, webTemplate(t, "q", ""))
	ctx := context.Background()
	s.Create(t, "one", "q")
	s.WaitPhase(t, "one", sandbox.PhaseReady)

	// Running limit: a second running sandbox is refused, naming the limit
	// and how to make room.
	_, err := s.Client.CreateSandbox(ctx, client.CreateSandboxRequest{Name: "two", Template: "q"})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusForbidden || ce.Code != "quota_exceeded" ||
		!strings.Contains(ce.Message, "running sandboxes") || !strings.Contains(ce.Message, "limit per user is 1") || !strings.Contains(ce.Message, "one") ||
		!strings.Contains(ce.Hint, "sandpit suspend") {
		t.Fatalf("second running sandbox = %v (hint %q), want quota_exceeded naming the running limit", err, hintOf(err))
	}
	// Suspending the first makes room.
	if _, err := s.Client.SuspendSandbox(ctx, "one"); err != nil {
		t.Fatal(err)
	}
	s.WaitPhase(t, "one", sandbox.PhaseSuspended)
	s.Create(t, "two", "q")
	s.WaitPhase(t, "two", sandbox.PhaseReady)

	// Waking the first would make two running: refused, by hand and on
	// request, and it stays suspended.
	_, err = s.Client.ResumeSandbox(ctx, "one")
	if !errors.As(err, &ce) || ce.Code != "quota_exceeded" {
		t.Errorf("resume over the running limit = %v, want quota_exceeded", err)
	}
	code, body := get(t, s, "one", "/healthz", nil)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "limit per user is 1") {
		t.Errorf("request waking over the limit = %d %q, want 503 naming the limit", code, body)
	}
	settle(t, s, "one", sandbox.PhaseSuspended)

	// Sandbox limit: two exist (one suspended).
	if _, err := s.Client.SuspendSandbox(ctx, "two"); err != nil {
		t.Fatal(err)
	}
	s.WaitPhase(t, "two", sandbox.PhaseSuspended)
	_, err = s.Client.CreateSandbox(ctx, client.CreateSandboxRequest{Name: "three", Template: "q"})
	if !errors.As(err, &ce) || ce.Code != "quota_exceeded" || !strings.Contains(ce.Message, "2 sandboxes") || !strings.Contains(ce.Hint, "sandpit delete") {
		t.Errorf("third sandbox = %v, want quota_exceeded naming the sandbox limit", err)
	}
}

func hintOf(err error) string {
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce.Hint
	}
	return ""
}

func TestPoolClaimAndRefill(t *testing.T) {
	t.Parallel()
	s, _ := lifecycleStack(t, lifecycle.Policy{})
	src := t.TempDir()
	if err := os.Chmod(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "build.sh"), []byte("echo built > built.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Apply(t, fmt.Sprintf(`apiVersion: sandpit/v1
name: warm
source: {path: %s}
services:
  web:
    build: sh build.sh
    run: exec %s http
    env: {PORT: "${ports.http}", WHO: "${sandbox.name}"}
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}, interval: 50ms}
  side:
    run: exec sleep 100000
endpoints:
  app:
    routes: [{path: /, to: "web:http"}]
lifecycle: {pool: {min: 1}}
`, src, testsvc(t)))
	ctx := context.Background()
	pool := waitPool(t, s, "warm", 1)
	poolName, poolID := pool[0].Name, pool[0].ID

	sb, err := s.Client.CreateSandbox(ctx, client.CreateSandboxRequest{Name: "mine", Template: "warm"})
	if err != nil {
		t.Fatal(err)
	}
	if sb.ID != poolID || sb.Spec.ClaimedAt == nil || sb.Spec.Pool != "" || sb.Spec.CreatedBy != "admin" {
		t.Fatalf("create did not claim the pool's sandbox %s (%s): got id %s, claimed_at %v, pool %q", poolName, poolID, sb.ID, sb.Spec.ClaimedAt, sb.Spec.Pool)
	}
	if sb = s.WaitPhase(t, "mine", sandbox.PhaseReady); sb.ID != poolID {
		t.Fatalf("mine is %s, want the claimed %s", sb.ID, poolID)
	}
	// Renamed in place: its services know their new name, and nothing was
	// rebuilt.
	if code, body := get(t, s, "mine", "/env", nil); code != 200 || !strings.Contains(body, `"WHO":"mine"`) {
		t.Errorf("claimed sandbox serves %d %q, want its new name", code, body)
	}
	if code, _ := get(t, s, poolName, "/healthz", nil); code != http.StatusNotFound {
		t.Errorf("the pool name still routes (%d) after the claim", code)
	}
	builds := 0
	for _, ev := range events(t, s, "mine") {
		if ev.Reason == sandbox.ReasonStageStarted && ev.Stage == "build/web" {
			builds++
		}
	}
	if builds != 1 {
		t.Errorf("web was built %d times, want once (the claim must reuse the pool's build)", builds)
	}
	if n := countEvents(t, s, "mine", sandbox.ReasonClaimed); n != 1 {
		t.Errorf("%d Claimed events, want 1", n)
	}

	// The pool refills in the background.
	refill := waitPool(t, s, "warm", 1)
	if refill[0].ID == poolID {
		t.Fatal("the pool still lists the claimed sandbox")
	}

	// Overrides that reach a build cannot use the pool: a fresh launch.
	fresh, err := s.Client.CreateSandbox(ctx, client.CreateSandboxRequest{Name: "custom", Template: "warm", Set: map[string]string{"services.web.env.MODE": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Spec.ClaimedAt != nil || fresh.ID == refill[0].ID {
		t.Errorf("a create with build-changing overrides claimed a pool sandbox")
	}
	// Overrides for a service without a build do.
	side, err := s.Client.CreateSandbox(ctx, client.CreateSandboxRequest{Name: "side", Template: "warm", Set: map[string]string{"services.side.env.MODE": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if side.Spec.ClaimedAt == nil || side.ID != refill[0].ID {
		t.Errorf("a create whose overrides reach no build did not claim the pool sandbox")
	}
	s.WaitPhase(t, "custom", sandbox.PhaseReady)
	s.WaitPhase(t, "side", sandbox.PhaseReady)
	waitPool(t, s, "warm", 1)
}

// waitPool waits until the template's pool has n Ready sandboxes and returns
// them.
func waitPool(t *testing.T, s *testenv.Stack, tmpl string, n int) []*sandbox.Sandbox {
	t.Helper()
	var ready []*sandbox.Sandbox
	testenv.Eventually(t, fmt.Sprintf("%d ready sandboxes in the pool of %s", n, tmpl), func() bool {
		sbs, err := s.Client.ListSandboxes(context.Background(), client.ListOptions{Template: tmpl})
		if err != nil {
			return false
		}
		ready = ready[:0]
		for i := range sbs {
			if sbs[i].Spec.Pool == tmpl && sbs[i].Status.Phase == sandbox.PhaseReady {
				ready = append(ready, &sbs[i])
			}
		}
		return len(ready) == n
	})
	return ready
}

// A pool that sleeps: its sandbox is suspended once ready, a request to it
// does not wake it (it is nobody's yet), and a claim wakes it under its new
// name.
func TestSleepingPoolClaimWakes(t *testing.T) {
	t.Parallel()
	s, _ := lifecycleStack(t, lifecycle.Policy{})
	s.Apply(t, webTemplate(t, "dozing", "lifecycle: {pool: {min: 1, suspend: true}}\n"))
	var member *sandbox.Sandbox
	testenv.Eventually(t, "a suspended pool sandbox", func() bool {
		sbs, err := s.Client.ListSandboxes(context.Background(), client.ListOptions{Template: "dozing"})
		if err != nil || len(sbs) != 1 || sbs[0].Status.Phase != sandbox.PhaseSuspended {
			return false
		}
		member = &sbs[0]
		return true
	})
	if ps := processesOf(t, s, member.Name); len(ps) != 0 {
		t.Fatalf("the sleeping pool sandbox has processes: %+v", ps)
	}
	code, body := get(t, s, member.Name, "/healthz", nil)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "warm pool") {
		t.Errorf("request to a sleeping pool sandbox = %d %q, want 503 saying it waits in the pool", code, body)
	}
	settle(t, s, member.Name, sandbox.PhaseSuspended)

	sb, err := s.Client.CreateSandbox(context.Background(), client.CreateSandboxRequest{Name: "awake", Template: "dozing"})
	if err != nil {
		t.Fatal(err)
	}
	if sb.ID != member.ID {
		t.Fatalf("create launched %s instead of claiming the sleeping %s", sb.ID, member.ID)
	}
	s.WaitPhase(t, "awake", sandbox.PhaseReady)
	if code, body := get(t, s, "awake", "/env", nil); code != 200 || !strings.Contains(body, `"WHO":"awake"`) {
		t.Errorf("claimed sandbox serves %d %q", code, body)
	}
	testenv.Eventually(t, "the pool refilled and asleep", func() bool {
		sbs, err := s.Client.ListSandboxes(context.Background(), client.ListOptions{Template: "dozing"})
		if err != nil {
			return false
		}
		for _, x := range sbs {
			if x.Spec.Pool == "dozing" && x.Status.Phase == sandbox.PhaseSuspended {
				return true
			}
		}
		return false
	})
}
