package browsertest

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// Viewport is the size of the page's layout viewport in CSS pixels and how
// the device is emulated.
type Viewport struct {
	Width, Height int
	// Scale is the device pixel ratio (1 when zero).
	Scale float64
	// Mobile emulates a phone: <meta name="viewport"> is honoured,
	// scrollbars overlay the page, touch events are enabled.
	Mobile bool
}

var (
	// Desktop is the default viewport.
	Desktop = Viewport{Width: 1280, Height: 900, Scale: 1}
	// Phone is a 390x844 phone screen (the size of current iPhones).
	Phone = Viewport{Width: 390, Height: 844, Scale: 2, Mobile: true}
)

// DefaultTimeout bounds each action of Run, Navigate, Click, Fill, Text and
// each check, unless WithTimeout says otherwise.
const DefaultTimeout = 20 * time.Second

// startTimeout bounds starting the browser and opening its first tab.
const startTimeout = 60 * time.Second

// Option configures Start.
type Option func(*config)

type config struct {
	viewport Viewport
	timeout  time.Duration
	allow    []*regexp.Regexp
}

// WithViewport starts the page with viewport v instead of Desktop, for
// example Phone.
func WithViewport(v Viewport) Option { return func(c *config) { c.viewport = v } }

// WithTimeout sets the per-action timeout (DefaultTimeout otherwise).
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// AllowConsoleErrors lets console errors that match any of the regular
// expressions pass the check at cleanup. It panics on an invalid pattern.
func AllowConsoleErrors(patterns ...string) Option {
	res := compile(patterns)
	return func(c *config) { c.allow = append(c.allow, res...) }
}

func compile(patterns []string) []*regexp.Regexp {
	res := make([]*regexp.Regexp, len(patterns))
	for i, p := range patterns {
		res[i] = regexp.MustCompile(p)
	}
	return res
}

// Browser is one headless Chromium with one page, owned by the test that
// started it. Its methods fail that test (t.Fatalf) when the browser cannot
// do what was asked; call them from the test's goroutine. The checks
// (Labels, Focus, Contrast, Mobile...) only report.
type Browser struct {
	t         testing.TB
	ctx       context.Context    // the chromedp context of the page
	stop      context.CancelFunc // stops the browser and waits for it
	stopAlloc context.CancelFunc
	dir       string // the browser's profile and other files
	timeout   time.Duration
	started   bool

	mu        sync.Mutex
	viewport  Viewport
	allow     []*regexp.Regexp
	errs      []consoleError
	log       []string                      // everything the console said, errors included
	requests  map[network.RequestID]request // loads in flight
	artifacts string                        // directory for artifacts, once chosen
}

type request struct {
	url string
}

// Start starts a headless Chromium for test t, with one blank page. The
// browser is $SANDPIT_CHROMIUM, or chromium, chromium-browser or
// google-chrome on PATH; when there is none the test is skipped, or fails
// under CI=true. The browser runs with a fresh temporary profile, without
// sandbox (tests run as root), without GPU, and reaches loopback addresses
// only (localhost, *.localhost, 127.0.0.0/8, [::1]).
//
// At cleanup the test fails if the page logged console errors that were not
// allowed; if the test failed, a screenshot, the page's HTML and the console
// log are saved (see ArtifactDir); then the browser is stopped and its
// processes and profile are gone.
func Start(t testing.TB, opts ...Option) *Browser {
	t.Helper()
	cfg := config{viewport: Desktop, timeout: DefaultTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	path, err := FindChromium()
	if err != nil {
		if os.Getenv("CI") == "true" || errors.Is(err, errBadEnv) {
			t.Fatalf("browsertest: %v", err)
		}
		t.Skipf("browsertest: %v", err)
	}

	b := &Browser{
		t:        t,
		timeout:  cfg.timeout,
		viewport: cfg.viewport,
		allow:    cfg.allow,
		requests: map[network.RequestID]request{},
	}
	b.dir, err = os.MkdirTemp("", "sandpit-chromium-")
	if err != nil {
		t.Fatalf("browsertest: %v", err)
	}
	var allocCtx context.Context
	allocCtx, b.stopAlloc = allocator(path, b.dir)
	b.ctx, b.stop = chromedp.NewContext(allocCtx, chromedp.WithErrorf(chromedpErrorf))
	chromedp.ListenTarget(b.ctx, b.onEvent)
	t.Cleanup(b.cleanup)

	// The first Run starts the browser under b.ctx itself: a deadline on
	// its context would stop the browser later, so a timer stands guard.
	guard := time.AfterFunc(startTimeout, b.stop)
	err = chromedp.Run(b.ctx, b.viewportAction(cfg.viewport))
	if !guard.Stop() && err == nil {
		err = fmt.Errorf("timed out after %v", startTimeout)
	}
	if err != nil {
		t.Fatalf("browsertest: start %s: %v", path, err)
	}
	b.started = true
	return b
}

// errBadEnv marks a $SANDPIT_CHROMIUM that names no program: a mistake to
// report, not a reason to skip.
var errBadEnv = errors.New("$SANDPIT_CHROMIUM")

// FindChromium returns the browser Start would use: $SANDPIT_CHROMIUM, else
// the first of chromium, chromium-browser and google-chrome on PATH.
func FindChromium() (string, error) {
	if p := os.Getenv("SANDPIT_CHROMIUM"); p != "" {
		full, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("%w=%s: %v", errBadEnv, p, err)
		}
		return full, nil
	}
	names := []string{"chromium", "chromium-browser", "google-chrome"}
	for _, name := range names {
		if full, err := exec.LookPath(name); err == nil {
			return full, nil
		}
	}
	return "", fmt.Errorf("no browser for end-to-end tests: none of %s is on PATH and $SANDPIT_CHROMIUM is unset; "+
		"install one with `apt-get install chromium` (./scripts/test.sh does)", strings.Join(names, ", "))
}

