package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Ctx is the chromedp context of the page, without a deadline; use
// Timeout for one with a deadline, or Run.
func (b *Browser) Ctx() context.Context { return b.ctx }

// Timeout returns the page's chromedp context with deadline d from now
// (the per-action timeout when d <= 0). Cancel it when done; that does not
// close the page.
func (b *Browser) Timeout(d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		d = b.timeout
	}
	return context.WithTimeout(b.ctx, d)
}

func (b *Browser) run(d time.Duration, actions ...chromedp.Action) error {
	ctx, cancel := b.Timeout(d)
	defer cancel()
	return chromedp.Run(ctx, actions...)
}

// Run runs chromedp actions on the page within the per-action timeout and
// fails the test if one fails.
func (b *Browser) Run(actions ...chromedp.Action) {
	b.t.Helper()
	if err := b.run(b.timeout, actions...); err != nil {
		b.t.Fatalf("browsertest: %v", b.explain(err))
	}
}

func (b *Browser) explain(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (per-action timeout %v)", err, b.timeout)
	}
	return err
}

// Navigate loads url and waits for its load event.
func (b *Browser) Navigate(url string) {
	b.t.Helper()
	if err := b.run(b.timeout, chromedp.Navigate(url)); err != nil {
		b.t.Fatalf("browsertest: navigate to %s: %v", url, b.explain(err))
	}
}

// Click waits until the first element matching the CSS selector is
// visible, scrolls it into view and clicks its centre with the mouse.
func (b *Browser) Click(selector string) {
	b.t.Helper()
	if err := b.run(b.timeout, chromedp.Click(selector, chromedp.ByQuery, chromedp.NodeVisible)); err != nil {
		b.t.Fatalf("browsertest: click %s: %v (is it on the page and visible?)", selector, b.explain(err))
	}
}

// Fill waits until the first form field matching the CSS selector is
// visible, focuses it, clears it and types value as one text input (the
// page sees input events, then a change event). A select gets the option
// with that value selected, and date, time, colour and range fields that
// value. (Tick checkboxes and radio buttons with Click.)
func (b *Browser) Fill(selector, value string) {
	b.t.Helper()
	sel := jsString(selector)
	var typed bool
	err := b.run(b.timeout,
		chromedp.WaitVisible(selector, chromedp.ByQuery),
		chromedp.Evaluate(`(() => {
			const el = document.querySelector(`+sel+`);
			el.focus();
			const direct = el.tagName === "SELECT" || ["color", "date", "datetime-local", "month", "range", "time", "week"].includes(el.type);
			if (direct) {
				el.value = `+jsString(value)+`;
				el.dispatchEvent(new Event("input", {bubbles: true}));
				el.dispatchEvent(new Event("change", {bubbles: true}));
				return false;
			}
			if ("value" in el) el.value = "";
			el.dispatchEvent(new Event("input", {bubbles: true}));
			return true;
		})()`, &typed),
		chromedp.ActionFunc(func(ctx context.Context) error {
			if !typed || value == "" {
				return nil
			}
			return input.InsertText(value).Do(ctx)
		}),
		chromedp.ActionFunc(func(ctx context.Context) error {
			if !typed {
				return nil
			}
			return chromedp.Evaluate(`document.querySelector(`+sel+`).dispatchEvent(new Event("change", {bubbles: true}))`, nil).Do(ctx)
		}),
	)
	if err != nil {
		b.t.Fatalf("browsertest: fill %s: %v (is it on the page, visible and a form field?)", selector, b.explain(err))
	}
}

// Text returns the rendered text (innerText; a form field's value) of the
// first element matching the CSS selector. It fails the test when none
// matches.
func (b *Browser) Text(selector string) string {
	b.t.Helper()
	st, err := b.textOf(selector, b.timeout)
	if err != nil {
		b.t.Fatalf("browsertest: text of %s: %v", selector, b.explain(err))
	}
	if !st.Found {
		b.t.Fatalf("browsertest: text of %s: no element matches it on %s", selector, st.URL)
	}
	return st.Text
}

type textState struct {
	Found bool   `json:"found"`
	Text  string `json:"text"`
	URL   string `json:"url"`
	Title string `json:"title"`
}

