package deploytest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/testenv"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"sandpit.dev/sandpit/internal/kubetest"
)

const (
	releaseName  = "sandpit"
	namespace    = "sandpit-system"
	kubeVersion  = "v1.31.4"
	fieldManager = "helm-test"
	// serviceAccount is the user the server runs as.
	serviceAccount = "system:serviceaccount:" + namespace + ":sandpit"
	storeURL       = "postgres://sandpit:s3cret@db.example.com:5432/sandpit?sslmode=require"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

// chartDir is deploy/helm/sandpit, found from this file's path so the test
// runs from any working directory.
func chartDir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := goruntime.Caller(0)
	if !ok {
		t.Fatal("cannot find the test's source file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "deploy", "helm", "sandpit")
}

func loadChart(t testing.TB) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return ch
}

// rendered is one client-side render of the chart, like `helm template`.
type rendered struct {
	manifest string
	notes    string
	objs     []*unstructured.Unstructured
}

func (r rendered) find(kind, name string) *unstructured.Unstructured {
	for _, o := range r.objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func (r rendered) kinds() []string {
	var out []string
	for _, o := range r.objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}

// render renders the chart in-process as release "sandpit" in namespace
// sandpit-system, with vals over the chart's defaults.
func render(t testing.TB, vals map[string]any) rendered {
	t.Helper()
	r, err := tryRender(t, vals)
	if err != nil {
		t.Fatalf("render chart: %v", err)
	}
	return r
}

func tryRender(t testing.TB, vals map[string]any) (rendered, error) {
	t.Helper()
	inst := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	inst.DryRun = true
	inst.DryRunOption = "client"
	inst.ClientOnly = true
	inst.Replace = true
	inst.Namespace = namespace
	inst.ReleaseName = releaseName
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	inst.KubeVersion = kv
	if vals == nil {
		vals = map[string]any{}
	}
	rel, err := inst.Run(loadChart(t), vals)
	if err != nil {
		return rendered{}, err
	}
	if len(rel.Hooks) > 0 {
		t.Errorf("the chart has hooks (%s): apply them in the cluster test too, or drop them", rel.Hooks[0].Path)
	}
	return rendered{manifest: rel.Manifest, notes: rel.Info.Notes, objs: decode(t, rel.Manifest)}, nil
}

// decode splits a multi-document manifest into objects, keeping order
// (Helm's install order) and integer types.
func decode(t testing.TB, manifest string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	rd := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifest)))
	for {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read manifest: %v", err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatalf("parse manifest document: %v\n%s", err, doc)
		}
		if s := string(bytes.TrimSpace(js)); s == "null" || s == "" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			t.Fatalf("decode manifest document: %v\n%s", err, doc)
		}
		out = append(out, u)
	}
}

