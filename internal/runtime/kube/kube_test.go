package kube

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"sandpit.dev/sandpit/internal/kubetest"
	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/runtime/kube/render"
	"sandpit.dev/sandpit/internal/runtime/runtimetest"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/template"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

// newRuntime returns a runtime on the shared test cluster with an instance
// label of its own, so tests running side by side never see (or sweep)
// each other's namespaces.
func newRuntime(t *testing.T, mod ...func(*Config)) (*Runtime, *kubetest.Cluster) {
	t.Helper()
	c := kubetest.Get(t)
	cfg := Config{
		REST:            c.Config,
		Instance:        "t-" + strings.ToLower(strings.TrimPrefix(sandbox.NewID(), "sb-"))[:10],
		WorkDir:         t.TempDir(),
		ReadyTimeout:    90 * time.Second,
		ResourceClasses: map[string]render.Resources{"small": {CPUMilli: 500, MemoryBytes: 512 << 20}},
	}
	for _, m := range mod {
		m(&cfg)
	}
	rt, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Whatever a test left: delete its namespaces.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ids, _ := rt.Sandboxes(ctx)
		for _, id := range ids {
			_ = rt.Down(ctx, id, &runtimetest.Recorder{})
		}
		rt.Close()
	})
	return rt, c
}

// shopSource copies testdata/shop into a fresh git repository (one
// commit), so that ${git.sha} has a value to check.
func shopSource(t *testing.T) (dir, sha string) {
	t.Helper()
	dir = t.TempDir()
	if out, err := exec.Command("cp", "-r", "testdata/shop/.", dir).CombinedOutput(); err != nil {
		t.Fatalf("copy testdata: %v: %s", err, out)
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "-A"},
		{"-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "shop"},
	} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return dir, strings.TrimSpace(string(out))
}

