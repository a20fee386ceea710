package api_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/store"
	"sandpit.dev/sandpit/internal/testenv"
)

const (
	shopV1 = `apiVersion: sandpit/v1
name: shop
description: A shop with an API and a worker
env:
  LOG_LEVEL: info
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
	// shopInvalid has a mistake of each kind: a bad name, a misspelt
	// field, a missing run, an unknown reference, an unknown after target
	// and a route to a service that does not exist.
	shopInvalid = `apiVersion: sandpit/v1
name: Shop
services:
  api:
    rnu: ./api
    ports: [{name: http}]
  worker:
    run: ./worker --api ${services.apii.url}
    after: [db]
endpoints:
  app: {routes: [{path: /, to: web:http}]}
`
	shopSyntax = `apiVersion: sandpit/v1
name: shop
services:
  api:
    run: "./api
`
)

var shopV2 = strings.Replace(shopV1, "LOG_LEVEL: info", "LOG_LEVEL: debug", 1)

func apply(source string) map[string]any {
	return map[string]any{"filename": "shop.yaml", "source": source}
}

func TestTemplates(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	testdata, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	sc := s.Scrubber().Literal(testdata, "<testdata>")
	post := func(body any) call { return call{method: "POST", path: "/api/v1/templates", body: body} }
	get := func(path string) call { return call{method: "GET", path: path} }
	withBase := func(source, base string) map[string]any {
		m := apply(source)
		m["base_dir"] = base
		return m
	}
	dry := func(source string) map[string]any {
		m := apply(source)
		m["dry_run"] = true
		return m
	}
	local := "apiVersion: sandpit/v1\nname: local\nsource: {path: ./src}\nservices:\n  app: {run: exec sleep 1000}\n"
	big := strings.Repeat("#", 600<<10)
	runSteps(t, s, sc, "templates", []step{
		{"apply_dry_run_new", post(dry(shopV1)), 200},
		{"apply_created", post(apply(shopV1)), 201},
		{"apply_unchanged", post(apply(shopV1)), 200},
		// A template without a relative source path does not depend on
		// the directory it was applied from.
		{"apply_unchanged_other_dir", post(withBase(shopV1, "/somewhere/else")), 200},
		{"apply_dry_run_unchanged", post(dry(shopV1)), 200},
		{"apply_dry_run_changed", post(dry(shopV2)), 200},
		{"apply_changed", post(apply(shopV2)), 201},
		{"apply_invalid", post(apply(shopInvalid)), 422},
		{"apply_syntax_error", post(apply(shopSyntax)), 422},
		{"apply_not_yaml", post(apply("just some text")), 422},
		{"apply_missing_source_path", post(withBase(local, s.DataDir)), 422},
		{"apply_relative_source_without_base_dir", post(apply(local)), 422},
		{"apply_relative_base_dir", post(withBase(local, "testdata")), 400},
		{"apply_source_path", post(withBase(local, testdata)), 201},
		{"apply_oversized_body", post(apply(strings.Repeat("#", 2<<20))), 413},
		{"apply_oversized_template", post(apply(big)), 413},
		{"apply_unknown_field", post(map[string]any{"filename": "shop.yaml", "sourc": shopV1}), 400},
		{"apply_wrong_content_type", call{method: "POST", path: "/api/v1/templates", body: shopV1, ctype: "application/yaml"}, 415},
		{"apply_empty_body", call{method: "POST", path: "/api/v1/templates", body: ""}, 400},
		{"apply_not_json", call{method: "POST", path: "/api/v1/templates", body: "{"}, 400},
		{"apply_trailing_data", call{method: "POST", path: "/api/v1/templates", body: `{"source": "x"} {}`}, 400},
		{"get_latest", get("/api/v1/templates/shop"), 200},
		{"get_version", get("/api/v1/templates/shop?version=1"), 200},
		{"get_bad_version", get("/api/v1/templates/shop?version=first"), 400},
		{"get_missing_version", get("/api/v1/templates/shop?version=9"), 404},
		{"get_unknown", get("/api/v1/templates/nope"), 404},
		{"list", get("/api/v1/templates"), 200},
		{"versions", get("/api/v1/templates/shop/versions"), 200},
		{"versions_unknown", get("/api/v1/templates/nope/versions"), 404},
	})

	t.Run("details", func(t *testing.T) {
		// Every problem of the invalid template is a detail with its
		// position and field path.
		r := do(t, s, post(apply(shopInvalid)))
		e := decode[client.ErrorBody](t, r).Error
		if len(e.Details) < 4 {
			t.Fatalf("got %d details, want one per mistake: %+v", len(e.Details), e.Details)
		}
		for _, d := range e.Details {
			if !strings.HasPrefix(d.Pos, "shop.yaml:") || strings.Count(d.Pos, ":") != 2 || d.Message == "" || d.Path == "" {
				t.Errorf("detail %+v lacks a file:line:column position, a path or a message", d)
			}
		}
	})
	t.Run("versions_count", func(t *testing.T) {
		// Dry runs and unchanged applies stored nothing.
		r := do(t, s, get("/api/v1/templates/shop/versions"))
		if l := decode[client.TemplateList](t, r); len(l.Items) != 2 {
			t.Errorf("shop has %d versions, want 2", len(l.Items))
		}
	})
}

func TestTemplatesEmpty(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	runSteps(t, s, s.Scrubber(), "templates", []step{
		{"list_empty", call{method: "GET", path: "/api/v1/templates"}, 200},
	})
}

// TestTemplateNoLongerParses covers a stored version this sandpit no longer
// accepts (stored by an older one): it still lists and shows, and creating
// from it says what to do.
func TestTemplateNoLongerParses(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	old := "apiVersion: sandpit/v0\nname: legacy\nservices: {}\n"
	if _, _, err := s.Store.ApplyTemplate(context.Background(), store.TemplateVersion{
		Name: "legacy", Source: []byte(old), Filename: "legacy.yaml", Digest: "0123456789abcdef", CreatedBy: "admin",
	}); err != nil {
		t.Fatal(err)
	}
	runSteps(t, s, s.Scrubber(), "legacy", []step{
		{"list", call{method: "GET", path: "/api/v1/templates"}, 200},
		{"get", call{method: "GET", path: "/api/v1/templates/legacy"}, 200},
		{"create", call{method: "POST", path: "/api/v1/sandboxes", body: map[string]any{"name": "x", "template": "legacy"}}, 422},
	})
}