func (b *Browser) textOf(selector string, d time.Duration) (textState, error) {
	var st textState
	err := b.run(d, chromedp.Evaluate(`(() => {
		const el = document.querySelector(`+jsString(selector)+`);
		const text = !el ? "" : el.matches("input, textarea, select") ? el.value : (el.innerText ?? el.textContent);
		return {found: !!el, text, url: location.href, title: document.title};
	})()`, &st))
	return st, err
}

// WaitText waits until the first element matching the CSS selector exists
// and its text contains substr. On timeout it saves a screenshot and fails
// the test with what the element held.
func (b *Browser) WaitText(selector, substr string, timeout time.Duration) {
	b.t.Helper()
	var last textState
	var lastErr error
	b.waitFor(timeout, func(d time.Duration) bool {
		st, err := b.textOf(selector, d)
		if err != nil {
			lastErr = err
			return false
		}
		last, lastErr = st, nil
		return st.Found && strings.Contains(st.Text, substr)
	})
	if last.Found && strings.Contains(last.Text, substr) {
		return
	}
	var what string
	switch {
	case last.Found:
		what = fmt.Sprintf("it holds %q", clip(last.Text, 500))
	case last.URL != "":
		what = "no element matches it"
	}
	if last.URL != "" {
		what += fmt.Sprintf(" (page %s, title %q)", last.URL, last.Title)
	}
	if lastErr != nil {
		what += fmt.Sprintf(" (last error: %v)", lastErr)
	}
	b.t.Fatalf("browsertest: waited %v for %s to contain %q: %s%s", timeout, selector, substr, what, b.shotHint("wait-text"))
}

// WaitLocation waits until the page's URL (location.href) is url.
func (b *Browser) WaitLocation(url string, timeout time.Duration) {
	b.t.Helper()
	var href string
	ok := b.waitFor(timeout, func(d time.Duration) bool {
		err := b.run(d, chromedp.Evaluate(`location.href`, &href))
		return err == nil && href == url
	})
	if !ok {
		b.t.Fatalf("browsertest: waited %v for the page to be at %s; it is at %s%s", timeout, url, href, b.shotHint("wait-location"))
	}
}

// waitFor calls cond until it returns true or timeout passes, at least
// twice, every 50ms; cond gets how long one call may take.
func (b *Browser) waitFor(timeout time.Duration, cond func(d time.Duration) bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		d := min(b.timeout, max(time.Until(deadline), time.Second))
		if cond(d) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
}

// shotHint saves a screenshot for a failure message and says where it is.
func (b *Browser) shotHint(name string) string {
	path, err := b.screenshot(name)
	if err != nil {
		return fmt.Sprintf("; no screenshot: %v", err)
	}
	return "; screenshot: " + path
}

// SetViewport resizes the page's viewport and waits for the page to lay
// itself out again.
func (b *Browser) SetViewport(v Viewport) {
	b.t.Helper()
	if err := b.run(b.timeout, b.viewportAction(v)); err != nil {
		b.t.Fatalf("browsertest: set viewport %dx%d: %v", v.Width, v.Height, b.explain(err))
	}
}

func (b *Browser) viewportAction(v Viewport) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		scale := v.Scale
		if scale == 0 {
			scale = 1
		}
		err := emulation.SetDeviceMetricsOverride(int64(v.Width), int64(v.Height), scale, v.Mobile).
			WithScreenWidth(int64(v.Width)).WithScreenHeight(int64(v.Height)).Do(ctx)
		if err != nil {
			return err
		}
		touch := emulation.SetTouchEmulationEnabled(v.Mobile)
		if v.Mobile {
			touch = touch.WithMaxTouchPoints(5)
		}
		if err := touch.Do(ctx); err != nil {
			return err
		}
		b.mu.Lock()
		b.viewport = v
		b.mu.Unlock()
		// Two animation frames: resize handlers and layout have run.
		return chromedp.Evaluate(`new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`, nil,
			func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }).Do(ctx)
	})
}

// Viewport is the page's current viewport.
func (b *Browser) Viewport() Viewport {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.viewport
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
