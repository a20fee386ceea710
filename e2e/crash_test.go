package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sandpit.dev/sandpit/client"
)

// crashTemplate is the guestbook plus a service that ignores SIGTERM, so
// stopping the sandbox takes the server's whole stop timeout: a window in
// which the server can be killed mid-delete every time, not by luck.
func crashTemplate(t *testing.T) string {
	src, err := os.ReadFile(exampleTemplate())
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Replace(string(src), "name: guestbook", "name: guestbook-crash", 1)
	body = strings.Replace(body, "  path: .", "  path: "+filepath.Dir(exampleTemplate()), 1)
	if !strings.Contains(body, "\nendpoints:") {
		t.Fatal("the example template has no top-level endpoints: block to insert before")
	}
	body = strings.Replace(body, "\nendpoints:", `
  stubborn:
    run: trap '' TERM; exec sleep 100000
    restart: always
endpoints:`, 1)
	// The caller checks the service list, so a misplaced insert fails
	// loudly rather than testing something else.
	return writeTemplate(t, "crash.yaml", body)
}

// TestServerKilledMidCreateAndMidDelete kills the server with SIGKILL while
// sandboxes are launching and while one is being deleted, restarts it over
// the same data dir, and checks that every sandbox converges to what was
// asked — Ready, or gone — with nothing orphaned.
func TestServerKilledMidCreateAndMidDelete(t *testing.T) {
	s := newServer(t)
	out := s.mustCLI("template", "apply", "-f", crashTemplate(t))
	if !strings.Contains(out, "guestbook-crash version 1 applied") {
		t.Fatalf("apply: %s", out)
	}
	info, err := s.client.GetTemplate(context.Background(), "guestbook-crash", 0)
	if err != nil || strings.Join(info.Services, ",") != "api,web,stubborn" {
		t.Fatalf("crash template services = %v (%v), want api,web,stubborn", info.Services, err)
	}

	// Mid-create: both sandboxes are in their build or dependency stage.
	for _, name := range []string{"c1", "c2"} {
		s.mustCLI("create", name, "--template", "guestbook-crash")
	}
	s.waitStage("c1", "build", launchTimeout)
	s.waitStage("c2", "dependencies", launchTimeout)
	s.kill()
	t.Log("server killed mid-create")
	s.start()
	c1 := s.waitPhase("c1", client.PhaseReady, launchTimeout)
	c2 := s.waitPhase("c2", client.PhaseReady, launchTimeout)
	for _, sb := range []*client.Sandbox{c1, c2} {
		if code, page := s.get("app--"+sb.Name+".localhost", "/"); code != 200 || !strings.Contains(page, "Welcome to sandbox "+sb.Name+"!") {
			t.Errorf("%s after the restart: %d %s", sb.Name, code, page)
		}
	}
	// Every marked process belongs to a live sandbox: none was orphaned by
	// the interrupted launch (a second postgres, a stale build).
	s.assertOnlyOwned(c1, c2)

	// Mid-delete: kill while c1's services are being stopped.
	if _, err := s.client.DeleteSandbox(context.Background(), "c1"); err != nil {
		t.Fatal(err)
	}
	s.waitStage("c1", "stop", time.Minute)
	s.kill()
	t.Log("server killed mid-delete")
	s.start()
	s.waitPhase("c1", "", 2*time.Minute)
	s.assertGone(c1)

	// A server killed between a create request and its first reconcile
	// loses nothing either.
	s.mustCLI("create", "c3", "--template", "guestbook-crash")
	s.kill()
	s.start()
	c3 := s.waitPhase("c3", client.PhaseReady, launchTimeout)

	// The survivor is intact and the restarted server still deletes cleanly.
	if code, _ := s.get("app--c2.localhost", "/api/info"); code != 200 {
		t.Errorf("c2 broke across restarts: %d", code)
	}
	for _, sb := range []*client.Sandbox{c2, c3} {
		s.mustCLI("delete", sb.Name, "--wait")
		s.assertGone(sb)
	}
}

// waitStage waits until a sandbox's stage (top-level name) is running.
func (s *server) waitStage(name, stage string, within time.Duration) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	_, err := s.client.WaitFor(ctx, name, 20*time.Millisecond, func(sb *client.Sandbox) bool {
		if sb == nil {
			return false
		}
		for _, st := range sb.Status.Stages {
			if st.Name == stage && st.State == "running" {
				return true
			}
		}
		return false
	})
	if err != nil {
		s.t.Fatalf("sandbox %s never had stage %s running: %v", name, stage, err)
	}
}

// assertOnlyOwned checks that every process carrying this server's marker
// belongs to one of the given sandboxes.
func (s *server) assertOnlyOwned(sbs ...*client.Sandbox) {
	s.t.Helper()
	node := localNodeID(s.dataDir)
	all := markedProcesses(node, "")
	owned := map[int]bool{}
	for _, sb := range sbs {
		for _, p := range markedProcesses(node, sb.ID) {
			owned[p] = true
		}
	}
	for _, p := range all {
		if !owned[p] {
			cmd, _ := os.ReadFile("/proc/" + itoa(p) + "/cmdline")
			s.t.Errorf("process %d (%s) belongs to no live sandbox", p, strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	// Exactly one postgres cluster per sandbox.
	for _, sb := range sbs {
		n := 0
		for _, p := range markedProcesses(node, sb.ID) {
			cmd, _ := os.ReadFile("/proc/" + itoa(p) + "/cmdline")
			if strings.HasPrefix(string(cmd), "/usr/lib/postgresql/15/bin/postgres\x00") {
				n++
			}
		}
		if n != 1 {
			s.t.Errorf("sandbox %s has %d postgres postmasters, want 1", sb.Name, n)
		}
	}
}
