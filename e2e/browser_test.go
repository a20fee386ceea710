package e2e

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// browser drives one headless Chromium for a test. It records what the
// page logs as errors (the test fails on any), and when the test fails it
// saves a screenshot, the page's HTML and its console to an artifacts
// directory.
type browser struct {
	t      *testing.T
	ctx    context.Context
	mu     sync.Mutex
	errors []string
	log    []string
}

//go:embed testdata/checks.js
var checksJS string

func findChromium() string {
	if p := os.Getenv("SANDPIT_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	path := findChromium()
	if path == "" {
		msg := "no Chromium: apt-get install chromium (scripts/test.sh does)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// Not t.TempDir: Chromium's helpers may still write to the profile for
	// a moment after the browser is told to end.
	profile, err := os.MkdirTemp("/var/tmp", "sandpit-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx}
	chromedp.ListenTarget(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				if a.Value != nil {
					args = append(args, string(a.Value))
				} else {
					args = append(args, a.Description)
				}
			}
			line := string(ev.Type) + ": " + strings.Join(args, " ")
			b.mu.Lock()
			b.log = append(b.log, line)
			if ev.Type == runtime.APITypeError || ev.Type == runtime.APITypeAssert {
				b.errors = append(b.errors, line)
			}
			b.mu.Unlock()
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg = d.Exception.Description
			}
			b.mu.Lock()
			b.errors = append(b.errors, fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber, msg))
			b.log = append(b.log, "exception: "+msg)
			b.mu.Unlock()
		}
	})
	// Headless windows never have the operating system's focus; without
	// focus emulation the page ignores Tab and :focus never matches.
	if err := chromedp.Run(ctx, emulation.SetFocusEmulationEnabled(true)); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start %s: %v", path, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b.saveArtifacts()
		}
		b.mu.Lock()
		errs := b.errors
		b.mu.Unlock()
		if len(errs) > 0 {
			t.Errorf("the pages logged JavaScript errors:\n  %s", strings.Join(errs, "\n  "))
		}
		cancel()
		cancelAlloc() // ends the browser and waits for it
		for i := 0; i < 50; i++ {
			if os.RemoveAll(profile) == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return b
}

// saveArtifacts keeps a failed test's last page for a human to look at.
func (b *browser) saveArtifacts() {
	root := os.Getenv("SANDPIT_TEST_ARTIFACTS")
	if root == "" {
		root = "/var/tmp/sandpit-test-artifacts"
	}
	dir := filepath.Join(root, b.t.Name()+"-"+time.Now().Format("20060102-150405"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Logf("artifacts: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	var png []byte
	var html, url string
	_ = chromedp.Run(ctx, chromedp.Location(&url), chromedp.FullScreenshot(&png, 90), chromedp.OuterHTML("html", &html, chromedp.ByQuery))
	_ = os.WriteFile(filepath.Join(dir, "page.png"), png, 0o644)
	_ = os.WriteFile(filepath.Join(dir, "page.html"), []byte(html), 0o644)
	b.mu.Lock()
	_ = os.WriteFile(filepath.Join(dir, "console.log"), []byte(strings.Join(b.log, "\n")+"\n"), 0o644)
	b.mu.Unlock()
	b.t.Logf("the browser was at %s; screenshot, HTML and console saved in %s", url, dir)
}

// Run runs chromedp actions, failing the test on error.
func (b *browser) Run(actions ...chromedp.Action) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

func (b *browser) Navigate(url string) { b.t.Helper(); b.Run(chromedp.Navigate(url)) }

func (b *browser) Click(sel string) {
	b.t.Helper()
	b.Run(chromedp.WaitVisible(sel, chromedp.ByQuery), chromedp.Click(sel, chromedp.ByQuery))
}

// Fill replaces an input's value, as typing would (input events fire).
func (b *browser) Fill(sel, value string) {
	b.t.Helper()
	b.Run(chromedp.WaitVisible(sel, chromedp.ByQuery))
	q, _ := json.Marshal(sel)
	v, _ := json.Marshal(value)
	var ok bool
	b.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%s); e.focus(); e.value = %s; e.dispatchEvent(new Event("input", {bubbles: true})); e.dispatchEvent(new Event("change", {bubbles: true})); return true })()`, q, v), &ok)
}

// eval runs a JavaScript expression and decodes its value into out.
func (b *browser) eval(expr string, out any) {
	b.t.Helper()
	b.Run(chromedp.Evaluate(expr, out))
}

// WaitText waits until the first element matching sel holds text.
func (b *browser) WaitText(sel, text string, timeout time.Duration) {
	b.t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? e.textContent : null })()`, sel)
	deadline := time.Now().Add(timeout)
	var got *string
	for {
		got = nil
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		err := chromedp.Run(ctx, chromedp.Evaluate(js, &got))
		cancel()
		if err == nil && got != nil && strings.Contains(*got, text) {
			return
		}
		if time.Now().After(deadline) {
			var url string
			_ = chromedp.Run(b.ctx, chromedp.Location(&url))
			shown := "no such element"
			if got != nil {
				shown = fmt.Sprintf("%q", tail(*got, 20))
			}
			b.t.Fatalf("after %s, %s on %s holds %s, want %q (err %v)", timeout, sel, url, shown, text, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitLocation waits until the page's URL is url.
func (b *browser) WaitLocation(url string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	var got string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		_ = chromedp.Run(ctx, chromedp.Location(&got))
		cancel()
		if got == url {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("the browser is at %s after %s, want %s", got, timeout, url)
}

// Accessibility lists what the page gets wrong: controls, buttons and
// links without an accessible name, text below WCAG AA contrast, and
// interactive elements that Tab does not reach or that show no focus.
func (b *browser) Accessibility() []string {
	b.t.Helper()
	var out []string
	var static []string
	b.eval(checksJS+`; sandpitChecks.static()`, &static)
	out = append(out, static...)
	// Keyboard: Tab through the page and see what gets focus.
	var n int
	b.eval(checksJS+`; sandpitChecks.focusStart()`, &n)
	for i := 0; i < n+5; i++ {
		b.Run(chromedp.KeyEvent("\t"))
		var done bool
		b.eval(`sandpitChecks.focusStep()`, &done)
		if done {
			break
		}
	}
	var focus []string
	b.eval(`sandpitChecks.focusReport()`, &focus)
	return append(out, focus...)
}

// Mobile lists what breaks at 390 px wide: content wider than the screen,
// text too small to read.
func (b *browser) Mobile() []string {
	b.t.Helper()
	var out []string
	b.Run(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(1), chromedp.EmulateMobile))
	defer b.Run(chromedp.EmulateReset(), chromedp.EmulateViewport(1280, 900))
	// Let layout settle after the resize.
	b.Run(chromedp.Sleep(200 * time.Millisecond))
	b.eval(checksJS+`; sandpitChecks.mobile()`, &out)
	return out
}

func chromedpSleep() chromedp.Action { return chromedp.Sleep(100 * time.Millisecond) }