// allocator returns the chromedp allocator of one browser: path with
// Sandpit's flags, its profile and its configuration and cache directories
// (where Chromium keeps its crash reports even with a profile of its own)
// under dir. It holds only the command line; the browser starts with the
// first Run. (One per Start: sharing one per test binary would gain nothing,
// and sharing the browser itself would leave it running when the binary
// exits.)
func allocator(path, dir string) (context.Context, context.CancelFunc) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.Env("XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_CACHE_HOME="+filepath.Join(dir, "cache")),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(Desktop.Width, Desktop.Height),
		// Loopback only: every other host name fails to resolve at once,
		// and no proxy from the environment is used.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE *.localhost, EXCLUDE 127.*, EXCLUDE [::1]"),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-features", "site-per-process,Translate,BlinkGenPropertyTrees,OptimizationHints,MediaRouter,DialMediaRouteProvider"),
		chromedp.Flag("mute-audio", true),
	)
	return chromedp.NewExecAllocator(context.Background(), opts...)
}

// cleanup checks the console, saves artifacts if the test failed, and stops
// the browser.
func (b *Browser) cleanup() {
	if b.started {
		// A round trip lets events already sent reach onEvent.
		_ = b.run(5*time.Second, chromedp.Evaluate(`0`, nil))
		if errs := b.unexpectedErrors(); len(errs) > 0 {
			b.t.Errorf("browsertest: the page logged %d console error(s):\n  %s\n"+
				"(if expected, allow them with browsertest.AllowConsoleErrors or b.AllowConsoleErrors)",
				len(errs), strings.Join(errs, "\n  "))
		}
		if b.t.Failed() {
			b.saveArtifacts()
		}
	}
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	allocated := chromedp.FromContext(b.ctx).Browser != nil
	if err := chromedp.Cancel(ctx); err != nil {
		if allocated {
			b.stop() // kill it and wait for it
		}
		if !errors.Is(err, context.Canceled) {
			b.t.Logf("browsertest: stop Chromium: %v", err)
		}
	}
	b.stopAlloc()
	// The browser's helpers (zygotes, renderers, the crash handler) may
	// outlive it by a moment; all name b.dir on their command line.
	if left := waitGone(b.dir, 10*time.Second); len(left) > 0 {
		b.t.Errorf("browsertest: Chromium processes %v are still running 10s after the browser stopped; killed them", left)
	}
	if err := os.RemoveAll(b.dir); err != nil {
		b.t.Logf("browsertest: remove the browser's profile: %v", err)
	}
}

// chromedpErrorf drops chromedp's complaints about DevTools events newer
// than its protocol package ("unhandled node event"): Debian's Chromium
// is newer than cdproto, and the events are ones the tests never use.
func chromedpErrorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.Contains(msg, "unhandled node event") || strings.Contains(msg, "unhandled page event") {
		return
	}
	log.Print("chromedp: " + msg)
}
