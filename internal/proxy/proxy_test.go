package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"sandpit.dev/sandpit/internal/sandbox"
)

// testEnv is a proxy in front of real loopback backends, reached by a
// client that sends every request to the proxy whatever the URL's host, as
// a browser resolving *.localhost to loopback would.
type testEnv struct {
	t      *testing.T
	proxy  *Proxy
	table  *Table
	reg    *prometheus.Registry
	front  *httptest.Server
	client *http.Client

	mu       sync.Mutex
	activity []string
}

func newTestEnv(t *testing.T, fast bool, configure ...func(*Config)) *testEnv {
	t.Helper()
	e := &testEnv{t: t, table: NewTable(), reg: prometheus.NewRegistry()}
	cfg := Config{
		Table:           e.table,
		Registerer:      e.reg,
		DisableFastPath: !fast,
		OnRequest: func(sb, ep string) {
			e.mu.Lock()
			e.activity = append(e.activity, ep+"--"+sb)
			e.mu.Unlock()
		},
	}
	for _, f := range configure {
		f(&cfg)
	}
	e.proxy = New(cfg)
	e.front = httptest.NewServer(e.proxy)
	t.Cleanup(e.front.Close)
	t.Cleanup(e.proxy.CloseIdleConnections)
	addr := e.front.Listener.Addr().String()
	e.client = &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
			DisableCompression: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

// backend starts a loopback upstream and returns its host:port.
func (e *testEnv) backend(h http.Handler) (*httptest.Server, string) {
	srv := httptest.NewServer(h)
	e.t.Cleanup(srv.Close)
	return srv, srv.Listener.Addr().String()
}

// ready puts sandbox "shop" in the table, Ready, with endpoint "app"
// routing every path to upstream.
func (e *testEnv) ready(upstream string) {
	e.table.Set("shop", Target{Phase: sandbox.PhaseReady, Endpoints: []sandbox.EndpointStatus{{
		Name: "app", Routes: []sandbox.Route{{PathPrefix: "/", Service: "web", Port: "http", Upstream: upstream}},
	}}})
}

func (e *testEnv) do(req *http.Request) *http.Response {
	e.t.Helper()
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	e.t.Cleanup(func() { res.Body.Close() })
	return res
}

func (e *testEnv) get(url string) (*http.Response, string) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	res := e.do(req)
	body, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return res, string(body)
}

// bothPaths runs a test through the fast path and through ReverseProxy,
// which must behave the same.
func bothPaths(t *testing.T, f func(t *testing.T, fast bool)) {
	t.Run("fast", func(t *testing.T) { f(t, true) })
	t.Run("reverseproxy", func(t *testing.T) { f(t, false) })
}

// echo answers with what it received.
type echoed struct {
	Service    string              `json:"service"`
	Method     string              `json:"method"`
	RequestURI string              `json:"request_uri"`
	Host       string              `json:"host"`
	Header     map[string][]string `json:"header"`
	BodyLen    int                 `json:"body_len"`
}

func echo(service string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Service", service)
		_ = json.NewEncoder(w).Encode(echoed{service, r.Method, r.RequestURI, r.Host, r.Header, len(body)})
	}
}

func decodeEcho(t *testing.T, body string) echoed {
	t.Helper()
	var got echoed
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("backend answer %q: %v", body, err)
	}
	return got
}

func TestProxyRoutesAndForwardsUnchanged(t *testing.T) {
	bothPaths(t, func(t *testing.T, fast bool) {
		e := newTestEnv(t, fast)
		_, api := e.backend(echo("api"))
		_, web := e.backend(echo("web"))
		e.table.Set("shop", Target{Phase: sandbox.PhaseReady, Endpoints: []sandbox.EndpointStatus{{
			Name: "app", Routes: []sandbox.Route{
				{PathPrefix: "/", Service: "web", Port: "http", Upstream: web},
				{PathPrefix: "/api", Service: "api", Port: "http", Upstream: api},
			},
		}}})
		for _, tt := range []struct{ path, service string }{
			{"/api", "api"},
			{"/api/items/42?sort=-name&q=a%2Fb%20c", "api"},
			{"/api/x%2Fy/z", "api"},
			{"/apix", "web"},
			{"/", "web"},
			{"/assets/app.js?v=1", "web"},
		} {
			res, body := e.get("http://app--shop.localhost" + tt.path)
			if res.StatusCode != 200 || res.Header.Get("X-Service") != tt.service {
				t.Fatalf("GET %s: %s from %q, want 200 from %s: %s", tt.path, res.Status, res.Header.Get("X-Service"), tt.service, body)
			}
			got := decodeEcho(t, body)
			if got.RequestURI != tt.path {
				t.Errorf("GET %s reached the upstream as %q, want it unchanged", tt.path, got.RequestURI)
			}
			if got.Host != "app--shop.localhost" {
				t.Errorf("upstream saw Host %q, want the public host", got.Host)
			}
		}
	})
}

