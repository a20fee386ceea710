package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/lifecycle"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/testenv"
)

// TestLifecycleCommands covers suspend, resume, extend, pin and unpin, the
// lifecycle flags of create, and how get and list show the lifecycle, on
// a real stack: real processes are stopped and started again.
func TestLifecycleCommands(t *testing.T) {
	t.Parallel()
	s := testenv.StartWith(t, testenv.Options{Lifecycle: lifecycle.Policy{MaxPinsPerUser: 1, MaxSandboxesPerUser: 2}})
	applyAll(t, s, "shop.yaml")
	e := stackEnv(s)
	sc := scrubber(s)
	run := func(name string, want int, args ...string) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			expect(t, "lifecycle/"+name, sc, want, e.sandpit(t, args...))
		})
	}
	runWith := func(name string, want int, fix func(t *testing.T, r *result), args ...string) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			r := e.sandpit(t, args...)
			fix(t, &r)
			expect(t, "lifecycle/"+name, sc, want, r)
		})
	}
	describe := func(t *testing.T, r *result) { r.stdout = sortSection(sc.String(collapse(r.stdout)), "Stages:") }
	normalizeJSON := func(t *testing.T, r *result) {
		out, err := sc.JSON([]byte(r.stdout))
		if err != nil {
			t.Fatal(err)
		}
		r.stdout = string(out)
	}
	dropRacyStderr := func(t *testing.T, r *result) { r.stderr = dropRacy(t, r.stderr) }

	// A sandbox with its own TTL and idle suspend, and one with neither.
	runWith("create_ttl", 0, dropRacyStderr, "create", "temp", "-t", "shop", "--ttl", "2h", "--idle-suspend", "30m", "--wait")
	runWith("get_ttl", 0, describe, "get", "temp")
	runWith("create_keep", 0, dropRacyStderr, "create", "keep", "-t", "shop", "--keep-failed", "0", "--wait")
	runWith("get_no_ttl", 0, describe, "get", "keep")
	run("list", 0, "list")
	// The server allows two sandboxes per user.
	run("create_quota", 1, "create", "third", "-t", "shop")

	run("extend", 0, "extend", "temp", "24h")
	// The answer carries the status as it is: let the reconciler see the
	// last change first.
	settled(t, s, "temp")
	runWith("extend_json", 0, normalizeJSON, "extend", "temp", "25h", "-o", "json")
	run("extend_no_ttl", 1, "extend", "keep", "24h")
	run("extend_unknown", 1, "extend", "nope", "24h")

	run("pin", 0, "pin", "temp")
	run("pin_again", 0, "pin", "temp")
	// The server allows one pin per user.
	run("pin_quota", 1, "pin", "keep")
	runWith("get_pinned", 0, describe, "get", "temp")
	run("list_pinned", 0, "list")
	run("extend_pinned", 0, "extend", "temp", "24h")
	run("unpin", 0, "unpin", "temp")
	run("unpin_no_plans", 0, "unpin", "keep")

	run("resume_not_suspended", 0, "resume", "keep")
	run("suspend_wait", 0, "suspend", "keep", "--wait")
	t.Run("suspended_processes", func(t *testing.T) {
		sb, err := s.Client.GetSandbox(t.Context(), "keep")
		if err != nil {
			t.Fatal(err)
		}
		for _, svc := range sb.Status.Services {
			if svc.PID != 0 || svc.State == sandbox.ServiceRunning {
				t.Errorf("service %s of a suspended sandbox: %s, pid %d", svc.Name, svc.State, svc.PID)
			}
		}
	})
	runWith("get_suspended", 0, describe, "get", "keep")
	run("list_suspended", 0, "list", "--phase", "Suspended")
	run("suspend_again", 0, "suspend", "keep")
	runWith("resume_wait", 0, dropRacyStderr, "resume", "keep", "--wait")
	runWith("get_resumed", 0, describe, "get", "keep")
	run("resume_wait_not_suspended", 0, "resume", "keep", "--wait")
	run("suspend", 0, "suspend", "temp")
	s.WaitPhase(t, "temp", sandbox.PhaseSuspended)
	run("resume", 0, "resume", "temp")
	s.WaitPhase(t, "temp", sandbox.PhaseReady)
	run("suspend_unknown", 1, "suspend", "nope")
	run("resume_unknown", 1, "resume", "nope")
}

