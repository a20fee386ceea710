package reconcile_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/runtime/local/proc"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/testenv"
)

// These tests drive the reconciler through a real stack: SQLite store,
// local runtime with real processes, API. Only TestTransientErrorsAreRetried
// wraps the runtime, to inject an error the real one cannot produce on cue.

func TestMain(m *testing.M) { testenv.Main(m) }

const twoServices = `apiVersion: sandpit/v1
name: pair
services:
  db-ish:
    init: echo initialised
    run: exec sleep 100000
  app:
    run: exec sleep 100000
    ports: [{name: http}]
    after: [db-ish]
endpoints:
  web:
    routes: [{path: /, to: "app:http"}]
`

func events(t *testing.T, s *testenv.Stack, name string) []client.Event {
	t.Helper()
	evs, err := s.Client.Events(context.Background(), name, 0)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestLaunchRecordsPhasesStagesAndTiming(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	s.Apply(t, twoServices)
	s.Create(t, "p1", "pair")
	sb := s.WaitPhase(t, "p1", sandbox.PhaseReady)

	var phases []string
	for _, ev := range events(t, s, "p1") {
		if ev.Reason == sandbox.ReasonPhaseChanged {
			phases = append(phases, ev.Message)
		}
	}
	if got, want := strings.Join(phases, "; "), "Pending → Provisioning; Provisioning → Ready"; got != want {
		t.Errorf("phase events = %q, want %q", got, want)
	}
	st := sb.Status
	if st.ObservedGeneration != sb.Generation || st.ReadyAt == nil {
		t.Errorf("observed generation %d (generation %d), ready_at %v", st.ObservedGeneration, sb.Generation, st.ReadyAt)
	}
	for _, stg := range st.Stages {
		if stg.State == sandbox.StageRunning || stg.State == sandbox.StageFailed {
			t.Errorf("stage %s is %s after Ready", stg.Name, stg.State)
		}
	}
	// app waited for db-ish: its start began after db-ish was ready.
	at := map[string]time.Time{}
	for _, stg := range st.Stages {
		at[stg.Name] = stg.StartedAt
		if stg.FinishedAt != nil {
			at[stg.Name+"$"] = *stg.FinishedAt
		}
	}
	if !at["start/app"].After(at["ready/db-ish$"]) && !at["start/app"].Equal(at["ready/db-ish$"]) {
		t.Errorf("app started at %v, before db-ish was ready at %v", at["start/app"], at["ready/db-ish$"])
	}
	tm := st.Timing
	if tm == nil {
		t.Fatal("no timing recorded")
	}
	if tm.ExternalMS < 0 || tm.ExternalMS > tm.TotalMS || math.Abs(tm.TotalMS-tm.ExternalMS-tm.OverheadMS) > 0.01 {
		t.Errorf("timing inconsistent: %+v", *tm)
	}
	if len(st.Endpoints) != 1 || st.Endpoints[0].URL != testenv.EndpointURL("p1", "web") || st.Endpoints[0].Routes[0].Upstream == "" {
		t.Errorf("endpoints = %+v", st.Endpoints)
	}
}

func TestPermanentFailureIsKeptForDebugging(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	s.Apply(t, `apiVersion: sandpit/v1
name: never-ready
services:
  ok:
    run: exec sleep 100000
  stuck:
    run: exec sleep 100000
    ready: {exec: {command: "false"}, timeout: 1s, interval: 100ms}
`)
	s.Create(t, "nr", "never-ready")
	sb := s.WaitPhase(t, "nr", sandbox.PhaseFailed)
	if !strings.Contains(sb.Status.Message, "did not become ready within 1s") {
		t.Errorf("message = %q", sb.Status.Message)
	}
	// The reconciler leaves a Failed sandbox alone: the service that did
	// start still runs, for logs and exec.
	procs, err := proc.Scan(s.Runtime.Node())
	if err != nil {
		t.Fatal(err)
	}
	running := map[string]bool{}
	for _, p := range procs {
		if p.Sandbox == sb.ID && p.Role == proc.RoleService {
			running[p.Unit] = true
		}
	}
	if !running["ok"] {
		t.Errorf("service ok is not kept running in the failed sandbox (running: %v)", running)
	}
	// A second pass, run here synchronously, changes nothing and retries
	// nothing.
	before := len(events(t, s, "nr"))
	res, err := s.Reconciler.Reconcile(context.Background(), sb.ID)
	if err != nil || res.RequeueAfter <= 0 {
		t.Errorf("Reconcile of a failed sandbox = %+v, %v; want a resync and no error", res, err)
	}
	for _, ev := range events(t, s, "nr")[before:] {
		if ev.Reason == sandbox.ReasonRetrying || ev.Reason == sandbox.ReasonStageStarted {
			t.Errorf("failed sandbox relaunched: %s %s", ev.Reason, ev.Message)
		}
	}
	if cur, err := s.Client.GetSandbox(context.Background(), "nr"); err != nil || cur.Status.Phase != sandbox.PhaseFailed {
		t.Errorf("after a second pass: %v, %v", cur.Status.Phase, err)
	}
}

// flaky fails Up the first n times with an error that is not permanent.
type flaky struct {
	runtime.Runtime
	left atomic.Int32
}

func (f *flaky) Up(ctx context.Context, inst *runtime.Instance, p runtime.Progress) (*runtime.Observation, error) {
	if f.left.Add(-1) >= 0 {
		return nil, errors.New("injected: the host is briefly out of file descriptors")
	}
	return f.Runtime.Up(ctx, inst, p)
}

func TestTransientErrorsAreRetried(t *testing.T) {
	t.Parallel()
	f := &flaky{}
	f.left.Store(2)
	s := testenv.StartWith(t, testenv.Options{WrapRuntime: func(rt runtime.Runtime) runtime.Runtime {
		f.Runtime = rt
		return f
	}})
	s.Apply(t, twoServices)
	s.Create(t, "fl", "pair")
	s.WaitPhase(t, "fl", sandbox.PhaseReady)
	var retries []string
	for _, ev := range events(t, s, "fl") {
		if ev.Reason == sandbox.ReasonRetrying {
			retries = append(retries, ev.Message)
		}
	}
	if len(retries) != 2 || !strings.Contains(retries[0], "attempt 1 failed") || !strings.Contains(retries[1], "attempt 2 failed") {
		t.Errorf("retry events = %q, want attempts 1 and 2", retries)
	}
}

func TestDeleteCancelsALaunchInProgress(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	s.Apply(t, `apiVersion: sandpit/v1
name: slow-build
services:
  app:
    build: sleep 600
    run: exec sleep 100000
`)
	sb := s.Create(t, "sb", "slow-build")
	testenv.Eventually(t, "the build to run", func() bool {
		procs, _ := proc.Scan(s.Runtime.Node())
		for _, p := range procs {
			if p.Sandbox == sb.ID && p.Role == proc.RoleTask {
				return true
			}
		}
		return false
	})
	if _, err := s.Client.DeleteSandbox(context.Background(), "sb"); err != nil {
		t.Fatal(err)
	}
	// The ten-minute build does not hold the deletion up: the wait is
	// bounded by testenv.WaitTimeout.
	s.WaitGone(t, "sb")
	procs, _ := proc.Scan(s.Runtime.Node())
	for _, p := range procs {
		if p.Sandbox == sb.ID {
			t.Errorf("process of the deleted sandbox survived: %+v", p)
		}
	}
}

func TestResourcesNoSandboxOwnsAreCollected(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	s.Apply(t, twoServices)
	s.Create(t, "orphan", "pair")
	sb := s.WaitPhase(t, "orphan", sandbox.PhaseReady)
	// The record vanishes (a restored older database, say) while its
	// processes, ports and directory remain.
	if err := s.Store.DeleteSandbox(context.Background(), sb.ID); err != nil {
		t.Fatal(err)
	}
	s.Reconciler.Enqueue(sb.ID)
	testenv.Eventually(t, "the runtime to let go of the orphan", func() bool {
		held, err := s.Runtime.Sandboxes(context.Background())
		if err != nil {
			return false
		}
		for _, id := range held {
			if id == sb.ID {
				return false
			}
		}
		return true
	})
}

func TestAReadySandboxWhoseServiceVanishedIsRestarted(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	s.Apply(t, twoServices)
	s.Create(t, "heal", "pair")
	sb := s.WaitPhase(t, "heal", sandbox.PhaseReady)
	oldPID := servicePID(sb, "app")
	// Kill app's shim and service outright, as a host reboot or an OOM
	// killer would: no status file records an orderly end.
	procs, _ := proc.Scan(s.Runtime.Node())
	for _, p := range procs {
		if p.Sandbox == sb.ID && p.Unit == "app" {
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
		}
	}
	s.Reconciler.Enqueue(sb.ID)
	var healed *client.Sandbox
	testenv.Eventually(t, "app to run again", func() bool {
		cur, err := s.Client.GetSandbox(context.Background(), "heal")
		if err != nil || cur.Status.Phase != sandbox.PhaseReady {
			return false
		}
		pid := servicePID(cur, "app")
		healed = cur
		return pid != 0 && pid != oldPID
	})
	found := false
	for _, ev := range events(t, s, "heal") {
		found = found || strings.Contains(ev.Message, "supervisor is gone")
	}
	if !found {
		t.Errorf("no event says why the sandbox was relaunched")
	}
	if servicePID(healed, "db-ish") != servicePID(sb, "db-ish") {
		t.Errorf("db-ish was restarted too (pid %d → %d); only what vanished should be", servicePID(sb, "db-ish"), servicePID(healed, "db-ish"))
	}
}

func servicePID(sb *client.Sandbox, name string) int {
	for _, s := range sb.Status.Services {
		if s.Name == name {
			return s.PID
		}
	}
	return 0
}
