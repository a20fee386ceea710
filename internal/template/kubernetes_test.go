package template

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestKubernetesSection checks the kubernetes section's decoding and
// validation errors, each with its position.
func TestKubernetesSection(t *testing.T) {
	const head = "apiVersion: sandpit/v1\nname: shop\nsource: {git: https://example.com/shop.git}\nservices:\n  api: {image: api:1, ports: [{name: http, port: 8080}]}\n"
	// head is 5 lines: the kubernetes section starts on line 6.
	for _, c := range []struct {
		name, src string
		want      []string // "" for valid
	}{
		{"manifests", "kubernetes: {manifests: deploy/k8s}", nil},
		{"kustomize with env and config", "kubernetes:\n  kustomize: deploy/overlays/preview\n  env: {A: '1', URL: '${services.api.url}'}\n  config: {app: {k.yaml: v}}", nil},
		{"helm", "kubernetes:\n  helm: {chart: chart, values_files: [v.yaml], values: {a: {b: [1, 2.5, true, null, s]}}}", nil},
		{"empty section", "kubernetes: {}", nil},
		{"two sources", "kubernetes:\n  manifests: a\n  kustomize: b",
			[]string{"t.yaml:8:3: kubernetes has both manifests and kustomize: keep one (manifests is a folder of YAML files, kustomize a kustomization directory, helm a chart)"}},
		{"three sources", "kubernetes:\n  helm: {chart: c}\n  manifests: a\n  kustomize: b",
			[]string{"t.yaml:8:3: kubernetes has both helm and manifests: keep one (manifests is a folder of YAML files, kustomize a kustomization directory, helm a chart)"}},
		{"absolute path", "kubernetes: {manifests: /etc}",
			[]string{`t.yaml:6:25: kubernetes.manifests is "/etc": it is absolute; write a path relative to the checkout`}},
		{"escaping path", "kubernetes: {kustomize: a/../../b}",
			[]string{`t.yaml:6:25: kubernetes.kustomize is "a/../../b": it points outside the checkout; the path must stay inside it`}},
		{"empty path", "kubernetes: {manifests: ''}",
			[]string{`t.yaml:6:25: kubernetes.manifests is empty: write a folder of YAML files relative to the checkout, like deploy/k8s`}},
		{"helm without chart", "kubernetes:\n  helm: {release: r}",
			[]string{`t.yaml:7:3: kubernetes.helm has no "chart": add the chart's directory, relative to the checkout, like chart: deploy/chart`}},
		{"helm chart escaping", "kubernetes:\n  helm: {chart: ../chart}",
			[]string{`t.yaml:7:17: kubernetes.helm.chart is "../chart": it points outside the checkout; the path must stay inside it`}},
		{"helm values file absolute", "kubernetes:\n  helm: {chart: c, values_files: [/v.yaml]}",
			[]string{`t.yaml:7:35: kubernetes.helm.values_files[0] is "/v.yaml": it is absolute; write a path relative to the checkout`}},
		{"helm values not a mapping", "kubernetes:\n  helm: {chart: c, values: [a]}",
			[]string{`t.yaml:7:28: kubernetes.helm.values must be a mapping of chart values, not a list`}},
		{"helm values duplicate key", "kubernetes:\n  helm:\n    chart: c\n    values:\n      a: 1\n      a: 2",
			[]string{`t.yaml:11:7: duplicate key "a" in kubernetes.helm.values: it is already at line 10; keep one of the two`}},
		{"helm values bad reference", "kubernetes:\n  helm:\n    chart: c\n    values: {image: {tag: '${git.branch}'}}",
			[]string{`t.yaml:9:28: kubernetes.helm.values.image.tag: unknown reference ${git.branch}: use ${git.ref} or ${git.sha}`}},
		{"helm values escaped reference", "kubernetes:\n  helm:\n    chart: c\n    values: {cmd: 'echo $${HOME}'}", nil},
		{"helm values not finite", "kubernetes:\n  helm: {chart: c, values: {x: .nan}}",
			[]string{`t.yaml:7:32: kubernetes.helm.values.x: .nan is not a finite number; quote it to pass it as a string`}},
		{"helm unknown field", "kubernetes:\n  helm: {chart: c, valuesFiles: [a]}",
			[]string{`t.yaml:7:20: unknown field "valuesFiles" in kubernetes.helm; did you mean "values_files"? (allowed here: chart, release, values_files, values)`}},
		{"unknown field", "kubernetes:\n  kustomization: x",
			[]string{`t.yaml:7:3: unknown field "kustomization" in kubernetes; did you mean "kustomize"? (allowed here: manifests, kustomize, helm, env, config)`}},
		{"env name", "kubernetes:\n  env: {1X: a}",
			[]string{`t.yaml:7:9: kubernetes.env: "1X" is not a valid environment variable name: use letters, digits and '_', not starting with a digit`}},
		{"env reference", "kubernetes:\n  env: {A: '${dependencies.db.url}'}",
			[]string{`t.yaml:7:13: kubernetes.env.A: ${dependencies.db.url} names dependency "db", which this template does not have (it has no dependencies)`}},
		{"config name", "kubernetes:\n  config:\n    Bad: {a: b}",
			[]string{`t.yaml:8:5: kubernetes.config: "Bad" is not a ConfigMap name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit`}},
		{"config key", "kubernetes:\n  config:\n    app: {a/b: c}",
			[]string{`t.yaml:8:11: kubernetes.config.app: "a/b" is not a ConfigMap key: use letters, digits, '-', '_' and '.'`}},
		{"config not nested", "kubernetes:\n  config: {app: x}",
			[]string{`t.yaml:7:17: kubernetes.config.app must be a mapping, not the string "x"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(head+c.src+"\n"))
			if c.want == nil {
				if err != nil {
					t.Fatalf("Parse:\n%v", err)
				}
				return
			}
			var list *ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("err = %v, want an *ErrorList", err)
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, c.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", err, strings.Join(c.want, "\n"))
			}
		})
	}
}

// TestServiceRunOrImage: run is required unless the service has an image.
func TestServiceRunOrImage(t *testing.T) {
	for _, c := range []struct {
		name, svc string
		want      string
	}{
		{"image only", "{image: 'api:${git.sha}'}", ""},
		{"run only", "{run: ./api}", ""},
		{"both", "{run: ./api, image: api:1}", ""},
		{"neither", "{build: make}", `t.yaml:4:3: service "api" has no "run": add "run: <the shell command that starts it>" (or, for the kubernetes runtime only, an image whose entrypoint starts it)`},
		{"misspelled image", "{imgae: api:1}", `t.yaml:4:9: unknown field "imgae" in service "api"; did you mean "image"? (allowed here: build, init, run, image, workdir, env, ports, ready, after, restart, files)`},
		{"empty image", "{image: ''}", `t.yaml:4:16: image of service "api" is empty: write a container image, like registry.example.com/api:${git.sha}, or remove it`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte("apiVersion: sandpit/v1\nname: t\nservices:\n  api: "+c.svc+"\n"))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

func TestKubernetesSet(t *testing.T) {
	tmpl := mustParse(t, "testdata/valid/kubernetes.yaml")
	for _, c := range []struct {
		name string
		set  map[string]string
		want string // "" for valid
	}{
		{"env", map[string]string{"kubernetes.env.LOG_LEVEL": "info"}, ""},
		{"env reference", map[string]string{"kubernetes.env.DB": "${dependencies.db.url}"}, ""},
		{"config key", map[string]string{"kubernetes.config.app-config.MODE": "x"}, ""},
		{"config dotted key", map[string]string{"kubernetes.config.app-config.settings.yaml": "x"}, ""},
		{"config dotted configmap from the template", map[string]string{"kubernetes.config.app.settings.mode": "x"}, ""},
		{"config map not in the template", map[string]string{"kubernetes.config.other.KEY": "x"}, ""},
		{"env name", map[string]string{"kubernetes.env.A-B": "x"},
			`--set kubernetes.env.A-B: "A-B" is not a valid environment variable name: use letters, digits and '_', not starting with a digit`},
		{"env own port", map[string]string{"kubernetes.env.P": "${ports.http}"},
			`--set kubernetes.env.P: ${ports.http} is only available inside a service (it is that service's own port); here write ${services.<service>.ports.http}`},
		{"config without key", map[string]string{"kubernetes.config.app-config": "x"},
			`--set kubernetes.config.app-config: no key after the ConfigMap name: write kubernetes.config.<configmap>.<key>, like kubernetes.config.app-config.LOG_LEVEL`},
		{"config bad name", map[string]string{"kubernetes.config.App.KEY": "x"},
			`--set kubernetes.config.App.KEY: "App" is not a ConfigMap name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit`},
		{"config bad key", map[string]string{"kubernetes.config.app.a/b": "x"},
			`--set kubernetes.config.app.a/b: "a/b" is not a ConfigMap key: use letters, digits, '-', '_' and '.'`},
		{"config reference", map[string]string{"kubernetes.config.app.K": "${endpoints.nope.url}"},
			`--set kubernetes.config.app.K: ${endpoints.nope.url} names endpoint "nope", which this template does not have (endpoints: "app")`},
		{"other kubernetes key", map[string]string{"kubernetes.helm.chart": "x"},
			`--set kubernetes.helm.chart: unknown key: use env.<NAME> (every service), services.<service>.env.<NAME> (one service), kubernetes.env.<NAME> (every container on kubernetes) or kubernetes.config.<configmap>.<key>; services: "api", "web"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := tmpl.ValidateSet(c.set)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}

	orig := tmpl.Clone()
	got, err := tmpl.WithSet(map[string]string{
		"kubernetes.env.LOG_LEVEL":                   "info",
		"kubernetes.env.NEW":                         "n",
		"kubernetes.config.app-config.feature.flags": "beta=false",
		"kubernetes.config.app.settings.mode":        "ci",
		"kubernetes.config.fresh.KEY":                "v",
		"env.TOP":                                    "t",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tmpl, orig) {
		t.Error("WithSet changed its receiver")
	}
	k := got.Kubernetes
	if k.Env["LOG_LEVEL"] != "info" || k.Env["NEW"] != "n" || k.Env["PUBLIC_URL"] != "${endpoints.app.url}" {
		t.Errorf("kubernetes.env = %v", k.Env)
	}
	want := map[string]map[string]string{
		"app-config":   {"feature.flags": "beta=false", "API_URL": "${services.api.url}"},
		"app.settings": {"mode": "ci"},
		"fresh":        {"KEY": "v"},
	}
	if !reflect.DeepEqual(k.Config, want) {
		t.Errorf("kubernetes.config = %v\nwant %v", k.Config, want)
	}
	if got.Env["TOP"] != "t" {
		t.Errorf("env = %v", got.Env)
	}
	if r := got.SetAffectsBuild(map[string]string{"kubernetes.env.A": "x", "kubernetes.config.a.b": "y"}); r != "" {
		t.Errorf("SetAffectsBuild of kubernetes keys = %q, want \"\"", r)
	}

	// Without a kubernetes section, --set creates one.
	bare := parseString(t, "apiVersion: sandpit/v1\nname: t\nservices:\n  a: {run: x}\n")
	withKube, err := bare.WithSet(map[string]string{"kubernetes.env.A": "1", "kubernetes.config.cm.k": "2"})
	if err != nil {
		t.Fatal(err)
	}
	if k := withKube.Kubernetes; k == nil || k.Env["A"] != "1" || k.Config["cm"]["k"] != "2" || bare.Kubernetes != nil {
		t.Errorf("kubernetes = %+v (original %+v)", withKube.Kubernetes, bare.Kubernetes)
	}
}

func TestCloneHelmValues(t *testing.T) {
	tmpl := mustParse(t, "testdata/valid/kubernetes.yaml")
	c := tmpl.Clone()
	if !reflect.DeepEqual(c, tmpl) {
		t.Fatal("clone differs")
	}
	c.Kubernetes.Helm.Values["image"].(map[string]any)["tag"] = "changed"
	c.Kubernetes.Helm.Values["hosts"].([]any)[0] = "changed"
	c.Kubernetes.Config["app-config"]["API_URL"] = "changed"
	v := tmpl.Kubernetes.Helm.Values
	if v["image"].(map[string]any)["tag"] != "${git.sha}" || v["hosts"].([]any)[0] != "a.example.com" || tmpl.Kubernetes.Config["app-config"]["API_URL"] != "${services.api.url}" {
		t.Error("changing the clone's values changed the original")
	}
}
