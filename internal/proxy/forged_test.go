package proxy

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestUpstreamsOnlyFromTheTable checks that the only upstreams the proxy
// forwards to are the ones in its Table (which the server fills from the
// runtime's status): a request for an unknown sandbox, whatever it says in
// X-Forwarded-Host, Forwarded or an absolute request URI naming a real
// upstream's address, gets the proxy's own 404 page and reaches no
// upstream. The control request shows the upstream is reachable when the
// Host names its sandbox.
func TestUpstreamsOnlyFromTheTable(t *testing.T) {
	bothPaths(t, func(t *testing.T, fast bool) {
		e := newTestEnv(t, fast)
		var hits atomic.Int32
		_, upstream := e.backend(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			_, _ = w.Write([]byte("upstream"))
		}))
		e.ready(upstream)
		front := e.front.Listener.Addr().String()
		raw := func(requestLine string, headers ...string) (int, string) {
			t.Helper()
			c, err := net.Dial("tcp", front)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			req := requestLine + "\r\n" + strings.Join(headers, "\r\n") + "\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
			if _, err := c.Write([]byte(req)); err != nil {
				t.Fatal(err)
			}
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var b strings.Builder
			_, _ = bufio.NewReader(res.Body).WriteTo(&b)
			return res.StatusCode, b.String()
		}
		for _, tc := range []struct {
			name, line string
			headers    []string
			code       int
		}{
			{"forged X-Forwarded-Host", "GET / HTTP/1.1", []string{"Host: app--nosuch.localhost", "X-Forwarded-Host: app--shop.localhost"}, 404},
			{"X-Forwarded-Host naming the upstream", "GET / HTTP/1.1", []string{"Host: app--nosuch.localhost", "X-Forwarded-Host: " + upstream, "X-Forwarded-Server: " + upstream}, 404},
			{"Forwarded header", "GET / HTTP/1.1", []string{"Host: app--nosuch.localhost", "Forwarded: host=app--shop.localhost;proto=http"}, 404},
			{"X-Original-Host and X-Host", "GET / HTTP/1.1", []string{"Host: app--nosuch.localhost", "X-Original-Host: app--shop.localhost", "X-Host: " + upstream}, 404},
			{"absolute URI of the upstream", "GET http://" + upstream + "/ HTTP/1.1", []string{"Host: app--shop.localhost"}, 404},
			{"foreign Host, forwarded to a sandbox", "GET / HTTP/1.1", []string{"Host: " + upstream, "X-Forwarded-Host: app--shop.localhost"}, 404},
		} {
			code, body := raw(tc.line, tc.headers...)
			if code != tc.code || !strings.Contains(body, `"code"`) {
				t.Errorf("%s: %d %s, want the proxy's %d page", tc.name, code, body, tc.code)
			}
			if n := hits.Load(); n != 0 {
				t.Fatalf("%s: the upstream was reached (%d requests)", tc.name, n)
			}
		}
		if code, body := raw("GET / HTTP/1.1", "Host: app--shop.localhost"); code != 200 || body != "upstream" || hits.Load() != 1 {
			t.Errorf("control request for the registered sandbox: %d %q (%d upstream hits), want 200 from the upstream", code, body, hits.Load())
		}
	})
}
