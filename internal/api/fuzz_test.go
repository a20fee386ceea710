package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/github"
	"sandpit.dev/sandpit/internal/lifecycle"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/testenv"
)

// fuzzOp is a request FuzzDecodeRequest sends: a JSON body (the fuzzed
// bytes) to a POST route, the fuzzed bytes as the query of a GET route,
// or a webhook delivery of event signed with the binding's secret.
type fuzzOp struct {
	method, path string
	query        bool
	event        string
}

var fuzzOps = []fuzzOp{
	{method: "POST", path: "/api/v1/templates"},
	{method: "POST", path: "/api/v1/sandboxes"},
	{method: "POST", path: "/api/v1/sandboxes/web/extend"},
	{method: "POST", path: "/api/v1/sandboxes/web/fail"},
	{method: "POST", path: "/api/v1/sandboxes/web/dependencies/db/restore"},
	{method: "POST", path: "/api/v1/snapshots"},
	{method: "POST", path: "/api/v1/repos"},
	{method: "GET", path: "/launch", query: true},
	{method: "GET", path: "/api/v1/usage", query: true},
	{method: "GET", path: "/api/v1/templates/solo", query: true},
	{method: "GET", path: "/api/v1/sandboxes", query: true},
	{method: "GET", path: "/api/v1/sandboxes/web/events", query: true},
	{method: "GET", path: "/api/v1/sandboxes/web/logs", query: true},
	{method: "POST", path: "/hooks/github", event: "pull_request"},
	{method: "POST", path: "/hooks/github", event: "push"},
	{method: "POST", path: "/hooks/github", event: "ping"},
}

const fuzzHookSecret = "fuzz-webhook-secret-0123456789"

