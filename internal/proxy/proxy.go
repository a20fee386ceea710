package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sandpit.dev/sandpit/internal/sandbox"
)

// Config holds a Proxy's dependencies and settings.
type Config struct {
	// Domain is the base domain of endpoint hosts,
	// "<endpoint>--<sandbox>.<Domain>". Empty means "localhost", which
	// browsers resolve to loopback for every subdomain.
	Domain string
	// Table is where the proxy looks sandboxes up. Required.
	Table *Table
	// Logger receives upstream errors. Nil discards them.
	Logger *slog.Logger
	// OnRequest, when set, is called once for every request whose host
	// names a sandbox in the table, whatever its phase, so the server can
	// record activity (idle suspend). It runs on the request path: it must
	// be fast and must not block.
	OnRequest func(sandboxName, endpoint string)
	// Wake, when set, is called when a request arrives for a sandbox whose
	// phase is Suspended, to start it again; the request is then held
	// until the sandbox is Ready (and forwarded), leaves the table, Fails
	// or is being deleted (and answered with the page for that), or until
	// WakeTimeout or BrowserWait passes. Concurrent requests for the same
	// sandbox share one call: Wake is called again only by a request that
	// arrives when no request for that sandbox is held and no call is in
	// progress, or after a call returned an error. The sandbox may still
	// be resuming then, so Wake must be idempotent. It runs in a goroutine
	// of its own, with a context that ends after WakeTimeout but not when
	// the client leaves. An error (for example a limit on running
	// sandboxes) is shown to the waiting clients as the reason they were
	// not served, so it should say what to do. Nil means no waking:
	// requests to a suspended sandbox get a 503 page that says so.
	Wake func(ctx context.Context, sandboxName, endpoint string) error
	// WakeTimeout bounds how long a request to a suspended sandbox is held
	// while it wakes up; then it gets a 503 with Retry-After. Zero means
	// 60s.
	WakeTimeout time.Duration
	// BrowserWait is the bound instead of WakeTimeout for requests that
	// accept HTML: after it a browser gets a small "waking up" page that
	// reloads itself every second, so that the user sees what is going
	// on. Zero means 2s.
	BrowserWait time.Duration
	// Registerer receives the proxy's metrics. Nil leaves them unregistered.
	Registerer prometheus.Registerer
	// DialTimeout bounds connecting to an upstream. Zero means 5s.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for an upstream's response
	// header. Zero means 3 minutes: dev servers may compile a page on its
	// first request. There is no bound on the whole response, because
	// streams and websockets are long-lived.
	ResponseHeaderTimeout time.Duration
	// DisableFastPath sends every request through httputil.ReverseProxy
	// and http.Transport instead of forwarding plain GET/HEAD/OPTIONS
	// requests inline. It exists to compare the two and as an escape hatch;
	// the fast path costs about a third less CPU per request.
	DisableFastPath bool
}

// Proxy routes "<endpoint>--<sandbox>.<domain>" requests to the sandbox's
// services. It is an http.Handler.
type Proxy struct {
	domain    string
	table     *Table
	log       *slog.Logger
	onRequest func(sandboxName, endpoint string)
	metrics   *metrics
	transport *http.Transport
	rp        *httputil.ReverseProxy
	states    sync.Pool

	fast          bool
	pool          *connPool
	headerTimeout time.Duration

	wake        func(ctx context.Context, sandboxName, endpoint string) error
	wakeTimeout time.Duration
	browserWait time.Duration
	wakeMu      sync.Mutex
	wakes       map[string]*wakeCall // by sandbox name; guarded by wakeMu
}

