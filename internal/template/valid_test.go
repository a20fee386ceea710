package template

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/golden"
)

func mustParse(t *testing.T, file string) *Template {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := Parse(filepath.Base(file), data)
	if err != nil {
		t.Fatalf("Parse(%s):\n%v", file, err)
	}
	return tmpl
}

func parseString(t *testing.T, src string) *Template {
	t.Helper()
	tmpl, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return tmpl
}

// TestValid parses every testdata/valid/<case>.yaml and compares the result,
// defaults applied, with <case>.golden.json.
func TestValid(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test cases: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			tmpl := mustParse(t, file)
			out, err := json.MarshalIndent(struct {
				Template        *Template `json:"template"`
				ServiceOrder    []string  `json:"serviceOrder"`
				DependencyOrder []string  `json:"dependencyOrder"`
				EndpointOrder   []string  `json:"endpointOrder"`
				StartOrder      []string  `json:"startOrder"`
			}{tmpl, tmpl.ServiceOrder, tmpl.DependencyOrder, tmpl.EndpointOrder, tmpl.StartOrder()}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden.File(t, strings.TrimSuffix(file, ".yaml")+".golden.json", append(out, '\n'))
		})
	}
}

func TestDefaults(t *testing.T) {
	tmpl := mustParse(t, "testdata/valid/minimal.yaml")
	web := tmpl.Services["web"]
	checks := []struct {
		what      string
		got, want any
	}{
		{"restart", web.Restart, RestartAlways},
		{"port protocol", web.Ports[0].Protocol, "http"},
		{"probe timeout", web.Ready.Timeout.D(), 2 * time.Minute},
		{"probe interval", web.Ready.Interval.D(), time.Second},
		{"http probe path", web.Ready.HTTP.Path, "/"},
		{"file mode", web.Files[0].Mode, "0644"},
		{"databases", tmpl.Dependencies["main-db"].Databases, []string{"main_db"}},
		{"access", tmpl.Endpoints["app"].Access, "private"},
		{"file", tmpl.File, "minimal.yaml"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	// Explicit values are kept.
	notes := mustParse(t, "testdata/valid/local-path.yaml")
	app := notes.Services["app"]
	if app.Ready.Timeout.D() != 30*time.Second || app.Ready.Interval.D() != 500*time.Millisecond {
		t.Errorf("probe durations = %v, %v", app.Ready.Timeout, app.Ready.Interval)
	}
	if app.Restart != RestartNever || app.Ports[1].Protocol != "tcp" || app.Files[0].Mode != "600" {
		t.Errorf("explicit values overwritten: %+v", app)
	}
}

func TestOrder(t *testing.T) {
	src := `apiVersion: sandpit/v1
name: order
services:
  zeta: {run: z}
  alpha: {run: a}
  mid: {run: m}
dependencies:
  zz: {type: postgres, version: "15"}
  aa: {type: postgres, version: "15"}
endpoints:
  second: {routes: [{path: /, to: "zeta:http"}]}
  first: {routes: [{path: /, to: "zeta:http"}]}
`
	src = strings.Replace(src, "zeta: {run: z}", "zeta: {run: z, ports: [{name: http}]}", 1)
	tmpl := parseString(t, src)
	for _, c := range []struct {
		got, want []string
	}{
		{tmpl.ServiceOrder, []string{"zeta", "alpha", "mid"}},
		{tmpl.DependencyOrder, []string{"zz", "aa"}},
		{tmpl.EndpointOrder, []string{"second", "first"}},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("order = %v, want %v", c.got, c.want)
		}
	}
}

func TestPositions(t *testing.T) {
	tmpl := mustParse(t, "testdata/valid/shop.yaml")
	for _, c := range []struct {
		path string
		want string
	}{
		{"", "shop.yaml:1:1"},
		{"name", "shop.yaml:2:1"},
		{"services", "shop.yaml:10:1"},
		{"services.api", "shop.yaml:11:3"},
		{"services.api.run", "shop.yaml:14:5"},
		{"services.api.env.DEBUG", "shop.yaml:19:7"},
		{"services.api.ports[0]", "shop.yaml:20:13"},
		{"services.api.ports[0].name", "shop.yaml:20:14"},
		{"services.api.ports[1].port", "shop.yaml:20:55"},
		{"services.api.ready.http.path", "shop.yaml:21:32"},
		{"services.worker.files[0].content", "shop.yaml:29:9"},
		{"dependencies.cache-db", "shop.yaml:47:3"},
		{"endpoints.app.routes[1].to", "shop.yaml:55:19"},
		{"lifecycle.pool.min", "shop.yaml:61:10"},
		{"no.such.path", "shop.yaml"},
	} {
		if got := tmpl.Pos(c.path).String(); got != c.want {
			t.Errorf("Pos(%q) = %s, want %s", c.path, got, c.want)
		}
	}
}

func TestMergeKeys(t *testing.T) {
	tmpl := mustParse(t, "testdata/valid/anchors.yaml")
	w := tmpl.Services["worker"]
	if w.Build != "make" || w.Run != "./bin/worker" || w.Restart != RestartOnFailure {
		t.Errorf("worker = %+v; want build and restart merged from api, its own run", w)
	}
	if want := map[string]string{"LOG_LEVEL": "debug", "REGION": "us"}; !reflect.DeepEqual(w.Env, want) {
		t.Errorf("worker env = %v, want %v", w.Env, want)
	}
	if got := tmpl.Pos("services.worker.build").Line; got != 6 {
		t.Errorf("a merged field's position is line %d; want 6, where it is written", got)
	}
}

func TestStartOrder(t *testing.T) {
	for _, c := range []struct {
		name     string
		services string
		want     []string
	}{
		{"declaration order without after", `
  b: {run: x}
  a: {run: x}
  c: {run: x}`, []string{"b", "a", "c"}},
		{"after moves a service behind its targets", `
  web: {run: x, after: [api]}
  api: {run: x, after: [db]}
  tool: {run: x}`, []string{"api", "web", "tool"}},
		{"ties keep declaration order", `
  d: {run: x, after: [a]}
  c: {run: x, after: [a]}
  a: {run: x}
  b: {run: x}`, []string{"a", "d", "c", "b"}},
		{"diamond", `
  top: {run: x, after: [left, right]}
  left: {run: x, after: [base]}
  right: {run: x, after: [base]}
  base: {run: x}`, []string{"base", "left", "right", "top"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := "apiVersion: sandpit/v1\nname: t\ndependencies:\n  db: {type: postgres, version: \"15\"}\nservices:" + c.services + "\n"
			tmpl := parseString(t, src)
			if got := tmpl.StartOrder(); !slices.Equal(got, c.want) {
				t.Errorf("StartOrder() = %v, want %v", got, c.want)
			}
		})
	}
}

func TestClone(t *testing.T) {
	orig := mustParse(t, "testdata/valid/shop.yaml")
	before, _ := json.Marshal(orig)
	c := orig.Clone()
	if !reflect.DeepEqual(c, orig) {
		t.Fatal("clone differs from the original")
	}
	// Change everything reachable in the clone; the original must not move.
	c.Env["NEW"] = "x"
	c.Source.Ref = "other"
	api := c.Services["api"]
	api.Ports[0].Name = "changed"
	api.After[0] = "changed"
	api.Ready.HTTP.Path = "/changed"
	api.Env["DEBUG"] = "false"
	c.Services["worker"].Files[0].Content = "changed"
	c.Dependencies["cache-db"].Databases[0] = "changed"
	c.Endpoints["app"].Routes[0].Path = "/changed"
	c.Lifecycle.Pool.Min = 9
	c.ServiceOrder[0] = "changed"
	after, _ := json.Marshal(orig)
	if string(before) != string(after) || orig.ServiceOrder[0] != "api" {
		t.Error("changing the clone changed the original")
	}
	if c.Pos("services.api").Line != 11 {
		t.Error("clone lost positions")
	}
}

func TestParseTarget(t *testing.T) {
	for _, c := range []struct {
		to, svc, port string
		ok            bool
	}{
		{"web:http", "web", "http", true},
		{"web", "", "", false},
		{":http", "", "", false},
		{"web:", "", "", false},
		{"a:b:c", "", "", false},
	} {
		svc, port, err := ParseTarget(c.to)
		if (err == nil) != c.ok || svc != c.svc || port != c.port {
			t.Errorf("ParseTarget(%q) = %q, %q, %v", c.to, svc, port, err)
		}
	}
}

func TestExpandService(t *testing.T) {
	tmpl := mustParse(t, "testdata/valid/shop.yaml")
	vars := &Vars{
		SandboxName: "pr-42",
		SandboxID:   "sb_1",
		GitRef:      "main",
		GitSHA:      "abc123",
		Services: map[string]ServiceVars{
			"api":    {Host: "127.0.0.1", Ports: []PortVar{{"http", 41001}, {"metrics", 41002}}},
			"worker": {Host: "127.0.0.1"},
			"web":    {Host: "127.0.0.1", Ports: []PortVar{{"http", 41003}}},
		},
		Dependencies: map[string]DependencyVars{
			"db": {Host: "127.0.0.1", Port: 5433, User: "sandpit", Password: "p@ss/word", Database: "db"},
		},
		Endpoints: map[string]string{"app": "https://app--pr-42.example.com"},
	}
	api, err := tmpl.ExpandService("api", vars, map[string]string{"services.api.env.DEBUG": "false", "env.LOG_LEVEL": "debug"})
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := []string{
		"DATABASE_URL=postgres://sandpit:p%40ss%2Fword@127.0.0.1:5433/db?sslmode=disable",
		"DEBUG=false",
		"LISTEN=127.0.0.1:41001",
		"LOG_LEVEL=debug",
		"SANDBOX=pr-42",
	}
	if !slices.Equal(api.Env, wantEnv) {
		t.Errorf("env = %q\nwant %q", api.Env, wantEnv)
	}
	if api.Image != "registry.example.com/shop-api:abc123" {
		t.Errorf("image = %q", api.Image)
	}
	if !strings.Contains(api.Init, `--db "postgres://sandpit:p%40ss%2Fword@127.0.0.1:5433/db?sslmode=disable"`) {
		t.Errorf("init = %q", api.Init)
	}
	worker, err := tmpl.ExpandService("worker", vars, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "api: http://127.0.0.1:41001\nmetrics: http://127.0.0.1:41002\n"; worker.Files[0].Content != want {
		t.Errorf("file content = %q, want %q", worker.Files[0].Content, want)
	}
	if worker.Run != "./bin/worker --api http://127.0.0.1:41001" {
		t.Errorf("run = %q", worker.Run)
	}
	web, err := tmpl.ExpandService("web", vars, nil)
	if err != nil {
		t.Fatal(err)
	}
	if web.Run != "npm start -- --port ${PORT:-3000} --port 41003" {
		t.Errorf("run = %q: $${ must become a literal ${", web.Run)
	}
	if web.Ready.Exec.Command != "curl -fs http://127.0.0.1:41003/" {
		t.Errorf("probe = %q", web.Ready.Exec.Command)
	}
	if tmpl.Services["web"].Ready.Exec.Command == web.Ready.Exec.Command {
		t.Error("ExpandService changed the template's probe")
	}
	if !slices.Contains(web.Env, "API_URL=https://app--pr-42.example.com/api") {
		t.Errorf("env = %q", web.Env)
	}

	// Values the runtime did not provide are errors, not empty strings.
	if _, err := tmpl.ExpandService("worker", &Vars{}, nil); err == nil || !strings.Contains(err.Error(), "${services.api.url}") {
		t.Errorf("missing vars: err = %v", err)
	}
	if _, err := tmpl.ExpandService("nope", vars, nil); err == nil {
		t.Error("unknown service: no error")
	}
}

func TestExpandServiceFilePathEscape(t *testing.T) {
	tmpl := parseString(t, `apiVersion: sandpit/v1
name: t
services:
  a:
    run: x
    files: [{path: "cfg/${git.ref}.yml", content: x}]
`)
	if _, err := tmpl.ExpandService("a", &Vars{GitRef: "../../../etc/passwd"}, nil); err == nil || !strings.Contains(err.Error(), "outside the workdir") {
		t.Errorf("err = %v; want the expanded path refused", err)
	}
	spec, err := tmpl.ExpandService("a", &Vars{GitRef: "feature/x"}, nil)
	if err != nil || spec.Files[0].Path != "cfg/feature/x.yml" {
		t.Errorf("spec = %+v, err = %v", spec, err)
	}
}