func instance(t *testing.T, name, yaml, src string) *runtime.Instance {
	t.Helper()
	tpl, err := template.Parse("sandpit.yaml", []byte(strings.ReplaceAll(yaml, "SRC", src)))
	if err != nil {
		t.Fatalf("parse template: %v", err)
	}
	return &runtime.Instance{ID: sandbox.NewID(), Name: name, Template: tpl, TemplateVersion: 1, BaseDir: src}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

const manifestsYAML = `
apiVersion: sandpit/v1
name: shop
source: {path: SRC}
services:
  api:
    image: registry.example.com/shop-api:${git.sha}
    ports: [{name: http, port: 8080}]
dependencies:
  db: {type: postgres, version: "15"}
endpoints:
  app:
    routes: [{path: /, to: api:http}]
resources: {class: small}
kubernetes:
  manifests: k8s
  env: {SANDBOX_MODE: preview}
  config:
    app-config: {FEATURE_X: "on"}
`

func TestUpAppliesManifestsWithLabelsAndOverrides(t *testing.T) {
	rt, c := newRuntime(t)
	ctx := ctxT(t, 2*time.Minute)
	src, sha := shopSource(t)
	inst := instance(t, "pr-7", manifestsYAML, src)
	p := &runtimetest.Recorder{}
	obs, err := rt.Up(ctx, inst, p)
	if err != nil {
		t.Fatalf("Up: %v\n%v", err, p.Entries())
	}
	ns := rt.Namespace(inst.ID)
	cs := c.Client

	nsObj, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{LabelManagedBy: "sandpit", LabelSandboxID: inst.ID, LabelSandbox: "pr-7", LabelInstance: rt.cfg.Instance} {
		if nsObj.Labels[k] != v {
			t.Errorf("namespace label %s = %q, want %q", k, nsObj.Labels[k], v)
		}
	}

	api := getDeployment(t, cs, ns, "api")
	if *api.Spec.Replicas != 1 {
		t.Errorf("api replicas = %d, want 1 (production says 6)", *api.Spec.Replicas)
	}
	if img := api.Spec.Template.Spec.Containers[0].Image; img != "registry.example.com/shop-api:"+sha {
		t.Errorf("api image = %s, want the sandbox's commit %s", img, sha)
	}
	if api.Labels[LabelSandboxID] != inst.ID || api.Spec.Template.Labels[LabelSandboxID] != inst.ID {
		t.Errorf("api labels %v / pod template labels %v lack the sandbox id", api.Labels, api.Spec.Template.Labels)
	}
	if _, ok := api.Spec.Selector.MatchLabels[LabelSandboxID]; ok {
		t.Errorf("selector was changed: %v", api.Spec.Selector.MatchLabels)
	}
	if !hasEnv(api.Spec.Template.Spec.Containers[0].Env, "SANDBOX_MODE", "preview") {
		t.Errorf("api env %v lacks kubernetes.env", api.Spec.Template.Spec.Containers[0].Env)
	}
	worker := getDeployment(t, cs, ns, "worker")
	if *worker.Spec.Replicas != 1 || worker.Spec.Template.Spec.Containers[0].Image != "registry.example.com/shop-worker:v1.0.0" {
		t.Errorf("worker: replicas %d image %s", *worker.Spec.Replicas, worker.Spec.Template.Spec.Containers[0].Image)
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "app-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["FEATURE_X"] != "on" || cm.Data["LOG_LEVEL"] != "info" {
		t.Errorf("app-config = %v, want FEATURE_X=on from the template and LOG_LEVEL=info kept", cm.Data)
	}
	ing, err := cs.NetworkingV1().Ingresses(ns).Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := ing.Spec.Rules[0].Host; h != "shop--pr-7.sandpit.localhost" {
		t.Errorf("ingress host = %q, want the sandbox's host", h)
	}
	if _, err := cs.CoreV1().ResourceQuotas(ns).Get(ctx, "sandpit-resources", metav1.GetOptions{}); err != nil {
		t.Errorf("resource quota: %v", err)
	}
	db, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if db.Annotations[AnnotationDependency] != "db" {
		t.Errorf("db annotations %v", db.Annotations)
	}
	// Nothing in production's namespace.
	if _, err := cs.CoreV1().ConfigMaps("production").Get(ctx, "app-config", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("an object went to the manifests' own namespace: %v", err)
	}

	if !obs.Healthy || obs.SHA != sha {
		t.Errorf("observation: healthy %v sha %q", obs.Healthy, obs.SHA)
	}
	for _, s := range obs.Services {
		if !s.Ready {
			t.Errorf("service %s not ready: %+v", s.Name, s)
		}
	}
	if len(obs.Dependencies) != 1 || !obs.Dependencies[0].Ready {
		t.Errorf("dependencies %+v", obs.Dependencies)
	}
	if obs.Upstreams["api"]["http"] == "" {
		t.Errorf("no upstream for api:http: %v", obs.Upstreams)
	}
	ids, err := rt.Sandboxes(ctx)
	if err != nil || !slices.Equal(ids, []string{inst.ID}) {
		t.Errorf("Sandboxes = %v, %v", ids, err)
	}
	for _, st := range []string{"checkout", "build", "start", "ready"} {
		if !p.Has("finished " + st) {
			t.Errorf("stage %s did not finish: %v", st, p.Entries())
		}
	}

	// Up again changes nothing and is still ready.
	before := api.Generation
	if _, err := rt.Up(ctx, inst, &runtimetest.Recorder{}); err != nil {
		t.Fatal(err)
	}
	if g := getDeployment(t, cs, ns, "api").Generation; g != before {
		t.Errorf("a second Up changed the api deployment (generation %d → %d)", before, g)
	}
}

func getDeployment(t *testing.T, cs kubernetes.Interface, ns, name string) *appsv1.Deployment {
	t.Helper()
	d, err := cs.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("deployment %s: %v", name, err)
	}
	return d
}

func hasEnv(env []corev1.EnvVar, k, v string) bool {
	for _, e := range env {
		if e.Name == k && e.Value == v {
			return true
		}
	}
	return false
}

