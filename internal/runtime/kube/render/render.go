package render

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"sandpit.dev/sandpit/internal/template"
)

// DefaultKubeVersion is the Kubernetes version Helm charts see as
// .Capabilities.KubeVersion when Options.KubeVersion is empty: the
// version of the API packages this build uses.
const DefaultKubeVersion = "v1.31.0"

// Labels and annotations sandpit puts on what it renders.
const (
	// LabelManagedBy is app.kubernetes.io/managed-by, "sandpit" on
	// generated objects.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// LabelService selects the pods of a generated Deployment; it is the
	// only label of its selector.
	LabelService = "sandpit.dev/service"
	// LabelDependency selects the pods of a dependency's StatefulSet.
	LabelDependency = "sandpit.dev/dependency"
	// AnnotationSnapshot on a dependency's StatefulSet names the data
	// snapshot it starts from; seeding is the runtime's business.
	AnnotationSnapshot = "sandpit.dev/snapshot"
	// QuotaName and LimitRangeName name the objects that carry the
	// sandbox's resource budget.
	QuotaName      = "sandpit-resources"
	LimitRangeName = "sandpit-defaults"
	// PostgresPort is the port generated dependencies listen on.
	PostgresPort = 5432
	// PostgresUser is the superuser of generated dependencies.
	PostgresUser = "postgres"
)

// Options are the facts of one sandbox that rendering needs. Everything
// that varies per sandbox comes in here, so Render itself decides nothing
// from the clock, the environment or a cluster.
type Options struct {
	// Namespace is forced on every namespaced object, whatever the
	// manifests say: a sandbox owns exactly one namespace.
	Namespace   string
	SandboxID   string
	SandboxName string
	// Labels are added to every object's metadata.labels and to the labels
	// of pod templates, so that pods can be found by sandbox. They are not
	// added to selectors: a Deployment's selector is immutable, and adding
	// to it would make the next apply fail.
	Labels map[string]string
	// Annotations are added to every object's metadata.annotations.
	Annotations map[string]string
	// SourceDir is the sandbox's checkout, which kubernetes.manifests,
	// .kustomize and .helm paths are relative to. Nothing outside it is
	// read.
	SourceDir string
	// GitRef and GitSHA are what ${git.ref} and ${git.sha} expand to.
	GitRef, GitSHA string
	// Host returns the public host name for an endpoint-ish name. Ingress
	// hosts are rewritten with it: a rule host "shop.example.com" becomes
	// Host("shop") (its first DNS label), TLS hosts likewise. Nil leaves
	// Ingress hosts alone.
	Host func(name string) string
	// EndpointURLs maps endpoint names to their public URLs, for
	// ${endpoints.<name>.url}.
	EndpointURLs map[string]string
	// Resources is the whole sandbox's budget; nil leaves requests and
	// limits alone and adds no quota.
	Resources *Resources
	// AllowClusterKinds lists the cluster-scoped kinds ("Kind.group", or
	// "Kind" for the core group, like "ClusterRole.rbac.authorization.k8s.io")
	// the server lets sandboxes create (its --kube-allow-cluster-kind).
	// Cluster-scoped objects of other kinds are an error: they would be
	// shared by every sandbox and outlive this one's namespace.
	AllowClusterKinds []string
	// DependencyPassword returns the password of a dependency. It must be
	// deterministic per sandbox (the runtime derives or stores it), or
	// every render would change the dependency's Secret.
	DependencyPassword func(dep string) string
	// KubeVersion is the Kubernetes version Helm charts see (default
	// DefaultKubeVersion).
	KubeVersion string
}

// Resources is the whole sandbox's budget: all its containers together.
type Resources struct {
	// Class is the resource class's name, recorded on the quota.
	Class string
	// CPUMilli is the CPU limit in thousandths of a CPU (0: no CPU limit).
	CPUMilli int64
	// MemoryBytes is the memory limit (0: no memory limit).
	MemoryBytes int64
}

// Result is what a template renders to for one sandbox.
type Result struct {
	// Objects are sorted in apply order: the budget (ResourceQuota,
	// LimitRange) first so it governs the pods, then the kinds that
	// depend on nothing (ConfigMap, Secret, ServiceAccount, RBAC,
	// PersistentVolumeClaim, Service), then StatefulSet, Deployment,
	// DaemonSet, Job, CronJob, Ingress, and every other kind last. Within
	// a kind, by name.
	Objects []*unstructured.Unstructured
	// Sources says where each object came from ("deploy/k8s/api.yaml
	// (document 2)", "generated for service api", ...), parallel to
	// Objects, for messages about them.
	Sources []string
	// Workloads are the Deployments, StatefulSets and Jobs among Objects,
	// in the same order, with the template service or dependency each one
	// runs, if any: what the runtime waits for and reports on.
	Workloads []Workload
	// Vars are the values ${...} references expanded to: those of the
	// function Vars, except that a service reached through a Service of
	// the manifests (named like it) is reached on that Service's ports.
	Vars *template.Vars
}

// Workload is one Deployment, StatefulSet or Job of a render.
type Workload struct {
	// Kind is Deployment, StatefulSet or Job.
	Kind string
	Name string
	// Service is the template service the workload runs, or "". A
	// Deployment or StatefulSet runs a service when it is generated for
	// it, is named like it, or carries the label sandpit.dev/service=<name>.
	Service string
	// Dependency is the template dependency the workload runs, or "".
	Dependency string
	// Generated says sandpit made the workload (rather than the
	// manifests, kustomization or chart).
	Generated bool
}

