package render

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"sandpit.dev/sandpit/internal/golden"
	"sandpit.dev/sandpit/internal/template"
)

func parse(t *testing.T, src string) *template.Template {
	t.Helper()
	tmpl, err := template.Parse("sandpit.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse template: %v", err)
	}
	return tmpl
}

// options are one sandbox's facts, as the runtime would give them.
func options(sourceDir string) Options {
	return Options{
		Namespace:   "sb-pr-42",
		SandboxID:   "sb_01",
		SandboxName: "pr-42",
		Labels:      map[string]string{"sandpit.dev/sandbox": "pr-42"},
		Annotations: map[string]string{"sandpit.dev/id": "sb_01"},
		SourceDir:   sourceDir,
		GitRef:      "feature/cart",
		GitSHA:      "abc1234",
		Host:        func(name string) string { return name + "--pr-42.sandpit.example.com" },
		EndpointURLs: map[string]string{
			"app": "https://app--pr-42.sandpit.example.com",
		},
		DependencyPassword: func(dep string) string { return "secret-" + dep },
	}
}

func mustRender(t *testing.T, tmpl *template.Template, opts Options) *Result {
	t.Helper()
	res, err := Render(tmpl, opts)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return res
}

func renderYAML(t *testing.T, res *Result) []byte {
	t.Helper()
	y, err := YAML(res.Objects)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

// find returns the object of the kind and name, or fails.
func find(t *testing.T, res *Result, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range res.Objects {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	var have []string
	for _, o := range res.Objects {
		have = append(have, o.GetKind()+"/"+o.GetName())
	}
	t.Fatalf("no %s %s in the render; it has %s", kind, name, strings.Join(have, ", "))
	return nil
}

func has(res *Result, kind, name string) bool {
	for _, o := range res.Objects {
		if o.GetKind() == kind && o.GetName() == name {
			return true
		}
	}
	return false
}

func nested(t *testing.T, o *unstructured.Unstructured, fields ...string) any {
	t.Helper()
	v, ok, err := unstructured.NestedFieldNoCopy(o.Object, fields...)
	if err != nil || !ok {
		t.Fatalf("%s %s has no %s (%v)", o.GetKind(), o.GetName(), strings.Join(fields, "."), err)
	}
	return v
}

// container returns the named container of a workload's pod template.
func container(t *testing.T, o *unstructured.Unstructured, name string, path ...string) map[string]any {
	t.Helper()
	if len(path) == 0 {
		path = []string{"spec", "template", "spec", "containers"}
	}
	for _, c := range nested(t, o, path...).([]any) {
		if m := c.(map[string]any); m["name"] == name {
			return m
		}
	}
	t.Fatalf("%s %s has no container %s", o.GetKind(), o.GetName(), name)
	return nil
}

func env(c map[string]any) map[string]string {
	out := map[string]string{}
	list, _ := c["env"].([]any)
	for _, e := range list {
		m := e.(map[string]any)
		v, _ := m["value"].(string)
		if m["valueFrom"] != nil {
			v = "<valueFrom>"
		}
		out[m["name"].(string)] = v
	}
	return out
}

const generatedTemplate = `apiVersion: sandpit/v1
name: shop
env:
  LOG_LEVEL: info
services:
  api:
    image: registry.example.com/shop-api:${git.sha}
    env:
      DATABASE_URL: ${dependencies.db.url}
      LISTEN: 0.0.0.0:${ports.http}
      WEB: ${services.web.url}
      PUBLIC: ${endpoints.app.url}
    ports: [{name: http, port: 8080}, {name: metrics, port: 9090}]
    ready: {http: {port: http, path: /healthz}, interval: 5s}
    after: [db]
  web:
    run: npm start
    image: registry.example.com/shop-web:${git.sha}
    env:
      API: http://${services.api.host}:${services.api.ports.http}
    ports: [{name: http, port: 3000}]
    ready: {exec: {command: "curl -fs localhost:${ports.http}"}}
dependencies:
  db: {type: postgres, version: "16", snapshot: shop-seed, databases: [shop, audit]}
endpoints:
  app:
    routes: [{path: /api, to: api:http}, {path: /, to: web:http}]
`

func TestGenerated(t *testing.T) {
	tmpl := parse(t, generatedTemplate)
	res := mustRender(t, tmpl, options(""))
	got := renderYAML(t, res)
	golden.File(t, "testdata/generated.golden.yaml", got)

	// Same inputs, same bytes.
	again := renderYAML(t, mustRender(t, tmpl, options("")))
	if !bytes.Equal(got, again) {
		t.Error("two renders of the same inputs differ")
	}

	wantWorkloads := []Workload{
		{Kind: "StatefulSet", Name: "db", Dependency: "db", Generated: true},
		{Kind: "Deployment", Name: "api", Service: "api", Generated: true},
		{Kind: "Deployment", Name: "web", Service: "web", Generated: true},
	}
	if !reflect.DeepEqual(res.Workloads, wantWorkloads) {
		t.Errorf("workloads = %+v\nwant %+v", res.Workloads, wantWorkloads)
	}
	if len(res.Sources) != len(res.Objects) || res.Sources[0] != "generated for dependency db" {
		t.Errorf("sources = %q", res.Sources)
	}
	api := container(t, find(t, res, "Deployment", "api"), "api")
	wantEnv := map[string]string{
		"DATABASE_URL": "postgres://postgres:secret-db@db.sb-pr-42.svc:5432/shop?sslmode=disable",
		"LISTEN":       "0.0.0.0:8080",
		"LOG_LEVEL":    "info",
		"PUBLIC":       "https://app--pr-42.sandpit.example.com",
		"WEB":          "http://web.sb-pr-42.svc:3000",
	}
	if got := env(api); !reflect.DeepEqual(got, wantEnv) {
		t.Errorf("api env = %v\nwant %v", got, wantEnv)
	}
	if res.Vars.Services["api"].Host != "api.sb-pr-42.svc" || res.Vars.Dependencies["db"].Password != "secret-db" {
		t.Errorf("vars = %+v", res.Vars)
	}
}

const manifestsTemplate = `apiVersion: sandpit/v1
name: shop
source: {git: https://example.com/shop.git}
services:
  api:
    image: registry.example.com/shop-api:${git.sha}
    ports: [{name: http, port: 8080}]
kubernetes:
  manifests: deploy/k8s
  env:
    LOG_LEVEL: debug
    PUBLIC_URL: ${endpoints.app.url}
  config:
    app-config:
      FEATURE_X: "on"
      API_URL: ${services.api.url}
endpoints:
  app:
    routes: [{path: /, to: api:http}]
`

func TestManifests(t *testing.T) {
	tmpl := parse(t, manifestsTemplate)
	opts := options("testdata/manifests")

	_, err := Render(tmpl, opts)
	for _, want := range []string{
		`deploy/k8s/rbac.yaml (document 1): ClusterRole.rbac.authorization.k8s.io "pod-reader" is cluster-scoped`,
		"--kube-allow-cluster-kind=ClusterRole.rbac.authorization.k8s.io",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Render without allowing ClusterRole: %v\nwant it to mention %q", err, want)
		}
	}

	opts.AllowClusterKinds = []string{"ClusterRole.rbac.authorization.k8s.io"}
	res := mustRender(t, tmpl, opts)
	golden.File(t, "testdata/manifests.golden.yaml", renderYAML(t, res))

	if has(res, "Namespace", "production") {
		t.Error("the manifests' Namespace was kept")
	}
	for _, o := range res.Objects {
		switch {
		case o.GetKind() == "ClusterRole":
			if o.GetNamespace() != "" || o.GetName() != "sb-pr-42-pod-reader" || o.GetLabels()["sandpit.dev/sandbox"] != "pr-42" {
				t.Errorf("ClusterRole: namespace %q, name %q, labels %v", o.GetNamespace(), o.GetName(), o.GetLabels())
			}
		case o.GetNamespace() != "sb-pr-42":
			t.Errorf("%s %s is in namespace %q", o.GetKind(), o.GetName(), o.GetNamespace())
		}
	}
	rb := find(t, res, "RoleBinding", "api-reads-pods")
	if got := nested(t, rb, "roleRef", "name"); got != "sb-pr-42-pod-reader" {
		t.Errorf("roleRef.name = %v; want the renamed ClusterRole", got)
	}
	if got := nested(t, rb, "subjects").([]any)[0].(map[string]any)["namespace"]; got != "sb-pr-42" {
		t.Errorf("subject namespace = %v", got)
	}
	if !reflect.DeepEqual(res.Workloads, []Workload{{Kind: "Deployment", Name: "api", Service: "api"}}) {
		t.Errorf("workloads = %+v; want the manifests' api Deployment, bound to service api", res.Workloads)
	}
	// The manifests have Service api: no generated one beside it.
	for i, o := range res.Objects {
		if o.GetKind() == "Service" && strings.HasPrefix(res.Sources[i], "generated") {
			t.Errorf("generated %s %s beside the manifests' Service", o.GetKind(), o.GetName())
		}
	}
}

// TestOverrides checks each per-sandbox change on the manifests.
func TestOverrides(t *testing.T) {
	tmpl := parse(t, manifestsTemplate)
	opts := options("testdata/manifests")
	opts.AllowClusterKinds = []string{"ClusterRole.rbac.authorization.k8s.io"}
	opts.Resources = &Resources{Class: "small", CPUMilli: 500, MemoryBytes: 512 << 20}
	res := mustRender(t, tmpl, opts)
	dep := find(t, res, "Deployment", "api")

	t.Run("replicas", func(t *testing.T) {
		if got := nested(t, dep, "spec", "replicas"); got != int64(1) {
			t.Errorf("replicas = %v (%T), want 1", got, got)
		}
	})
	t.Run("images", func(t *testing.T) {
		if got := container(t, dep, "api")["image"]; got != "registry.example.com/shop-api:abc1234" {
			t.Errorf("api image = %v", got)
		}
		if got := container(t, dep, "sidecar")["image"]; got != "envoyproxy/envoy:v1.30.0" {
			t.Errorf("sidecar image = %v; another repository must stay", got)
		}
		cron := find(t, res, "CronJob", "cleanup")
		if got := container(t, cron, "cleanup", "spec", "jobTemplate", "spec", "template", "spec", "containers")["image"]; got != "registry.example.com/shop-api:abc1234" {
			t.Errorf("cronjob image (was a digest) = %v", got)
		}
	})
	t.Run("env", func(t *testing.T) {
		got := env(container(t, dep, "api"))
		want := map[string]string{"LOG_LEVEL": "debug", "DB_PASSWORD": "<valueFrom>", "PUBLIC_URL": "https://app--pr-42.sandpit.example.com"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("env = %v, want %v", got, want)
		}
		list := container(t, dep, "api")["env"].([]any)
		if list[0].(map[string]any)["name"] != "LOG_LEVEL" {
			t.Errorf("a replaced entry must keep its place: %v", list)
		}
		if got := env(container(t, dep, "sidecar")); got["LOG_LEVEL"] != "debug" {
			t.Errorf("sidecar env = %v; kubernetes.env reaches every container", got)
		}
	})
	t.Run("config", func(t *testing.T) {
		cm := find(t, res, "ConfigMap", "app-config")
		// The manifests' Service api listens on 80 (to the container's
		// 8080): references follow it.
		want := map[string]any{"LOG_FORMAT": "json", "FEATURE_X": "on", "API_URL": "http://api.sb-pr-42.svc:80"}
		if got := nested(t, cm, "data"); !reflect.DeepEqual(got, want) {
			t.Errorf("data = %v, want %v", got, want)
		}
	})
	t.Run("ingress", func(t *testing.T) {
		ing := find(t, res, "Ingress", "shop")
		rules := nested(t, ing, "spec", "rules").([]any)
		if h := rules[0].(map[string]any)["host"]; h != "shop--pr-42.sandpit.example.com" {
			t.Errorf("rule host = %v", h)
		}
		if h := rules[1].(map[string]any)["host"]; h != "admin--pr-42.sandpit.example.com" {
			t.Errorf("rule host = %v", h)
		}
		hosts := nested(t, ing, "spec", "tls").([]any)[0].(map[string]any)["hosts"]
		if !reflect.DeepEqual(hosts, []any{"shop--pr-42.sandpit.example.com", "*.example.com"}) {
			t.Errorf("tls hosts = %v", hosts)
		}
	})
	t.Run("resources", func(t *testing.T) {
		if res.Objects[0].GetKind() != "ResourceQuota" || res.Objects[1].GetKind() != "LimitRange" {
			t.Errorf("the budget must be applied first; got %s, %s", res.Objects[0].GetKind(), res.Objects[1].GetKind())
		}
		q := find(t, res, "ResourceQuota", QuotaName)
		// Requests are capped at the budget, limits at twice it, so a
		// rollout's surge pod fits.
		wantHard := map[string]any{"requests.cpu": "500m", "requests.memory": "512Mi", "limits.cpu": "1", "limits.memory": "1Gi"}
		if got := nested(t, q, "spec", "hard"); !reflect.DeepEqual(got, wantHard) {
			t.Errorf("quota = %v", got)
		}
		lr := find(t, res, "LimitRange", LimitRangeName)
		item := nested(t, lr, "spec", "limits").([]any)[0].(map[string]any)
		// 3 containers: api, sidecar, cleanup.
		wantLimit := map[string]any{"cpu": "166m", "memory": "170Mi"}
		wantRequest := map[string]any{"cpu": "83m", "memory": "85Mi"}
		if !reflect.DeepEqual(item["default"], wantLimit) || !reflect.DeepEqual(item["defaultRequest"], wantRequest) || item["type"] != "Container" {
			t.Errorf("limit range = %v", item)
		}
		if got := container(t, dep, "api")["resources"]; !reflect.DeepEqual(got, map[string]any{"limits": wantLimit, "requests": wantRequest}) {
			t.Errorf("api resources = %v", got)
		}
		cron := find(t, res, "CronJob", "cleanup")
		got := container(t, cron, "cleanup", "spec", "jobTemplate", "spec", "template", "spec", "containers")["resources"]
		if !reflect.DeepEqual(got, map[string]any{"limits": map[string]any{"cpu": "100m", "memory": "64Mi"}}) {
			t.Errorf("a container's own resources must stay; got %v", got)
		}
		if q.GetAnnotations()["sandpit.dev/resource-class"] != "small" {
			t.Errorf("quota annotations = %v", q.GetAnnotations())
		}
	})
	t.Run("labels", func(t *testing.T) {
		if dep.GetLabels()["sandpit.dev/sandbox"] != "pr-42" || dep.GetLabels()["app"] != "api" {
			t.Errorf("labels = %v", dep.GetLabels())
		}
		if got := nested(t, dep, "spec", "template", "metadata", "labels"); !reflect.DeepEqual(got, map[string]any{"app": "api", "sandpit.dev/sandbox": "pr-42"}) {
			t.Errorf("pod template labels = %v", got)
		}
		if got := nested(t, dep, "spec", "selector", "matchLabels"); !reflect.DeepEqual(got, map[string]any{"app": "api"}) {
			t.Errorf("selector = %v; selectors are immutable and must not get labels", got)
		}
		cron := find(t, res, "CronJob", "cleanup")
		if got := nested(t, cron, "spec", "jobTemplate", "spec", "template", "metadata", "labels"); !reflect.DeepEqual(got, map[string]any{"sandpit.dev/sandbox": "pr-42"}) {
			t.Errorf("cronjob pod labels = %v", got)
		}
		for _, o := range res.Objects {
			if o.GetLabels()["sandpit.dev/sandbox"] != "pr-42" || o.GetAnnotations()["sandpit.dev/id"] != "sb_01" {
				t.Errorf("%s %s: labels %v, annotations %v", o.GetKind(), o.GetName(), o.GetLabels(), o.GetAnnotations())
			}
		}
	})
}

const kustomizeTemplate = `apiVersion: sandpit/v1
name: shop
source: {git: https://example.com/shop.git}
services:
  web:
    image: registry.example.com/shop-web:${git.sha}
    ports: [{name: http, port: 3000}]
kubernetes:
  kustomize: kustomize/overlays/preview
  config:
    preview-app-config: {FEATURE_X: "on"}
`

func TestKustomize(t *testing.T) {
	// The overlay binds its Deployment (preview-web after namePrefix) to
	// service web with the label sandpit.dev/service.
	overlay := "testdata/kustomize/overlays/preview/kustomization.yaml"
	tmpl := parse(t, kustomizeTemplate)
	res := mustRender(t, tmpl, options("testdata"))
	golden.File(t, "testdata/kustomize.golden.yaml", renderYAML(t, res))

	dep := find(t, res, "Deployment", "preview-web")
	if got := nested(t, dep, "spec", "replicas"); got != int64(1) {
		t.Errorf("replicas = %v", got)
	}
	c := container(t, dep, "web")
	if c["image"] != "registry.example.com/shop-web:abc1234" {
		t.Errorf("image = %v", c["image"])
	}
	if got := env(c); got["PREVIEW"] != "true" {
		t.Errorf("env = %v; the overlay's JSON patch is missing", got)
	}
	if got := c["resources"]; !reflect.DeepEqual(got, map[string]any{"requests": map[string]any{"cpu": "50m"}}) {
		t.Errorf("resources = %v; the overlay's strategic merge patch is missing", got)
	}
	if !reflect.DeepEqual(res.Workloads, []Workload{{Kind: "Deployment", Name: "preview-web", Service: "web"}}) {
		t.Errorf("workloads = %+v (%s)", res.Workloads, overlay)
	}
	if has(res, "Deployment", "web") {
		t.Error("a Deployment was generated for web beside the overlay's")
	}
	var cm *unstructured.Unstructured
	for _, o := range res.Objects {
		if o.GetKind() == "ConfigMap" {
			cm = o
		}
	}
	if cm == nil || !strings.HasPrefix(cm.GetName(), "preview-app-config-") || nested(t, cm, "data", "FEATURE_X") != "on" {
		t.Errorf("configmap = %v", cm)
	}
	// The generated ConfigMap's hashed name is what the Deployment refers to.
	ref := nested(t, dep, "spec", "template", "spec", "containers").([]any)[0].(map[string]any)["envFrom"].([]any)[0].(map[string]any)["configMapRef"].(map[string]any)["name"]
	if ref != cm.GetName() {
		t.Errorf("envFrom refers to %v, the ConfigMap is %s", ref, cm.GetName())
	}
}

const helmTemplate = `apiVersion: sandpit/v1
name: shop
source: {git: https://example.com/shop.git}
services:
  api:
    image: registry.example.com/shop-api:${git.sha}
    ports: [{name: http, port: 8080}]
kubernetes:
  helm:
    chart: helm/chart
    release: shop
    values_files: [helm/values-preview.yaml]
    values:
      replicaCount: 5
      image: {tag: "${git.sha}"}
      cache: {maxMemory: 8mb}
  config:
    shop-settings: {cacheEnabled: "later"}
`

func TestHelm(t *testing.T) {
	tmpl := parse(t, helmTemplate)
	opts := options("testdata")
	res := mustRender(t, tmpl, opts)
	golden.File(t, "testdata/helm.golden.yaml", renderYAML(t, res))

	api := find(t, res, "Deployment", "shop-api")
	c := container(t, api, "api")
	wantEnv := map[string]string{"LOG_LEVEL": "debug", "NAMESPACE": "sb-pr-42", "KUBE_VERSION": "v1.31.0"}
	if got := env(c); !reflect.DeepEqual(got, wantEnv) {
		t.Errorf("env = %v, want %v (values file, release namespace, kube version)", got, wantEnv)
	}
	if c["image"] != "registry.example.com/shop-api:abc1234" {
		t.Errorf("image = %v", c["image"])
	}
	// The enabled subchart, with the parent's values for it: inline
	// values win over the values file, which wins over the chart's.
	cache := find(t, res, "Deployment", "shop-cache")
	if got := container(t, cache, "redis")["args"]; !reflect.DeepEqual(got, []any{"--maxmemory", "8mb"}) {
		t.Errorf("cache args = %v", got)
	}
	if has(res, "Deployment", "shop-metrics") {
		t.Error("the metrics subchart is disabled by its condition, but rendered")
	}
	if has(res, "Pod", "shop-test") {
		t.Error("test hooks must be left out")
	}
	job := find(t, res, "Job", "shop-migrate")
	if job.GetAnnotations()["helm.sh/hook"] != "pre-install,pre-upgrade" {
		t.Errorf("hook annotations = %v", job.GetAnnotations())
	}
	settings := find(t, res, "ConfigMap", "shop-settings")
	if got := nested(t, settings, "data"); !reflect.DeepEqual(got, map[string]any{"region": "us", "cacheEnabled": "later"}) {
		t.Errorf("settings = %v", got)
	}
	wantWorkloads := []Workload{
		{Kind: "Deployment", Name: "shop-api", Service: "api"},
		{Kind: "Deployment", Name: "shop-cache"},
		{Kind: "Job", Name: "shop-migrate"},
	}
	if !reflect.DeepEqual(res.Workloads, wantWorkloads) {
		t.Errorf("workloads = %+v\nwant %+v", res.Workloads, wantWorkloads)
	}
	// No Service named api in the chart: one is generated, selecting the
	// chart's pods, so ${services.api.host} resolves.
	svc := find(t, res, "Service", "api")
	if got := nested(t, svc, "spec", "selector"); !reflect.DeepEqual(got, map[string]any{"app.kubernetes.io/instance": "shop", "app.kubernetes.io/name": "api"}) {
		t.Errorf("generated service selector = %v", got)
	}

	// Without a release name, the template's name.
	tmpl.Kubernetes.Helm.Release = ""
	tmpl.Kubernetes.Config = nil
	tmpl.Name = "store"
	res = mustRender(t, tmpl, opts)
	if !has(res, "Deployment", "store-api") {
		t.Error("the release name does not default to the template's name")
	}
}

func TestErrors(t *testing.T) {
	base := `apiVersion: sandpit/v1
name: shop
source: {git: https://example.com/shop.git}
services:
  api:
    image: registry.example.com/shop-api:1
    ports: [{name: http, port: 8080}]
`
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("dup/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n")
	write("dup/b.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: elsewhere}\n")
	write("bad/app.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n   labels: x\n")
	write("nokind/app.yaml", "metadata: {name: a}\n")
	write("kust/kustomization.yaml", "resources: [a.yaml]\n")
	write("empty/notes.txt", "nothing here\n")
	write("svcdup/svc.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: db-postgres}\n")
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret.yaml"), []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "link"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret.yaml"), filepath.Join(dir, "link", "secret.yaml")); err != nil {
		t.Fatal(err)
	}
	testdata, _ := filepath.Abs("testdata")

	for _, c := range []struct {
		name   string
		src    string
		source string // the checkout (default dir)
		edit   func(*template.Template, *Options)
		want   []string
	}{
		{
			name: "two sources",
			src:  base + "kubernetes: {manifests: dup}\n",
			edit: func(t *template.Template, _ *Options) { t.Kubernetes.Kustomize = "kust" },
			want: []string{"sandpit.yaml:8:1: kubernetes has manifests and kustomize: keep one source of objects"},
		},
		{
			name:   "missing chart",
			src:    base + "kubernetes: {helm: {chart: helm/nope}}\n",
			source: testdata,
			want:   []string{"kubernetes.helm: chart helm/nope: no such file or folder in the checkout"},
		},
		{
			name:   "chart dependency not vendored",
			src:    base + "kubernetes: {helm: {chart: helm/broken-chart}}\n",
			source: testdata,
			want:   []string{"kubernetes.helm: chart helm/broken-chart: found in Chart.yaml, but missing in charts/ directory: postgresql: run `helm dependency build helm/broken-chart` and commit the charts/ folder; sandpit does not download charts"},
		},
		{
			name:   "missing values file",
			src:    base + "kubernetes: {helm: {chart: helm/chart, values_files: [helm/nope.yaml]}}\n",
			source: testdata,
			want:   []string{"kubernetes.helm.values_files[0]: helm/nope.yaml: no such file or folder in the checkout"},
		},
		{
			name: "missing configmap",
			src:  base + "kubernetes:\n  manifests: dup/a.yaml\n  config:\n    app-config: {A: b}\n",
			want: []string{"sandpit.yaml:11:5: kubernetes.config.app-config: the rendered objects have no ConfigMap named app-config (there are settings): set keys of an existing ConfigMap, or add it to the manifests"},
		},
		{
			name: "duplicate object",
			src:  base + "kubernetes: {manifests: dup}\n",
			want: []string{`two objects are ConfigMap "settings": one from dup/a.yaml, one from dup/b.yaml (document 2); rename or remove one of them`},
		},
		{
			name: "duplicate of a generated object",
			src:  base + "dependencies: {db: {type: postgres, version: \"16\"}}\nkubernetes: {manifests: svcdup}\n",
			want: []string{`two objects are Secret "db-postgres": one from svcdup/svc.yaml, one from generated for dependency db; rename or remove one of them`},
		},
		{
			name: "service without image",
			src:  base + "  worker: {run: ./worker}\n",
			want: []string{"sandpit.yaml:8:3: service worker has no image: the kubernetes runtime runs containers; add image: or define a Deployment named worker in kubernetes.*"},
		},
		{
			name: "port without number",
			src:  strings.Replace(base, "port: 8080", "protocol: http", 1),
			want: []string{"port http of service api has no number (sandpit.yaml:7:13: services.api.ports[0]): on kubernetes a service is reached on the port its container listens on; add it, like {name: http, port: 8080}"},
		},
		{
			name: "reference to a port without number",
			src: strings.Replace(base, "port: 8080}", "port: 8080}, {name: admin}", 1) + `  web:
    image: web:1
    env: {API: "${services.api.ports.admin}"}
`,
			want: []string{"services.web.env.API: ${...}: port admin of service api has no number"},
		},
		{
			name: "bad manifest YAML",
			src:  base + "kubernetes: {manifests: bad}\n",
			want: []string{"kubernetes.manifests: bad/app.yaml:9: invalid YAML: mapping values are not allowed in this context"},
		},
		{
			name: "manifest without kind",
			src:  base + "kubernetes: {manifests: nokind}\n",
			want: []string{"kubernetes.manifests: nokind/app.yaml:1: the object has no apiVersion or no kind: every document must be a Kubernetes object"},
		},
		{
			name: "kustomization in manifests",
			src:  base + "kubernetes: {manifests: kust}\n",
			want: []string{"kubernetes.manifests: kust/kustomization.yaml: this is a kustomization, not a manifest: use kubernetes.kustomize: kust instead"},
		},
		{
			name: "no manifests",
			src:  base + "kubernetes: {manifests: empty}\n",
			want: []string{"kubernetes.manifests: empty: no *.yaml or *.yml files in it"},
		},
		{
			name: "symbolic link out of the checkout",
			src:  base + "kubernetes: {manifests: link}\n",
			want: []string{"kubernetes.manifests: link/secret.yaml: it is a symbolic link to outside the checkout"},
		},
		{
			name:   "no checkout",
			src:    base + "kubernetes: {manifests: dup}\n",
			source: "-",
			want:   []string{"kubernetes.manifests: dup: the sandbox has no checkout (the template has no source) to read it from"},
		},
		{
			name:   "remote kustomize base",
			src:    base + "kubernetes: {kustomize: kustomize/overlays/remote}\n",
			source: testdata,
			want:   []string{`kubernetes.kustomize: kustomize/overlays/remote: kustomize/overlays/remote/kustomization.yaml refers to "github.com/acme/shared-config//base?ref=v1", which is remote: sandpit renders from the checkout alone and fetches nothing; vendor it into the repository and refer to it by a relative path`},
		},
		{
			name:   "kustomize error",
			src:    base + "kubernetes: {kustomize: kustomize/base/missing}\n",
			source: testdata,
			want:   []string{"kubernetes.kustomize: kustomize/base/missing: no such file or folder in the checkout"},
		},
		{
			name: "cluster-scoped object",
			src:  base + "kubernetes: {manifests: crd}\n",
			edit: func(*template.Template, *Options) {
				write("crd/crd.yaml", "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\n")
			},
			want: []string{`crd/crd.yaml: CustomResourceDefinition.apiextensions.k8s.io "widgets.example.com" is cluster-scoped, and a sandbox owns only its namespace: remove it, or start the server with --kube-allow-cluster-kind=CustomResourceDefinition.apiextensions.k8s.io`},
		},
		{
			name: "bad namespace",
			src:  base,
			edit: func(_ *template.Template, o *Options) { o.Namespace = "Not_Valid" },
			want: []string{`render: namespace "Not_Valid"`},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			tmpl := parse(t, c.src)
			opts := options(dir)
			switch c.source {
			case "-":
				opts.SourceDir = ""
			case "":
			default:
				opts.SourceDir = c.source
			}
			if c.edit != nil {
				c.edit(tmpl, &opts)
			}
			_, err := Render(tmpl, opts)
			if err == nil {
				t.Fatal("Render succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nwant it to contain:\n%s", err, w)
				}
			}
		})
	}
}

