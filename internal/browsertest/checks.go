package browsertest

import (
	_ "embed"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// checksJS is one JavaScript expression: an object of check functions.
//
//go:embed checks.js
var checksJS string

// call returns the JavaScript expression that calls check fn.
func call(fn string) string { return "(" + checksJS + ")." + fn + "()" }

// check runs a check of checks.js that returns violations. When the check
// itself cannot run, the test fails (not at once) and the problem is
// returned as the one violation, so that callers testing for none fail too.
func (b *Browser) check(name string) []string {
	b.t.Helper()
	var v []string
	if err := b.run(b.timeout, chromedp.Evaluate(call(name), &v)); err != nil {
		return b.checkFailed(name, err)
	}
	return v
}

func (b *Browser) checkFailed(name string, err error) []string {
	b.t.Helper()
	msg := fmt.Sprintf("browsertest: the %s check could not run: %v", name, b.explain(err))
	b.t.Errorf("%s", msg)
	return []string{msg}
}

// Labels checks that the page can be told apart and its controls named:
// <html lang> and a non-empty <title>; every visible input, select and
// textarea (not hidden, submit or button types) has an accessible name
// (label[for], a wrapping label, aria-label, aria-labelledby or title);
// every button and link has one (its text, aria-label, an <img alt>); and
// images have alt.
func (b *Browser) Labels() []string {
	b.t.Helper()
	return b.check("labels")
}

// Contrast checks that visible text has a WCAG 2 AA contrast ratio with
// what is behind it: 4.5:1, or 3:1 for large text (24px, or 18.66px bold).
// The background is the element's and its ancestors' background colours
// composited; text over a background image or gradient is skipped, as its
// background is unknown. Disabled controls are exempt.
func (b *Browser) Contrast() []string {
	b.t.Helper()
	return b.check("contrast")
}

// Focus checks keyboard use: it presses Tab through the page (with real
// key events) until the focus comes back to where it started, then reports
// each visible interactive element (a[href], button, input, select,
// textarea, summary, [tabindex>=0]...) that Tab never reached, and each
// that looked the same focused as unfocused (no outline, box-shadow,
// border, background or colour change). It takes the focus away from the
// page's elements before and after.
func (b *Browser) Focus() []string {
	b.t.Helper()
	var n int
	if err := b.run(b.timeout, chromedp.Evaluate(call("focusStart"), &n)); err != nil {
		return b.checkFailed("focus", err)
	}
	// Enough presses to go round once from anywhere, and some slack for
	// focusable things that are not in the list (an iframe's insides).
	for range 2*n + 10 {
		var st struct {
			Done bool `json:"done"`
		}
		if err := b.run(b.timeout, chromedp.KeyEvent(kb.Tab), chromedp.Evaluate(call("focusStep"), &st)); err != nil {
			return b.checkFailed("focus", err)
		}
		if st.Done {
			break
		}
	}
	return b.check("focusReport")
}

// Mobile checks the page on a 390 px wide phone screen (Phone, for the
// duration of the check): the page is laid out for the screen's width
// (<meta name="viewport">), does not scroll sideways (naming the widest
// elements that stick out), and has no text under 12 px.
func (b *Browser) Mobile() []string {
	b.t.Helper()
	if prev := b.Viewport(); prev != Phone {
		if err := b.run(b.timeout, b.viewportAction(Phone)); err != nil {
			return b.checkFailed("mobile", err)
		}
		defer func() {
			if err := b.run(b.timeout, b.viewportAction(prev)); err != nil {
				b.checkFailed("mobile", err)
			}
		}()
	}
	return b.check("mobile")
}

// Accessibility runs Labels, Focus and Contrast and returns all their
// violations.
func (b *Browser) Accessibility() []string {
	b.t.Helper()
	var v []string
	v = append(v, b.Labels()...)
	v = append(v, b.Focus()...)
	v = append(v, b.Contrast()...)
	return v
}

// RequireAccessible fails t (not at once) listing what Accessibility found.
func (b *Browser) RequireAccessible(t testing.TB) {
	t.Helper()
	report(t, "accessibility", b.Accessibility())
}

// RequireMobile fails t (not at once) listing what Mobile found.
func (b *Browser) RequireMobile(t testing.TB) {
	t.Helper()
	report(t, "390 px wide screen", b.Mobile())
}

func report(t testing.TB, what string, v []string) {
	t.Helper()
	if len(v) > 0 {
		t.Errorf("%s: %d problem(s) on the page:\n  %s", what, len(v), strings.Join(v, "\n  "))
	}
}
