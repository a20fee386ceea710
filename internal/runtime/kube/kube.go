package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/runtime/kube/render"
)

// Labels and annotations the runtime puts on what it makes.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "sandpit"
	// LabelInstance names the Sandpit installation, so that several can
	// share a cluster without sweeping each other's namespaces.
	LabelInstance = "sandpit.dev/instance"
	// LabelSandboxID is on every object of a sandbox.
	LabelSandboxID = "sandpit.dev/sandbox-id"
	// LabelSandbox is the sandbox's name, for people using kubectl.
	LabelSandbox = "sandpit.dev/sandbox"

	// AnnotationApplied, on the namespace, lists the objects the last
	// apply made (JSON), so that a later apply prunes the ones it no
	// longer makes.
	AnnotationApplied = "sandpit.dev/applied"
	// AnnotationSuspended, on the namespace, marks a suspended sandbox.
	AnnotationSuspended = "sandpit.dev/suspended"
	// AnnotationReplicas, on a workload scaled to zero by Suspend, keeps
	// the replica count resume restores.
	AnnotationReplicas = "sandpit.dev/replicas"

	// FieldManager owns what the runtime applies.
	FieldManager = "sandpit"
	// lifecycleManager owns replica changes made by suspend and resume,
	// which must not disturb the fields "sandpit" applied.
	lifecycleManager = "sandpit-lifecycle"
)

// Config configures the runtime.
type Config struct {
	// REST reaches the cluster (from a kubeconfig, or in-cluster).
	REST *rest.Config
	Log  *slog.Logger
	// Instance names this Sandpit installation (default "sandpit").
	Instance string
	// NamespacePrefix starts every sandbox namespace's name (default
	// "sandpit-"); the sandbox id follows.
	NamespacePrefix string
	// Host returns the public host name of a sandbox's endpoint; Ingress
	// hosts in rendered manifests are rewritten with it.
	Host func(endpoint, sandboxName string) string
	// AllowClusterKinds are the cluster-scoped kinds ("Kind.group")
	// templates may create.
	AllowClusterKinds []string
	// ResourceClasses maps a class name to the sandbox's budget.
	ResourceClasses map[string]render.Resources
	// InCluster says the server runs inside the cluster: upstreams are
	// Service DNS names. Outside it, the proxy reaches services through
	// the API server's service proxy (see Forwarder).
	InCluster bool
	// WorkDir holds checkouts of git sources.
	WorkDir string
	// ReadyTimeout bounds how long Up waits for rollouts (default 5m).
	ReadyTimeout time.Duration
	// DeleteWait bounds how long Down waits for the namespace to go before
	// it reports what holds it and lets the caller retry (default 2m).
	DeleteWait time.Duration
	// Poll is how often rollouts and deletions are checked (default 250ms).
	Poll time.Duration
	// Concurrency bounds parallel API calls within one sandbox (default 8).
	Concurrency int
}

// Runtime runs sandboxes as namespaces of one cluster.
type Runtime struct {
	cfg    Config
	log    *slog.Logger
	rest   *rest.Config
	cs     kubernetes.Interface
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
	fwd    *Forwarder
}

var (
	_ runtime.Runtime   = (*Runtime)(nil)
	_ runtime.Suspender = (*Runtime)(nil)
	_ runtime.LogReader = (*Runtime)(nil)
	_ runtime.Execer    = (*Runtime)(nil)
)

// New connects to the cluster and checks that it answers.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if cfg.REST == nil {
		return nil, errors.New("kube runtime: no cluster configured: pass --kubeconfig, or run the server in a pod")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Instance == "" {
		cfg.Instance = "sandpit"
	}
	if cfg.NamespacePrefix == "" {
		cfg.NamespacePrefix = "sandpit-"
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 5 * time.Minute
	}
	if cfg.DeleteWait <= 0 {
		cfg.DeleteWait = 2 * time.Minute
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = filepath.Join(os.TempDir(), "sandpit-kube-"+cfg.Instance)
	}
	if cfg.Host == nil {
		cfg.Host = func(ep, sb string) string { return ep + "--" + sb + ".sandpit.localhost" }
	}
	rc := rest.CopyConfig(cfg.REST)
	if rc.QPS == 0 {
		// client-go's default (5 QPS) would make a 10-object sandbox take
		// seconds; the server is one client acting for many users.
		rc.QPS, rc.Burst = 200, 400
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kube runtime: %w", err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kube runtime: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kube runtime: %w", err)
	}
	if _, err := dc.ServerVersion(); err != nil {
		return nil, fmt.Errorf("kube runtime: cluster at %s does not answer: %w (check --kubeconfig and that the API server is up)", rc.Host, err)
	}
	r := &Runtime{
		cfg:    cfg,
		log:    cfg.Log,
		rest:   rc,
		cs:     cs,
		dyn:    dyn,
		mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)),
	}
	if !cfg.InCluster {
		r.fwd = NewForwarder(rc, cfg.Log)
	}
	return r, nil
}

// Name implements runtime.Runtime.
func (r *Runtime) Name() string { return "kubernetes" }

// Close stops the forwarder's listeners.
func (r *Runtime) Close() error {
	if r.fwd != nil {
		r.fwd.Close()
	}
	return nil
}

// Namespace is the namespace of sandbox id.
func (r *Runtime) Namespace(id string) string { return r.cfg.NamespacePrefix + id }

func (r *Runtime) selector(id string) string {
	return LabelSandboxID + "=" + id
}

// instanceSelector selects every namespace of this installation.
func (r *Runtime) instanceSelector() string {
	return LabelManagedBy + "=" + ManagedBy + "," + LabelInstance + "=" + r.cfg.Instance
}

// mapping finds the resource of a kind, refreshing discovery once when the
// kind is new (a CRD installed since the server started).
func (r *Runtime) mapping(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	m, err := r.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil && meta.IsNoMatchError(err) {
		r.mapper.Reset()
		m, err = r.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		if meta.IsNoMatchError(err) {
			return nil, runtime.Permanent(fmt.Errorf("the cluster does not know %s (%s): install its CustomResourceDefinition first, or remove it from the template's manifests", gvk.Kind, gvk.GroupVersion()))
		}
		return nil, err
	}
	return m, nil
}

// kindName is "Deployment/web" for messages.
func kindName(kind, name string) string { return kind + "/" + name }

func quoteList(ss []string) string {
	return strings.Join(ss, ", ")
}
