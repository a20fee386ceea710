package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"sandpit.dev/sandpit/internal/testenv"
)

// call is one API request of a table test.
type call struct {
	method, path string
	// body is sent as is when a string or []byte, JSON-encoded otherwise.
	body any
	// ctype is the Content-Type (default application/json with a body;
	// "-" sends none).
	ctype string
	// auth is the Authorization header (default the stack's bearer token;
	// "-" sends none).
	auth string
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, s *testenv.Stack, c call) response {
	t.Helper()
	var body io.Reader
	switch b := c.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(j)
	}
	req, err := http.NewRequest(c.method, s.URL+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case c.ctype == "-":
	case c.ctype != "":
		req.Header.Set("Content-Type", c.ctype)
	case body != nil:
		req.Header.Set("Content-Type", "application/json")
	}
	switch c.auth {
	case "-":
	case "":
		req.Header.Set("Authorization", "Bearer "+testenv.Token)
	default:
		req.Header.Set("Authorization", c.auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// render formats a response for a golden file: the status, the headers
// that matter to clients, and the body with run-specific values scrubbed.
func render(t *testing.T, sc *testenv.Scrubber, r response) []byte {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP %d %s\n", r.status, http.StatusText(r.status))
	for _, h := range []string{"Content-Type", "WWW-Authenticate", "Allow"} {
		if v := r.header.Get(h); v != "" {
			fmt.Fprintf(&b, "%s: %s\n", h, v)
		}
	}
	b.WriteByte('\n')
	switch ct := r.header.Get("Content-Type"); {
	case strings.HasPrefix(ct, "application/json") && len(r.body) > 0:
		j, err := sc.JSON(r.body)
		if err != nil {
			t.Fatalf("answer is not JSON: %v", err)
		}
		b.Write(j)
	default:
		b.WriteString(sc.String(string(r.body)))
	}
	return b.Bytes()
}

// step is one request of a table test whose answer is pinned by
// testdata/<test>/<name>.golden.
type step struct {
	name string
	call call
	want int
}

func runSteps(t *testing.T, s *testenv.Stack, sc *testenv.Scrubber, dir string, steps []step) {
	t.Helper()
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			r := do(t, s, st.call)
			if r.status != st.want {
				t.Errorf("%s %s = %d, want %d\n%s", st.call.method, st.call.path, r.status, st.want, r.body)
			}
			testenv.Golden(t, filepath.Join("testdata", dir, st.name+".golden"), render(t, sc, r))
		})
	}
}

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v
}

// Templates shared by the tests.
const (
	idleTemplate = `apiVersion: sandpit/v1
name: idle
description: Two quiet services
services:
  api:
    run: exec sleep 1000
    ports: [{name: http}]
  worker:
    run: exec sleep 1000
    after: [api]
endpoints:
  app: {routes: [{path: /, to: api:http}]}
`
	soloTemplate = `apiVersion: sandpit/v1
name: solo
services:
  main:
    run: exec sleep 1000
`
	// chattyTemplate's services write to their logs: api through its init
	// and its run (only then is it ready, so worker, which starts after it,
	// writes last).
	chattyTemplate = `apiVersion: sandpit/v1
name: chatty
services:
  api:
    init: echo seeding data
    run: echo api line 1; echo api line 2; touch started; exec sleep 1000
    ready: {exec: {command: test -e started}}
  worker:
    run: echo worker warming up >&2; exec sleep 1000
    after: [api]
`
)