func TestProxyPassesStatusAndHeaders(t *testing.T) {
	bothPaths(t, func(t *testing.T, fast bool) {
		e := newTestEnv(t, fast)
		_, up := e.backend(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", "/elsewhere")
			w.Header().Add("Set-Cookie", "a=1")
			w.Header().Add("Set-Cookie", "b=2")
			w.WriteHeader(http.StatusFound)
		}))
		e.ready(up)
		res, _ := e.get("http://app--shop.localhost/login")
		if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/elsewhere" || len(res.Header["Set-Cookie"]) != 2 {
			t.Fatalf("got %s %v", res.Status, res.Header)
		}
	})
}

func TestForwardedHeadersCannotBeForged(t *testing.T) {
	bothPaths(t, func(t *testing.T, fast bool) {
		e := newTestEnv(t, fast)
		_, up := e.backend(echo("web"))
		e.ready(up)
		req, _ := http.NewRequest("GET", "http://app--shop.localhost:8080/", nil)
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		req.Header.Set("X-Forwarded-Host", "evil.example")
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-Port", "443")
		req.Header.Set("X-Forwarded-Prefix", "/admin")
		req.Header.Set("Forwarded", "for=203.0.113.9;proto=https")
		res := e.do(req)
		body, _ := io.ReadAll(res.Body)
		got := decodeEcho(t, string(body))
		want := map[string]string{
			"X-Forwarded-For":   "127.0.0.1",
			"X-Forwarded-Host":  "app--shop.localhost:8080",
			"X-Forwarded-Proto": "http",
		}
		for k, v := range want {
			if vv := got.Header[k]; len(vv) != 1 || vv[0] != v {
				t.Errorf("upstream saw %s: %q, want [%q]", k, vv, v)
			}
		}
		for _, k := range []string{"X-Forwarded-Port", "X-Forwarded-Prefix", "Forwarded"} {
			if vv, ok := got.Header[k]; ok {
				t.Errorf("upstream saw client-supplied %s: %q", k, vv)
			}
		}
		if got.Host != "app--shop.localhost:8080" {
			t.Errorf("upstream saw Host %q", got.Host)
		}
	})
}

func TestHopByHopHeadersRemoved(t *testing.T) {
	bothPaths(t, func(t *testing.T, fast bool) {
		e := newTestEnv(t, fast)
		_, up := e.backend(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "X-Resp-Private")
			w.Header().Set("X-Resp-Private", "1")
			w.Header().Set("Keep-Alive", "timeout=5")
			w.Header().Set("X-Resp-Public", "1")
			echo("web")(w, r)
		}))
		e.ready(up)
		req, _ := http.NewRequest("GET", "http://app--shop.localhost/", nil)
		req.Header.Set("Connection", "X-Private")
		req.Header.Set("X-Private", "secret")
		req.Header.Set("Proxy-Authorization", "Basic c2VjcmV0")
		req.Header.Set("X-Public", "ok")
		res := e.do(req)
		body, _ := io.ReadAll(res.Body)
		got := decodeEcho(t, string(body))
		for _, k := range []string{"X-Private", "Proxy-Authorization", "Connection"} {
			if vv, ok := got.Header[k]; ok {
				t.Errorf("upstream saw hop-by-hop %s: %q", k, vv)
			}
		}
		if got.Header["X-Public"] == nil {
			t.Error("upstream did not see X-Public")
		}
		if res.Header.Get("X-Resp-Private") != "" || res.Header.Get("Keep-Alive") != "" {
			t.Errorf("client saw hop-by-hop response headers: %v", res.Header)
		}
		if res.Header.Get("X-Resp-Public") != "1" {
			t.Error("client did not see X-Resp-Public")
		}
	})
}

