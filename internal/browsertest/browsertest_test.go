package browsertest

import (
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// serve serves testdata/ on 127.0.0.1 and returns its base URL.
func serve(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.FileServer(http.Dir("testdata")))
	t.Cleanup(srv.Close)
	return srv.URL
}

// checks runs every check on the page and returns the violations by check.
func checks(b *Browser) map[string][]string {
	return map[string][]string{
		"labels":   b.Labels(),
		"focus":    b.Focus(),
		"contrast": b.Contrast(),
		"mobile":   b.Mobile(),
	}
}

func TestGoodPagePassesEveryCheck(t *testing.T) {
	base := serve(t)
	b := Start(t)
	b.Navigate(base + "/good.html")
	b.WaitText("body", "Sandboxes", 5*time.Second)
	var ready string
	b.Run(chromedp.Evaluate(`document.body.dataset.ready || ""`, &ready))
	if ready != "yes" {
		t.Fatalf("good.js did not run: data-ready=%q", ready)
	}
	for name, v := range checks(b) {
		if len(v) > 0 {
			t.Errorf("%s check on good.html: want no violations, got:\n  %s", name, strings.Join(v, "\n  "))
		}
	}
	b.RequireAccessible(t)
	b.RequireMobile(t)
	if errs := b.ConsoleErrors(); len(errs) > 0 {
		t.Errorf("console errors on good.html: %q", errs)
	}
	// The console log holds what is not an error too.
	if log := strings.Join(b.ConsoleLog(), "\n"); !strings.Contains(log, "good.js loaded") || !strings.Contains(log, "a warning is not an error") {
		t.Errorf("the console log misses good.js's messages:\n%s", log)
	}
	// Mobile put the desktop viewport back.
	var width int
	b.Run(chromedp.Evaluate(`window.innerWidth`, &width))
	if width != Desktop.Width || b.Viewport() != Desktop {
		t.Errorf("after Mobile the page is %d px wide (viewport %+v), want the desktop's %d", width, b.Viewport(), Desktop.Width)
	}
}

// TestBadPages proves that each check can fail: every page has exactly one
// defect, and exactly that is reported.
func TestBadPages(t *testing.T) {
	base := serve(t)
	b := Start(t)
	for _, tc := range []struct {
		page, check string
		want        []string // substrings of the one violation
	}{
		{"bad-label.html", "labels", []string{"form field without a label", "input#search", "placeholder"}},
		{"bad-button.html", "labels", []string{"button without an accessible name", "button.icon-only"}},
		{"bad-contrast.html", "contrast", []string{"low contrast 2.32:1", "needs 4.5:1", `p.faint "Grey on white is hard to read."`, "#aaaaaa on #ffffff"}},
		{"bad-outline.html", "focus", []string{"no visible focus indicator", `button.flat "Looks the same focused"`}},
		{"bad-tabindex.html", "focus", []string{"not reachable with Tab", `button#skipped "Mouse only" (it has tabindex=-1)`}},
		{"bad-wide.html", "mobile", []string{"wider than the 390 px screen", "div.wide", "600 px wide"}},
		{"bad-small.html", "mobile", []string{"text smaller than 12 px (10px)", "p.tiny"}},
		{"bad-viewport.html", "mobile", []string{"laid out 980 px wide", `<meta name="viewport"`}},
	} {
		b.Navigate(base + "/" + tc.page)
		got := checks(b)
		var all []string
		for _, v := range got {
			all = append(all, v...)
		}
		if len(all) != 1 || len(got[tc.check]) != 1 {
			t.Errorf("%s: want exactly one violation, from the %s check; got %d:\n  %s", tc.page, tc.check, len(all), strings.Join(all, "\n  "))
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(all[0], w) {
				t.Errorf("%s: the violation %q does not say %q", tc.page, all[0], w)
			}
		}
		t.Logf("%s: %s", tc.page, all[0])
	}
	if errs := b.ConsoleErrors(); len(errs) > 0 {
		t.Errorf("console errors on the bad pages, which have none: %q", errs)
	}
}

func TestConsoleErrorsAreCollected(t *testing.T) {
	base := serve(t)
	b := Start(t)
	b.Navigate(base + "/console.html")
	want := []string{
		"console.error: something broke: 42",
		"console.assert: Assertion failed: one is not two",
		"uncaught exception: Error: boom",
	}
	errs := waitErrors(t, b, len(want))
	if len(errs) != len(want) {
		t.Fatalf("want %d console errors, got %d:\n  %s", len(want), len(errs), strings.Join(errs, "\n  "))
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i], w) || !strings.Contains(errs[i], "console.html:") {
			t.Errorf("console error %d is %q, want it to start with %q and name where it happened", i, errs[i], w)
		}
	}
	// Expected here: the check at cleanup lets them pass.
	b.AllowConsoleErrors(`something broke`, `one is not two`, `Error: boom`)
}