func TestImageRepository(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"nginx", "docker.io/library/nginx"},
		{"nginx:1.27", "docker.io/library/nginx"},
		{"docker.io/library/nginx:1.27", "docker.io/library/nginx"},
		{"docker.io/nginx", "docker.io/library/nginx"},
		{"index.docker.io/library/nginx", "docker.io/library/nginx"},
		{"bitnami/redis:7", "docker.io/bitnami/redis"},
		{"registry.example.com/shop/api:v1", "registry.example.com/shop/api"},
		{"registry.example.com:5000/api:v1", "registry.example.com:5000/api"},
		{"registry.example.com:5000/api", "registry.example.com:5000/api"},
		{"localhost/api:dev", "localhost/api"},
		{"registry.example.com/api@sha256:abcd", "registry.example.com/api"},
		{"registry.example.com/api:v1@sha256:abcd", "registry.example.com/api"},
	} {
		if got := imageRepository(c.in); got != c.want {
			t.Errorf("imageRepository(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestIsClusterScoped(t *testing.T) {
	res := mustRender(t, parse(t, generatedTemplate), options(""))
	for _, o := range res.Objects {
		if IsClusterScoped(o.GroupVersionKind().GroupKind()) {
			t.Errorf("%s is namespaced", o.GetKind())
		}
	}
}
