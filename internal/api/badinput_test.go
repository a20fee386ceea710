package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/github"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
	"sandpit.dev/sandpit/internal/testenv"
)

// badInputTemplate is in place for the bad requests: a sandbox of it
// runs, with a TTL (so extend has something to extend).
const badInputTemplate = `apiVersion: sandpit/v1
name: solo
services:
  main:
    run: exec sleep 1000
lifecycle: {ttl: 72h}
`

// badInput is one malformed request and the refusal it must get.
type badInput struct {
	name string
	call call
	// header sets more request headers.
	header map[string]string
	want   int
	// msg must be in the error's message (or hint or details).
	msg string
}

// TestBadInput sends malformed requests to a real stack that holds a
// template, a Ready sandbox and a repository binding. Each must get the
// expected 4xx with a JSON error saying what is wrong, and change
// nothing: the templates, sandboxes, snapshots and repository bindings
// are the same before and after.
func TestBadInput(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	s.Apply(t, badInputTemplate)
	s.Create(t, "web", "solo")
	s.WaitPhase(t, "web", sandbox.PhaseReady)
	const secret = "bad-input-webhook-secret-0123"
	if r := do(t, s, call{method: "POST", path: "/api/v1/repos", body: map[string]any{
		"name": "hello", "url": "https://github.com/Codertocat/Hello-World.git", "template": "solo", "webhook_secret": secret,
	}}); r.status != http.StatusCreated {
		t.Fatalf("add repo: %d %s", r.status, r.body)
	}
	hook, err := os.ReadFile(filepath.Join("testdata", "hooks", "push.json"))
	if err != nil {
		t.Fatal(err)
	}
	noNumber := []byte(`{"action":"opened","repository":{"full_name":"Codertocat/Hello-World"},"pull_request":{"state":"open","head":{"ref":"x","sha":"0123456789abcdef0123456789abcdef01234567"}}}`)

	post := func(path string, body any) call { return call{method: "POST", path: path, body: body} }
	tmpl := func(source string) call {
		return post("/api/v1/templates", map[string]any{"filename": "bad.yaml", "source": source})
	}
	create := func(body map[string]any) call { return post("/api/v1/sandboxes", body) }
	huge := `{"name":"big","template":"solo","ref":"` + strings.Repeat("a", 1<<20) + `"}`
	hugeTemplate := `{"filename":"big.yaml","source":"` + strings.Repeat("#", 600<<10) + `"}`

	cases := []badInput{
		// Bodies that are not the operation's JSON object.
		{name: "bad JSON", call: post("/api/v1/sandboxes", `{"name": "x",`), want: 400, msg: "not valid JSON"},
		{name: "not an object", call: post("/api/v1/sandboxes", `["web"]`), want: 400, msg: "not valid JSON"},
		{name: "wrong type", call: create(map[string]any{"name": 42, "template": "solo"}), want: 400, msg: "cannot unmarshal number"},
		{name: "wrong type nested", call: create(map[string]any{"name": "x", "template": "solo", "set": []string{"a"}}), want: 400, msg: "cannot unmarshal array"},
		{name: "unknown field", call: create(map[string]any{"name": "x", "template": "solo", "tempalte": "solo"}), want: 400, msg: `unknown field "tempalte"`},
		{name: "empty body", call: call{method: "POST", path: "/api/v1/sandboxes", ctype: "application/json"}, want: 400, msg: "request body is empty"},
		{name: "two objects", call: post("/api/v1/sandboxes", `{"name":"x","template":"solo"} {}`), want: 400, msg: "more data follows"},
		{name: "huge body", call: post("/api/v1/sandboxes", huge), want: 413, msg: "larger than 1 MiB"},
		{name: "text content type", call: call{method: "POST", path: "/api/v1/sandboxes", body: `{"name":"x","template":"solo"}`, ctype: "text/plain"}, want: 415, msg: "send JSON"},
		{name: "form content type", call: call{method: "POST", path: "/api/v1/templates", body: "filename=a&source=b", ctype: "application/x-www-form-urlencoded"}, want: 415, msg: "send JSON"},
		// Names.
		{name: "uppercase name", call: create(map[string]any{"name": "Web", "template": "solo"}), want: 400, msg: "Web"},
		{name: "too long name", call: create(map[string]any{"name": strings.Repeat("a", 64), "template": "solo"}), want: 400, msg: "long"},
		{name: "double hyphen name", call: create(map[string]any{"name": "my--web", "template": "solo"}), want: 400, msg: "--"},
		{name: "path traversal name", call: create(map[string]any{"name": "../web", "template": "solo"}), want: 400, msg: "../web"},
		{name: "empty name", call: create(map[string]any{"name": "", "template": "solo"}), want: 400, msg: "name"},
		{name: "taken name", call: create(map[string]any{"name": "web", "template": "solo"}), want: 409, msg: "web"},
		{name: "traversal in path", call: call{method: "GET", path: "/api/v1/sandboxes/..%2f..%2fetc"}, want: 404, msg: `no sandbox named "../../etc"`},
		{name: "traversal in template path", call: call{method: "GET", path: "/api/v1/templates/..%2Fsolo"}, want: 404, msg: `no template named "../solo"`},
		// Templates and overrides.
		{name: "unknown template", call: create(map[string]any{"name": "x", "template": "nope"}), want: 404, msg: "nope"},
		{name: "no template", call: create(map[string]any{"name": "x"}), want: 400, msg: "no template given"},
		{name: "negative version", call: create(map[string]any{"name": "x", "template": "solo", "version": -1}), want: 400, msg: "versions count from 1"},
		{name: "unknown version", call: create(map[string]any{"name": "x", "template": "solo", "version": 9}), want: 404, msg: "9"},
		{name: "bad set key", call: create(map[string]any{"name": "x", "template": "solo", "set": map[string]string{"services.nope.run": "x"}}), want: 400, msg: "invalid --set overrides"},
		{name: "set key not a path", call: create(map[string]any{"name": "x", "template": "solo", "set": map[string]string{"": "x"}}), want: 400, msg: "invalid --set overrides"},
		{name: "ref without source", call: create(map[string]any{"name": "x", "template": "solo", "ref": "main"}), want: 400, msg: "has no source"},
		{name: "bad lifecycle override", call: create(map[string]any{"name": "x", "template": "solo", "lifecycle": map[string]any{"ttl": "forever"}}), want: 400, msg: "forever"},
		{name: "invalid template YAML", call: tmpl("apiVersion: sandpit/v1\nname: solo\nservices:\n  main:\n    run: \"exec sleep\n"), want: 422, msg: "bad.yaml"},
		{name: "template with a bad position", call: tmpl("apiVersion: sandpit/v1\nname: solo\nservices:\n  main:\n    rnu: exec sleep 1000\n"), want: 422, msg: "bad.yaml:5"},
		{name: "template bad name", call: tmpl("apiVersion: sandpit/v1\nname: Solo\nservices:\n  main: {run: exec sleep 1000}\n"), want: 422, msg: "bad.yaml"},
		{name: "template too large", call: post("/api/v1/templates", hugeTemplate), want: 413, msg: "the limit is 524288"},
		{name: "template no source", call: post("/api/v1/templates", map[string]any{"filename": "x.yaml"}), want: 422, msg: "the template is empty"},
		// Query parameters.
		{name: "tail=-1", call: call{method: "GET", path: "/api/v1/sandboxes/web/logs?tail=-1"}, want: 400, msg: "tail"},
		{name: "tail=x", call: call{method: "GET", path: "/api/v1/sandboxes/web/logs?tail=x"}, want: 400, msg: "tail"},
		{name: "after=x", call: call{method: "GET", path: "/api/v1/sandboxes/web/events?after=x"}, want: 400, msg: "after"},
		{name: "follow=maybe", call: call{method: "GET", path: "/api/v1/sandboxes/web/events?follow=maybe"}, want: 400, msg: "use follow=true or leave it out"},
		{name: "days=0", call: call{method: "GET", path: "/api/v1/usage?days=0"}, want: 400, msg: "days"},
		{name: "days=1000", call: call{method: "GET", path: "/api/v1/usage?days=1000"}, want: 400, msg: "days"},
		{name: "tz=Mars", call: call{method: "GET", path: "/api/v1/usage?tz=Mars/Olympus"}, want: 400, msg: "Mars/Olympus"},
		{name: "watch=yes", call: call{method: "GET", path: "/api/v1/sandboxes?watch=yes"}, want: 400, msg: "watch"},
		{name: "phase=Bogus", call: call{method: "GET", path: "/api/v1/sandboxes?phase=Bogus"}, want: 400, msg: "Bogus"},
		{name: "version=x", call: call{method: "GET", path: "/api/v1/templates/solo?version=x"}, want: 400, msg: "version"},
		{name: "launch without template", call: call{method: "GET", path: "/launch?ref=main"}, want: 400, msg: "template"},
		{name: "launch bad name", call: call{method: "GET", path: "/launch?template=solo&name=Bad_Name"}, want: 400, msg: "Bad_Name"},
		// Methods and paths.
		{name: "wrong method", call: call{method: "PATCH", path: "/api/v1/sandboxes/web"}, want: 405, msg: "PATCH is not allowed"},
		{name: "wrong method on collection", call: call{method: "PUT", path: "/api/v1/templates"}, want: 405, msg: "use GET, POST"},
		{name: "unknown path", call: call{method: "GET", path: "/api/v2/sandboxes"}, want: 404, msg: "no such API path"},
		// Operations on the existing objects.
		{name: "extend by garbage", call: post("/api/v1/sandboxes/web/extend", map[string]any{"by": "a while"}), want: 400, msg: "give a positive duration"},
		{name: "extend by negative", call: post("/api/v1/sandboxes/web/extend", map[string]any{"by": "-1h"}), want: 400, msg: "give a positive duration"},
		{name: "extend by nothing", call: post("/api/v1/sandboxes/web/extend", map[string]any{}), want: 400, msg: "give a positive duration"},
		{name: "extend unknown sandbox", call: post("/api/v1/sandboxes/nope/extend", map[string]any{"by": "1h"}), want: 404, msg: "nope"},
		{name: "fail with bad keep", call: post("/api/v1/sandboxes/web/fail", map[string]any{"keep": "soon"}), want: 400, msg: "soon"},
		{name: "restore unknown dependency", call: post("/api/v1/sandboxes/web/dependencies/db/restore", map[string]any{"snapshot": "seed"}), want: 400, msg: `sandbox web has no dependency "db"`},
		{name: "restore no snapshot", call: post("/api/v1/sandboxes/web/dependencies/db/restore", map[string]any{}), want: 400, msg: "snapshot"},
		{name: "snapshot of unknown dependency", call: post("/api/v1/snapshots", map[string]any{"name": "snap", "sandbox": "web", "dependency": "db"}), want: 400, msg: `sandbox web has no dependency "db"`},
		{name: "snapshot bad name", call: post("/api/v1/snapshots", map[string]any{"name": "Snap!", "sandbox": "web", "dependency": "db"}), want: 400, msg: "Snap!"},
		{name: "snapshot import bad type", call: call{method: "PUT", path: "/api/v1/snapshots/snap/import?type=oracle", body: "-- dump", ctype: "application/octet-stream"}, want: 400, msg: "oracle"},
		{name: "snapshot import bad name", call: call{method: "PUT", path: "/api/v1/snapshots/Snap!/import?type=postgres", body: "-- dump", ctype: "application/octet-stream"}, want: 400, msg: "Snap!"},
		{name: "delete unknown snapshot", call: call{method: "DELETE", path: "/api/v1/snapshots/nope"}, want: 404, msg: "nope"},
		{name: "repo bad URL", call: post("/api/v1/repos", map[string]any{"name": "x", "url": "--upload-pack=evil", "template": "solo"}), want: 400, msg: "--upload-pack=evil"},
		{name: "repo taken", call: post("/api/v1/repos", map[string]any{"name": "hello", "url": "https://example.com/a/b.git", "template": "solo"}), want: 409, msg: "hello"},
		{name: "repo bad every", call: post("/api/v1/repos", map[string]any{"name": "x", "url": "https://example.com/a/b.git", "template": "solo", "every": "often"}), want: 400, msg: "often"},
		// Webhooks.
		{name: "webhook bad signature", call: call{method: "POST", path: "/hooks/github", body: hook, auth: "-"},
			header: map[string]string{github.EventHeader: "push", github.SignatureHeader: github.Sign([]byte("not the secret"), hook)}, want: 401, msg: "webhook delivery not accepted"},
		{name: "webhook unsigned", call: call{method: "POST", path: "/hooks/github", body: hook, auth: "-"},
			header: map[string]string{github.EventHeader: "push"}, want: 401, msg: "webhook delivery not accepted"},
		{name: "webhook pull request without number", call: call{method: "POST", path: "/hooks/github", body: noNumber, auth: "-"},
			header: map[string]string{github.EventHeader: "pull_request", github.SignatureHeader: github.Sign([]byte(secret), noNumber)}, want: 401, msg: "webhook delivery not accepted"},
		// Authentication.
		{name: "no token", call: call{method: "DELETE", path: "/api/v1/sandboxes/web", auth: "-"}, want: 401, msg: "needs a bearer token"},
		{name: "wrong token", call: call{method: "DELETE", path: "/api/v1/sandboxes/web", auth: "Bearer nope"}, want: 401, msg: "the bearer token is not valid"},
	}

	before := stateOf(t, s)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := doWith(t, s, c.call, c.header)
			if r.status != c.want {
				t.Errorf("%s %s = %d, want %d\n%s", c.call.method, c.call.path, r.status, c.want, r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q, want JSON", ct)
			}
			var eb client.ErrorBody
			if err := json.Unmarshal(r.body, &eb); err != nil || eb.Error == nil || eb.Error.Code == "" || eb.Error.Message == "" {
				t.Fatalf("not a JSON error with a code and message (%v): %s", err, r.body)
			}
			text := eb.Error.Message + "\n" + eb.Error.Hint
			for _, d := range eb.Error.Details {
				j, _ := json.Marshal(d)
				text += "\n" + string(j)
			}
			if !strings.Contains(text, c.msg) {
				t.Errorf("error %q does not mention %q", text, c.msg)
			}
			if after := stateOf(t, s); after != before {
				t.Errorf("state changed:\n%s", testenv.Diff(before, after))
				before = after
			}
		})
	}
}