// as converts an object of the render into its typed form.
func as[T any](t testing.TB, u *unstructured.Unstructured) *T {
	t.Helper()
	var v T
	if u == nil {
		t.Fatalf("want a %T, the render has none", v)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &v); err != nil {
		t.Fatalf("convert %s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return &v
}

// tokenRE finds the generated admin token, which differs every render.
var tokenRE = regexp.MustCompile(`(?m)^(  token: )[A-Za-z0-9+/=]{40,}$`)

func scrub(manifest string) string {
	return tokenRE.ReplaceAllString(manifest, "${1}<generated>")
}

// TestLint runs `helm lint --strict`'s checks: anything above INFO fails.
func TestLint(t *testing.T) {
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	for _, vals := range []map[string]any{nil, {"ingress": map[string]any{"enabled": true}, "store": map[string]any{"url": storeURL}}} {
		l := lint.AllWithKubeVersion(chartDir(t), vals, namespace, kv)
		for _, m := range l.Messages {
			if m.Severity > support.InfoSev {
				t.Errorf("helm lint (values %v): %s", vals, m)
			} else {
				t.Logf("helm lint: %s", m)
			}
		}
	}
}

func TestRenderDefaults(t *testing.T) {
	r := render(t, nil)
	if n := len(tokenRE.FindAllString(r.manifest, -1)); n != 1 {
		t.Errorf("want one generated token in the render, found %d", n)
	}
	testenv.Golden(t, "testdata/default.golden.yaml", []byte(scrub(r.manifest)))
	checkCommon(t, r, 2)

	dep := as[appsv1.Deployment](t, r.find("Deployment", "sandpit"))
	c := dep.Spec.Template.Spec.Containers[0]
	if c.Image != "sandpit:dev" {
		t.Errorf("image = %q, want sandpit:dev", c.Image)
	}
	ref := storeRef(t, c)
	if ref.Name != "sandpit-store" || ref.Key != "url" {
		t.Errorf("SANDPIT_STORE from secret %s key %s, want sandpit-store key url", ref.Name, ref.Key)
	}
	if r.find("Secret", "sandpit-store") != nil {
		t.Error("the chart made a store Secret though store.url is empty")
	}
	if r.find("Secret", "sandpit-token") == nil {
		t.Error("no generated admin token Secret sandpit-token")
	}
	if r.find("Ingress", "sandpit") != nil {
		t.Error("an Ingress by default; ingress.enabled is false")
	}
	pdb := as[policyv1.PodDisruptionBudget](t, r.find("PodDisruptionBudget", "sandpit"))
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PDB minAvailable = %v, want 1", pdb.Spec.MinAvailable)
	}
	for _, want := range []string{"WARNING: no store is configured", "create secret generic sandpit-store", "rollout status deployment/sandpit"} {
		if !strings.Contains(r.notes, want) {
			t.Errorf("NOTES.txt lacks %q:\n%s", want, r.notes)
		}
	}
}

func TestRenderValues(t *testing.T) {
	t.Run("replicas 3, ingress, store.url, extra rule", func(t *testing.T) {
		r := render(t, map[string]any{
			"replicas": 3,
			"domain":   "sb.example.org",
			"ingress":  map[string]any{"enabled": true, "className": "nginx"},
			"store":    map[string]any{"url": storeURL},
			"rbac": map[string]any{"extraRules": []any{map[string]any{
				"apiGroups": []any{"batch"}, "resources": []any{"cronjobs"},
				"verbs": []any{"get", "list", "watch", "create", "patch", "update", "delete"},
			}}},
		})
		checkCommon(t, r, 3)
		dep := as[appsv1.Deployment](t, r.find("Deployment", "sandpit"))
		c := dep.Spec.Template.Spec.Containers[0]
		if !hasPair(c.Args, "--domain", "sb.example.org") {
			t.Errorf("args %q lack --domain sb.example.org", c.Args)
		}
		ref := storeRef(t, c)
		sec := as[corev1.Secret](t, r.find("Secret", ref.Name))
		if got := string(sec.Data[ref.Key]); got != storeURL {
			t.Errorf("store Secret %s key %s = %q, want %q", ref.Name, ref.Key, got, storeURL)
		}
		if strings.Contains(r.manifest, "s3cret") {
			t.Error("the store URL's password is in the manifest in clear")
		}
		if dep.Spec.Template.Annotations["checksum/store"] == "" {
			t.Error("no checksum/store annotation: pods would not roll when store.url changes")
		}
		ing := as[networkingv1.Ingress](t, r.find("Ingress", "sandpit"))
		if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" {
			t.Errorf("ingressClassName = %v, want nginx", ing.Spec.IngressClassName)
		}
		backends := map[string]string{}
		for _, rule := range ing.Spec.Rules {
			backends[rule.Host] = rule.HTTP.Paths[0].Backend.Service.Name
		}
		want := map[string]string{"api.sb.example.org": "sandpit", "*.sb.example.org": "sandpit-proxy"}
		if fmt.Sprint(backends) != fmt.Sprint(want) {
			t.Errorf("ingress hosts → services = %v, want %v", backends, want)
		}
		cr := as[rbacv1.ClusterRole](t, r.find("ClusterRole", "sandpit"))
		if !slices.ContainsFunc(cr.Rules, func(p rbacv1.PolicyRule) bool { return slices.Contains(p.Resources, "cronjobs") }) {
			t.Error("rbac.extraRules did not reach the ClusterRole")
		}
		if r.find("PodDisruptionBudget", "sandpit") == nil {
			t.Error("no PodDisruptionBudget with 3 replicas")
		}
		if !strings.Contains(r.notes, "http://api.sb.example.org") || strings.Contains(r.notes, "WARNING") {
			t.Errorf("NOTES.txt does not fit the values:\n%s", r.notes)
		}
	})
	t.Run("one replica has no PDB", func(t *testing.T) {
		r := render(t, map[string]any{"replicas": 1})
		checkCommon(t, r, 1)
		if r.find("PodDisruptionBudget", "sandpit") != nil {
			t.Error("a PodDisruptionBudget with minAvailable 1 and one replica would block every node drain")
		}
	})
	t.Run("existing secrets", func(t *testing.T) {
		r := render(t, map[string]any{
			"store": map[string]any{"existingSecret": "db", "existingSecretKey": "dsn", "url": "postgres://ignored"},
			"token": map[string]any{"existingSecret": "admin", "existingSecretKey": "t"},
		})
		checkCommon(t, r, 2)
		for _, o := range r.objs {
			if o.GetKind() == "Secret" {
				t.Errorf("the chart made Secret %s though both existingSecrets are set", o.GetName())
			}
		}
		spec := as[appsv1.Deployment](t, r.find("Deployment", "sandpit")).Spec.Template.Spec
		if ref := storeRef(t, spec.Containers[0]); ref.Name != "db" || ref.Key != "dsn" {
			t.Errorf("SANDPIT_STORE from %s/%s, want db/dsn", ref.Name, ref.Key)
		}
		for _, v := range spec.Volumes {
			if v.Name == "token" && (v.Secret.SecretName != "admin" || v.Secret.Items[0].Key != "t" || v.Secret.Items[0].Path != "token") {
				t.Errorf("token volume = %+v, want Secret admin key t as file token", v.Secret)
			}
		}
	})
}

