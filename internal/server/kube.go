package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"sandpit.dev/sandpit/internal/runtime/kube"
	"sandpit.dev/sandpit/internal/runtime/kube/render"
	"sandpit.dev/sandpit/internal/runtime/local"
)

// kubeConfig loads the cluster's client config: the kubeconfig file given
// (or $KUBECONFIG), else the pod's own service account when the server
// runs in the cluster. inCluster says which.
func kubeConfig(path string) (cfg *rest.Config, inCluster bool, err error) {
	if path == "" {
		path = os.Getenv("KUBECONFIG")
	}
	if path != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, false, fmt.Errorf("read kubeconfig %s: %w", path, err)
		}
		return cfg, false, nil
	}
	cfg, err = rest.InClusterConfig()
	if err != nil {
		return nil, false, errors.New("no cluster to talk to: pass --kubeconfig (or set $KUBECONFIG), or run the server in a pod")
	}
	return cfg, true, nil
}

func openKube(ctx context.Context, cfg Config, dataDir, domain string, log *slog.Logger) (*kube.Runtime, error) {
	rc, inCluster, err := kubeConfig(cfg.Kubeconfig)
	if err != nil {
		return nil, err
	}
	classes := cfg.ResourceClasses
	if classes == nil {
		classes = local.DefaultResourceClasses()
	}
	res := map[string]render.Resources{}
	for name, c := range classes {
		res[name] = render.Resources{Class: name, CPUMilli: c.MilliCPU, MemoryBytes: c.MemoryBytes}
	}
	return kube.New(ctx, kube.Config{
		REST: rc, Log: log.With("component", "kube"),
		Instance: cfg.KubeInstance, NamespacePrefix: cfg.KubeNamespacePrefix,
		AllowClusterKinds: cfg.KubeAllowClusterKinds,
		ResourceClasses:   res,
		InCluster:         inCluster,
		WorkDir:           filepath.Join(dataDir, "kube"),
		Host:              func(ep, sb string) string { return ep + "--" + sb + "." + domain },
	})
}

// leaderElector runs fn only while this replica holds the Lease, so that
// two replicas never reconcile at once. When the lease is lost fn's
// context ends and lost is called: the server then exits, and its
// restart rejoins the election (as controller-runtime's managers do).
type leaderElector struct {
	le       *leaderelection.LeaderElector
	identity string
}

func newLeaderElector(cfg Config, log *slog.Logger, fn func(ctx context.Context), lost func()) (*leaderElector, error) {
	rc, _, err := kubeConfig(cfg.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--leader-elect needs a cluster for its Lease: %w", err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	ns := cfg.LeaderElectNamespace
	if ns == "" {
		ns = os.Getenv("POD_NAMESPACE")
	}
	if ns == "" {
		ns = "default"
	}
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id := host + "-" + hex.EncodeToString(b)
	name := "sandpit-leader"
	if cfg.KubeInstance != "" {
		name = cfg.KubeInstance + "-leader"
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: name, Namespace: ns},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		ReleaseOnCancel: true,
		LeaseDuration:   15 * time.Second,
		RenewDeadline:   10 * time.Second,
		RetryPeriod:     2 * time.Second,
		Name:            name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				log.Info("leading: this replica reconciles", "lease", ns+"/"+name, "identity", id)
				fn(ctx)
			},
			OnStoppedLeading: func() {
				log.Warn("no longer leading", "lease", ns+"/"+name, "identity", id)
				lost()
			},
			OnNewLeader: func(leader string) {
				if leader != id {
					log.Info("another replica leads; this one serves the API and the proxy only", "leader", leader)
				}
			},
		},
	})
	if err != nil {
		return nil, err
	}
	return &leaderElector{le: le, identity: id}, nil
}

// Run campaigns until ctx ends.
func (l *leaderElector) Run(ctx context.Context) { l.le.Run(ctx) }
