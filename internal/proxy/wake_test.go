package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
)

// hangGuard bounds waits that only end when the code under test does its
// job, so that a bug fails the test instead of hanging it. It is not a
// performance bound.
const hangGuard = 30 * time.Second

// waker is a Config.Wake that records its calls and does nothing else: the
// test plays the server and changes the table itself.
type waker struct {
	calls   atomic.Int32
	called  chan string // receives "endpoint--sandbox" for every call
	err     error       // returned by every call
	release chan struct{}
	ctxErr  atomic.Value // the context's Err when Wake returned, as a string
}

func newWaker() *waker { return &waker{called: make(chan string, 100)} }

func (wk *waker) wake(ctx context.Context, sb, ep string) error {
	wk.calls.Add(1)
	wk.called <- ep + "--" + sb
	if wk.release != nil {
		<-wk.release
	}
	wk.ctxErr.Store(fmt.Sprint(ctx.Err()))
	return wk.err
}

func (wk *waker) waitCall(t *testing.T) string {
	t.Helper()
	select {
	case c := <-wk.called:
		return c
	case <-time.After(hangGuard):
		t.Fatal("Wake was not called")
		return ""
	}
}

// wakeEnv is a testEnv whose proxy wakes through wk. Unless a test says
// otherwise, requests are held for as long as the test needs.
func newWakeEnv(t *testing.T, fast bool, wk *waker, configure ...func(*Config)) *testEnv {
	return newTestEnv(t, fast, append([]func(*Config){func(c *Config) {
		c.Wake = wk.wake
		c.WakeTimeout = time.Hour
		c.BrowserWait = time.Hour
	}}, configure...)...)
}

// suspend puts sandbox "shop" in the table, Suspended.
func (e *testEnv) suspend(message string) {
	e.table.Set("shop", Target{Phase: sandbox.PhaseSuspended, Message: message, Endpoints: []sandbox.EndpointStatus{{
		Name: "app", Routes: []sandbox.Route{{PathPrefix: "/", Service: "web", Port: "http"}},
	}}})
}

// waitHeld waits until n requests are held for sandbox "shop".
func (e *testEnv) waitHeld(n int) {
	e.t.Helper()
	deadline := time.Now().Add(hangGuard)
	for e.proxy.heldRequests("shop") != n {
		if time.Now().After(deadline) {
			e.t.Fatalf("%d requests held, want %d", e.proxy.heldRequests("shop"), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitCounter waits until a requests_total counter reaches want: a
// request's metrics are counted just after its response is sent.
func (e *testEnv) waitCounter(code, result string, want float64) {
	e.t.Helper()
	deadline := time.Now().Add(hangGuard)
	for e.counter(code, result) != want {
		if time.Now().After(deadline) {
			e.t.Fatalf("sandpit_proxy_requests_total{code=%q,result=%q} = %v, want %v", code, result, e.counter(code, result), want)
		}
		time.Sleep(time.Millisecond)
	}
}

type answer struct {
	res  *http.Response
	body string
	err  error
}

// start sends req in the background.
func (e *testEnv) start(req *http.Request) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		res, err := e.client.Do(req)
		if err != nil {
			ch <- answer{err: err}
			return
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		ch <- answer{res: res, body: string(body), err: err}
	}()
	return ch
}

func (e *testEnv) await(ch <-chan answer) answer {
	e.t.Helper()
	select {
	case a := <-ch:
		if a.err != nil {
			e.t.Fatalf("request: %v", a.err)
		}
		return a
	case <-time.After(hangGuard):
		e.t.Fatal("no answer")
		return answer{}
	}
}

func TestWakeHoldsRequestUntilReady(t *testing.T) {
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			bothPaths(t, func(t *testing.T, fast bool) {
				wk := newWaker()
				e := newWakeEnv(t, fast, wk)
				_, up := e.backend(echo("web"))
				e.suspend("idle for 30m")

				var body io.Reader
				if method == "POST" {
					body = strings.NewReader("order=42")
				}
				req, _ := http.NewRequest(method, "http://app--shop.localhost/cart?x=1", body)
				ch := e.start(req)
				if got := wk.waitCall(t); got != "app--shop" {
					t.Errorf("Wake called for %q", got)
				}
				e.waitHeld(1)
				// The runtime resumes it: still Suspended, then Ready.
				e.suspend("resuming: starting web")
				e.ready(up)

				a := e.await(ch)
				if a.res.StatusCode != 200 || a.res.Header.Get("X-Service") != "web" {
					t.Fatalf("got %s: %s", a.res.Status, a.body)
				}
				got := decodeEcho(t, a.body)
				if got.Method != method || got.RequestURI != "/cart?x=1" || (method == "POST" && got.BodyLen != len("order=42")) {
					t.Errorf("upstream got %+v", got)
				}
				if n := wk.calls.Load(); n != 1 {
					t.Errorf("Wake called %d times, want 1", n)
				}
				e.waitCounter("2xx", "woken", 1)
				if n := e.histogramSampleCount("sandpit_proxy_wake_wait_seconds"); n != 1 {
					t.Errorf("wake wait histogram has %d observations, want 1", n)
				}
				e.mu.Lock()
				defer e.mu.Unlock()
				if fmt.Sprint(e.activity) != "[app--shop]" {
					t.Errorf("OnRequest calls %v, want one", e.activity)
				}
			})
		})
	}
}