// object is an object being rendered, with what messages need to know.
type object struct {
	u *unstructured.Unstructured
	// source says where it came from, for messages.
	source string
	// generated objects are sandpit's own; the others come from
	// kubernetes.*.
	generated  bool
	service    string
	dependency string
}

func (o *object) group() string { return o.u.GroupVersionKind().Group }
func (o *object) kind() string  { return o.u.GetKind() }

// kindName is "Kind.group", or "Kind" for the core group: how
// --kube-allow-cluster-kind names kinds, like kubectl's resource.group.
func kindName(group, kind string) string {
	if group == "" {
		return kind
	}
	return kind + "." + group
}

// renderer holds one Render call's state.
type renderer struct {
	t    *template.Template
	opts Options
	vars *template.Vars
	objs []*object
	// images maps an image repository to the expanded image of the first
	// template service (in declaration order) that has it.
	images map[string]string
	// serviceImages holds each service's expanded image.
	serviceImages map[string]string
}

// Render renders t (with --set overrides already applied, see
// template.WithSet) for one sandbox. Errors say what to fix, in the
// template or in the files it names.
func Render(t *template.Template, opts Options) (*Result, error) {
	if t == nil {
		return nil, errors.New("render: no template")
	}
	if errs := validation.IsDNS1123Label(opts.Namespace); len(errs) > 0 {
		return nil, fmt.Errorf("render: namespace %q: %s", opts.Namespace, strings.Join(errs, "; "))
	}
	vars, err := Vars(t, opts)
	if err != nil {
		return nil, err
	}
	r := &renderer{t: t, opts: opts, vars: vars}
	if err := r.load(); err != nil {
		return nil, err
	}
	r.manifestPorts()
	if err := r.expandImages(); err != nil {
		return nil, err
	}
	if err := r.clusterScope(); err != nil {
		return nil, err
	}
	if err := r.generate(); err != nil {
		return nil, err
	}
	if err := r.override(); err != nil {
		return nil, err
	}
	r.finish()
	if err := r.duplicates(); err != nil {
		return nil, err
	}
	r.sort()
	res := &Result{Vars: vars}
	for _, o := range r.objs {
		res.Objects = append(res.Objects, o.u)
		res.Sources = append(res.Sources, o.source)
		if w, ok := workload(o); ok {
			res.Workloads = append(res.Workloads, w)
		}
	}
	return res, nil
}

func workload(o *object) (Workload, bool) {
	switch {
	case o.group() == "apps" && (o.kind() == "Deployment" || o.kind() == "StatefulSet"),
		o.group() == "batch" && o.kind() == "Job":
		return Workload{Kind: o.kind(), Name: o.u.GetName(), Service: o.service, Dependency: o.dependency, Generated: o.generated}, true
	}
	return Workload{}, false
}

// YAML writes objects as a multi-document YAML stream, keys sorted: the
// same objects always give the same bytes.
func YAML(objs []*unstructured.Unstructured) ([]byte, error) {
	var b bytes.Buffer
	for i, o := range objs {
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", o.GetKind(), o.GetName(), err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(y)
	}
	return b.Bytes(), nil
}

// applyOrder ranks kinds for applying: what others refer to goes first.
var applyOrder = map[string]int{}

func init() {
	for i, k := range []string{
		"ResourceQuota", "LimitRange",
		"PriorityClass", "StorageClass", "IngressClass",
		"ConfigMap", "Secret", "ServiceAccount",
		"ClusterRole.rbac.authorization.k8s.io", "ClusterRoleBinding.rbac.authorization.k8s.io",
		"Role.rbac.authorization.k8s.io", "RoleBinding.rbac.authorization.k8s.io",
		"PersistentVolume", "PersistentVolumeClaim", "Service",
		"StatefulSet.apps", "Deployment.apps", "DaemonSet.apps", "ReplicaSet.apps", "Pod",
		"Job.batch", "CronJob.batch",
		"Ingress.networking.k8s.io",
	} {
		applyOrder[k] = i + 1
	}
	applyOrder["PriorityClass.scheduling.k8s.io"] = applyOrder["PriorityClass"]
	applyOrder["StorageClass.storage.k8s.io"] = applyOrder["StorageClass"]
	applyOrder["IngressClass.networking.k8s.io"] = applyOrder["IngressClass"]
}

func rank(o *object) int {
	if r, ok := applyOrder[kindName(o.group(), o.kind())]; ok {
		return r
	}
	return len(applyOrder) + 1
}

func (r *renderer) sort() {
	slices.SortStableFunc(r.objs, func(a, b *object) int {
		return cmp.Or(
			cmp.Compare(rank(a), rank(b)),
			cmp.Compare(a.group(), b.group()),
			cmp.Compare(a.kind(), b.kind()),
			cmp.Compare(a.u.GetNamespace(), b.u.GetNamespace()),
			cmp.Compare(a.u.GetName(), b.u.GetName()),
		)
	})
}

// duplicates refuses two objects the API server would take for one: the
// second would silently replace the first.
func (r *renderer) duplicates() error {
	type key struct{ group, kind, ns, name string }
	seen := map[key]*object{}
	var errs []error
	for _, o := range r.objs {
		k := key{o.group(), o.kind(), o.u.GetNamespace(), o.u.GetName()}
		if prev, dup := seen[k]; dup {
			errs = append(errs, fmt.Errorf("two objects are %s %q: one from %s, one from %s; rename or remove one of them",
				kindName(k.group, k.kind), k.name, prev.source, o.source))
			continue
		}
		seen[k] = o
	}
	return errors.Join(errs...)
}

// at prefixes a message about a template field with where it stands.
func at(t *template.Template, path string) string {
	if p := t.Pos(path); p.File != "" || p.Line > 0 {
		return p.String() + ": "
	}
	return ""
}