// TestRenderRefusesBadValues: values.schema.json catches typos and wrong
// types before anything reaches the cluster.
func TestRenderRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals map[string]any
		want string
	}{
		{"misspelt key", map[string]any{"replica": 3}, "replica"},
		{"replicas as text", map[string]any{"replicas": "three"}, "replicas"},
		{"store url not PostgreSQL", map[string]any{"store": map[string]any{"url": "mysql://db/sandpit"}}, "store.url"},
		{"misspelt ingress key", map[string]any{"ingress": map[string]any{"enable": true}}, "enable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tryRender(t, tc.vals)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("render with %v: err = %v, want a schema error naming %q", tc.vals, err, tc.want)
			}
		})
	}
}

func storeRef(t testing.TB, c corev1.Container) *corev1.SecretKeySelector {
	t.Helper()
	for _, e := range c.Env {
		if e.Name == "SANDPIT_STORE" {
			if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Fatalf("SANDPIT_STORE = %+v, want it from a secretKeyRef", e)
			}
			return e.ValueFrom.SecretKeyRef
		}
	}
	t.Fatal("no SANDPIT_STORE in the container's env")
	return nil
}

func hasPair(args []string, flag, value string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag && args[i+1] == value {
			return true
		}
	}
	return false
}

// registryRE finds well-known registry hosts anywhere in a render.
var registryRE = regexp.MustCompile(`(?i)\b(docker\.io|ghcr\.io|gcr\.io|quay\.io|registry\.k8s\.io|registry-1\.docker|[a-z0-9-]+\.azurecr\.io|ecr\.[a-z0-9-]+\.amazonaws\.com|pkg\.dev)\b`)

// registryHost reports whether an image reference names a registry host:
// a first path element with a dot or a port, or localhost.
func registryHost(image string) bool {
	first, _, ok := strings.Cut(image, "/")
	return ok && (strings.ContainsAny(first, ".:") || first == "localhost")
}