func TestWakeManyRequestsOneWake(t *testing.T) {
	bothPaths(t, func(t *testing.T, fast bool) {
		wk := newWaker()
		e := newWakeEnv(t, fast, wk)
		_, up := e.backend(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello %s", r.URL.Query().Get("i"))
		}))
		e.suspend("idle for 30m")

		const n = 50
		answers := make([]<-chan answer, n)
		for i := range n {
			req, _ := http.NewRequest("GET", fmt.Sprintf("http://app--shop.localhost/?i=%d", i), nil)
			answers[i] = e.start(req)
		}
		wk.waitCall(t)
		e.waitHeld(n)
		e.ready(up)
		for i, ch := range answers {
			a := e.await(ch)
			if a.res.StatusCode != 200 || a.body != fmt.Sprintf("hello %d", i) {
				t.Errorf("request %d: %s %q", i, a.res.Status, a.body)
			}
		}
		if got := wk.calls.Load(); got != 1 {
			t.Errorf("%d concurrent requests called Wake %d times, want 1", n, got)
		}
		e.waitCounter("2xx", "woken", n)
		if e.proxy.heldRequests("shop") != 0 {
			t.Error("a request is still counted as held")
		}
	})
}

func TestWakeBrowserGetsWakingPage(t *testing.T) {
	wk := newWaker()
	e := newWakeEnv(t, true, wk, func(c *Config) { c.BrowserWait = 20 * time.Millisecond })
	e.suspend("idle for 30m")
	req, _ := http.NewRequest("GET", "http://app--shop.localhost/", nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	a := e.await(e.start(req))
	if a.res.StatusCode != http.StatusServiceUnavailable || a.res.Header.Get("Retry-After") != "1" ||
		!strings.Contains(a.body, `<meta http-equiv="refresh" content="1">`) ||
		!strings.Contains(a.body, "is waking up") || !strings.Contains(a.body, "sandpit logs shop") {
		t.Fatalf("got %s %v:\n%s", a.res.Status, a.res.Header, a.body)
	}
	e.waitCounter("5xx", "waking", 1)
	// A request that does not accept HTML is held longer (an hour here).
	ch := e.start(mustRequest("GET", "http://app--shop.localhost/"))
	e.waitHeld(1)
	_, up := e.backend(echo("web"))
	e.ready(up)
	if a := e.await(ch); a.res.StatusCode != 200 || a.res.Header.Get("X-Service") != "web" {
		t.Fatalf("API request: %s %s", a.res.Status, a.body)
	}
}

func TestWakeAPIClientTimesOut(t *testing.T) {
	wk := newWaker()
	e := newWakeEnv(t, true, wk, func(c *Config) { c.WakeTimeout = 20 * time.Millisecond })
	e.suspend("")
	a := e.await(e.start(mustRequest("GET", "http://app--shop.localhost/api")))
	if a.res.StatusCode != http.StatusServiceUnavailable || a.res.Header.Get("Retry-After") == "" ||
		!strings.Contains(a.body, `"code":"waking_timeout"`) {
		t.Fatalf("got %s %v: %s", a.res.Status, a.res.Header, a.body)
	}
	e.waitCounter("5xx", "wake_timeout", 1)
}

func TestWakeRefused(t *testing.T) {
	wk := newWaker()
	wk.err = errors.New("owner alice has 3 running sandboxes, the limit is 3: suspend or delete one")
	e := newWakeEnv(t, true, wk)
	e.suspend("idle for 30m")
	for i := range 2 {
		a := e.await(e.start(mustRequest("GET", "http://app--shop.localhost/")))
		if a.res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(a.body, `"code":"wake_refused"`) ||
			!strings.Contains(a.body, "Owner alice has 3 running sandboxes, the limit is 3: suspend or delete one.") {
			t.Fatalf("request %d: got %s: %s", i, a.res.Status, a.body)
		}
	}
	// A refusal is not remembered: the next request asks again, as the
	// limit may allow it by then.
	if n := wk.calls.Load(); n != 2 {
		t.Errorf("Wake called %d times for 2 sequential requests, want 2", n)
	}
	e.waitCounter("5xx", "wake_refused", 2)
}

func TestWakeEndsWhenSandboxGoesAway(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(*Table)
		status int
		code   string
		text   string
	}{
		{"deleted", func(t *Table) { t.Delete("shop") }, 404, "unknown_sandbox", `no sandbox named \"shop\"`},
		{"deleting", func(t *Table) { t.Set("shop", Target{Phase: sandbox.PhaseDeleting}) }, 503, "not_ready", "Its phase is Deleting"},
		{"failed", func(t *Table) {
			t.Set("shop", Target{Phase: sandbox.PhaseFailed, Message: "resume: service web exited with code 1"})
		}, 503, "not_ready", "Its phase is Failed: resume: service web exited with code 1."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wk := newWaker()
			e := newWakeEnv(t, true, wk)
			e.suspend("idle for 30m")
			ch := e.start(mustRequest("GET", "http://app--shop.localhost/"))
			wk.waitCall(t)
			e.waitHeld(1)
			tt.change(e.table)
			a := e.await(ch)
			if a.res.StatusCode != tt.status || !strings.Contains(a.body, `"code":"`+tt.code+`"`) || !strings.Contains(a.body, tt.text) {
				t.Fatalf("got %s: %s, want %d %s with %q", a.res.Status, a.body, tt.status, tt.code, tt.text)
			}
		})
	}
}

