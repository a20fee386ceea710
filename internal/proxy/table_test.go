package proxy

import (
	"slices"
	"testing"

	"sandpit.dev/sandpit/internal/sandbox"
)

func TestRouteMatch(t *testing.T) {
	tbl := NewTable()
	tbl.Set("shop", Target{Phase: sandbox.PhaseReady, Endpoints: []sandbox.EndpointStatus{{
		Name: "app",
		Routes: []sandbox.Route{
			{PathPrefix: "/", Service: "web", Port: "http", Upstream: "web:1"},
			{PathPrefix: "/api", Service: "api", Port: "http", Upstream: "api:1"},
			{PathPrefix: "/api/admin/", Service: "admin", Port: "http", Upstream: "admin:1"},
			{PathPrefix: "static", Service: "cdn", Port: "http", Upstream: "cdn:1"},
		},
	}, {
		Name:   "docs",
		Routes: []sandbox.Route{{PathPrefix: "/docs", Service: "docs", Port: "http", Upstream: "docs:1"}},
	}}})
	e := tbl.lookup("shop")
	app, docs := e.endpoint("app"), e.endpoint("docs")
	tests := []struct {
		ep   *endpoint
		path string
		want string // service, or "" for no route
	}{
		{app, "/", "web"},
		{app, "", "web"},
		{app, "/index.html", "web"},
		{app, "/api", "api"},
		{app, "/api/", "api"},
		{app, "/api/x/y", "api"},
		{app, "/apix", "web"},
		{app, "/api-docs", "web"},
		{app, "/api/admin", "admin"},
		{app, "/api/admin/users", "admin"},
		{app, "/api/administrator", "api"},
		{app, "/static/app.js", "cdn"},
		{app, "/staticfile", "web"},
		{docs, "/docs", "docs"},
		{docs, "/docs/intro", "docs"},
		{docs, "/", ""},
		{docs, "/doc", ""},
		{docs, "/docsx", ""},
	}
	for _, tt := range tests {
		got := ""
		if r := tt.ep.match(tt.path); r != nil {
			got = r.service
		}
		if got != tt.want {
			t.Errorf("endpoint %s: match(%q) = %q, want %q", tt.ep.name, tt.path, got, tt.want)
		}
	}
	if e.endpoint("nope") != nil {
		t.Error("endpoint(nope) found something")
	}
}

func TestRouteMatchSamePrefixKeepsTemplateOrder(t *testing.T) {
	e := compile("s", Target{Endpoints: []sandbox.EndpointStatus{{Name: "app", Routes: []sandbox.Route{
		{PathPrefix: "/api", Service: "first"}, {PathPrefix: "/api/", Service: "second"},
	}}}})
	if got := e.endpoint("app").match("/api/x").service; got != "first" {
		t.Errorf("got %q, want the route written first", got)
	}
}

func TestTableSetGetDelete(t *testing.T) {
	var tbl Table // the zero value is usable
	if _, ok := tbl.Get("a"); ok {
		t.Fatal("empty table found a")
	}
	tg := Target{Phase: sandbox.PhaseProvisioning, Message: "building", Endpoints: []sandbox.EndpointStatus{{
		Name: "app", Routes: []sandbox.Route{{PathPrefix: "/", Service: "web", Port: "http"}},
	}}}
	tbl.Set("a", tg)
	tbl.Set("b", Target{Phase: sandbox.PhaseReady})
	// The table keeps its own copy: changing the caller's slices later
	// must not change routing.
	tg.Endpoints[0].Routes[0].Upstream = "changed:1"
	got, ok := tbl.Get("a")
	if !ok || got.Phase != sandbox.PhaseProvisioning || got.Message != "building" || got.Endpoints[0].Routes[0].Upstream != "" {
		t.Fatalf("Get(a) = %+v, %v", got, ok)
	}
	got.Endpoints[0].Name = "mutated"
	if again, _ := tbl.Get("a"); again.Endpoints[0].Name != "app" {
		t.Fatal("Get returned the table's own slice")
	}
	if tbl.Len() != 2 {
		t.Fatalf("Len = %d, want 2", tbl.Len())
	}
	tbl.Delete("a")
	tbl.Delete("missing")
	if _, ok := tbl.Get("a"); ok {
		t.Fatal("a still there after Delete")
	}
	if _, ok := tbl.Get("b"); !ok || tbl.Len() != 1 {
		t.Fatal("Delete(a) lost b")
	}
}

func TestTargetFromStatus(t *testing.T) {
	st := sandbox.Status{Phase: sandbox.PhaseReady, Message: "ok", Endpoints: []sandbox.EndpointStatus{{Name: "app"}}}
	tg := TargetFromStatus(st)
	if tg.Phase != st.Phase || tg.Message != st.Message || !slices.EqualFunc(tg.Endpoints, st.Endpoints, func(a, b sandbox.EndpointStatus) bool { return a.Name == b.Name }) {
		t.Fatalf("TargetFromStatus = %+v", tg)
	}
}

func TestCleanQuery(t *testing.T) {
	for in, want := range map[string]string{
		"a=1&b=2":      "a=1&b=2",
		"q=%2F%20x":    "q=%2F%20x",
		"a=1;b=2&c=3":  "c=3",
		"a=%zz&b=1":    "b=1",
		"":             "",
		"flag&x=y%3D1": "flag&x=y%3D1",
	} {
		if got := cleanQuery(in); got != want {
			t.Errorf("cleanQuery(%q) = %q, want %q", in, got, want)
		}
	}
}