// checkCommon checks what every render must hold.
func checkCommon(t *testing.T, r rendered, replicas int32) {
	t.Helper()
	if m := registryRE.FindString(r.manifest); m != "" {
		t.Errorf("the render names registry host %q", m)
	}
	clusterScoped := map[string]bool{"ClusterRole": true, "ClusterRoleBinding": true}
	for _, o := range r.objs {
		id := o.GetKind() + "/" + o.GetName()
		for k, v := range map[string]string{
			"app.kubernetes.io/name":       "sandpit",
			"app.kubernetes.io/instance":   releaseName,
			"app.kubernetes.io/version":    "dev",
			"app.kubernetes.io/managed-by": "Helm",
		} {
			if got := o.GetLabels()[k]; got != v {
				t.Errorf("%s: label %s = %q, want %q", id, k, got, v)
			}
		}
		if ns := o.GetNamespace(); clusterScoped[o.GetKind()] != (ns == "") || ns != "" && ns != namespace {
			t.Errorf("%s: namespace %q (want %s for namespaced kinds, none for cluster-scoped ones)", id, ns, namespace)
		}
		if o.GetKind() == "ClusterRole" || o.GetKind() == "Role" {
			checkRules(t, id, as[rbacv1.ClusterRole](t, o).Rules)
		}
	}
	for _, want := range []string{"Deployment/sandpit", "ServiceAccount/sandpit", "Service/sandpit", "Service/sandpit-proxy",
		"ClusterRole/sandpit", "ClusterRoleBinding/sandpit", "Role/sandpit-leader-election", "RoleBinding/sandpit-leader-election"} {
		if !slices.Contains(r.kinds(), want) {
			t.Errorf("the render has no %s; it has %v", want, r.kinds())
		}
	}

	dep := as[appsv1.Deployment](t, r.find("Deployment", "sandpit"))
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != replicas {
		t.Errorf("replicas = %v, want %d", dep.Spec.Replicas, replicas)
	}
	spec := dep.Spec.Template.Spec
	if spec.ServiceAccountName != "sandpit" {
		t.Errorf("serviceAccountName = %q, want sandpit", spec.ServiceAccountName)
	}
	for _, c := range append(spec.InitContainers, spec.Containers...) {
		if registryHost(c.Image) {
			t.Errorf("container %s: image %q names a registry host", c.Name, c.Image)
		}
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(spec.Containers))
	}
	c := spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "serve" || !slices.Contains(c.Args, "--leader-elect") ||
		!hasPair(c.Args, "--runtime", "kubernetes") || !hasPair(c.Args, "--leader-elect-namespace", "$(POD_NAMESPACE)") ||
		!hasPair(c.Args, "--kube-instance", releaseName) || !hasPair(c.Args, "--token-file", "/etc/sandpit/token/token") ||
		!hasPair(c.Args, "--listen", ":8080") || !hasPair(c.Args, "--proxy-listen", ":8081") {
		t.Errorf("args = %q", c.Args)
	}
	storeRef(t, c)
	podNS := false
	for _, e := range c.Env {
		podNS = podNS || e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace"
	}
	if !podNS {
		t.Error("POD_NAMESPACE does not come from the downward API")
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != "http" {
		t.Errorf("readinessProbe = %+v, want GET /healthz on port http", p)
	}
	if c.LivenessProbe == nil {
		t.Error("no livenessProbe")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources = %+v, want CPU requests and a memory limit", c.Resources)
	}
	sc, psc := c.SecurityContext, spec.SecurityContext
	if sc == nil || psc == nil || !ptr.Deref(sc.RunAsNonRoot, false) || ptr.Deref(sc.RunAsUser, 0) != 65532 ||
		!ptr.Deref(sc.ReadOnlyRootFilesystem, false) || ptr.Deref(sc.AllowPrivilegeEscalation, true) ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("securityContext = %+v, pod securityContext = %+v", sc, psc)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	emptyDirs := map[string]bool{}
	for _, v := range spec.Volumes {
		emptyDirs[v.Name] = v.EmptyDir != nil
	}
	for _, p := range []string{"/var/lib/sandpit", "/tmp"} {
		if !emptyDirs[mounts[p]] {
			t.Errorf("%s is not an emptyDir mount (mounts %v)", p, mounts)
		}
	}
	if mounts["/etc/sandpit/token"] != "token" {
		t.Errorf("no token volume at /etc/sandpit/token (mounts %v)", mounts)
	}
	a := spec.Affinity
	if a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 ||
		a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("affinity = %+v, want a preferred podAntiAffinity across hostnames", a)
	}
	for _, name := range []string{"sandpit", "sandpit-proxy"} {
		svc := as[corev1.Service](t, r.find("Service", name))
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 80 {
			t.Errorf("Service %s ports = %+v, want 80", name, svc.Spec.Ports)
		}
	}
}

// checkRules refuses wildcards and the verbs that let a role grant more
// than it holds.
func checkRules(t *testing.T, id string, rules []rbacv1.PolicyRule) {
	t.Helper()
	for i, p := range rules {
		for _, list := range [][]string{p.APIGroups, p.Resources, p.Verbs, p.ResourceNames, p.NonResourceURLs} {
			for _, s := range list {
				if strings.Contains(s, "*") {
					t.Errorf("%s rule %d grants %q: %+v", id, i, s, p)
				}
			}
		}
		for _, v := range p.Verbs {
			if v == "escalate" || v == "bind" || v == "impersonate" {
				t.Errorf("%s rule %d grants verb %s: %+v", id, i, v, p)
			}
		}
	}
}