func TestWakeHeldThroughProvisioning(t *testing.T) {
	wk := newWaker()
	e := newWakeEnv(t, true, wk)
	_, up := e.backend(echo("web"))
	e.suspend("idle for 30m")
	ch := e.start(mustRequest("GET", "http://app--shop.localhost/"))
	e.waitHeld(1)
	e.table.Set("shop", Target{Phase: sandbox.PhaseProvisioning, Message: "starting web"})
	e.ready(up)
	if a := e.await(ch); a.res.StatusCode != 200 {
		t.Fatalf("got %s: %s", a.res.Status, a.body)
	}
}

func TestWakeClientLeaves(t *testing.T) {
	wk := newWaker()
	wk.release = make(chan struct{})
	e := newWakeEnv(t, true, wk)
	_, up := e.backend(echo("web"))
	e.suspend("idle for 30m")

	// The first client leaves while Wake is still running.
	ctx, cancel := context.WithCancel(context.Background())
	first := e.start(mustRequestCtx(ctx, "GET", "http://app--shop.localhost/"))
	wk.waitCall(t)
	e.waitHeld(1)
	cancel()
	if a := <-first; a.err == nil {
		t.Fatalf("cancelled request answered %s", a.res.Status)
	}
	// The proxy stops holding it (WakeTimeout is an hour).
	e.waitHeld(0)
	e.waitCounter("4xx", "client_closed", 1)

	// A second request joins the wake still in progress instead of
	// calling Wake again, and is served when the sandbox is ready.
	second := e.start(mustRequest("GET", "http://app--shop.localhost/"))
	e.waitHeld(1)
	close(wk.release)
	e.ready(up)
	if a := e.await(second); a.res.StatusCode != 200 {
		t.Fatalf("second request: %s %s", a.res.Status, a.body)
	}
	if n := wk.calls.Load(); n != 1 {
		t.Errorf("Wake called %d times, want 1", n)
	}
	// The first client leaving did not cancel the wake.
	if got := wk.ctxErr.Load(); got != "<nil>" {
		t.Errorf("Wake's context ended when the first client left: %v", got)
	}
}

func TestSuspendedWithoutWake(t *testing.T) {
	e := newTestEnv(t, true)
	e.suspend("idle for 30m")
	res, body := e.get("http://app--shop.localhost/")
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"code":"not_ready","message":"Its phase is Suspended`) {
		t.Fatalf("got %s: %s", res.Status, body)
	}
}

// TestWakeTableWatch checks the table's change notification on its own.
func TestWakeTableWatch(t *testing.T) {
	tbl := NewTable()
	if e, ch := tbl.watch("a"); e != nil || ch != nil {
		t.Fatal("watch of a missing sandbox returned something")
	}
	tbl.Set("a", Target{Phase: sandbox.PhaseSuspended})
	tbl.Set("b", Target{Phase: sandbox.PhaseSuspended})
	e, ch := tbl.watch("a")
	_, ch2 := tbl.watch("a")
	if e == nil || e.target.Phase != sandbox.PhaseSuspended || ch != ch2 {
		t.Fatal("watch(a)")
	}
	tbl.Set("b", Target{Phase: sandbox.PhaseReady})
	select {
	case <-ch:
		t.Fatal("a change of b woke a's watchers")
	default:
	}
	var wg sync.WaitGroup
	wg.Go(func() { <-ch })
	tbl.Set("a", Target{Phase: sandbox.PhaseReady})
	wg.Wait()
	_, ch = tbl.watch("a")
	tbl.Delete("a")
	<-ch
	if len(tbl.changed) != 0 {
		t.Errorf("%d channels left after every watched sandbox changed", len(tbl.changed))
	}
}

func mustRequest(method, url string) *http.Request {
	return mustRequestCtx(context.Background(), method, url)
}

func mustRequestCtx(ctx context.Context, method, url string) *http.Request {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		panic(err)
	}
	return req
}

func (e *testEnv) histogramSampleCount(name string) uint64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}
