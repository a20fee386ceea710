package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"time"
)

// The fast path forwards the common request, a GET, HEAD or OPTIONS without
// a body and without a protocol upgrade, on a connection of its own pool,
// writing the request and reading the response in the handler's goroutine.
//
// Why not httputil.ReverseProxy with http.Transport for everything? Measured
// on the benchmark machine (2 cores), even tuned it spent about 39 µs of CPU
// per request against nginx's 15: the Transport hands every request from
// the handler to a write goroutine and the response back from a read
// goroutine, and each hand-off is a scheduler wake-up, on top of cloning the
// request and its headers. Forwarding inline costs about 28 µs (see
// docs/BENCHMARKS.md). Everything else (bodies, websockets, other methods)
// still goes through ReverseProxy, whose handling of those is hard to get
// right and not worth duplicating.
//
// The fast path keeps ReverseProxy's semantics: hop-by-hop headers are
// dropped both ways, X-Forwarded-* are replaced, unparsable query
// parameters are dropped, 1xx responses and trailers are passed on, and
// streamed responses are flushed as they arrive.

// fastEligible reports whether r can take the fast path.
func fastEligible(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		// Only idempotent methods: the fast path retries a request once
		// when a pooled connection turns out to be closed, and it must
		// never repeat a POST.
		return false
	}
	if r.ContentLength != 0 || (r.Body != nil && r.Body != http.NoBody) {
		return false
	}
	if _, ok := r.Header["Upgrade"]; ok {
		return false
	}
	if _, ok := r.Header["Expect"]; ok {
		return false
	}
	return true
}

// upConn is a pooled connection to an upstream.
type upConn struct {
	addr      string
	c         net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
	reused    bool
	// abort unblocks a read in progress. It is made once per connection
	// so that watching a request's context does not allocate a closure.
	abort func()
}

// connPool keeps idle upstream connections, newest first per address, so
// that under light load a few connections stay warm and the rest age out.
type connPool struct {
	dialer      net.Dialer
	maxIdle     int // per address
	idleTimeout time.Duration

	mu      sync.Mutex
	idle    map[string][]*upConn
	sweeper *time.Timer // nil while no sweep is scheduled
}

func newConnPool(dialTimeout time.Duration) *connPool {
	return &connPool{
		dialer:      net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second},
		maxIdle:     512,
		idleTimeout: 90 * time.Second,
		idle:        map[string][]*upConn{},
	}
}

func (cp *connPool) get(ctx context.Context, addr string) (*upConn, error) {
	cp.mu.Lock()
	if conns := cp.idle[addr]; len(conns) > 0 {
		uc := conns[len(conns)-1]
		conns[len(conns)-1] = nil
		cp.idle[addr] = conns[:len(conns)-1]
		cp.mu.Unlock()
		uc.reused = true
		return uc, nil
	}
	cp.mu.Unlock()
	return cp.dial(ctx, addr)
}

func (cp *connPool) dial(ctx context.Context, addr string) (*upConn, error) {
	c, err := cp.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &upConn{
		addr:  addr,
		c:     c,
		br:    bufio.NewReaderSize(c, 8<<10),
		bw:    bufio.NewWriterSize(c, 4<<10),
		abort: func() { _ = c.SetReadDeadline(aLongTimeAgo) },
	}, nil
}

func (cp *connPool) put(uc *upConn, now time.Time) {
	uc.idleSince = now
	cp.mu.Lock()
	conns := cp.idle[uc.addr]
	if len(conns) >= cp.maxIdle {
		cp.mu.Unlock()
		uc.c.Close()
		return
	}
	cp.idle[uc.addr] = append(conns, uc)
	if cp.sweeper == nil {
		cp.sweeper = time.AfterFunc(cp.idleTimeout/2, cp.sweep)
	}
	cp.mu.Unlock()
}