// applier server-side applies objects, like the kube runtime.
type applier struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
}

func newApplier(t testing.TB, cfg *rest.Config) *applier {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}
}

func (a *applier) apply(ctx context.Context, u *unstructured.Unstructured) error {
	gvk := u.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("apply %s %s: %w", gvk.Kind, u.GetName(), err)
	}
	var rc dynamic.ResourceInterface = a.dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		rc = a.dyn.Resource(m.Resource).Namespace(u.GetNamespace())
	}
	body, err := u.MarshalJSON()
	if err != nil {
		return err
	}
	if _, err := rc.Patch(ctx, u.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: fieldManager, Force: ptr.To(true)}); err != nil {
		return fmt.Errorf("apply %s %s/%s: %w", gvk.Kind, u.GetNamespace(), u.GetName(), err)
	}
	return nil
}

func (a *applier) applyAll(t testing.TB, ctx context.Context, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, o := range objs {
		if err := a.apply(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
}

// waitAvailable waits until the Deployment has rolled out replicas
// Available pods (kwok makes them Running and Ready; nothing runs).
func waitAvailable(t testing.TB, ctx context.Context, c *kubetest.Cluster, name string, replicas int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		d, err := c.Client.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil && d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == replicas &&
			d.Status.AvailableReplicas == replicas && d.Status.Replicas == replicas {
			for _, cond := range d.Status.Conditions {
				if cond.Type == appsv1.DeploymentAvailable && cond.Status == corev1.ConditionTrue {
					return
				}
			}
		}
		// Pods the API server refuses (Pod Security) will never come.
		if evs, err := c.Client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: "reason=FailedCreate"}); err == nil && len(evs.Items) > 0 {
			t.Fatalf("deployment %s: %s", name, evs.Items[0].Message)
		}
		if ctx.Err() != nil {
			var evs []string
			if list, err := c.Client.CoreV1().Events(namespace).List(context.Background(), metav1.ListOptions{}); err == nil {
				for _, e := range list.Items {
					evs = append(evs, fmt.Sprintf("%s %s/%s: %s", e.Reason, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Message))
				}
			}
			status := any(err)
			if d != nil {
				status = d.Status
			}
			t.Fatalf("deployment %s not Available with %d replicas: %+v\nevents:\n%s\ncontroller-manager:%s", name, replicas, status, strings.Join(evs, "\n"), c.Logs("kube-controller-manager", 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestChartOnCluster applies the chart to a real API server, as an install
// and then an upgrade, and exercises its RBAC as the server's
// ServiceAccount.
func TestChartOnCluster(t *testing.T) {
	c := kubetest.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cs := c.Client
	const probeNS = "sandpit-rbac-probe"

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, ns := range []string{namespace, probeNS} {
			if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("clean up namespace %s: %v", ns, err)
			}
		}
		if err := cs.RbacV1().ClusterRoleBindings().Delete(ctx, "sandpit", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("clean up: %v", err)
		}
		if err := cs.RbacV1().ClusterRoles().Delete(ctx, "sandpit", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("clean up: %v", err)
		}
	})

	// A previous run (-count=2) may still be deleting its namespaces.
	for _, ns := range []string{namespace, probeNS} {
		for {
			_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("namespace %s from an earlier run is still there", ns)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// The release namespace enforces the "restricted" Pod Security
	// Standard: pods that break it are never created, so the Deployment
	// would never become Available.
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   namespace,
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	admin := newApplier(t, c.Config)

	ok := t.Run("install", func(t *testing.T) {
		start := time.Now()
		admin.applyAll(t, ctx, render(t, nil).objs)
		waitAvailable(t, ctx, c, "sandpit", 2)
		t.Logf("applied and Available in %s", time.Since(start).Round(time.Millisecond))
		for _, want := range []struct {
			gvr       schema.GroupVersionResource
			namespace string
			name      string
		}{
			{corev1.SchemeGroupVersion.WithResource("serviceaccounts"), namespace, "sandpit"},
			{rbacv1.SchemeGroupVersion.WithResource("clusterroles"), "", "sandpit"},
			{rbacv1.SchemeGroupVersion.WithResource("clusterrolebindings"), "", "sandpit"},
			{rbacv1.SchemeGroupVersion.WithResource("roles"), namespace, "sandpit-leader-election"},
			{rbacv1.SchemeGroupVersion.WithResource("rolebindings"), namespace, "sandpit-leader-election"},
			{policyv1.SchemeGroupVersion.WithResource("poddisruptionbudgets"), namespace, "sandpit"},
			{corev1.SchemeGroupVersion.WithResource("services"), namespace, "sandpit"},
			{corev1.SchemeGroupVersion.WithResource("services"), namespace, "sandpit-proxy"},
			{corev1.SchemeGroupVersion.WithResource("secrets"), namespace, "sandpit-token"},
		} {
			if _, err := admin.dyn.Resource(want.gvr).Namespace(want.namespace).Get(ctx, want.name, metav1.GetOptions{}); err != nil {
				t.Errorf("%s %s: %v", want.gvr.Resource, want.name, err)
			}
		}
	})
	if !ok {
		return
	}

	t.Run("upgrade", func(t *testing.T) {
		admin.applyAll(t, ctx, render(t, map[string]any{
			"replicas": 3,
			"ingress":  map[string]any{"enabled": true},
			"store":    map[string]any{"url": storeURL},
		}).objs)
		waitAvailable(t, ctx, c, "sandpit", 3)
		if _, err := cs.NetworkingV1().Ingresses(namespace).Get(ctx, "sandpit", metav1.GetOptions{}); err != nil {
			t.Error(err)
		}
		if _, err := cs.CoreV1().Secrets(namespace).Get(ctx, "sandpit-store", metav1.GetOptions{}); err != nil {
			t.Error(err)
		}

		// A render that can look the cluster up (helm upgrade) keeps the
		// admin token that is there; a client-only one cannot and makes a
		// new one.
		sec, err := cs.CoreV1().Secrets(namespace).Get(ctx, "sandpit-token", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		have := base64.StdEncoding.EncodeToString(sec.Data["token"])
		ch := loadChart(t)
		caps := chartutil.DefaultCapabilities.Copy()
		kv, _ := chartutil.ParseKubeVersion(kubeVersion)
		caps.KubeVersion = *kv
		vals, err := chartutil.ToRenderValues(ch, map[string]any{}, chartutil.ReleaseOptions{
			Name: releaseName, Namespace: namespace, Revision: 3, IsUpgrade: true,
		}, caps)
		if err != nil {
			t.Fatal(err)
		}
		out, err := engine.RenderWithClient(ch, vals, c.Config)
		if err != nil {
			t.Fatal(err)
		}
		if got := out["sandpit/templates/secrets.yaml"]; !strings.Contains(got, "token: "+have+"\n") {
			t.Errorf("an upgrade render does not keep the token in the cluster (%s):\n%s", have, got)
		}
	})

	sa := rest.CopyConfig(c.Config)
	sa.Impersonate = rest.ImpersonationConfig{UserName: serviceAccount}
	saCS, err := kubernetes.NewForConfig(sa)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("RBAC allows what the runtime does", func(t *testing.T) {
		must := func(what string, err error) {
			t.Helper()
			if err != nil {
				t.Errorf("%s as %s: %v", what, serviceAccount, err)
			}
		}
		// A sandbox namespace, made, read, listed and applied to as the
		// runtime does.
		_, err := saCS.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name:   probeNS,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "sandpit", "sandpit.dev/instance": releaseName},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create a sandbox namespace as %s: %v", serviceAccount, err)
		}
		_, err = saCS.CoreV1().Namespaces().Get(ctx, probeNS, metav1.GetOptions{})
		must("get the namespace", err)
		list, err := saCS.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=sandpit,sandpit.dev/instance=" + releaseName})
		must("list sandbox namespaces", err)
		if err == nil && len(list.Items) != 1 {
			t.Errorf("listed %d sandbox namespaces, want 1", len(list.Items))
		}
		_, err = saCS.CoreV1().Namespaces().Patch(ctx, probeNS, types.MergePatchType, []byte(`{"metadata":{"annotations":{"sandpit.dev/probe":"patched"}}}`), metav1.PatchOptions{})
		must("patch the namespace", err)

		// What a template renders, server-side applied into it.
		saApply := newApplier(t, sa)
		for _, o := range decode(t, strings.ReplaceAll(sandboxObjects, "NS", probeNS)) {
			must("apply", saApply.apply(ctx, o))
		}
		_, err = saCS.AppsV1().Deployments(probeNS).Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicas":0}}`), metav1.PatchOptions{}, "scale")
		must("patch deployments/scale", err)
		_, err = saCS.AppsV1().StatefulSets(probeNS).Patch(ctx, "db", types.MergePatchType, []byte(`{"spec":{"replicas":0}}`), metav1.PatchOptions{}, "scale")
		must("patch statefulsets/scale", err)
		_, err = saCS.CoreV1().Pods(probeNS).List(ctx, metav1.ListOptions{})
		must("list pods", err)
		_, err = saCS.CoreV1().Events(probeNS).List(ctx, metav1.ListOptions{FieldSelector: "type=Warning"})
		must("list events", err)
		_, err = saCS.CoreV1().Secrets(probeNS).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "sandpit-credentials"},
			StringData: map[string]string{"password": "x"},
		}, metav1.CreateOptions{})
		must("create a Secret", err)

		// Leader election in the release namespace.
		leases := saCS.CoordinationV1().Leases(namespace)
		if _, err := leases.Get(ctx, "sandpit-leader", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("get a Lease in %s: %v, want NotFound", namespace, err)
		}
		lease, err := leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: "sandpit-leader"},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To("sandpit-0"), LeaseDurationSeconds: ptr.To[int32](15)},
		}, metav1.CreateOptions{})
		must("create a Lease", err)
		if err == nil {
			lease.Spec.HolderIdentity = ptr.To("sandpit-1")
			_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
			must("update the Lease", err)
		}

		// What cannot be done without a running pod, asked of the
		// authorizer.
		for _, a := range allowed {
			if ok, why := can(t, ctx, saCS, a); !ok {
				t.Errorf("%s may not %s %s in %q: %s", serviceAccount, a.Verb, resource(a), a.Namespace, why)
			}
		}

		must("delete the namespace", saCS.CoreV1().Namespaces().Delete(ctx, probeNS, metav1.DeleteOptions{}))
	})

	t.Run("RBAC forbids the rest", func(t *testing.T) {
		dry := []string{metav1.DryRunAll}
		forbidden := func(what string, err error) {
			t.Helper()
			if !apierrors.IsForbidden(err) {
				t.Errorf("%s as %s: got %v, want Forbidden", what, serviceAccount, err)
			}
		}
		_, err := saCS.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "sandpit-escalate"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "sandpit", Namespace: namespace}},
		}, metav1.CreateOptions{DryRun: dry})
		forbidden("create a ClusterRoleBinding", err)
		_, err = saCS.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "sandpit-escalate"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}},
		}, metav1.CreateOptions{DryRun: dry})
		forbidden("create a ClusterRole", err)
		_, err = saCS.CoordinationV1().Leases("kube-system").Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: "sandpit-leader"},
		}, metav1.CreateOptions{DryRun: dry})
		forbidden("create a Lease in kube-system", err)
		forbidden("delete a node", saCS.CoreV1().Nodes().Delete(ctx, kubetest.FakeNode, metav1.DeleteOptions{DryRun: dry}))
		// A template's Role may only grant what the server holds.
		_, err = saCS.RbacV1().Roles("default").Create(ctx, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "sandpit-escalate"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods/portforward"}, Verbs: []string{"create"}}},
		}, metav1.CreateOptions{DryRun: dry})
		forbidden("create a Role granting pods/portforward", err)

		for _, a := range denied {
			if ok, _ := can(t, ctx, saCS, a); ok {
				t.Errorf("%s may %s %s in %q; the chart must not grant it", serviceAccount, a.Verb, resource(a), a.Namespace)
			}
		}
	})
}