// New returns a Proxy. It panics if cfg.Table is nil or if the metrics are
// already registered on cfg.Registerer, both programming errors.
func New(cfg Config) *Proxy {
	if cfg.Table == nil {
		panic("proxy.New: Config.Table is nil")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{
		domain:    normalizeDomain(cfg.Domain),
		table:     cfg.Table,
		log:       log,
		onRequest: cfg.OnRequest,
		metrics:   newMetrics(cfg.Registerer),
		transport: newTransport(cfg),
		fast:      !cfg.DisableFastPath,
		pool:      newConnPool(dialTimeout(cfg)),

		wake:        cfg.Wake,
		wakeTimeout: durationOr(cfg.WakeTimeout, 60*time.Second),
		browserWait: durationOr(cfg.BrowserWait, 2*time.Second),
		wakes:       map[string]*wakeCall{},
	}
	p.headerTimeout = headerTimeout(cfg)
	p.rp = &httputil.ReverseProxy{
		Rewrite:      p.rewrite,
		Transport:    p.transport,
		BufferPool:   bufferPool{},
		ErrorHandler: p.upstreamError,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	p.states.New = func() any { return new(reqState) }
	return p
}

// CloseIdleConnections closes the proxy's idle upstream connections, for
// example when the server shuts down.
func (p *Proxy) CloseIdleConnections() {
	p.transport.CloseIdleConnections()
	p.pool.closeIdle()
}

// reqState is one request's bookkeeping. It wraps the ResponseWriter to see
// the status code, and it is pooled because it would otherwise be the one
// allocation per request that the proxy itself adds.
type reqState struct {
	w        http.ResponseWriter
	req      *http.Request
	p        *Proxy
	start    time.Time
	status   int
	result   result
	sandbox  string
	endpoint string
	route    *route
}

type stateKey struct{}

// ServeHTTP routes r by its Host and path, forwards it, or answers with a
// page that says why it cannot.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := p.states.Get().(*reqState)
	*s = reqState{w: w, req: r, p: p, start: time.Now()}
	// Deferred so that requests aborted with http.ErrAbortHandler (the
	// client or upstream went away mid-body) are counted too.
	defer p.finish(s)

	epName, sbName, kind := parseHost(r.Host, p.domain)
	if kind != hostOK {
		s.page(r, p.hostError(r, kind))
		return
	}
	s.sandbox, s.endpoint = sbName, epName
	e := p.table.lookup(sbName)
	if e == nil {
		s.page(r, p.unknownSandbox(r, sbName))
		return
	}
	if p.onRequest != nil {
		p.onRequest(sbName, epName)
	}
	if e.target.Phase != sandbox.PhaseReady {
		if e = p.awaitReady(s, r, e); e == nil {
			return
		}
	}
	ep := e.endpoint(epName)
	if ep == nil {
		s.page(r, p.unknownEndpoint(r, e, epName))
		return
	}
	rt := ep.match(r.URL.Path)
	if rt == nil {
		s.page(r, noRoute(e, ep, r.URL.Path))
		return
	}
	s.route = rt
	if rt.upstream == "" {
		s.page(r, noAddress(e, ep, rt))
		return
	}
	if p.fast && fastEligible(r) {
		p.serveFast(s, r)
		return
	}
	// Rewrite needs the route; the context is the only way to pass it.
	p.rp.ServeHTTP(s, r.WithContext(context.WithValue(r.Context(), stateKey{}, s)))
}

func (p *Proxy) finish(s *reqState) {
	status := s.status
	if status == 0 {
		// Nothing was written: net/http will send an empty 200.
		status = http.StatusOK
	}
	p.metrics.count(s.result, status)
	*s = reqState{}
	p.states.Put(s)
}

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	s := pr.In.Context().Value(stateKey{}).(*reqState)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = s.route.upstream
	// The upstream sees the public host, so that redirects, absolute links
	// and cookies it makes are right for the browser. (Rewrite already
	// dropped Forwarded and X-Forwarded-{For,Host,Proto}.)
	pr.Out.Host = pr.In.Host
	stripForwarded(pr.Out.Header)
	pr.SetXForwarded()
}

// stripForwarded removes the X-Forwarded-* headers a client sent (Port,
// Prefix, Server, ...), which frameworks would otherwise trust as ours.
func stripForwarded(h http.Header) {
	for k := range h {
		if len(k) > len("X-Forwarded-") && strings.EqualFold(k[:len("X-Forwarded-")], "X-Forwarded-") {
			delete(h, k)
		}
	}
	delete(h, "Forwarded")
}

// upstreamError is the ReverseProxy's ErrorHandler: the upstream could not be
// reached, did not answer in time, or broke off.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	s := w.(*reqState)
	if s.status != 0 {
		// Too late for an error page (for example a websocket whose
		// connection was already hijacked): log it and let it go.
		p.log.Warn("proxy: upstream broke off", "sandbox", s.sandbox, "endpoint", s.endpoint,
			"service", s.route.service, "upstream", s.route.upstream, "err", err)
		return
	}
	if r.Context().Err() != nil {
		// The client left; nobody will read a page.
		s.result = resultClientClosed
		s.status = 499
		return
	}
	p.log.Warn("proxy: upstream error", "sandbox", s.sandbox, "endpoint", s.endpoint,
		"service", s.route.service, "port", s.route.port, "upstream", s.route.upstream, "err", err)
	s.page(r, upstreamDown(s, err, p.headerTimeout))
}

// page answers the request with the proxy's own page.
func (s *reqState) page(r *http.Request, pe *pageError) {
	s.result = pe.result
	writePage(s, r, pe)
}

// The ResponseWriter side of reqState.

func (s *reqState) Header() http.Header { return s.w.Header() }

func (s *reqState) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.sent(code)
	}
	s.w.WriteHeader(code)
}

func (s *reqState) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.sent(http.StatusOK)
	}
	return s.w.Write(b)
}

func (s *reqState) sent(code int) {
	s.status = code
	if s.route != nil {
		s.p.metrics.latency.Observe(time.Since(s.start).Seconds())
	}
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (s *reqState) Unwrap() http.ResponseWriter { return s.w }

// Hijack is only called by ReverseProxy for a 101 Switching Protocols, which
// never goes through WriteHeader.
func (s *reqState) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(s.w).Hijack()
	if err == nil && s.status == 0 {
		s.sent(http.StatusSwitchingProtocols)
	}
	return c, brw, err
}

// bufferPool recycles the buffers ReverseProxy copies bodies through;
// without one it allocates 32 KiB per request. It stores array pointers,
// not slices, so that Put does not allocate a slice header.
type bufferPool struct{}

const bufSize = 32 << 10

var buffers = sync.Pool{New: func() any { return new([bufSize]byte) }}

func (bufferPool) Get() []byte { return buffers.Get().(*[bufSize]byte)[:] }

func (bufferPool) Put(b []byte) {
	if cap(b) == bufSize {
		buffers.Put((*[bufSize]byte)(b[:bufSize]))
	}
}

// describeUpstreamErr says in words why an upstream did not answer, and
// whether it was a timeout (a 504 rather than a 502).
func describeUpstreamErr(err error) (why string, timeout bool) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "it did not answer in time", true
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return fmt.Sprintf("nothing accepts connections at %s", oe.Addr), false
	}
	return err.Error(), false
}