// sweep closes connections idle for longer than idleTimeout, so that
// connections to sandboxes that are gone do not linger. It reschedules
// itself while anything is idle.
func (cp *connPool) sweep() {
	cutoff := time.Now().Add(-cp.idleTimeout)
	var stale []*upConn
	cp.mu.Lock()
	for addr, conns := range cp.idle {
		// Oldest first: the slice is in put order.
		n := 0
		for n < len(conns) && conns[n].idleSince.Before(cutoff) {
			n++
		}
		stale = append(stale, conns[:n]...)
		if n == len(conns) {
			delete(cp.idle, addr)
		} else if n > 0 {
			cp.idle[addr] = append(conns[:0:0], conns[n:]...)
		}
	}
	if len(cp.idle) > 0 {
		cp.sweeper = time.AfterFunc(cp.idleTimeout/2, cp.sweep)
	} else {
		cp.sweeper = nil
	}
	cp.mu.Unlock()
	for _, uc := range stale {
		uc.c.Close()
	}
}

func (cp *connPool) closeIdle() {
	cp.mu.Lock()
	idle := cp.idle
	cp.idle = map[string][]*upConn{}
	cp.mu.Unlock()
	for _, conns := range idle {
		for _, uc := range conns {
			uc.c.Close()
		}
	}
}

// aLongTimeAgo is a deadline in the past: setting it makes blocked reads
// return at once.
var aLongTimeAgo = time.Unix(1, 0)

// serveFast forwards r to s.route's upstream on the fast path.
func (p *Proxy) serveFast(s *reqState, r *http.Request) {
	ctx := r.Context()
	for attempt := 0; ; attempt++ {
		uc, err := p.pool.get(ctx, s.route.upstream)
		if err != nil {
			p.upstreamError(s, r, err)
			return
		}
		x := exchange{p: p, s: s, r: r, uc: uc}
		res, err := x.roundTrip()
		if err != nil {
			x.unwatch()
			uc.c.Close()
			// A pooled connection may have been closed by the upstream
			// while idle (Node closes them after 5 s). The request is
			// idempotent and got no answer: try once more on a new one.
			if attempt == 0 && uc.reused && ctx.Err() == nil && !isTimeout(err) {
				continue
			}
			p.upstreamError(s, r, err)
			return
		}
		x.relay(res)
		return
	}
}

// exchange is one request and response on an upstream connection.
type exchange struct {
	p  *Proxy
	s  *reqState
	r  *http.Request
	uc *upConn
	// stop ends the watch on the client's context; nil while not watching.
	stop func() bool
}

// watchAfter is how long the fast path waits for an upstream before it
// starts watching for the client to go away. Most responses come sooner,
// and not registering with the request's context for them saves about a
// microsecond of CPU per request; the rare slow response is then cut off
// as promptly as http.Transport would.
const watchAfter = 10 * time.Millisecond

// watch makes the client's departure unblock reads on the upstream, as
// http.Transport does. Call it after the last SetReadDeadline that could
// race with it.
func (x *exchange) watch() {
	if x.stop == nil {
		x.stop = context.AfterFunc(x.r.Context(), x.uc.abort)
	}
}

// unwatch stops watching and reports whether the abort deadline was left
// alone, so that the connection is still usable.
func (x *exchange) unwatch() bool {
	return x.stop == nil || x.stop()
}

// roundTrip writes the request head and reads the response head, passing
// 1xx responses on to the client.
func (x *exchange) roundTrip() (*http.Response, error) {
	uc, ctx := x.uc, x.r.Context()
	writeRequestHead(uc.bw, x.r)
	if err := uc.bw.Flush(); err != nil {
		return nil, err
	}
	// Reading now usually costs one read(2) that returns EAGAIN. Waiting
	// for readability first through syscall.RawConn would save it, but
	// RawConn.Read resets the poller's readiness before waiting, so a
	// response that arrived in between is noticed only at the next
	// deadline: measured, that stalled requests for 10 ms.
	deadline := x.s.start.Add(x.p.headerTimeout)
	for {
		if err := x.waitResponse(deadline); err != nil {
			return nil, err
		}
		res, err := http.ReadResponse(uc.br, x.r)
		if err != nil {
			return nil, err
		}
		switch {
		case res.StatusCode == http.StatusSwitchingProtocols:
			return nil, errors.New("upstream switched protocols without being asked to")
		case res.StatusCode >= 200 || res.StatusCode < 100:
			if res.Body == http.NoBody || (res.ContentLength >= 0 && int64(uc.br.Buffered()) >= res.ContentLength) {
				// The body is in memory: no more reads from the
				// socket, so the header deadline can stay.
				return res, nil
			}
			// The body is read from the socket, maybe for hours (a
			// stream): no deadline, but stop if the client leaves.
			if err := uc.c.SetReadDeadline(time.Time{}); err != nil {
				return nil, err
			}
			if x.stop != nil && ctx.Err() != nil {
				// The client left just before the abort deadline was
				// cleared.
				return nil, ctx.Err()
			}
			x.watch()
			return res, nil
		case res.StatusCode == http.StatusContinue:
			// Not asked for (the request has no body); skip it.
		default:
			// 103 Early Hints and friends, as ReverseProxy passes them on.
			h := x.s.Header()
			copyHeaderShared(h, res.Header)
			x.s.w.WriteHeader(res.StatusCode)
			clear(h)
		}
	}
}

