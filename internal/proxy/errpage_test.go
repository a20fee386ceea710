package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/golden"

	"sandpit.dev/sandpit/internal/sandbox"
)

// TestErrorPages renders every page the proxy answers by itself, for a
// browser (HTML) and for everything else (JSON), against golden files.
func TestErrorPages(t *testing.T) {
	tbl := NewTable()
	p := New(Config{Table: tbl, ResponseHeaderTimeout: 50 * time.Millisecond})
	defer p.CloseIdleConnections()

	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hang.Close()

	tbl.Set("shop", Target{Phase: sandbox.PhaseReady, Endpoints: []sandbox.EndpointStatus{
		{Name: "app", Routes: []sandbox.Route{
			{PathPrefix: "/api", Service: "api", Port: "http", Upstream: "127.0.0.1:1"}, // nothing listens on port 1
			{PathPrefix: "/slow", Service: "slow", Port: "http", Upstream: hang.Listener.Addr().String()},
			{PathPrefix: "/new", Service: "worker", Port: "metrics"}, // no address yet
		}},
		{Name: "admin", Routes: []sandbox.Route{{PathPrefix: "/", Service: "admin", Port: "http", Upstream: "127.0.0.1:1"}}},
	}})
	tbl.Set("starting", Target{Phase: sandbox.PhaseProvisioning, Message: "building api (go build ./cmd/api)"})
	tbl.Set("pending", Target{Phase: sandbox.PhasePending})
	tbl.Set("broken", Target{Phase: sandbox.PhaseFailed, Message: `service "api" exited with code 2: <panic> & "quotes"`})
	tbl.Set("asleep", Target{Phase: sandbox.PhaseSuspended, Message: "idle for 30m"})
	tbl.Set("going", Target{Phase: sandbox.PhaseDeleting})
	tbl.Set("bare", Target{Phase: sandbox.PhaseReady})

	cases := []struct {
		name, host, path string
		status           int
	}{
		{"missing_host", "", "/", 400},
		{"foreign_host", "example.com:8080", "/", 404},
		{"malformed_host", "shop.localhost:8080", "/", 400},
		{"unknown_sandbox", "app--nope.localhost:8080", "/", 404},
		{"not_ready_provisioning", "app--starting.localhost:8080", "/", 503},
		{"not_ready_pending", "app--pending.localhost:8080", "/", 503},
		{"not_ready_failed", "app--broken.localhost:8080", "/", 503},
		{"not_ready_suspended", "app--asleep.localhost:8080", "/", 503},
		{"not_ready_deleting", "app--going.localhost:8080", "/", 503},
		{"unknown_endpoint", "web--shop.localhost:8080", "/", 404},
		{"unknown_endpoint_none", "web--bare.localhost:8080", "/", 404},
		{"no_route", "app--shop.localhost:8080", "/<script>alert(1)</script>", 404},
		{"no_address", "app--shop.localhost:8080", "/new/x", 502},
		{"upstream_down", "app--shop.localhost:8080", "/api/items", 502},
		{"upstream_timeout", "app--shop.localhost:8080", "/slow", 504},
	}
	for _, c := range cases {
		for _, format := range []string{"html", "json"} {
			t.Run(c.name+"/"+format, func(t *testing.T) {
				r := httptest.NewRequest("GET", "http://x"+strings.ReplaceAll(c.path, "<", "%3C"), nil)
				r.Host = c.host
				if format == "html" {
					r.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
				} else {
					r.Header.Set("Accept", "*/*")
				}
				w := httptest.NewRecorder()
				p.ServeHTTP(w, r)
				if w.Code != c.status {
					t.Errorf("status %d, want %d", w.Code, c.status)
				}
				// JSON carries text as is; HTML must escape it.
				if format == "html" && (strings.Contains(w.Body.String(), "<script>") || strings.Contains(w.Body.String(), "<panic>")) {
					t.Errorf("unescaped markup in the page:\n%s", w.Body)
				}
				golden.File(t, filepath.Join("testdata", c.name+"."+format), []byte(dumpPage(w)))
			})
		}
	}
}

// TestWakePages renders the pages of a request held for a suspended
// sandbox against golden files: what a browser gets while it wakes up, what
// an API client gets when it does not wake up in time, and what both get
// when the server refuses to wake it.
func TestWakePages(t *testing.T) {
	tbl := NewTable()
	p := New(Config{
		Table: tbl,
		Wake: func(ctx context.Context, sb, ep string) error {
			if sb == "capped" {
				return errors.New("owner alice has 3 running sandboxes, the limit is 3: suspend or delete one")
			}
			return nil // and it stays Suspended
		},
		WakeTimeout: 20 * time.Millisecond,
		BrowserWait: 20 * time.Millisecond,
	})
	tbl.Set("asleep", Target{Phase: sandbox.PhaseSuspended, Message: "idle for 30m"})
	tbl.Set("capped", Target{Phase: sandbox.PhaseSuspended, Message: "idle for 2h"})
	for _, c := range []struct{ name, host, format string }{
		{"waking", "app--asleep.localhost:8080", "html"},
		{"waking_timeout", "app--asleep.localhost:8080", "json"},
		{"wake_refused", "app--capped.localhost:8080", "html"},
		{"wake_refused", "app--capped.localhost:8080", "json"},
	} {
		t.Run(c.name+"/"+c.format, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://x/", nil)
			r.Host = c.host
			if c.format == "html" {
				r.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
			} else {
				r.Header.Set("Accept", "*/*")
			}
			w := httptest.NewRecorder()
			p.ServeHTTP(w, r)
			if w.Code != http.StatusServiceUnavailable {
				t.Errorf("status %d, want 503", w.Code)
			}
			golden.File(t, filepath.Join("testdata", c.name+"."+c.format), []byte(dumpPage(w)))
		})
	}
}

// dumpPage is the status, the headers that matter and the body of a page.
func dumpPage(w *httptest.ResponseRecorder) string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d\n", w.Code)
	for _, k := range []string{"Content-Type", "Cache-Control", "Retry-After"} {
		if v := w.Header().Get(k); v != "" {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	b.WriteString("\n")
	b.WriteString(w.Body.String())
	return b.String()
}

func TestHeadErrorPageHasNoBody(t *testing.T) {
	p := New(Config{Table: NewTable()})
	r := httptest.NewRequest("HEAD", "http://app--nope.localhost/", nil)
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r)
	if w.Code != 404 || w.Body.Len() != 0 || w.Header().Get("Content-Length") == "" {
		t.Fatalf("HEAD: %d, body %q, Content-Length %q", w.Code, w.Body, w.Header().Get("Content-Length"))
	}
}
