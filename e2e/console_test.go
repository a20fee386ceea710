package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/browsertest"
)

// TestConsole drives a real headless Chromium through the console of a
// real server: sign in, launch the example from the create page, watch it
// become Ready, open its endpoint, see its logs stream, suspend, resume and
// delete it. Every page is checked for JavaScript errors, accessibility
// (labels, keyboard focus, contrast) and a 390 px wide screen.
func TestConsole(t *testing.T) {
	s := newServer(t)
	s.mustCLI("template", "apply", "-f", exampleTemplate())
	base := "http://" + s.api
	b := browsertest.Start(t)

	// Signed out, the console sends the browser to sign in, then back.
	b.Navigate(base + "/templates")
	b.WaitText("h1", "Sign in", 10*time.Second)
	checkPage(t, b, "sign-in")
	b.Fill("#token", s.token)
	b.Click(`button[type="submit"]`)
	b.WaitText("h1", "Templates", 10*time.Second)
	b.WaitText("#templates tbody", "guestbook", 10*time.Second)
	checkPage(t, b, "templates")

	// A template with a mistake: the error is shown under its line.
	b.Fill("#a-source", "apiVersion: sandpit/v1\nname: broken\nservices:\n  web:\n    run: echo hi\n    ports: [{name: http, protocol: carrier-pigeon}]\n")
	b.Click("#validate")
	b.WaitText("#apply-result", "shown in the source below", 10*time.Second)
	b.WaitText("#annotated li.bad", "carrier-pigeon", 5*time.Second)
	if tvs, err := s.client.ListTemplates(context.Background()); err != nil || len(tvs) != 1 {
		t.Errorf("after validating a broken template the server has %d templates (%v), want only guestbook", len(tvs), err)
	}

	// Launch from the create page.
	b.Navigate(base + "/new?template=guestbook")
	b.Fill("#c-name", "web-demo")
	waitValue(t, b, "#share-link", "/launch?template=guestbook&name=web-demo")
	checkPage(t, b, "new")
	b.Click(`#create-form button[type="submit"]`)
	b.WaitText("#sb-name", "web-demo", 30*time.Second)
	b.WaitText("#sb-phase", "Ready", launchTimeout)
	b.WaitText("#timeline", "ready", 10*time.Second)
	var bars int
	b.Run(chromedp.Evaluate(`document.querySelectorAll("#timeline svg rect").length`, &bars))
	if bars < 4 {
		t.Errorf("the launch timeline has %d bars, want one per stage (checkout, build, dependencies, start, ready…)", bars)
	}
	b.WaitText("#services tbody", "running", 10*time.Second)
	b.WaitText("#dependencies tbody", "postgres", 10*time.Second)
	b.WaitText("#events", "Ready", 10*time.Second)
	checkPage(t, b, "sandbox")

	// The endpoint link opens the sandbox's app.
	var href string
	b.Run(chromedp.AttributeValue(`#endpoints a`, "href", &href, nil, chromedp.ByQuery))
	if want := fmt.Sprintf("http://app--web-demo.localhost:%s", strings.Split(s.proxy, ":")[1]); !strings.HasPrefix(href, want) {
		t.Fatalf("endpoint link %q, want %s", href, want)
	}

	// Logs stream: a request made now shows up without a reload (the app
	// logs each request's path; this one is not found, which is fine).
	probe := fmt.Sprintf("console-probe-%d", time.Now().UnixNano())
	if code, _ := s.get("app--web-demo.localhost", "/"+probe); code == 0 || code >= 500 {
		t.Fatalf("GET the app: %d", code)
	}
	b.WaitText("#logs", probe, 30*time.Second)
	b.Fill("#log-search", probe)
	b.WaitText("#logs mark", probe, 5*time.Second)

	b.Navigate(href)
	b.WaitText("body", "Welcome to sandbox web-demo!", 30*time.Second)

	// The list shows it live; suspend and resume from its page.
	b.Navigate(base + "/")
	b.WaitText(`#sandboxes tr[data-name="web-demo"]`, "Ready", 10*time.Second)
	checkPage(t, b, "sandboxes")
	b.Click(`#sandboxes a[href="/sandboxes/web-demo"]`)
	b.WaitText("#sb-phase", "Ready", 10*time.Second)
	b.Click(`[data-action="suspend"]`)
	b.WaitText("#sb-phase", "Suspended", 2*time.Minute)
	if sb := s.sandbox("web-demo"); sb.Status.Phase != "Suspended" {
		t.Fatalf("after Suspend the server says %s", sb.Status.Phase)
	}
	b.Click(`[data-action="resume"]`)
	b.WaitText("#sb-phase", "Ready", 2*time.Minute)
	b.Click(`[data-action="pin"]`)
	b.WaitText(`[data-action="pin"][aria-pressed="true"]`, "Unpin", 10*time.Second)
	if sb := s.sandbox("web-demo"); sb.Spec.Pin == nil {
		t.Error("Pin in the console did not pin the sandbox")
	}
	b.Click(`[data-action="pin"]`)
	b.WaitText(`[data-action="pin"][aria-pressed="false"]`, "Pin", 10*time.Second)

	// The other pages render without errors.
	for _, p := range []struct{ path, wait, text string }{
		{"/templates/guestbook", "#t-source", "apiVersion"},
		{"/snapshots", "h1", "Snapshots"},
		{"/usage", "#saved", "Idle suspend saved"},
	} {
		b.Navigate(base + p.path)
		b.WaitText(p.wait, p.text, 10*time.Second)
		checkPage(t, b, strings.Trim(p.path, "/"))
	}

	// Delete, with confirmation: the page returns to the list, and the
	// sandbox is gone on the server.
	b.Navigate(base + "/sandboxes/web-demo")
	b.WaitText("#sb-phase", "Ready", 10*time.Second)
	b.Click(`[data-action="delete"]`)
	b.Click(`#confirm-delete button[value="delete"]`)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := s.client.WaitFor(ctx, "web-demo", 200*time.Millisecond, func(x *client.Sandbox) bool { return x == nil }); err != nil {
		t.Fatalf("web-demo is not gone after Delete: %v", err)
	}
	b.WaitLocation(base+"/", 30*time.Second)
	b.WaitText("#live", "0 sandboxes", 10*time.Second)
}

// checkPage fails the test with what a page gets wrong: accessibility on a
// desktop screen, then a 390 px wide one.
func checkPage(t *testing.T, b *browsertest.Browser, name string) {
	t.Helper()
	if v := b.Accessibility(); len(v) > 0 {
		t.Errorf("%s page: accessibility:\n  %s", name, strings.Join(v, "\n  "))
	}
	if v := b.Mobile(); len(v) > 0 {
		t.Errorf("%s page at 390 px:\n  %s", name, strings.Join(v, "\n  "))
	}
}

func waitValue(t *testing.T, b *browsertest.Browser, sel, substr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var v string
	for time.Now().Before(deadline) {
		b.Run(chromedp.Value(sel, &v, chromedp.ByQuery))
		if strings.Contains(v, substr) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s holds %q, want it to contain %q", sel, v, substr)
}
