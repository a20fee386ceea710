package reconcile_test

import (
	"context"
	"testing"
	"time"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/testenv"
)

// TestFailRequestDuringLaunch: a fail request while the sandbox launches
// cancels the launch and marks it Failed with the reason, once; nothing
// relaunches it afterwards.
func TestFailRequestDuringLaunch(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	s.Apply(t, `apiVersion: sandpit/v1
name: slow
services:
  api:
    build: sleep 60
    run: exec sleep 100000
`)
	s.Create(t, "slow1", "slow")
	ctx := context.Background()
	if _, err := s.Client.WaitFor(ctx, "slow1", 10*time.Millisecond, func(sb *client.Sandbox) bool {
		for _, st := range sb.Status.Stages {
			if st.Name == "build/api" && st.State == sandbox.StageRunning {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := s.Client.FailSandbox(ctx, "slow1", "ci: not Ready after 1s", "1h"); err != nil {
		t.Fatal(err)
	}
	sb := s.WaitPhase(t, "slow1", sandbox.PhaseFailed)
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("failing took %s: the launch was not cancelled", took)
	}
	if sb.Status.Message != "ci: not Ready after 1s" || sb.Status.FailRequestHonored == nil || !sb.Status.FailRequestHonored.Equal(sb.Spec.FailRequested.At) {
		t.Errorf("status %q, honored %v, request %+v", sb.Status.Message, sb.Status.FailRequestHonored, sb.Spec.FailRequested)
	}
	if sb.Deadlines == nil || sb.Deadlines.DeleteAt == nil || !sb.Deadlines.DeleteAt.Equal(sb.Status.FailedAt.Add(time.Hour)) {
		t.Errorf("deadlines %+v", sb.Deadlines)
	}
	// Looked at again, it stays as it is.
	s.Reconciler.Enqueue(sb.ID)
	time.Sleep(300 * time.Millisecond)
	again := s.WaitPhase(t, "slow1", sandbox.PhaseFailed)
	if !again.Status.FailedAt.Equal(*sb.Status.FailedAt) || again.Status.Message != sb.Status.Message {
		t.Errorf("changed after another pass: %+v", again.Status)
	}
	for _, ev := range events(t, s, "slow1") {
		if ev.Reason == sandbox.ReasonPhaseChanged && ev.Message == "Failed → Provisioning" {
			t.Errorf("relaunched: %s", ev.Message)
		}
	}
}