// TestLifecycleResumeTTY resumes on a terminal: the stages are redrawn in
// place. (Not golden: what is drawn depends on timing.)
func TestLifecycleResumeTTY(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	applyAll(t, s, "shop.yaml")
	s.Create(t, "demo", "shop")
	s.WaitPhase(t, "demo", sandbox.PhaseReady)
	e := stackEnv(s)
	if r := e.sandpit(t, "suspend", "demo", "--wait"); r.code != 0 {
		t.Fatalf("suspend --wait: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	e.tty = true
	r := e.sandpit(t, "resume", "demo", "--wait")
	if r.code != 0 || r.stdout != "app\thttp://app--demo.sandpit.test\n" {
		t.Errorf("resume --wait on a terminal: exit %d\n%s", r.code, r.stdout)
	}
	for _, want := range []string{"\x1b[", "✓", "Resuming sandbox demo", "Sandbox demo is Ready (resumed in"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the progress has no %q:\n%s", want, r.stderr)
		}
	}
}

// TestLifecyclePool claims sandboxes from a template's warm pool.
func TestLifecyclePool(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	applyAll(t, s, "pooled.yaml")
	t.Cleanup(func() {
		// Empty the pool before the stack's teardown deletes everything:
		// it would refill meanwhile.
		b, err := os.ReadFile(filepath.Join("testdata", "pooled.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		src := strings.Replace(string(b), "min: 1", "min: 0", 1)
		if _, err := s.Client.ApplyTemplate(context.Background(), client.ApplyTemplateRequest{Filename: "pooled.yaml", Source: src}); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, "an empty pool", func() bool {
			sbs, err := s.Client.ListSandboxes(context.Background(), client.ListOptions{Template: "pooled"})
			if err != nil {
				t.Fatal(err)
			}
			for _, sb := range sbs {
				if sb.Spec.Pool != "" {
					return false
				}
			}
			return true
		})
	})
	e := stackEnv(s)
	sc := scrubber(s).Pattern(`pool-pooled-[0-9a-f]{6}`, "pool-pooled-<id>")
	describe := func(r *result) { r.stdout = sortSection(sc.String(collapse(r.stdout)), "Stages:") }
	readyMember := func(t *testing.T) string {
		t.Helper()
		var name string
		testenv.Eventually(t, "a ready sandbox in the pool", func() bool {
			sbs, err := s.Client.ListSandboxes(t.Context(), client.ListOptions{Template: "pooled"})
			if err != nil {
				t.Fatal(err)
			}
			for _, sb := range sbs {
				if sb.Spec.Pool != "" && sb.Status.Phase == sandbox.PhaseReady {
					name = sb.Name
					return true
				}
			}
			return false
		})
		return name
	}

	member := readyMember(t)
	t.Run("list_pool", func(t *testing.T) {
		expect(t, "lifecycle/list_pool", sc, 0, e.sandpit(t, "list"))
	})
	t.Run("get_pool_member", func(t *testing.T) {
		r := e.sandpit(t, "get", member)
		describe(&r)
		expect(t, "lifecycle/get_pool_member", sc, 0, r)
	})
	t.Run("create_claimed_wait", func(t *testing.T) {
		// The claimed sandbox restarts under its new name.
		r := e.sandpit(t, "create", "mine", "-t", "pooled", "--wait")
		r.stderr = dropRacy(t, r.stderr)
		expect(t, "lifecycle/create_claimed_wait", sc, 0, r)
	})
	t.Run("get_claimed", func(t *testing.T) {
		r := e.sandpit(t, "get", "mine")
		describe(&r)
		expect(t, "lifecycle/get_claimed", sc, 0, r)
	})
	readyMember(t)
	t.Run("create_claimed", func(t *testing.T) {
		expect(t, "lifecycle/create_claimed", sc, 0, e.sandpit(t, "create", "yours", "-t", "pooled"))
	})
	t.Run("create_no_pool", func(t *testing.T) {
		expect(t, "lifecycle/create_no_pool", sc, 0, e.sandpit(t, "create", "fresh", "-t", "pooled", "--no-pool"))
	})
}

// settled waits until the reconciler has seen the sandbox's last change.
func settled(t *testing.T, s *testenv.Stack, name string) {
	t.Helper()
	testenv.Eventually(t, name+" settled", func() bool {
		sb, err := s.Client.GetSandbox(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		return sb.Status.ObservedGeneration == sb.Generation
	})
}

// TestLifecycleKeepFailed shows when a failed sandbox is deleted.
func TestLifecycleKeepFailed(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	applyAll(t, s, "broken.yaml")
	e := stackEnv(s)
	sc := scrubber(s)
	t.Run("create_keep_failed", func(t *testing.T) {
		r := e.sandpit(t, "create", "broken", "-t", "broken", "--keep-failed", "24h", "--wait")
		r.stderr = dropRacy(t, r.stderr)
		expect(t, "lifecycle/create_keep_failed", sc, 1, r)
	})
	t.Run("get_keep_failed", func(t *testing.T) {
		r := e.sandpit(t, "get", "broken")
		r.stdout = sortSection(sc.String(collapse(r.stdout)), "Stages:")
		expect(t, "lifecycle/get_keep_failed", sc, 0, r)
	})
	t.Run("list_keep_failed", func(t *testing.T) {
		expect(t, "lifecycle/list_keep_failed", sc, 0, e.sandpit(t, "list"))
	})
	t.Run("suspend_failed", func(t *testing.T) {
		expect(t, "lifecycle/suspend_failed", sc, 1, e.sandpit(t, "suspend", "broken"))
	})
}