// waitResponse waits until the upstream starts answering or deadline
// passes. It waits watchAfter without watching the client, then watches.
func (x *exchange) waitResponse(deadline time.Time) error {
	uc := x.uc
	if uc.br.Buffered() > 0 {
		return nil
	}
	if x.stop == nil {
		first := x.s.start.Add(watchAfter)
		if first.After(deadline) {
			first = deadline
		}
		if err := uc.c.SetReadDeadline(first); err != nil {
			return err
		}
		_, err := uc.br.Peek(1)
		if err == nil || !isTimeout(err) || !first.Before(deadline) {
			return err
		}
		if err := x.r.Context().Err(); err != nil {
			return err
		}
		// A slow upstream (a dev server compiling, a long poll).
		if err := uc.c.SetReadDeadline(deadline); err != nil {
			return err
		}
		x.watch()
	}
	_, err := uc.br.Peek(1)
	return err
}

// relay sends the response and then pools or closes the connection, also
// when copying panics with http.ErrAbortHandler.
func (x *exchange) relay(res *http.Response) {
	complete := false
	defer func() {
		// Bytes after the response would be read as the next response:
		// never reuse such a connection, nor one whose abort deadline
		// was set.
		if x.unwatch() && complete && !res.Close && x.uc.br.Buffered() == 0 {
			x.p.pool.put(x.uc, x.s.start)
		} else {
			x.uc.c.Close()
		}
	}()
	complete = x.p.copyFast(x.s, res)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// copyFast sends the response to the client. It reports whether the whole
// body was read, so that the connection can be reused. Once the header is
// sent there is no way to tell the client about an upstream failure except
// to break the response, as ReverseProxy does with http.ErrAbortHandler.
func (p *Proxy) copyFast(s *reqState, res *http.Response) bool {
	removeHopByHop(res.Header)
	h := s.Header()
	copyHeaderShared(h, res.Header)
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		h["Trailer"] = []string{strings.Join(keys, ", ")}
	}
	s.WriteHeader(res.StatusCode)
	if res.Body == http.NoBody {
		return true
	}

	// Flush every write of a stream (no length, or server-sent events) so
	// that events reach the browser as they happen; buffer the rest. Flush
	// errors are ignored as ReverseProxy does: a writer that cannot flush
	// still delivers, and a gone client shows up as a write error.
	var rc *http.ResponseController
	if res.ContentLength < 0 || isEventStream(res.Header["Content-Type"]) {
		rc = http.NewResponseController(s.w)
		_ = rc.Flush()
	}
	buf := buffers.Get().(*[bufSize]byte)
	defer buffers.Put(buf)
	for {
		n, rerr := res.Body.Read(buf[:])
		if n > 0 {
			if _, werr := s.w.Write(buf[:n]); werr != nil {
				panic(http.ErrAbortHandler) // the client went away
			}
			if rc != nil {
				_ = rc.Flush()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if s.req.Context().Err() != nil { // the client left; AfterFunc cut the read
				panic(http.ErrAbortHandler)
			}
			p.log.Warn("proxy: upstream broke off a response", "sandbox", s.sandbox, "endpoint", s.endpoint,
				"service", s.route.service, "upstream", s.route.upstream, "err", rerr)
			panic(http.ErrAbortHandler)
		}
	}
	if len(res.Trailer) > 0 {
		// Force chunked encoding, which is what carries trailers.
		_ = http.NewResponseController(s.w).Flush()
		if len(res.Trailer) == announced {
			copyHeaderShared(h, res.Trailer)
		} else {
			for k, vv := range res.Trailer {
				h[http.TrailerPrefix+k] = vv
			}
		}
	}
	return true
}

// writeRequestHead writes the request line and headers the way
// ReverseProxy's Rewrite with SetXForwarded would send them, without
// building an outgoing http.Request.
func writeRequestHead(w *bufio.Writer, r *http.Request) {
	w.WriteString(r.Method)
	w.WriteByte(' ')
	writeTarget(w, r)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(r.Host)
	w.WriteString("\r\n")

	conn := r.Header["Connection"]
	for k, vv := range r.Header {
		if skipRequestHeader(k) || (len(conn) > 0 && listedIn(conn, k)) {
			continue
		}
		for _, v := range vv {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	if te := r.Header["Te"]; len(te) > 0 && hasToken(te, "trailers") {
		w.WriteString("Te: trailers\r\n")
	}
	if ip := clientIP(r.RemoteAddr); ip != "" {
		w.WriteString("X-Forwarded-For: ")
		w.WriteString(ip)
		w.WriteString("\r\n")
	}
	w.WriteString("X-Forwarded-Host: ")
	w.WriteString(r.Host)
	if r.TLS != nil {
		w.WriteString("\r\nX-Forwarded-Proto: https\r\n\r\n")
	} else {
		w.WriteString("\r\nX-Forwarded-Proto: http\r\n\r\n")
	}
}

// writeTarget writes the request target: the path unchanged, and the query
// unchanged unless it has parameters that ReverseProxy would drop.
func writeTarget(w *bufio.Writer, r *http.Request) {
	u := r.URL
	if u.Opaque != "" {
		// Unusual targets: let net/url write them.
		w.WriteString(u.RequestURI())
		return
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	w.WriteString(path)
	if u.RawQuery != "" || u.ForceQuery {
		w.WriteByte('?')
		w.WriteString(cleanQuery(u.RawQuery))
	}
}

// cleanQuery mirrors httputil's cleanQueryParams: a query that servers
// could parse differently (semicolons, bad escapes, absurdly many
// parameters) is re-encoded without the parts net/url rejects, so that the
// proxy and the upstream agree on what was asked.
func cleanQuery(s string) string {
	reencode := func(s string) string {
		v, _ := url.ParseQuery(s)
		return v.Encode()
	}
	if strings.Count(s, "&") >= 10000 {
		return reencode(s)
	}
	for i := 0; i < len(s); {
		switch s[i] {
		case ';':
			return reencode(s)
		case '%':
			if i+2 >= len(s) || !ishex(s[i+1]) || !ishex(s[i+2]) {
				return reencode(s)
			}
			i += 3
		default:
			i++
		}
	}
	return s
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// skipRequestHeader reports whether a client header must not be forwarded:
// hop-by-hop headers, forwarding headers the proxy sets itself (a client
// must not be able to forge them), and framing headers the proxy writes.
func skipRequestHeader(k string) bool {
	switch k {
	case "Host", "Content-Length", "Forwarded",
		"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return isForwardedHeader(k)
}

func isForwardedHeader(k string) bool {
	const prefix = "X-Forwarded-"
	return len(k) > len(prefix) && strings.EqualFold(k[:len(prefix)], prefix)
}

var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopByHop drops a response's hop-by-hop headers, including those its
// Connection header names.
func removeHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				h.Del(sf)
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// listedIn reports whether header k is named in a Connection header.
func listedIn(connection []string, k string) bool {
	return hasToken(connection, k)
}

// hasToken reports whether a comma-separated header lists token,
// case-insensitively.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(part), token) {
				return true
			}
		}
	}
	return false
}

// copyHeaderShared copies src into dst sharing the value slices, which is
// safe because src is a response the proxy read and owns, and saves an
// allocation per header.
func copyHeaderShared(dst, src http.Header) {
	for k, vv := range src {
		dst[k] = vv
	}
}

func isEventStream(ct []string) bool {
	if len(ct) == 0 {
		return false
	}
	v := strings.TrimSpace(ct[0])
	const es = "text/event-stream"
	return len(v) >= len(es) && strings.EqualFold(v[:len(es)], es) &&
		(len(v) == len(es) || v[len(es)] == ';' || v[len(es)] == ' ')
}

// clientIP is the host part of a RemoteAddr, without allocating.
func clientIP(remoteAddr string) string {
	i := strings.LastIndexByte(remoteAddr, ':')
	if i < 0 {
		return ""
	}
	host := remoteAddr[:i]
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return host
}