func TestRequestBodyIsStreamed(t *testing.T) {
	bothPaths(t, func(t *testing.T, fast bool) {
		e := newTestEnv(t, fast)
		firstPart := make(chan string, 1)
		_, up := e.backend(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			buf := make([]byte, 5)
			if _, err := io.ReadFull(r.Body, buf); err != nil {
				t.Errorf("upstream reading first part: %v", err)
				return
			}
			firstPart <- string(buf)
			rest, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s|%s", buf, rest)
		}))
		e.ready(up)
		pr, pw := io.Pipe()
		req, _ := http.NewRequest("POST", "http://app--shop.localhost/upload", pr)
		done := make(chan *http.Response, 1)
		go func() {
			res, err := e.client.Do(req)
			if err != nil {
				t.Errorf("POST: %v", err)
				close(done)
				return
			}
			done <- res
		}()
		if _, err := pw.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		// The upstream gets the first part while the client still holds
		// the rest: the proxy does not buffer request bodies.
		if got := <-firstPart; got != "hello" {
			t.Fatalf("upstream got %q first", got)
		}
		_, _ = pw.Write([]byte(" world"))
		pw.Close()
		res := <-done
		if res == nil {
			return
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if string(body) != "hello| world" {
			t.Fatalf("got %q", body)
		}
	})
}

func TestLargeBodiesBothWays(t *testing.T) {
	bothPaths(t, func(t *testing.T, fast bool) {
		e := newTestEnv(t, fast)
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		sum := sha256.Sum256(big)
		_, up := e.backend(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "POST" {
				h := sha256.New()
				n, _ := io.Copy(h, r.Body)
				fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
				return
			}
			_, _ = w.Write(big) // no Content-Length: chunked
		}))
		e.ready(up)
		_, body := e.get("http://app--shop.localhost/big")
		if sha256.Sum256([]byte(body)) != sum {
			t.Fatalf("GET body differs (%d bytes)", len(body))
		}
		req, _ := http.NewRequest("POST", "http://app--shop.localhost/big", bytes.NewReader(big))
		res := e.do(req)
		got, _ := io.ReadAll(res.Body)
		if want := fmt.Sprintf("%d %x", len(big), sum); string(got) != want {
			t.Fatalf("POST: upstream got %q, want %q", got, want)
		}
	})
}

// streamHandler writes one chunk, flushes, and then waits for release
// before finishing, so a client that sees the chunk early proves the proxy
// flushed it.
func streamHandler(contentType string, release <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		fmt.Fprint(w, "data: first\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "data: last\n\n")
	}
}

func TestStreamsAreFlushed(t *testing.T) {
	for _, ct := range []string{"text/event-stream", "text/plain"} {
		t.Run(strings.ReplaceAll(ct, "/", "-"), func(t *testing.T) {
			bothPaths(t, func(t *testing.T, fast bool) {
				e := newTestEnv(t, fast)
				release := make(chan struct{})
				_, up := e.backend(streamHandler(ct, release))
				e.ready(up)
				req, _ := http.NewRequest("GET", "http://app--shop.localhost/events", nil)
				res := e.do(req)
				if res.Header.Get("Content-Type") != ct {
					t.Errorf("Content-Type %q, want %q", res.Header.Get("Content-Type"), ct)
				}
				br := bufio.NewReader(res.Body)
				line, err := br.ReadString('\n')
				if err != nil || line != "data: first\n" {
					t.Fatalf("first line %q, %v", line, err)
				}
				// Only now may the upstream finish.
				close(release)
				rest, _ := io.ReadAll(br)
				if string(rest) != "\ndata: last\n\n" {
					t.Fatalf("rest %q", rest)
				}
			})
		})
	}
}

func TestWebSocketEcho(t *testing.T) {
	bothPaths(t, func(t *testing.T, fast bool) {
		e := newTestEnv(t, fast)
		_, up := e.backend(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				t.Errorf("accept: %v", err)
				return
			}
			defer c.CloseNow()
			c.SetReadLimit(1 << 20)
			for {
				typ, msg, err := c.Read(r.Context())
				if err != nil {
					return
				}
				if err := c.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
					return
				}
			}
		}))
		e.ready(up)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a hang guard only
		defer cancel()
		c, res, err := websocket.Dial(ctx, "ws://app--shop.localhost/ws", &websocket.DialOptions{HTTPClient: e.client})
		if err != nil {
			t.Fatalf("dial through proxy: %v", err)
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		if res.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("handshake status %s", res.Status)
		}
		for _, msg := range []string{"hello", "second message", strings.Repeat("x", 100_000)} {
			if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_, got, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "echo: "+msg {
				t.Fatalf("got %.40q, want echo of %.40q", got, msg)
			}
		}
		if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
			t.Fatalf("close: %v", err)
		}
		// The proxy's handler returns a moment after the close handshake.
		for i := 0; i < 1000 && e.counter("1xx", "proxied") == 0; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if got := e.counter("1xx", "proxied"); got != 1 {
			t.Errorf("websocket counted %v times as 1xx proxied, want 1", got)
		}
	})
}

