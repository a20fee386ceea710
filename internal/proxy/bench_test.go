package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"sandpit.dev/sandpit/internal/sandbox"
)

// discardWriter is the cheapest ResponseWriter, so that the benchmark
// shows the proxy's own cost rather than net/http's server side.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}
func (w *discardWriter) Flush()                      {}

// BenchmarkServeHTTP forwards a GET to a real loopback upstream. Run with
// -benchmem: allocations per request are what this package controls.
func BenchmarkServeHTTP(b *testing.B) {
	for _, mode := range []struct {
		name string
		fast bool
	}{{"fast", true}, {"reverseproxy", false}} {
		b.Run(mode.name, func(b *testing.B) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header()["Content-Type"] = []string{"text/plain"}
				_, _ = w.Write([]byte("hello from the sandbox backend\n"))
			}))
			defer up.Close()
			tbl := NewTable()
			p := New(Config{Table: tbl, Registerer: prometheus.NewRegistry(), DisableFastPath: !mode.fast})
			defer p.CloseIdleConnections()
			tbl.Set("shop", readyTarget(up.Listener.Addr().String()))
			req := httptest.NewRequest("GET", "http://app--shop.localhost/api/items?x=1", nil)
			req.Header.Set("User-Agent", "bench")
			req.Header.Set("Accept", "*/*")
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				clear(w.h)
				p.ServeHTTP(w, req)
			}
		})
	}
}

func readyTarget(upstream string) Target {
	return Target{Phase: sandbox.PhaseReady, Endpoints: []sandbox.EndpointStatus{{
		Name: "app", Routes: []sandbox.Route{
			{PathPrefix: "/", Service: "web", Port: "http", Upstream: upstream},
			{PathPrefix: "/api", Service: "api", Port: "http", Upstream: upstream},
		},
	}}}
}
