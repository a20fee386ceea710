// Package browsertest is a kit for end-to-end tests that drive a real
// headless Chromium through the Chrome DevTools Protocol (chromedp).
//
// It owns the browser's lifecycle within one test and the checks that the
// web console's acceptance criteria ask for:
//
//   - Start finds Chromium ($SANDPIT_CHROMIUM, else chromium,
//     chromium-browser or google-chrome on PATH) and starts it headless with
//     a fresh temporary profile, reaching loopback addresses only. A missing
//     browser skips the test (it fails under CI=true). Everything, the
//     browser process included, is stopped by t.Cleanup.
//   - JavaScript errors are collected all the time (console.error and
//     console.assert, uncaught exceptions, error log entries, failed loads of
//     scripts, style sheets and fonts); the test fails at cleanup if any
//     occurred that were not allowed.
//   - When the test failed, cleanup saves a full-page screenshot, the page's
//     HTML and the console log under $SANDPIT_TEST_ARTIFACTS/<TestName>/
//     (default /var/tmp/sandpit-test-artifacts/<TestName>-<time>/).
//   - Checks return human-readable violations, each naming the element by a
//     short CSS-like path and its text: Labels, Focus (really pressing Tab
//     through the page), Contrast (WCAG 2 AA) and Mobile (390 px wide: no
//     sideways scrolling, no text under 12 px). Their code is checks.js,
//     evaluated in the page.
//   - A few helpers that tests need all the time (Navigate, WaitText, Click,
//     Fill, Text); for the rest, tests use chromedp directly with Ctx or Run.
//
// It is imported by tests only, and imports nothing of Sandpit's: it works
// on any page served over HTTP.
package browsertest