// doWith is do with more request headers.
func doWith(t *testing.T, s *testenv.Stack, c call, header map[string]string) response {
	t.Helper()
	if len(header) == 0 {
		return do(t, s, c)
	}
	var body []byte
	switch b := c.body.(type) {
	case string:
		body = []byte(b)
	case []byte:
		body = b
	}
	req, err := http.NewRequest(c.method, s.URL+c.path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b.Bytes()}
}

// stateOf renders what requests may change (users' specs, not the
// reconciler's status): every template version, the sandboxes' specs,
// the snapshots and the repository bindings.
func stateOf(t *testing.T, s *testenv.Stack) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	line := func(v ...any) {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	tvs, err := s.Store.ListTemplates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tv := range tvs {
		versions, err := s.Store.ListTemplateVersions(ctx, tv.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range versions {
			line("template", v.Name, v.Version, v.Filename, v.Source)
		}
	}
	sbs, err := s.Store.ListSandboxes(ctx, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, sb := range sbs {
		line("sandbox", sb.ID, sb.Name, sb.Generation, sb.Spec)
	}
	snaps, err := s.Store.ListSnapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, sn := range snaps {
		line("snapshot", sn.Name, sn)
	}
	repos, err := s.Store.ListRepos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, rp := range repos {
		line("repo", rp.Name, rp.URL, rp.Template, rp.GitHub, rp.WebhookSecret, rp.Every)
	}
	return b.String()
}
