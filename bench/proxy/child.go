package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sandpit.dev/sandpit/internal/proxy"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/server"
)

const (
	roleEnv     = "SANDPIT_BENCH_ROLE"
	upstreamEnv = "SANDPIT_BENCH_UPSTREAM"
	// profileEnv names a file for a CPU profile of a proxy child, e.g.
	// -targets sandpit+SANDPIT_BENCH_PROFILE=/tmp/cpu.pprof
	profileEnv = "SANDPIT_BENCH_PROFILE"
)

// backendBody is what the backend answers: a tiny page, so that the
// benchmark measures the proxies' per-request cost, not copying.
const backendBody = "hello from the sandbox backend\n"

// runRole is the child side: serve one role until SIGTERM, after printing
// the address on stdout for the parent.
func runRole(role string) error {
	var h http.Handler
	switch role {
	case "backend":
		body := []byte(backendBody)
		clen := strconv.Itoa(len(body))
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = []string{"text/plain; charset=utf-8"}
			w.Header()["Content-Length"] = []string{clen}
			_, _ = w.Write(body)
		})
	case "sandpit":
		// The GC settings of `sandpit serve`, so the proxy is measured as
		// it is served.
		server.TuneRuntime()
		h = sandpitProxy(os.Getenv(upstreamEnv))
	case "go-default":
		// The baseline the issue measured: httputil's single-host proxy
		// with default settings except a larger idle pool.
		u, err := url.Parse("http://" + os.Getenv(upstreamEnv))
		if err != nil {
			return err
		}
		rp := httputil.NewSingleHostReverseProxy(u)
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		rp.Transport = tr
		h = rp
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := proxy.NewServer("", h)
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		<-sig
		_ = srv.Close()
	}()
	if path := os.Getenv(profileEnv); path != "" && role != "backend" {
		// A CPU profile of the proxy under load, for tuning.
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	fmt.Printf("listening on %s\n", l.Addr())
	if err := srv.Serve(l); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// sandpitProxy builds the proxy as the server will: a table with many
// sandboxes, metrics on a registry, and an activity hook.
func sandpitProxy(upstream string) http.Handler {
	tbl := proxy.NewTable()
	for i := range 1000 {
		tbl.Set(fmt.Sprintf("other-%d", i), proxy.Target{Phase: sandbox.PhaseReady, Endpoints: []sandbox.EndpointStatus{{
			Name: "app", Routes: []sandbox.Route{{PathPrefix: "/", Service: "web", Port: "http", Upstream: "127.0.0.1:1"}},
		}}})
	}
	tbl.Set("bench", proxy.Target{Phase: sandbox.PhaseReady, Endpoints: []sandbox.EndpointStatus{{
		Name: "app",
		Routes: []sandbox.Route{
			{PathPrefix: "/api", Service: "api", Port: "http", Upstream: upstream},
			{PathPrefix: "/", Service: "web", Port: "http", Upstream: upstream},
		},
	}}})
	var lastActivity atomic.Int64
	return proxy.New(proxy.Config{
		Table:      tbl,
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Registerer: prometheus.NewRegistry(),
		OnRequest:  func(string, string) { lastActivity.Store(time.Now().UnixNano()) },
		// For before/after figures: -targets sandpit+SANDPIT_BENCH_SLOW=1
		DisableFastPath: os.Getenv("SANDPIT_BENCH_SLOW") == "1",
	})
}