func TestMissingScriptIsAnError(t *testing.T) {
	base := serve(t)
	b := Start(t, AllowConsoleErrors(`missing\.js`))
	b.Navigate(base + "/missing-script.html")
	errs := waitErrors(t, b, 1)
	if len(errs) != 1 || !strings.Contains(errs[0], "failed to load script "+base+"/missing.js: HTTP 404") {
		t.Fatalf("want one error for the missing script (and none for the missing image), got:\n  %s", strings.Join(errs, "\n  "))
	}
}

// waitErrors waits until the page reported n console errors, or a little
// longer, and returns them all.
func waitErrors(t *testing.T, b *Browser, n int) []string {
	t.Helper()
	b.waitFor(5*time.Second, func(time.Duration) bool { return len(b.ConsoleErrors()) >= n })
	return b.ConsoleErrors()
}

func TestHelpers(t *testing.T) {
	base := serve(t)
	b := Start(t)
	b.Navigate(base + "/form.html")
	b.Fill("#name", "Ada")
	b.WaitText("#echo", "typing: Ada", 5*time.Second)
	b.Fill("#name", "Grace")
	if got := b.Text("#name"); got != "Grace" {
		t.Errorf("after Fill, #name holds %q, want Grace (Fill replaces)", got)
	}
	b.Fill("#kind", "b")
	b.WaitText("#echo", "kind: b", 5*time.Second)
	b.Click(`button[type="submit"]`)
	b.WaitText("#echo", "sent Grace/b", 5*time.Second)
	b.WaitLocation(base+"/sent", 5*time.Second)
	b.WaitText("#later", "arrived", 5*time.Second)
	if got := b.Text("h1"); got != "Form" {
		t.Errorf("Text(h1) = %q", got)
	}
	ctx, cancel := b.Timeout(0)
	defer cancel()
	var title string
	if err := chromedp.Run(ctx, chromedp.Title(&title)); err != nil || title != "Form" {
		t.Errorf("chromedp on Timeout's context: title %q, %v", title, err)
	}
}

func TestPhoneViewport(t *testing.T) {
	t.Setenv("SANDPIT_TEST_ARTIFACTS", t.TempDir())
	base := serve(t)
	b := Start(t, WithViewport(Phone))
	b.Navigate(base + "/good.html")
	var got struct {
		Width int  `json:"width"`
		Touch bool `json:"touch"`
	}
	b.Run(chromedp.Evaluate(`({width: window.innerWidth, touch: navigator.maxTouchPoints > 0})`, &got))
	if got.Width != 390 || !got.Touch {
		t.Errorf("on a Phone viewport the page sees width %d, touch %v; want 390, true", got.Width, got.Touch)
	}
	b.RequireMobile(t)
	if b.Viewport() != Phone {
		t.Errorf("Mobile changed the viewport to %+v", b.Viewport())
	}
	path := b.Screenshot("phone")
	img := decodePNG(t, path)
	if want := int(390 * Phone.Scale); img.Width != want {
		t.Errorf("the screenshot is %d pixels wide, want %d", img.Width, want)
	}
	if img.Height < int(844*Phone.Scale) {
		t.Errorf("the full-page screenshot is %d pixels high, want at least the screen's %d", img.Height, int(844*Phone.Scale))
	}
}

func decodePNG(t *testing.T, path string) (cfg struct{ Width, Height int }) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open the screenshot: %v", err)
	}
	defer f.Close()
	c, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", path, err)
	}
	cfg.Width, cfg.Height = c.Width, c.Height
	return cfg
}

// fakeTB stands in for a test that is meant to fail, so that the real one
// can look at what happened. What it does not override goes to the real
// test.
type fakeTB struct {
	testing.TB
	name string

	mu       sync.Mutex
	failed   bool
	skipped  bool
	msgs     []string
	cleanups []func()
}