const kustomizeYAML = `
apiVersion: sandpit/v1
name: shop-k
source: {path: SRC}
services:
  api:
    image: registry.example.com/shop-api:${git.sha}
    ports: [{name: http, port: 8080}]
kubernetes:
  kustomize: kustomize/overlays/preview
`

const helmYAML = `
apiVersion: sandpit/v1
name: shop-h
source: {path: SRC}
services:
  api:
    image: registry.example.com/shop-api:${git.sha}
    ports: [{name: http, port: 8080}]
kubernetes:
  helm:
    chart: chart
    release: api-rel
    values: {cache: {size: 128}}
`

func TestKustomizeAndHelmSources(t *testing.T) {
	rt, c := newRuntime(t)
	ctx := ctxT(t, 3*time.Minute)
	src, sha := shopSource(t)

	k := instance(t, "kust", kustomizeYAML, src)
	if _, err := rt.Up(ctx, k, &runtimetest.Recorder{}); err != nil {
		t.Fatalf("Up (kustomize): %v", err)
	}
	ns := rt.Namespace(k.ID)
	api := getDeployment(t, c.Client, ns, "api")
	if api.Labels["tier"] != "preview" || !hasEnv(api.Spec.Template.Spec.Containers[0].Env, "PREVIEW", "1") {
		t.Errorf("overlay not applied: labels %v env %v", api.Labels, api.Spec.Template.Spec.Containers[0].Env)
	}
	if *api.Spec.Replicas != 1 || api.Spec.Template.Spec.Containers[0].Image != "registry.example.com/shop-api:"+sha {
		t.Errorf("overrides missing: replicas %d image %s", *api.Spec.Replicas, api.Spec.Template.Spec.Containers[0].Image)
	}
	cms, err := c.Client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelSandboxID + "=" + k.ID})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, cm := range cms.Items {
		found = found || strings.HasPrefix(cm.Name, "preview-settings-")
	}
	if !found {
		t.Errorf("the overlay's generated ConfigMap is missing: %v", cms.Items)
	}

	h := instance(t, "helm", helmYAML, src)
	if _, err := rt.Up(ctx, h, &runtimetest.Recorder{}); err != nil {
		t.Fatalf("Up (helm): %v", err)
	}
	ns = rt.Namespace(h.ID)
	d := getDeployment(t, c.Client, ns, "api-rel-api")
	if *d.Spec.Replicas != 1 {
		t.Errorf("chart replicas = %d, want 1", *d.Spec.Replicas)
	}
	cache, err := c.Client.CoreV1().ConfigMaps(ns).Get(ctx, "api-rel-cache", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the enabled subchart's ConfigMap: %v", err)
	}
	if cache.Data["size"] != "128" {
		t.Errorf("subchart value size = %q, want 128 from the template's values", cache.Data["size"])
	}
	if _, err := c.Client.CoreV1().ConfigMaps(ns).Get(ctx, "api-rel-metrics", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the disabled subchart was rendered: %v", err)
	}
}