// FuzzDecodeRequest sends arbitrary bodies (and content types, and
// queries) to the real API handler of a real stack holding a template, a
// Ready sandbox and a repository binding. However malformed the input,
// the answer is never a 5xx, and every answer but a success or a launch
// redirect is a JSON error body with a code and a non-empty message. The
// stack's policy allows one sandbox, which is in place, so inputs that
// would create more are refused after every check of the request and
// nothing launches.
func FuzzDecodeRequest(f *testing.F) {
	s := testenv.StartWith(f, testenv.Options{Lifecycle: lifecycle.Policy{MaxSandboxesPerUser: 1}})
	s.Apply(f, soloTemplate)
	s.Create(f, "web", "solo")
	s.WaitPhase(f, "web", sandbox.PhaseReady)
	if r := doTB(f, s, "POST", "/api/v1/repos", "application/json", map[string]any{
		"name": "hello", "url": "https://github.com/Codertocat/Hello-World.git", "template": "solo", "webhook_secret": fuzzHookSecret,
	}); r.status != http.StatusCreated {
		f.Fatalf("add repo: %d %s", r.status, r.body)
	}

	op := func(method, path string) uint8 {
		for i, o := range fuzzOps {
			if o.method == method && o.path == path {
				return uint8(i)
			}
		}
		panic(path)
	}
	seed := func(method, path, ctype, body string) { f.Add(op(method, path), ctype, []byte(body)) }
	j := "application/json"
	src, _ := json.Marshal(client.ApplyTemplateRequest{Filename: "t.yaml", Source: soloTemplate})
	seed("POST", "/api/v1/templates", j, string(src))
	seed("POST", "/api/v1/templates", j, `{"filename":"t.yaml","source":"apiVersion: sandpit/v1\nname: x\nservices: {a: {run: true, ports: [{name: http, port: 99999}]}}\n"}`)
	seed("POST", "/api/v1/sandboxes", j, `{"name":"another","template":"solo","set":{"services.main.env.X":"1"},"lifecycle":{"ttl":"1h"}}`)
	seed("POST", "/api/v1/sandboxes", "text/plain", `{"name":"x","template":"solo"}`)
	seed("POST", "/api/v1/sandboxes", "", `{"name":1}`)
	seed("POST", "/api/v1/sandboxes/web/extend", j, `{"ttl":"2h"}`)
	seed("POST", "/api/v1/sandboxes/web/fail", j, `{"reason":"tests failed","keep":"1h"}`)
	seed("POST", "/api/v1/sandboxes/web/dependencies/db/restore", j, `{"snapshot":"seed"}`)
	seed("POST", "/api/v1/snapshots", j, `{"name":"snap","sandbox":"web","dependency":"db"}`)
	seed("POST", "/api/v1/repos", j, `{"name":"r","url":"https://example.com/a/b.git","template":"solo","every":"1m"}`)
	seed("GET", "/launch", "", "template=solo&ref=main&name=web&set.services.main.env.X=1")
	seed("GET", "/api/v1/usage", "", "days=7&tz=Europe/Berlin")
	seed("GET", "/api/v1/templates/solo", "", "version=1")
	seed("GET", "/api/v1/sandboxes", "", "template=solo&phase=Ready")
	seed("GET", "/api/v1/sandboxes/web/events", "", "after=1")
	seed("GET", "/api/v1/sandboxes/web/logs", "", "service=main&tail=10")
	for _, name := range []string{"pull_request", "push"} {
		b, err := os.ReadFile(filepath.Join("testdata", "hooks", name+".json"))
		if err != nil {
			f.Fatal(err)
		}
		seed("POST", "/hooks/github", j, string(b))
		seed("POST", "/hooks/github", "application/x-www-form-urlencoded", "payload="+string(b))
	}

	f.Fuzz(func(t *testing.T, n uint8, ctype string, body []byte) {
		o := fuzzOps[int(n)%len(fuzzOps)]
		req := httptest.NewRequest(o.method, o.path, nil)
		if o.query {
			req.URL.RawQuery = string(body)
			q := req.URL.Query()
			if q.Has("follow") || q.Has("watch") {
				t.Skip("a stream answers until the client leaves")
			}
		} else {
			req.Body = readCloser{bytes.NewReader(body)}
			req.ContentLength = int64(len(body))
			if ctype != "" {
				req.Header.Set("Content-Type", ctype)
			}
		}
		if o.event != "" {
			req.Header.Set(github.EventHeader, o.event)
			req.Header.Set(github.SignatureHeader, github.Sign([]byte(fuzzHookSecret), body))
		} else {
			req.Header.Set("Authorization", "Bearer "+testenv.Token)
		}
		tm := time.AfterFunc(20*time.Second, func() { panic(fmt.Sprintf("slow: %s %s %q %q", o.method, o.path, ctype, body)) })
		defer tm.Stop()
		w := httptest.NewRecorder()
		s.API.ServeHTTP(w, req)
		checkAnswer(t, o.method+" "+o.path, w.Code, w.Header(), w.Body.Bytes())
	})
}

// checkAnswer fails t unless an answer is a success, a redirect, or a 4xx
// with a JSON error body that says what is wrong.
func checkAnswer(t testing.TB, what string, code int, h http.Header, body []byte) {
	t.Helper()
	if code >= 500 {
		t.Fatalf("%s: %d %s", what, code, body)
	}
	if code < 400 {
		return
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: %d answered with Content-Type %q: %s", what, code, ct, body)
	}
	var eb client.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error == nil || eb.Error.Code == "" || strings.TrimSpace(eb.Error.Message) == "" {
		t.Fatalf("%s: %d answered %s, not an error body with a code and a message (%v)", what, code, body, err)
	}
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// doTB sends one request to the stack (a JSON-encoded body unless it is a
// string or []byte); it works for fuzz targets too.
func doTB(t testing.TB, s *testenv.Stack, method, path, ctype string, body any) response {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case nil:
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	req := httptest.NewRequest(method, path, bytes.NewReader(b))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Authorization", "Bearer "+testenv.Token)
	w := httptest.NewRecorder()
	s.API.ServeHTTP(w, req)
	return response{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
}