func (f *fakeTB) Name() string { return f.name }
func (f *fakeTB) Helper()      {}
func (f *fakeTB) add(fail bool, msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, strings.TrimSpace(msg))
	f.failed = f.failed || fail
}
func (f *fakeTB) Log(args ...any)                 { f.add(false, fmt.Sprint(args...)) }
func (f *fakeTB) Logf(format string, args ...any) { f.add(false, fmt.Sprintf(format, args...)) }
func (f *fakeTB) Error(args ...any)               { f.add(true, fmt.Sprint(args...)) }
func (f *fakeTB) Errorf(format string, a ...any)  { f.add(true, fmt.Sprintf(format, a...)) }
func (f *fakeTB) Fail()                           { f.add(true, "Fail") }
func (f *fakeTB) FailNow()                        { f.add(true, "FailNow"); runtime.Goexit() }
func (f *fakeTB) Fatal(args ...any)               { f.Error(args...); runtime.Goexit() }
func (f *fakeTB) Fatalf(format string, a ...any)  { f.Errorf(format, a...); runtime.Goexit() }
func (f *fakeTB) SkipNow()                        { f.Skipf("SkipNow") }
func (f *fakeTB) Skip(args ...any)                { f.Skipf("%s", fmt.Sprint(args...)) }
func (f *fakeTB) Skipf(format string, a ...any) {
	f.add(false, fmt.Sprintf(format, a...))
	f.mu.Lock()
	f.skipped = true
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fakeTB) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}
func (f *fakeTB) Skipped() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.skipped
}
func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

// runFake runs body as the fake test named name, then its cleanups, each
// on a goroutine of its own as Fatal and Skip end it, and returns the fake
// with everything it recorded.
func runFake(t *testing.T, name string, body func(tb testing.TB)) *fakeTB {
	f := &fakeTB{TB: t, name: name}
	inGoroutine := func(fn func()) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			fn()
		}()
		<-done
	}
	inGoroutine(func() { body(f) })
	for {
		f.mu.Lock()
		if len(f.cleanups) == 0 {
			f.mu.Unlock()
			break
		}
		fn := f.cleanups[len(f.cleanups)-1]
		f.cleanups = f.cleanups[:len(f.cleanups)-1]
		f.mu.Unlock()
		inGoroutine(fn)
	}
	return f
}

func (f *fakeTB) said(substr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.ContainsFunc(f.msgs, func(m string) bool { return strings.Contains(m, substr) })
}

func (f *fakeTB) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fmt.Sprintf("failed=%v skipped=%v, said:\n  %s", f.failed, f.skipped, strings.Join(f.msgs, "\n  "))
}

// TestFailureSavesArtifacts runs a failing fake test and finds its
// screenshot, HTML and console log where the failure message says.
func TestFailureSavesArtifacts(t *testing.T) {
	root := t.TempDir()
	t.Setenv("SANDPIT_TEST_ARTIFACTS", root)
	base := serve(t)
	f := runFake(t, "TestFake/fails", func(tb testing.TB) {
		b := Start(tb)
		b.Navigate(base + "/good.html")
		tb.Errorf("something is wrong on the page")
	})
	if !f.Failed() || !f.said("browsertest: the test failed; saved failure.png, failure.html, console.log in ") {
		t.Fatalf("the fake test: %s", f)
	}
	dir := filepath.Join(root, "TestFake_fails")
	img := decodePNG(t, filepath.Join(dir, "failure.png"))
	if img.Width != Desktop.Width || img.Height < 300 {
		t.Errorf("failure.png is %dx%d, want a full page %d wide", img.Width, img.Height, Desktop.Width)
	}
	html, err := os.ReadFile(filepath.Join(dir, "failure.html"))
	if err != nil || !strings.HasPrefix(string(html), "<!DOCTYPE html>") || !strings.Contains(string(html), "<title>Good page</title>") ||
		!strings.Contains(string(html), `data-ready="yes"`) {
		t.Errorf("failure.html (the live DOM, after good.js ran): %v\n%.300s", err, html)
	}
	log, err := os.ReadFile(filepath.Join(dir, "console.log"))
	if err != nil || !strings.Contains(string(log), "good.js loaded") || !strings.Contains(string(log), base+"/good.html") {
		t.Errorf("console.log: %v\n%s", err, log)
	}
}

// TestConsoleErrorsFailAtCleanup: by default a console error fails the
// test when it ends, and a passing test saves no artifacts.
func TestConsoleErrorsFailAtCleanup(t *testing.T) {
	root := t.TempDir()
	t.Setenv("SANDPIT_TEST_ARTIFACTS", root)
	base := serve(t)
	f := runFake(t, "TestFakeConsole", func(tb testing.TB) {
		b := Start(tb, AllowConsoleErrors(`one is not two`))
		b.Navigate(base + "/console.html")
		b.waitFor(5*time.Second, func(time.Duration) bool { return len(b.ConsoleErrors()) >= 3 })
	})
	if !f.Failed() || !f.said("the page logged 2 console error(s)") || !f.said("something broke") || f.said("one is not two") {
		t.Errorf("the fake test: %s", f)
	}
	if _, err := os.Stat(filepath.Join(root, "TestFakeConsole", "console.log")); err != nil {
		t.Errorf("a failed test saves its console log: %v", err)
	}

	f = runFake(t, "TestFakePasses", func(tb testing.TB) {
		b := Start(tb)
		b.Navigate(base + "/good.html")
	})
	if f.Failed() {
		t.Errorf("the fake test on good.html: %s", f)
	}
	if _, err := os.Stat(filepath.Join(root, "TestFakePasses")); !os.IsNotExist(err) {
		t.Errorf("a passing test saved artifacts: %v", err)
	}
}