// sandboxObjects is what a template might render into a sandbox namespace.
const sandboxObjects = `
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config, namespace: NS}
data: {GREETING: hello}
---
apiVersion: v1
kind: Secret
metadata: {name: web-secret, namespace: NS}
stringData: {TOKEN: not-secret}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: NS}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: NS}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "example/web:1"}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: NS}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "example/db:1"}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: NS}
spec:
  rules:
    - host: web.example.org
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: NS}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: web, namespace: NS}
rules:
  - {apiGroups: [""], resources: [configmaps], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: web, namespace: NS}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: web}
subjects: [{kind: ServiceAccount, name: web, namespace: NS}]
`

// allowed is every rule the runtime relies on, asked in a namespace that
// does not exist yet, as a new sandbox's.
var allowed = func() []authorizationv1.ResourceAttributes {
	ns := "sandbox-to-be"
	var out []authorizationv1.ResourceAttributes
	crud := []string{"get", "list", "watch", "create", "patch", "update", "delete"}
	for _, v := range crud {
		out = append(out, authorizationv1.ResourceAttributes{Verb: v, Resource: "namespaces", Name: ns})
	}
	for _, gr := range [][2]string{
		{"", "configmaps"}, {"", "secrets"}, {"", "services"}, {"", "persistentvolumeclaims"}, {"", "serviceaccounts"},
		{"", "resourcequotas"}, {"", "limitranges"}, {"apps", "deployments"}, {"apps", "statefulsets"}, {"batch", "jobs"},
		{"networking.k8s.io", "ingresses"}, {"networking.k8s.io", "networkpolicies"}, {"rbac.authorization.k8s.io", "roles"},
		{"rbac.authorization.k8s.io", "rolebindings"}, {"autoscaling", "horizontalpodautoscalers"}, {"policy", "poddisruptionbudgets"},
	} {
		for _, v := range crud {
			out = append(out, authorizationv1.ResourceAttributes{Namespace: ns, Verb: v, Group: gr[0], Resource: gr[1]})
		}
	}
	for _, v := range []string{"get", "list", "watch"} {
		out = append(out,
			authorizationv1.ResourceAttributes{Namespace: ns, Verb: v, Resource: "pods"},
			authorizationv1.ResourceAttributes{Namespace: ns, Verb: v, Resource: "events"})
	}
	out = append(out,
		authorizationv1.ResourceAttributes{Namespace: ns, Verb: "get", Resource: "pods", Subresource: "log"},
		authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Resource: "pods", Subresource: "exec"})
	for _, v := range []string{"patch", "update"} {
		for _, r := range []string{"deployments", "statefulsets"} {
			out = append(out, authorizationv1.ResourceAttributes{Namespace: ns, Verb: v, Group: "apps", Resource: r, Subresource: "scale"})
		}
	}
	for _, v := range []string{"get", "create", "update"} {
		out = append(out, authorizationv1.ResourceAttributes{Namespace: namespace, Verb: v, Group: "coordination.k8s.io", Resource: "leases"})
	}
	return out
}()

