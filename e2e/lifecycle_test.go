package e2e

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"sandpit.dev/sandpit/client"
)

// TestServerKilledMidSuspendAndMidResume kills the server while a sandbox
// is being suspended (its stubborn service makes the stop take the whole
// stop timeout, so the window is certain) and while it is being woken by a
// request, and checks that it converges: suspended with nothing running
// and its ports free, then woken and serving, then deleted without leaks.
func TestServerKilledMidSuspendAndMidResume(t *testing.T) {
	s := newServer(t)
	s.mustCLI("template", "apply", "-f", crashTemplate(t))
	s.mustCLI("create", "nap", "--template", "guestbook-crash", "--wait")
	ready := s.waitPhase("nap", client.PhaseReady, launchTimeout)

	// Mid-suspend.
	s.mustCLI("suspend", "nap")
	s.waitStage("nap", "stop", time.Minute)
	s.kill()
	t.Log("server killed mid-suspend")
	s.start()
	sb := s.waitPhase("nap", client.PhaseSuspended, 2*time.Minute)
	s.assertOnlyOwned() // nothing runs for a suspended sandbox
	for _, svc := range ready.Status.Services {
		for _, port := range svc.Ports {
			if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
				c.Close()
				t.Errorf("port %d of suspended service %s still answers", port, svc.Name)
			}
		}
	}
	if sb.Status.SuspendedAt == nil || !strings.Contains(sb.Status.SuspendReason, "suspend requested") {
		t.Errorf("suspended status: at %v, reason %q", sb.Status.SuspendedAt, sb.Status.SuspendReason)
	}

	// Mid-resume: a request wakes it; kill while its database starts.
	if _, err := s.client.ResumeSandbox(context.Background(), "nap"); err != nil {
		t.Fatal(err)
	}
	s.waitStage("nap", "dependencies", time.Minute)
	s.kill()
	t.Log("server killed mid-resume")
	s.start()
	// The request that finds it still asleep (or resuming) is held until
	// it is served.
	if code, page := s.get("app--nap.localhost", "/"); code != 200 || !strings.Contains(page, "Welcome to sandbox nap!") {
		t.Fatalf("after the restart: %d %s", code, page)
	}
	sb = s.waitPhase("nap", client.PhaseReady, launchTimeout)
	s.assertOnlyOwned(sb)
	s.mustCLI("delete", "nap", "--wait")
	s.assertGone(sb)
}