// TestWaitTextTimeout: the failure says what the element held and where the
// screenshot is.
func TestWaitTextTimeout(t *testing.T) {
	t.Setenv("SANDPIT_TEST_ARTIFACTS", t.TempDir())
	base := serve(t)
	var shot string
	f := runFake(t, "TestFakeWait", func(tb testing.TB) {
		b := Start(tb)
		b.Navigate(base + "/form.html")
		start := time.Now()
		defer func() {
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("WaitText with a 300ms timeout took %v", d)
			}
		}()
		b.WaitText("#echo", "never there", 300*time.Millisecond)
		t.Errorf("WaitText returned")
	})
	if !f.Failed() || !f.said(`waited 300ms for #echo to contain "never there": it holds "nothing yet"`) || !f.said("; screenshot: ") {
		t.Fatalf("the fake test: %s", f)
	}
	for _, m := range f.msgs {
		if _, p, ok := strings.Cut(m, "; screenshot: "); ok {
			shot = p
		}
	}
	decodePNG(t, shot)

	f = runFake(t, "TestFakeText", func(tb testing.TB) {
		b := Start(tb)
		b.Navigate(base + "/form.html")
		b.Text("#nothing")
	})
	if !f.Failed() || !f.said("text of #nothing: no element matches it on "+base+"/form.html") {
		t.Errorf("the fake test: %s", f)
	}
}

func TestNoBrowser(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("SANDPIT_CHROMIUM", "")
	t.Setenv("CI", "")
	f := runFake(t, "TestFakeNoBrowser", func(tb testing.TB) { Start(tb) })
	if !f.Skipped() || f.Failed() || !f.said("apt-get install chromium") {
		t.Errorf("without a browser, outside CI: %s", f)
	}

	t.Setenv("CI", "true")
	f = runFake(t, "TestFakeNoBrowserCI", func(tb testing.TB) { Start(tb) })
	if f.Skipped() || !f.Failed() || !f.said("apt-get install chromium") {
		t.Errorf("without a browser, under CI=true: %s", f)
	}

	t.Setenv("CI", "")
	t.Setenv("SANDPIT_CHROMIUM", "/nonexistent/chromium")
	f = runFake(t, "TestFakeBadEnv", func(tb testing.TB) { Start(tb) })
	if f.Skipped() || !f.Failed() || !f.said("$SANDPIT_CHROMIUM=/nonexistent/chromium") {
		t.Errorf("with a wrong $SANDPIT_CHROMIUM: %s", f)
	}

	// A program that is no browser fails the test, and cleanup does not hang.
	t.Setenv("SANDPIT_CHROMIUM", "false")
	t.Setenv("PATH", "/usr/bin:/bin")
	f = runFake(t, "TestFakeNotABrowser", func(tb testing.TB) { Start(tb) })
	if f.Skipped() || !f.Failed() || !f.said("browsertest: start /") || !f.said("chrome failed to start") {
		t.Errorf("with a $SANDPIT_CHROMIUM that is not a browser: %s", f)
	}
}

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{
		"TestConsole":             "TestConsole",
		"TestConsole/sign_in":     "TestConsole_sign_in",
		"TestX/a b/../c":          "TestX_a_b_.._c",
		"../..":                   "unnamed",
		"wait-text #echo > p.big": "wait-text_echo_p.big",
	} {
		if got := safeName(in); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLoopbackOnly: *.localhost names reach the test's server; other names
// fail at once, and a script that cannot load is an error.
func TestLoopbackOnly(t *testing.T) {
	base := serve(t)
	b := Start(t, AllowConsoleErrors(`sandpit-browsertest\.example`))
	sub := strings.Replace(base, "127.0.0.1", "app--demo.localhost", 1)
	start := time.Now()
	b.Navigate(sub + "/external.html")
	b.WaitText("h1", "External script", 5*time.Second)
	errs := waitErrors(t, b, 1)
	if len(errs) != 1 || !strings.Contains(errs[0], "failed to load script http://sandpit-browsertest.example/app.js: net::ERR_NAME_NOT_RESOLVED") {
		t.Errorf("want one error for the external script, got:\n  %s", strings.Join(errs, "\n  "))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the page took %v to load: the external host should fail at once", d)
	}
}