func TestTrailers(t *testing.T) {
	bothPaths(t, func(t *testing.T, fast bool) {
		e := newTestEnv(t, fast)
		_, up := e.backend(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Checksum")
			fmt.Fprint(w, "body")
			w.Header().Set("X-Checksum", "abc")
			w.Header().Set(http.TrailerPrefix+"X-Late", "late")
		}))
		e.ready(up)
		res, body := e.get("http://app--shop.localhost/")
		if body != "body" || res.Trailer.Get("X-Checksum") != "abc" || res.Trailer.Get("X-Late") != "late" {
			t.Fatalf("body %q trailer %v", body, res.Trailer)
		}
	})
}

func TestResponsesWithoutBody(t *testing.T) {
	bothPaths(t, func(t *testing.T, fast bool) {
		e := newTestEnv(t, fast)
		_, up := e.backend(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/204":
				w.WriteHeader(http.StatusNoContent)
			case "/304":
				w.Header().Set("ETag", `"v1"`)
				w.WriteHeader(http.StatusNotModified)
			default:
				w.Header().Set("Content-Length", "11")
				fmt.Fprint(w, "hello world")
			}
		}))
		e.ready(up)
		// Repeat so that a connection left in a bad state by a bodiless
		// response would show up on the next request.
		for range 3 {
			req, _ := http.NewRequest("HEAD", "http://app--shop.localhost/", nil)
			res := e.do(req)
			if res.StatusCode != 200 || res.ContentLength != 11 {
				t.Fatalf("HEAD: %s, Content-Length %d", res.Status, res.ContentLength)
			}
			if res, _ := e.get("http://app--shop.localhost/204"); res.StatusCode != 204 {
				t.Fatalf("got %s, want 204", res.Status)
			}
			if res, _ := e.get("http://app--shop.localhost/304"); res.StatusCode != 304 || res.Header.Get("ETag") != `"v1"` {
				t.Fatalf("got %s %v, want 304 with ETag", res.Status, res.Header)
			}
			if _, body := e.get("http://app--shop.localhost/"); body != "hello world" {
				t.Fatalf("got %q", body)
			}
		}
	})
}

func TestEarlyHintsPassedOn(t *testing.T) {
	bothPaths(t, func(t *testing.T, fast bool) {
		e := newTestEnv(t, fast)
		_, up := e.backend(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</app.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			fmt.Fprint(w, "page")
		}))
		e.ready(up)
		var hints []string
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			hints = append(hints, fmt.Sprintf("%d %s", code, h.Get("Link")))
			return nil
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "http://app--shop.localhost/", nil)
		res := e.do(req)
		body, _ := io.ReadAll(res.Body)
		if string(body) != "page" || len(hints) != 1 || hints[0] != "103 </app.css>; rel=preload" {
			t.Fatalf("body %q, 1xx %q", body, hints)
		}
		if res.Header.Get("Link") != "" {
			t.Errorf("final response kept the hint's Link header")
		}
	})
}

func TestFastPathReusesUpstreamConnections(t *testing.T) {
	e := newTestEnv(t, true)
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(echo("web"))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	e.ready(srv.Listener.Addr().String())
	for range 20 {
		if res, _ := e.get("http://app--shop.localhost/"); res.StatusCode != 200 {
			t.Fatal(res.Status)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("20 sequential requests opened %d upstream connections, want 1", n)
	}
	// The upstream closes its idle connections (as Node does after 5 s):
	// the next request must not fail because the pooled one is dead.
	srv.CloseClientConnections()
	for range 3 {
		if res, body := e.get("http://app--shop.localhost/"); res.StatusCode != 200 {
			t.Fatalf("after the upstream closed idle connections: %s %s", res.Status, body)
		}
	}
}

func TestClientLeavingCancelsUpstream(t *testing.T) {
	// "waiting-long" leaves the client waiting past watchAfter, when the
	// fast path starts watching the request's context.
	for _, phase := range []string{"waiting-for-header", "waiting-long", "streaming-body"} {
		t.Run(phase, func(t *testing.T) {
			bothPaths(t, func(t *testing.T, fast bool) {
				e := newTestEnv(t, fast)
				arrived, upstreamDone := make(chan struct{}), make(chan struct{})
				_, up := e.backend(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if phase == "streaming-body" {
						fmt.Fprint(w, "data: 1\n\n")
						http.NewResponseController(w).Flush()
					}
					close(arrived)
					<-r.Context().Done() // until the proxy lets go
					close(upstreamDone)
				}))
				e.ready(up)
				ctx, cancel := context.WithCancel(context.Background())
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://app--shop.localhost/slow", nil)
				go func() {
					res, err := e.client.Do(req)
					if err == nil {
						_, _ = io.Copy(io.Discard, res.Body)
						res.Body.Close()
					}
				}()
				<-arrived
				if phase == "waiting-long" {
					time.Sleep(3 * watchAfter)
				}
				cancel()
				// The proxy must close its upstream connection (or cancel
				// its request), or the upstream handler never returns.
				<-upstreamDone
			})
		})
	}
}