// denied is a sample of what the server must never be able to do.
var denied = []authorizationv1.ResourceAttributes{
	{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"},
	{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "clusterroles"},
	{Verb: "escalate", Group: "rbac.authorization.k8s.io", Resource: "roles", Namespace: "default"},
	{Verb: "bind", Group: "rbac.authorization.k8s.io", Resource: "clusterroles"},
	{Verb: "impersonate", Resource: "serviceaccounts", Namespace: "kube-system"},
	{Verb: "impersonate", Resource: "users"},
	{Verb: "delete", Resource: "nodes"},
	{Verb: "list", Resource: "nodes"},
	{Verb: "create", Resource: "persistentvolumes"},
	{Verb: "create", Resource: "pods", Namespace: "default"},
	{Verb: "create", Resource: "pods", Subresource: "portforward", Namespace: "default"},
	{Verb: "get", Resource: "services", Subresource: "proxy", Namespace: "default"},
	{Verb: "create", Resource: "serviceaccounts", Subresource: "token", Namespace: "kube-system"},
	{Verb: "create", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-system"},
	{Verb: "delete", Group: "coordination.k8s.io", Resource: "leases", Namespace: namespace},
	{Verb: "create", Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"},
	{Verb: "create", Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations"},
	{Verb: "create", Group: "certificates.k8s.io", Resource: "certificatesigningrequests"},
	{Verb: "deletecollection", Resource: "secrets", Namespace: "kube-system"},
}

func resource(a authorizationv1.ResourceAttributes) string {
	s := a.Resource
	if a.Subresource != "" {
		s += "/" + a.Subresource
	}
	if a.Group != "" {
		s += "." + a.Group
	}
	return s
}

// can asks the API server whether the (impersonated) user of cs may do a.
func can(t testing.TB, ctx context.Context, cs kubernetes.Interface, a authorizationv1.ResourceAttributes) (bool, string) {
	t.Helper()
	r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &a},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("access review of %s %s: %v", a.Verb, resource(a), err)
	}
	return r.Status.Allowed, r.Status.Reason
}
