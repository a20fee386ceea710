package browsertest

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
)

// onEvent records what the page's console and network said.
func (b *Browser) onEvent(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		text := formatArgs(ev.Args)
		if ev.Type == runtime.APITypeAssert {
			text = strings.TrimSpace("Assertion failed: " + text)
		}
		msg := "console." + string(ev.Type) + ": " + text + stackLocation(ev.StackTrace)
		b.record(msg, ev.Type == runtime.APITypeError || ev.Type == runtime.APITypeAssert)
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text = strings.SplitN(d.Exception.Description, "\n", 2)[0]
		} else if d.Exception != nil && d.Exception.Value != nil {
			text += " " + formatArgs([]*runtime.RemoteObject{d.Exception})
		}
		loc := d.URL
		if loc == "" && d.StackTrace != nil && len(d.StackTrace.CallFrames) > 0 {
			loc = d.StackTrace.CallFrames[0].URL
		}
		if loc != "" {
			loc = fmt.Sprintf(" (at %s:%d:%d)", loc, d.LineNumber+1, d.ColumnNumber+1)
		}
		b.record("uncaught exception: "+text+loc, true)
	case *cdplog.EventEntryAdded:
		e := ev.Entry
		msg := fmt.Sprintf("log.%s (%s): %s", e.Level, e.Source, e.Text)
		if e.URL != "" {
			msg += " (at " + e.URL + ")"
		}
		// Failed loads are judged below, from the network events, which
		// say what was loaded; other entries about a load that failed
		// (such as a 404 page refused as a script) add nothing.
		if e.Level == cdplog.LevelError && e.Source != cdplog.SourceNetwork {
			b.recordErr(consoleError{msg: msg, text: e.Text})
		} else {
			b.record(msg, false)
		}
	case *network.EventRequestWillBeSent:
		b.mu.Lock()
		b.requests[ev.RequestID] = request{url: ev.Request.URL}
		b.mu.Unlock()
	case *network.EventResponseReceived:
		r := ev.Response
		if ev.Type == network.ResourceTypeDocument {
			b.record(fmt.Sprintf("loaded document %s: HTTP %d %s", r.URL, r.Status, r.StatusText), false)
		}
		if r.Status >= 400 && watched(ev.Type) {
			b.recordErr(consoleError{msg: fmt.Sprintf("failed to load %s %s: HTTP %d %s", kind(ev.Type), r.URL, r.Status, r.StatusText), failed: r.URL})
		}
	case *network.EventLoadingFinished:
		b.mu.Lock()
		delete(b.requests, ev.RequestID)
		b.mu.Unlock()
	case *network.EventLoadingFailed:
		b.mu.Lock()
		req := b.requests[ev.RequestID]
		delete(b.requests, ev.RequestID)
		b.mu.Unlock()
		if ev.Canceled || !watched(ev.Type) {
			return
		}
		why := ev.ErrorText
		if ev.BlockedReason != "" {
			why += " (blocked: " + string(ev.BlockedReason) + ")"
		}
		b.recordErr(consoleError{msg: fmt.Sprintf("failed to load %s %s: %s", kind(ev.Type), req.url, why), failed: req.url})
	}
}

// watched are the resources whose failure breaks a page.
func watched(t network.ResourceType) bool {
	return t == network.ResourceTypeScript || t == network.ResourceTypeStylesheet || t == network.ResourceTypeFont
}

func kind(t network.ResourceType) string {
	switch t {
	case network.ResourceTypeScript:
		return "script"
	case network.ResourceTypeStylesheet:
		return "style sheet"
	case network.ResourceTypeFont:
		return "font"
	}
	return strings.ToLower(string(t))
}

// consoleError is one error the page reported.
type consoleError struct {
	msg    string
	failed string // the URL, for a failed load
	text   string // the text, for a log entry
}

func (b *Browser) record(msg string, isErr bool) {
	if isErr {
		b.recordErr(consoleError{msg: msg})
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.log = append(b.log, time.Now().Format("15:04:05.000 ")+msg)
}

func (b *Browser) recordErr(e consoleError) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.log = append(b.log, time.Now().Format("15:04:05.000 ")+e.msg)
	b.errs = append(b.errs, e)
}

// errorList returns the console errors, less log entries about a load that
// failed (reported once already). b.mu is held.
func (b *Browser) errorList() []string {
	var out []string
next:
	for _, e := range b.errs {
		if e.text != "" {
			for _, f := range b.errs {
				if f.failed != "" && strings.Contains(e.text, f.failed) {
					continue next
				}
			}
		}
		out = append(out, e.msg)
	}
	return out
}

func formatArgs(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		switch {
		case a == nil:
		case a.Value != nil:
			var s string
			if json.Unmarshal(a.Value, &s) == nil {
				parts = append(parts, s)
			} else {
				parts = append(parts, string(a.Value))
			}
		case a.UnserializableValue != "":
			parts = append(parts, string(a.UnserializableValue))
		case a.Description != "":
			parts = append(parts, strings.SplitN(a.Description, "\n", 2)[0])
		default:
			parts = append(parts, string(a.Type))
		}
	}
	return strings.Join(parts, " ")
}

func stackLocation(st *runtime.StackTrace) string {
	if st == nil || len(st.CallFrames) == 0 {
		return ""
	}
	f := st.CallFrames[0]
	return fmt.Sprintf(" (at %s:%d:%d)", f.URL, f.LineNumber+1, f.ColumnNumber+1)
}

// ConsoleErrors returns the console errors so far, allowed ones included:
// console.error and console.assert calls, uncaught exceptions, error log
// entries, and scripts, style sheets and fonts that failed to load (network
// errors or HTTP 4xx/5xx).
func (b *Browser) ConsoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.errorList()
}

// ConsoleLog returns every console message, log entry and failed load so
// far, each prefixed with the time it arrived.
func (b *Browser) ConsoleLog() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.log...)
}

// AllowConsoleErrors lets console errors matching any of the regular
// expressions pass the check at cleanup. It panics on an invalid pattern.
func (b *Browser) AllowConsoleErrors(patterns ...string) {
	res := compile(patterns)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.allow = append(b.allow, res...)
}

func (b *Browser) unexpectedErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
next:
	for _, e := range b.errorList() {
		for _, re := range b.allow {
			if re.MatchString(e) {
				continue next
			}
		}
		out = append(out, e)
	}
	return out
}
