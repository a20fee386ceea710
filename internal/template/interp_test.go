package template

import (
	"errors"
	"reflect"
	"testing"
)

func TestReferences(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    []Reference
		errAt   int // -1: no error
		wantMsg string
	}{
		{"plain", nil, -1, ""},
		{"${a.b}", []Reference{{"a.b", 0}}, -1, ""},
		{"x ${a} y ${b.c}", []Reference{{"a", 2}, {"b.c", 9}}, -1, ""},
		{"$${a} and $HOME and $", nil, -1, ""},
		{"$$${a}", nil, -1, ""},
		{"${a} ${b", []Reference{{"a", 0}}, 5, `unterminated "${": close the reference with "}", or write "$${" for a literal "${"`},
		{"${}", []Reference{{"", 0}}, -1, ""},
	} {
		got, err := References(c.in)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("References(%q) = %v, want %v", c.in, got, c.want)
		}
		var ie *InterpolationError
		switch {
		case c.errAt < 0 && err != nil:
			t.Errorf("References(%q): unexpected error %v", c.in, err)
		case c.errAt >= 0 && (!errors.As(err, &ie) || ie.Offset != c.errAt || ie.Msg != c.wantMsg):
			t.Errorf("References(%q): err = %#v, want offset %d %q", c.in, err, c.errAt, c.wantMsg)
		}
	}
}

func TestExpand(t *testing.T) {
	lookup := func(ref string) (string, bool) {
		v, ok := map[string]string{"a": "A", "b.c": "BC", "empty": ""}[ref]
		return v, ok
	}
	for _, c := range []struct {
		in, want string
		err      string
	}{
		{"", "", ""},
		{"no refs $HOME", "no refs $HOME", ""},
		{"${a}${b.c}", "ABC", ""},
		{"[${empty}]", "[]", ""},
		{"$${a} is literal, ${a} is not", "${a} is literal, A is not", ""},
		{"$$${a}", "$${a}", ""},
		{"cost: $5 ${a}", "cost: $5 A", ""},
		{"${nope}", "", "unknown reference ${nope}"},
		{"${a", "", `unterminated "${": close the reference with "}", or write "$${" for a literal "${"`},
	} {
		got, err := Expand(c.in, lookup)
		if got != c.want || (err == nil) != (c.err == "") || (err != nil && err.Error() != c.err) {
			t.Errorf("Expand(%q) = %q, %v; want %q, %q", c.in, got, err, c.want, c.err)
		}
	}
}

func TestVarsLookup(t *testing.T) {
	v := &Vars{
		SandboxName: "s", SandboxID: "id1", GitRef: "main", GitSHA: "abc",
		Services: map[string]ServiceVars{
			"api":  {Host: "10.0.0.1", Ports: []PortVar{{"http", 8080}, {"grpc", 9090}}},
			"bare": {Host: "10.0.0.2"},
		},
		Dependencies: map[string]DependencyVars{
			"db": {Host: "::1", Port: 5432, User: "u:ser", Password: "p@ss word", Database: "shop"},
		},
		Endpoints: map[string]string{"app": "https://app--s.example.com"},
	}
	for _, c := range []struct {
		scope, ref, want string
		ok               bool
	}{
		{"", "sandbox.name", "s", true},
		{"", "sandbox.id", "id1", true},
		{"", "git.ref", "main", true},
		{"", "git.sha", "abc", true},
		{"", "ports.http", "", false},
		{"api", "ports.http", "8080", true},
		{"api", "ports.grpc", "9090", true},
		{"api", "ports.nope", "", false},
		{"bare", "ports.http", "", false},
		{"", "services.api.host", "10.0.0.1", true},
		{"", "services.api.port", "8080", true},
		{"", "services.api.url", "http://10.0.0.1:8080", true},
		{"", "services.api.ports.grpc", "9090", true},
		{"", "services.bare.port", "", false},
		{"", "services.bare.url", "", false},
		{"", "services.nope.host", "", false},
		{"", "dependencies.db.host", "::1", true},
		{"", "dependencies.db.port", "5432", true},
		{"", "dependencies.db.user", "u:ser", true},
		{"", "dependencies.db.password", "p@ss word", true},
		{"", "dependencies.db.database", "shop", true},
		{"", "dependencies.db.url", "postgres://u%3Aser:p%40ss%20word@[::1]:5432/shop?sslmode=disable", true},
		{"", "dependencies.nope.url", "", false},
		{"", "endpoints.app.url", "https://app--s.example.com", true},
		{"", "endpoints.nope.url", "", false},
		{"", "HOME", "", false},
		{"", "services.api", "", false},
	} {
		got, ok := v.Lookup(c.scope)(c.ref)
		if got != c.want || ok != c.ok {
			t.Errorf("Lookup(%q)(%q) = %q, %v; want %q, %v", c.scope, c.ref, got, ok, c.want, c.ok)
		}
	}
}

// TestNamespaceAgreement checks that every reference validation accepts
// resolves when Vars holds everything the template declares, and that
// every reference it refuses does not.
func TestNamespaceAgreement(t *testing.T) {
	tmpl := mustParse(t, "testdata/valid/shop.yaml")
	v := &Vars{
		Services:     map[string]ServiceVars{},
		Dependencies: map[string]DependencyVars{},
		Endpoints:    map[string]string{},
	}
	for name, s := range tmpl.Services {
		sv := ServiceVars{Host: "h"}
		for i, p := range s.Ports {
			sv.Ports = append(sv.Ports, PortVar{p.Name, 1000 + i})
		}
		v.Services[name] = sv
	}
	for name := range tmpl.Dependencies {
		v.Dependencies[name] = DependencyVars{Host: "h", Port: 1}
	}
	for name := range tmpl.Endpoints {
		v.Endpoints[name] = "u"
	}
	refs := []string{"sandbox.name", "sandbox.id", "git.ref", "git.sha", "sandbox.x", "git", "nope.x", "", "ports"}
	for _, s := range append(tmpl.ServiceOrder, "ghost") {
		for _, a := range []string{"host", "port", "url", "ports.http", "ports.metrics", "ports.ghost", "nope", "ports"} {
			refs = append(refs, "services."+s+"."+a)
		}
		refs = append(refs, "ports.http", "ports.metrics", "ports.ghost")
	}
	for _, d := range append(tmpl.DependencyOrder, "ghost") {
		for _, a := range append(dependencyAttrs, "nope") {
			refs = append(refs, "dependencies."+d+"."+a)
		}
	}
	for _, e := range append(tmpl.EndpointOrder, "ghost") {
		refs = append(refs, "endpoints."+e+".url", "endpoints."+e+".host")
	}
	never := func(string) bool { return false }
	for _, scope := range append([]string{""}, tmpl.ServiceOrder...) {
		for _, r := range refs {
			valid := tmpl.checkRef(r, scope, never) == ""
			_, ok := v.Lookup(scope)(r)
			if valid != ok {
				t.Errorf("scope %q, ${%s}: validation says %v, lookup says %v", scope, r, valid, ok)
			}
		}
	}
}
