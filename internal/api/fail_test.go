package api_test

import (
	"context"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/lifecycle"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/testenv"
)

// TestFail covers POST /api/v1/sandboxes/{name}/fail: the sandbox becomes
// Failed as it is, with the keep time as its own keep_failed.
func TestFail(t *testing.T) {
	t.Parallel()
	s := testenv.StartWith(t, testenv.Options{Lifecycle: lifecycle.Policy{MaxPinsPerUser: 1}})
	s.Apply(t, idleTemplate)
	s.Create(t, "demo", "idle")
	ready := s.WaitPhase(t, "demo", sandbox.PhaseReady)
	fail := func(name string, body any) call {
		return call{method: "POST", path: "/api/v1/sandboxes/" + name + "/fail", body: body}
	}
	sc := s.Scrubber()
	runSteps(t, s, sc, "fail", []step{
		{"unknown_sandbox", fail("nope", map[string]string{"reason": "ci command exited 2"}), 404},
		{"bad_keep", fail("demo", map[string]string{"reason": "ci command exited 2", "keep": "tomorrow"}), 400},
		{"negative_keep", fail("demo", map[string]string{"reason": "x", "keep": "-1h"}), 400},
		{"unknown_field", fail("demo", map[string]string{"reasn": "x"}), 400},
		{"no_token", call{method: "POST", path: "/api/v1/sandboxes/demo/fail", body: map[string]string{}, auth: "-"}, 401},
	})
	r := do(t, s, fail("demo", map[string]string{"reason": "ci command exited 2", "keep": "24h"}))
	if r.status != 202 {
		t.Fatalf("fail = %d\n%s", r.status, r.body)
	}
	sb := s.WaitPhase(t, "demo", sandbox.PhaseFailed)
	if sb.Status.Message != "ci command exited 2" || sb.Spec.FailRequested == nil || sb.Spec.FailRequested.By != "admin" {
		t.Errorf("status %q, request %+v", sb.Status.Message, sb.Spec.FailRequested)
	}
	if sb.Lifecycle.KeepFailed.D() != 24*time.Hour || sb.Lifecycle.KeepFailedFrom != "sandbox" {
		t.Errorf("lifecycle %+v", sb.Lifecycle)
	}
	if sb.Deadlines == nil || sb.Deadlines.DeleteAt == nil || !sb.Deadlines.DeleteAt.Equal(sb.Status.FailedAt.Add(24*time.Hour)) {
		t.Errorf("deadlines %+v", sb.Deadlines)
	}
	// Nothing was stopped or relaunched.
	if sb.Status.LaunchKey != ready.Status.LaunchKey || !sb.Status.ReadyAt.Equal(*ready.Status.ReadyAt) {
		t.Errorf("relaunched: launch key %s → %s, ready at %v → %v", ready.Status.LaunchKey, sb.Status.LaunchKey, ready.Status.ReadyAt, sb.Status.ReadyAt)
	}
	for i, svc := range sb.Status.Services {
		if svc.State != sandbox.ServiceRunning || svc.PID != ready.Status.Services[i].PID {
			t.Errorf("service %s: %s pid %d, was pid %d", svc.Name, svc.State, svc.PID, ready.Status.Services[i].PID)
		}
	}
	// A pin (another spec change) leaves the failed sandbox as it is.
	if _, err := s.Client.PinSandbox(context.Background(), "demo"); err != nil {
		t.Fatal(err)
	}
	pinned := s.WaitPhase(t, "demo", sandbox.PhaseFailed)
	if !pinned.Status.FailedAt.Equal(*sb.Status.FailedAt) || pinned.Status.LaunchKey != sb.Status.LaunchKey {
		t.Errorf("the pin changed the failure: %+v", pinned.Status)
	}
	if _, err := s.Client.DeleteSandbox(context.Background(), "demo"); err != nil {
		t.Fatal(err)
	}
	s.WaitGone(t, "demo")
	runSteps(t, s, sc, "fail", []step{
		{"deleted_sandbox", fail("demo", map[string]string{"reason": "x"}), 404},
	})
}
