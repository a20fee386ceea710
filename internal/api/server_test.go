package api_test

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"

	"sandpit.dev/sandpit/internal/api"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/testenv"
)

func TestAuth(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	get := func(path, auth string) call { return call{method: "GET", path: path, auth: auth} }
	runSteps(t, s, s.Scrubber(), "auth", []step{
		{"no_token", get("/api/v1/sandboxes", "-"), 401},
		{"wrong_token", get("/api/v1/sandboxes", "Bearer spt_not_the_token"), 401},
		{"empty_bearer", get("/api/v1/sandboxes", "Bearer "), 401},
		{"basic_auth", get("/api/v1/sandboxes", "Basic YWRtaW46YWRtaW4="), 401},
		{"lowercase_scheme", get("/api/v1/sandboxes", "bearer "+testenv.Token), 200},
		{"token", get("/api/v1/sandboxes", ""), 200},
		{"healthz_public", get("/healthz", "-"), 200},
		{"metrics_needs_token", get("/metrics", "-"), 401},
		{"exec_needs_token", call{method: "POST", path: "/api/v1/sandboxes/x/exec", auth: "-"}, 401},
	})
	t.Run("openapi_public", func(t *testing.T) {
		if r := do(t, s, get("/api/v1/openapi.json", "-")); r.status != 200 {
			t.Errorf("GET /api/v1/openapi.json without a token = %d, want 200", r.status)
		}
	})
}

// TestPaths covers what is not a route: the index, unknown paths and
// methods.
func TestPaths(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	runSteps(t, s, s.Scrubber(), "paths", []step{
		{"index", call{method: "GET", path: "/", auth: "-"}, 200},
		{"unknown_path", call{method: "GET", path: "/api/v1/nope"}, 404},
		{"unknown_path_no_token", call{method: "GET", path: "/api/v2/sandboxes", auth: "-"}, 404},
		{"trailing_slash", call{method: "GET", path: "/api/v1/sandboxes/"}, 404},
		{"wrong_method", call{method: "PUT", path: "/api/v1/sandboxes"}, 405},
		{"wrong_method_with_name", call{method: "PATCH", path: "/api/v1/sandboxes/demo"}, 405},
		{"post_index", call{method: "POST", path: "/"}, 405},
	})
	t.Run("headers", func(t *testing.T) {
		r := do(t, s, call{method: "GET", path: "/api/v1/templates"})
		for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
			if got := r.header.Get(h); got != want {
				t.Errorf("%s = %q, want %q", h, got, want)
			}
		}
	})
	t.Run("head", func(t *testing.T) {
		if r := do(t, s, call{method: "HEAD", path: "/healthz"}); r.status != 200 {
			t.Errorf("HEAD /healthz = %d, want 200", r.status)
		}
	})
}

func TestOpenAPI(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	r := do(t, s, call{method: "GET", path: "/api/v1/openapi.json", auth: "-"})
	if r.status != 200 {
		t.Fatalf("GET /api/v1/openapi.json = %d\n%s", r.status, r.body)
	}
	testenv.Golden(t, "testdata/openapi.golden.json", r.body)

	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	// Every route of the server's table is in the document, and nothing
	// else is.
	served := map[string]bool{}
	for _, rt := range api.Routes(s.API) {
		method, path := rt[0], rt[1]
		served[strings.ToLower(method)+" "+path] = true
		op, ok := doc.Paths[path][strings.ToLower(method)]
		if !ok {
			t.Errorf("route %s %s is not in the OpenAPI document", method, path)
			continue
		}
		if op["summary"] == "" || op["operationId"] == "" {
			t.Errorf("%s %s has no summary or operationId", method, path)
		}
		// And it is served: not the catch-all's 404 or 405.
		probe := do(t, s, call{method: method, path: strings.ReplaceAll(path, "{name}", "no-such-thing"), auth: "-"})
		if probe.status == http.StatusMethodNotAllowed || probe.status == http.StatusNotFound && strings.Contains(string(probe.body), "no such API path") {
			t.Errorf("%s %s is in the table but not served: %d %s", method, path, probe.status, probe.body)
		}
	}
	// Every reference resolves.
	var whole map[string]any
	if err := json.Unmarshal(r.body, &whole); err != nil {
		t.Fatal(err)
	}
	schemas, _ := whole["components"].(map[string]any)["schemas"].(map[string]any)
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if ref, ok := x.(string); ok && k == "$ref" {
					name, ok := strings.CutPrefix(ref, "#/components/schemas/")
					if _, exists := schemas[name]; !ok || !exists {
						t.Errorf("dangling reference %s", ref)
					}
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(whole)

	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if !served[method+" "+path] {
				documented = append(documented, method+" "+path)
			}
		}
	}
	sort.Strings(documented)
	if len(documented) > 0 {
		t.Errorf("the document has operations the server does not route: %v", documented)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	s.Apply(t, soloTemplate)
	s.Create(t, "counted", "solo")
	s.WaitPhase(t, "counted", sandbox.PhaseReady)
	r := do(t, s, call{method: "GET", path: "/metrics"})
	if r.status != 200 {
		t.Fatalf("GET /metrics = %d\n%s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want text/plain", ct)
	}
	for _, want := range []string{
		`sandpit_sandboxes{phase="Ready"} 1`,
		`sandpit_sandboxes{phase="Failed"} 0`,
		`sandpit_stage_duration_seconds_bucket{result="success",stage="checkout",le=`,
		`sandpit_stage_duration_seconds_count{result="success",stage="start"} 1`,
		`sandpit_api_requests_total{code="2xx",route="POST /api/v1/sandboxes"} 1`,
		`sandpit_api_requests_total{code="2xx",route="GET /api/v1/sandboxes/{name}"}`,
		`sandpit_launch_seconds_count{part="total"} 1`,
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	// A refused request counts as 4xx.
	do(t, s, call{method: "GET", path: "/api/v1/sandboxes/nope"})
	r = do(t, s, call{method: "GET", path: "/metrics"})
	if want := `sandpit_api_requests_total{code="4xx",route="GET /api/v1/sandboxes/{name}"} 1`; !strings.Contains(string(r.body), want) {
		t.Errorf("/metrics has no %s", want)
	}
}
