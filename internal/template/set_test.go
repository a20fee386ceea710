package template

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestValidateSet(t *testing.T) {
	tmpl := mustParse(t, "testdata/valid/shop.yaml")
	for _, c := range []struct {
		name string
		set  map[string]string
		want string // "" for valid
	}{
		{"template env", map[string]string{"env.LOG_LEVEL": "debug"}, ""},
		{"service env", map[string]string{"services.api.env.NEW_VAR": "${ports.http}"}, ""},
		{"references", map[string]string{"env.X": "${services.api.url} ${sandbox.name}"}, ""},
		{"unknown form", map[string]string{"image": "x"},
			`--set image: unknown key: use env.<NAME> (every service), services.<service>.env.<NAME> (one service), kubernetes.env.<NAME> (every container on kubernetes) or kubernetes.config.<configmap>.<key>; services: "api", "worker", "web"`},
		{"service field", map[string]string{"services.api.run": "x"},
			`--set services.api.run: unknown key: use env.<NAME> (every service), services.<service>.env.<NAME> (one service), kubernetes.env.<NAME> (every container on kubernetes) or kubernetes.config.<configmap>.<key>; services: "api", "worker", "web"`},
		{"unknown service", map[string]string{"services.apx.env.A": "x"},
			`--set services.apx.env.A: template "shop" has no service "apx" (services: "api", "worker", "web"); did you mean "api"?`},
		{"bad env name", map[string]string{"env.MY-VAR": "x"},
			`--set env.MY-VAR: "MY-VAR" is not a valid environment variable name: use letters, digits and '_', not starting with a digit`},
		{"empty env name", map[string]string{"env.": "x"},
			`--set env.: "" is not a valid environment variable name: use letters, digits and '_', not starting with a digit`},
		{"own port at template scope", map[string]string{"env.P": "${ports.http}"},
			`--set env.P: ${ports.http} is only available inside a service (it is that service's own port); here write ${services.<service>.ports.http}`},
		{"unknown ref", map[string]string{"services.web.env.A": "${services.api.ports.grpc}"},
			`--set services.web.env.A: ${services.api.ports.grpc}: service "api" has no port "grpc" (its ports: "http", "metrics")`},
		{"unterminated", map[string]string{"env.A": "${sandbox.name"},
			`--set env.A: unterminated "${": close the reference with "}", or write "$${" for a literal "${"`},
		{"several, sorted", map[string]string{"env.b-b": "x", "env.a-a": "y"},
			"--set env.a-a: \"a-a\" is not a valid environment variable name: use letters, digits and '_', not starting with a digit\n" +
				"--set env.b-b: \"b-b\" is not a valid environment variable name: use letters, digits and '_', not starting with a digit"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := tmpl.ValidateSet(c.set)
			if c.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var list *ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("err = %T %v, want *ErrorList", err, err)
			}
			if err.Error() != c.want {
				t.Errorf("got  %s\nwant %s", err, c.want)
			}
		})
	}
}

func TestWithSet(t *testing.T) {
	tmpl := mustParse(t, "testdata/valid/shop.yaml")
	orig := tmpl.Clone()
	got, err := tmpl.WithSet(map[string]string{
		"env.DEBUG":              "1",
		"env.NEW":                "n",
		"services.web.env.DEBUG": "web-only",
		"services.api.env.EXTRA": "${ports.metrics}",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tmpl, orig) {
		t.Error("WithSet changed its receiver")
	}
	if got.Env["DEBUG"] != "1" || got.Env["NEW"] != "n" {
		t.Errorf("template env = %v", got.Env)
	}
	if _, ok := got.Services["api"].Env["DEBUG"]; ok {
		t.Error("env.DEBUG must override the service's own DEBUG; it is still in api's env")
	}
	if got.Services["web"].Env["DEBUG"] != "web-only" || got.Services["api"].Env["EXTRA"] != "${ports.metrics}" {
		t.Errorf("service env: web %v, api %v", got.Services["web"].Env, got.Services["api"].Env)
	}
	if _, err := tmpl.WithSet(map[string]string{"nope": "x"}); err == nil {
		t.Error("WithSet accepted an invalid key")
	}

	vars := &Vars{Services: map[string]ServiceVars{"api": {Ports: []PortVar{{"http", 1}, {"metrics", 2}}}},
		Dependencies: map[string]DependencyVars{"db": {}}}
	spec, err := got.ExpandService("api", vars, nil)
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Join(spec.Env, " ")
	if !strings.Contains(env, "DEBUG=1") || !strings.Contains(env, "EXTRA=2") {
		t.Errorf("expanded env = %s", env)
	}
}
