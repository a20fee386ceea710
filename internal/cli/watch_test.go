package cli_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/testenv"
)

// The server going away while `create --wait` follows a launch is reported
// as such, with what to run next; the launch itself is not affected.
func TestCreateWaitLosesTheServer(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	s.Apply(t, `apiVersion: sandpit/v1
name: quiet
services:
  main:
    run: exec sleep 1000
`)
	backend, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(backend)
	// A front that serves everything but drops the event stream at once,
	// as a server killed mid-watch would.
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/events") && r.URL.Query().Get("follow") == "true" {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer front.Close()

	res := env{vars: map[string]string{"SANDPIT_SERVER": front.URL, "SANDPIT_TOKEN": testenv.Token}}.sandpit(t, "create", "q1", "-t", "quiet", "--wait")
	if res.code != 1 || !strings.Contains(res.stderr, "lost the server while waiting for q1") ||
		!strings.Contains(res.stderr, "the launch continues there: sandpit events q1 -f") {
		t.Errorf("exit %d, stderr:\n%s", res.code, res.stderr)
	}
	s.WaitPhase(t, "q1", sandbox.PhaseReady)
}