func TestPruneAfterTemplateChange(t *testing.T) {
	rt, c := newRuntime(t)
	ctx := ctxT(t, 2*time.Minute)
	src, _ := shopSource(t)
	inst := instance(t, "prune", manifestsYAML, src)
	if _, err := rt.Up(ctx, inst, &runtimetest.Recorder{}); err != nil {
		t.Fatal(err)
	}
	ns := rt.Namespace(inst.ID)
	// The team removes the worker and the ingress from its manifests.
	data, err := os.ReadFile(filepath.Join(src, "k8s/app.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(data), "\n---\n")
	var kept []string
	for _, d := range docs {
		if !strings.Contains(d, "name: worker") && !strings.Contains(d, "kind: Ingress") {
			kept = append(kept, d)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "k8s/app.yaml"), []byte(strings.Join(kept, "\n---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	inst.Template, err = template.Parse("sandpit.yaml", []byte(strings.ReplaceAll(strings.ReplaceAll(manifestsYAML, "SRC", src), "  db: {type: postgres, version: \"15\"}\n", "  cache: {type: postgres, version: \"15\"}\n")))
	if err != nil {
		t.Fatal(err)
	}
	p := &runtimetest.Recorder{}
	if _, err := rt.Up(ctx, inst, p); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "worker", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("worker deployment not pruned: %v", err)
	}
	if _, err := c.Client.NetworkingV1().Ingresses(ns).Get(ctx, "shop", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ingress not pruned: %v", err)
	}
	if _, err := c.Client.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("removed dependency db not pruned: %v", err)
	}
	if _, err := c.Client.AppsV1().StatefulSets(ns).Get(ctx, "cache", metav1.GetOptions{}); err != nil {
		t.Errorf("new dependency cache: %v", err)
	}
	getDeployment(t, c.Client, ns, "api")
	pruned := false
	for _, e := range p.Events() {
		pruned = pruned || (e.Reason == "Pruned" && strings.Contains(e.Message, "Deployment/worker"))
	}
	if !pruned {
		t.Errorf("no Pruned event naming Deployment/worker: %+v", p.Events())
	}
}

func TestSuspendAndResumeRestoreReplicas(t *testing.T) {
	rt, c := newRuntime(t)
	ctx := ctxT(t, 2*time.Minute)
	src, _ := shopSource(t)
	inst := instance(t, "sleepy", manifestsYAML, src)
	if _, err := rt.Up(ctx, inst, &runtimetest.Recorder{}); err != nil {
		t.Fatal(err)
	}
	ns := rt.Namespace(inst.ID)
	// Someone scaled the worker to 2 by hand; resume must bring back 2.
	if _, err := c.Client.AppsV1().Deployments(ns).Patch(ctx, "worker", types.MergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{FieldManager: "kubectl"}); err != nil {
		t.Fatal(err)
	}
	if err := rt.Suspend(ctx, inst.ID, &runtimetest.Recorder{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"api", "worker"} {
		d := getDeployment(t, c.Client, ns, name)
		if *d.Spec.Replicas != 0 {
			t.Errorf("%s replicas = %d after suspend", name, *d.Spec.Replicas)
		}
	}
	if w := getDeployment(t, c.Client, ns, "worker"); w.Annotations[AnnotationReplicas] != "2" {
		t.Errorf("worker keeps %q replicas, want 2", w.Annotations[AnnotationReplicas])
	}
	db, _ := c.Client.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
	if *db.Spec.Replicas != 0 {
		t.Errorf("db replicas = %d after suspend", *db.Spec.Replicas)
	}
	pods, _ := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if len(pods.Items) != 0 {
		t.Errorf("%d pods left after suspend", len(pods.Items))
	}
	obs, err := rt.Observe(ctx, inst.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range obs.Services {
		if s.State != sandbox.ServiceStopped {
			t.Errorf("suspended service %s is %s", s.Name, s.State)
		}
	}
	if !obs.Healthy {
		t.Errorf("a suspended sandbox must not look unhealthy (the reconciler would relaunch it)")
	}
	// Suspend twice is fine and keeps the counts.
	if err := rt.Suspend(ctx, inst.ID, &runtimetest.Recorder{}); err != nil {
		t.Fatal(err)
	}
	if w := getDeployment(t, c.Client, ns, "worker"); w.Annotations[AnnotationReplicas] != "2" {
		t.Errorf("second suspend lost the count: %q", w.Annotations[AnnotationReplicas])
	}

	obs, err = rt.Up(ctx, inst, &runtimetest.Recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if w := getDeployment(t, c.Client, ns, "worker"); *w.Spec.Replicas != 1 || w.Annotations[AnnotationReplicas] != "" {
		// The template forces 1; the kept 2 is restored and then the
		// render's replicas apply.
		t.Logf("worker after resume: replicas %d annotations %v", *w.Spec.Replicas, w.Annotations)
	}
	if a := getDeployment(t, c.Client, ns, "api"); *a.Spec.Replicas != 1 || a.Status.AvailableReplicas != 1 {
		t.Errorf("api after resume: replicas %d available %d", *a.Spec.Replicas, a.Status.AvailableReplicas)
	}
	nsObj, _ := c.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if nsObj.Annotations[AnnotationSuspended] != "" {
		t.Errorf("namespace still marked suspended")
	}
	for _, s := range obs.Services {
		if !s.Ready {
			t.Errorf("service %s not ready after resume", s.Name)
		}
	}
}

func TestDownDeletesTheNamespaceAndReportsWhatHoldsIt(t *testing.T) {
	rt, c := newRuntime(t, func(cfg *Config) { cfg.DeleteWait = 3 * time.Second })
	ctx := ctxT(t, 2*time.Minute)
	src, _ := shopSource(t)
	inst := instance(t, "gone", manifestsYAML, src)
	if _, err := rt.Up(ctx, inst, &runtimetest.Recorder{}); err != nil {
		t.Fatal(err)
	}
	ns := rt.Namespace(inst.ID)
	// Something in the namespace has a finalizer nobody removes.
	hold := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held", Namespace: ns, Finalizers: []string{"example.com/hold"}}}
	if _, err := c.Client.CoreV1().ConfigMaps(ns).Create(ctx, hold, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Down fails while the namespace is held, and says by what once the
	// namespace controller has looked (the reconciler retries Down the
	// same way, keeping the sandbox in Deleting).
	var err error
	for i := 0; i < 10; i++ {
		err = rt.Down(ctx, inst.ID, &runtimetest.Recorder{})
		if err == nil || strings.Contains(err.Error(), "example.com/hold") {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), "still terminating") || !strings.Contains(err.Error(), "example.com/hold") {
		t.Fatalf("Down with a stuck namespace = %v, want an error naming the finalizer", err)
	}
	// The sandbox is still held: the reconciler keeps it in Deleting.
	if ids, _ := rt.Sandboxes(ctx); !slices.Contains(ids, inst.ID) {
		t.Errorf("stuck namespace not listed by Sandboxes: %v", ids)
	}
	if _, err := c.Client.CoreV1().ConfigMaps(ns).Patch(ctx, "held", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	rt.cfg.DeleteWait = time.Minute
	if err := rt.Down(ctx, inst.ID, &runtimetest.Recorder{}); err != nil {
		t.Fatalf("Down after the finalizer went: %v", err)
	}
	if _, err := c.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace still there: %v", err)
	}
	if ids, _ := rt.Sandboxes(ctx); len(ids) != 0 {
		t.Errorf("Sandboxes after Down = %v", ids)
	}
	if err := rt.Down(ctx, inst.ID, &runtimetest.Recorder{}); err != nil {
		t.Errorf("second Down: %v", err)
	}
	if _, err := rt.Observe(ctx, inst.ID); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Observe after Down = %v, want ErrNotFound", err)
	}
	if err := rt.Down(ctx, sandbox.NewID(), &runtimetest.Recorder{}); err != nil {
		t.Errorf("Down of an unknown id: %v", err)
	}
}

// Logs and exec go through the API server to the pod's kubelet. The test
// cluster has none (kwok fakes the node), so the call fails there; what
// is checked is that the runtime picked the service's pod and container
// and says which.
func TestLogsAndExecNameThePodAndContainer(t *testing.T) {
	rt, _ := newRuntime(t)
	ctx := ctxT(t, 2*time.Minute)
	src, _ := shopSource(t)
	inst := instance(t, "debug", manifestsYAML, src)
	if _, err := rt.Up(ctx, inst, &runtimetest.Recorder{}); err != nil {
		t.Fatal(err)
	}
	var lines []runtime.LogLine
	lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err := rt.Logs(lctx, inst.ID, runtime.LogOptions{Service: "api"}, func(l runtime.LogLine) error { lines = append(lines, l); return nil })
	if len(lines) == 0 || lines[0].Stream != "system" || !strings.Contains(lines[0].Text, "pod api-") || !strings.Contains(lines[0].Text, "container api") {
		t.Errorf("first log line %+v does not name the pod and container", lines)
	}
	if err != nil && !strings.Contains(err.Error(), "pod api-") {
		t.Errorf("log error does not name the pod: %v", err)
	}
	var stderr strings.Builder
	_, err = rt.Exec(lctx, inst.ID, runtime.ExecRequest{Service: "api", Command: []string{"true"}, Stdout: &strings.Builder{}, Stderr: &stderr})
	if !strings.Contains(stderr.String(), "exec in pod api-") {
		t.Errorf("exec did not name the pod: %q", stderr.String())
	}
	if err != nil && !strings.Contains(err.Error(), "container api") {
		t.Errorf("exec error does not name the container: %v", err)
	}
	err = rt.Logs(ctx, inst.ID, runtime.LogOptions{Service: "nope"}, func(runtime.LogLine) error { return nil })
	if !errors.Is(err, runtime.ErrNotFound) || !strings.Contains(err.Error(), "api") {
		t.Errorf("logs of an unknown service = %v, want ErrNotFound listing the services", err)
	}
}

func TestClusterScopedObjectsNeedTheServersPermission(t *testing.T) {
	src, _ := shopSource(t)
	role := `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: shop-reader}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
`
	if err := os.WriteFile(filepath.Join(src, "k8s/role.yaml"), []byte(role), 0o644); err != nil {
		t.Fatal(err)
	}
	rt, c := newRuntime(t)
	ctx := ctxT(t, 2*time.Minute)
	inst := instance(t, "cluster", manifestsYAML, src)
	_, err := rt.Up(ctx, inst, &runtimetest.Recorder{})
	if err == nil || !runtime.IsPermanent(err) || !strings.Contains(err.Error(), "ClusterRole") {
		t.Fatalf("Up with a ClusterRole = %v, want a permanent error naming it", err)
	}
	rt2, _ := newRuntime(t, func(cfg *Config) { cfg.AllowClusterKinds = []string{"ClusterRole.rbac.authorization.k8s.io"} })
	inst2 := instance(t, "cluster2", manifestsYAML, src)
	if _, err := rt2.Up(ctx, inst2, &runtimetest.Recorder{}); err != nil {
		t.Fatalf("Up with the kind allowed: %v", err)
	}
	roles, err := c.Client.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{LabelSelector: LabelSandboxID + "=" + inst2.ID})
	if err != nil || len(roles.Items) != 1 {
		t.Fatalf("cluster roles of the sandbox: %v %v", roles, err)
	}
	if err := rt2.Down(ctx, inst2.ID, &runtimetest.Recorder{}); err != nil {
		t.Fatal(err)
	}
	roles, _ = c.Client.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{LabelSelector: LabelSandboxID + "=" + inst2.ID})
	if len(roles.Items) != 0 {
		t.Errorf("Down left cluster-scoped objects: %v", roles.Items)
	}
}

func TestCheckTemplateAtApply(t *testing.T) {
	rt, _ := newRuntime(t)
	for _, tc := range []struct{ name, yaml, want string }{
		{"no image", "apiVersion: sandpit/v1\nname: x\nservices:\n  web: {run: ./web}\n", `sandpit.yaml:4:3: service "web" has no image`},
		{"snapshot", "apiVersion: sandpit/v1\nname: x\nservices:\n  web: {image: web:1}\ndependencies:\n  db: {type: postgres, version: \"15\", snapshot: seed}\n", `sandpit.yaml:6:39: dependency "db": seeding from snapshot "seed" is not supported`},
		{"class", "apiVersion: sandpit/v1\nname: x\nservices:\n  web: {image: web:1}\nresources: {class: huge}\n", `"huge" is not a class`},
		{"fine", "apiVersion: sandpit/v1\nname: x\nservices:\n  web: {image: web:1}\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tpl, err := template.Parse("sandpit.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			err = rt.CheckTemplate(tpl)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("CheckTemplate = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("CheckTemplate = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