func TestUpstreamTimeout(t *testing.T) {
	bothPaths(t, func(t *testing.T, fast bool) {
		e := newTestEnv(t, fast, func(c *Config) { c.ResponseHeaderTimeout = 50 * time.Millisecond })
		_, up := e.backend(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}))
		e.ready(up)
		res, body := e.get("http://app--shop.localhost/")
		if res.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, `"upstream_timeout"`) {
			t.Fatalf("got %s %s", res.Status, body)
		}
	})
}

func TestMetricsAndActivity(t *testing.T) {
	e := newTestEnv(t, true)
	_, up := e.backend(echo("web"))
	e.ready(up)
	e.table.Set("starting", Target{Phase: sandbox.PhaseProvisioning})
	e.get("http://app--shop.localhost/")
	e.get("http://app--shop.localhost/x")
	e.get("http://app--nope.localhost/")
	e.get("http://app--starting.localhost/")
	e.get("http://api--shop.localhost/")
	e.get("http://localhost/")
	for _, c := range []struct {
		code, result string
		want         float64
	}{
		{"2xx", "proxied", 2},
		{"4xx", "unknown_sandbox", 1},
		{"5xx", "not_ready", 1},
		{"4xx", "unknown_endpoint", 1},
		{"4xx", "unknown_host", 1},
	} {
		if got := e.counter(c.code, c.result); got != c.want {
			t.Errorf("sandpit_proxy_requests_total{code=%q,result=%q} = %v, want %v", c.code, c.result, got, c.want)
		}
	}
	if n := e.histogramCount(); n != 2 {
		t.Errorf("latency histogram has %d observations, want 2 (the proxied requests)", n)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	want := []string{"app--shop", "app--shop", "app--starting", "api--shop"}
	if fmt.Sprint(e.activity) != fmt.Sprint(want) {
		t.Errorf("OnRequest calls %v, want %v", e.activity, want)
	}
}

func (e *testEnv) counter(code, result string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "sandpit_proxy_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["code"] == code && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func (e *testEnv) histogramCount() uint64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "sandpit_proxy_upstream_header_seconds" {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

func TestNewServerLimits(t *testing.T) {
	srv := NewServer("127.0.0.1:0", http.NotFoundHandler())
	if srv.ReadHeaderTimeout == 0 || srv.MaxHeaderBytes == 0 || srv.IdleTimeout == 0 {
		t.Fatalf("limits missing: %+v", srv)
	}
	if srv.ReadTimeout != 0 || srv.WriteTimeout != 0 {
		t.Fatal("a whole-request timeout would cut streams and websockets")
	}
}

func TestRequestTargetForms(t *testing.T) {
	bothPaths(t, func(t *testing.T, fast bool) {
		e := newTestEnv(t, fast)
		_, up := e.backend(echo("web"))
		e.ready(up)
		for _, tt := range []struct{ raw, want string }{
			// Absolute-form is legal from clients; upstreams get origin-form.
			{"http://app--shop.localhost/x?y=1", "/x?y=1"},
			// Parameters servers parse differently are dropped, as
			// httputil.ReverseProxy does.
			{"/p?a=1;b=2&c=3", "/p?c=3"},
		} {
			c, err := net.Dial("tcp", e.front.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: app--shop.localhost\r\nConnection: close\r\n\r\n", tt.raw)
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			c.Close()
			if got := decodeEcho(t, string(body)); got.RequestURI != tt.want {
				t.Errorf("GET %s reached the upstream as %q, want %q", tt.raw, got.RequestURI, tt.want)
			}
		}
	})
}
