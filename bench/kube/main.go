// Command kube measures the Kubernetes runtime (internal/runtime/kube)
// against issue 6's target on a real control plane (package kubetest:
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok
// playing the kubelet of one fake node):
//
//   - sandpit: N sandboxes, each a namespace with two Deployments, two
//     Services, a ConfigMap and an Ingress (the template's
//     kubernetes.manifests), created with Runtime.Apply (render and
//     server-side apply, no rollout wait), C at a time, each timed from
//     the call to its return; then all deleted with Runtime.Down (which
//     returns once the namespace is gone), C at a time;
//   - baseline, same run, same cluster, same N and C: the same objects,
//     rendered beforehand into one file per sandbox with its Namespace
//     first, applied with one `kubectl apply --server-side -f FILE` per
//     sandbox, then deleted with one `kubectl delete namespace --wait`
//     per sandbox.
//
// After each create it checks that every namespace holds every object;
// after each delete it counts orphans: the run's namespaces still present
// (in any state) and objects of any listable kind carrying the run's
// sandpit.dev/instance label. It reports sandboxes/s (sandboxes done over
// the wall time from the first call to the last return), p50 and p99 per
// sandbox, the CPU each part of the control plane used, and the API
// server's requests per sandbox by verb and resource (from its /metrics),
// and says whether sandpit creates at least 20 sandboxes/s.
//
//	go run ./bench/kube [-n 1000] [-c 32] [-dc 32] [-floor] [-rollout] [-qps 0]   (or bench/kube/run.sh)
//
// -floor adds a phase that applies the same objects from a minimal Go
// client (one server-side apply per object, nothing else): what the API
// server can take, against which the runtime's own overhead shows.
// -rollout adds a phase with Runtime.Up, which also waits until the
// Deployments have rolled out (kwok marks the pods Ready). -qps 0 gives
// the runtimes kube.New's default client rate limit instead of kubetest's
// higher one. -dc sets how many deletes run at a time.
//
// It prints a Markdown table and writes it to bench/out/kube-<date>.md.
// The control-plane binaries come from scripts/lib.sh's install_kube_tools
// (run.sh calls it).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"sandpit.dev/sandpit/bench/internal/harness"
	"sandpit.dev/sandpit/internal/kubetest"
	"sandpit.dev/sandpit/internal/runtime/kube"
	"sandpit.dev/sandpit/internal/template"
)

var (
	nFlag        = flag.Int("n", 1000, "sandboxes per phase")
	cFlag        = flag.Int("c", 32, "sandboxes created (and deleted) at a time, in every phase")
	dcFlag       = flag.Int("dc", 0, "sandboxes deleted at a time (default: -c)")
	rollout      = flag.Bool("rollout", false, "add a phase that creates with Runtime.Up (applied and rolled out)")
	floor        = flag.Bool("floor", false, "add a phase that applies the same objects from a minimal Go client (one server-side apply per object, nothing else): what the API server can take")
	kubectlMode  = flag.String("kubectl-apply", "server-side", "baseline's apply: server-side (kubectl apply --server-side, as sandpit applies) or client-side (plain kubectl apply)")
	kubectlFirst = flag.Bool("kubectl-first", false, "run the kubectl baseline before sandpit")
	qps          = flag.Float64("qps", -1, "client-side rate limit of the sandpit runtimes (burst twice that); -1 keeps kubetest's (500 QPS, burst 1000), 0 leaves kube.New's default (200, burst 400), what a server with a plain kubeconfig gets")
	keepDir      = flag.Bool("keep", false, "keep the work directory (cluster logs, kubectl files)")
	outDir       = flag.String("out", "", "directory for the Markdown result (default <repo>/bench/out)")
	noOut        = flag.Bool("no-out", false, "do not write the Markdown result")
	verbose      = flag.Bool("v", false, "log every sandbox done and every event of the runtime")
	quietCores   = flag.Float64("quiet", 0.3, "before each timed operation, wait until the rest of the host uses fewer cores than this (see -settle)")
	settleMax    = flag.Duration("settle", 3*time.Minute, "longest wait before each timed operation for the cluster and the host to quieten")
)

// Instance labels and namespace prefixes of the two ways of applying, so
// that each phase's orphans are counted apart.
const (
	sandpitInstance = "bench"
	sandpitPrefix   = "bench-"
	kubectlInstance = "bench-kubectl"
	kubectlPrefix   = "kubectl-"
	floorInstance   = "bench-floor"
	floorPrefix     = "floor-"
)

func main() {
	flag.Parse()
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	if *dcFlag == 0 {
		*dcFlag = *cFlag
	}
	if *nFlag < 1 || *cFlag < 1 || *dcFlag < 1 {
		log.Fatal("-n, -c and -dc must be at least 1")
	}
	if *kubectlMode != "server-side" && *kubectlMode != "client-side" {
		log.Fatal("-kubectl-apply must be server-side or client-side")
	}
	repo, err := harness.RepoRoot()
	harness.Check(err)
	harness.HandleSignals(func(os.Signal) {
		log.Printf("interrupted: stopping the cluster (Ctrl-C again to leave at once)")
	}, nil)
	if m := kubetest.Missing(); len(m) > 0 {
		harness.Fatalf("missing %s: run bench/kube/run.sh (or `. scripts/lib.sh; install_kube_tools`) to build them into %s", strings.Join(m, ", "), kubetest.BinDir())
	}
	kubectl, err := kubetest.Lookup("kubectl")
	harness.Check(err)

	work, err := os.MkdirTemp("/var/tmp", "sandpit-bench-kube-")
	harness.Check(err)
	if !*keepDir {
		harness.AtExit(func() { _ = os.RemoveAll(work) })
	}
	src := filepath.Join(work, "src")
	harness.Check(writeSource(src))
	y, err := os.ReadFile(filepath.Join(src, "sandpit.yaml"))
	harness.Check(err)
	tpl, err := template.Parse("sandpit.yaml", y)
	harness.Check(err)

	run := &runInfo{
		start: time.Now(), loadBefore: harness.LoadAvg(), n: *nFlag, c: *cFlag, dc: *dcFlag, args: os.Args[1:], kubectlFirst: *kubectlFirst,
		machine: harness.Machine([]string{"etcd", "--version"}) + ", Kubernetes " + kubetest.Version + " (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl), kwok",
	}
	ctx := context.Background()
	// kubetest.Start does not create Options.Dir itself.
	clusterDir := filepath.Join(work, "cluster")
	harness.Check(os.MkdirAll(clusterDir, 0o755))
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	cl, err := kubetest.Start(startCtx, kubetest.Options{Dir: clusterDir, Log: func(f string, a ...any) { log.Printf("cluster: "+f, a...) }})
	cancel()
	harness.Check(err)
	harness.AtExit(cl.Stop)
	e := &env{
		rest: cl.Config, cs: cl.Client, kubeconfig: cl.Kubeconfig, kubectl: kubectl,
		procs: components(cl.Dir), tpl: tpl, src: src, work: work, n: *nFlag, c: *cFlag, dc: *dcFlag,
	}
	log.Printf("control plane processes: %v", e.procs)

	restCfg := rest.CopyConfig(cl.Config)
	if *qps >= 0 {
		restCfg.QPS, restCfg.Burst = float32(*qps), int(2**qps)
	}
	newRuntime := func(instance, prefix string) *kube.Runtime {
		rt, err := kube.New(ctx, kube.Config{
			REST: restCfg, Instance: instance, NamespacePrefix: prefix,
			WorkDir: filepath.Join(work, "rt-"+instance),
			// Deleting 1000 namespaces queues them at the namespace
			// controller: a sandbox's wait includes the queue ahead.
			DeleteWait: 15 * time.Minute, ReadyTimeout: 15 * time.Minute,
		})
		harness.Check(err)
		harness.AtExit(func() { _ = rt.Close() })
		return rt
	}
	rtS := newRuntime(sandpitInstance, sandpitPrefix)
	rtK := newRuntime(kubectlInstance, kubectlPrefix)

	// Warm-up, untimed: discovery caches of the runtime and of kubectl,
	// the API server's first writes of each kind.
	log.Printf("warm-up: one sandbox each way")
	e.n = 1
	e.sandpitPhase(ctx, rtS, sandpitInstance, sandpitPrefix, false)
	e.kubectlPhase(ctx, rtK, kubectlInstance, kubectlPrefix, *kubectlMode)
	e.n = *nFlag

	sandpit := func() {
		c, d := e.sandpitPhase(ctx, rtS, sandpitInstance, sandpitPrefix, false)
		run.sandpitCreate, run.sandpitDelete = c, d
	}
	baseline := func() {
		c, d := e.kubectlPhase(ctx, rtK, kubectlInstance, kubectlPrefix, *kubectlMode)
		run.kubectlCreate, run.kubectlDelete = c, d
	}
	if *kubectlFirst {
		baseline()
		sandpit()
	} else {
		sandpit()
		baseline()
	}
	if *floor {
		run.floorCreate = e.floorPhase(ctx, newRuntime(floorInstance, floorPrefix), floorInstance, floorPrefix)
	}
	if *rollout {
		run.upCreate, run.upDelete = e.sandpitPhase(ctx, rtS, sandpitInstance, sandpitPrefix, true)
	}

	run.loadAfter = harness.LoadAvg()
	run.end = time.Now()
	md := report(run)
	fmt.Print("\n" + md)
	if !*noOut {
		p, err := harness.WriteResult(*outDir, repo, "kube", run.start, md)
		harness.Check(err)
		log.Printf("wrote %s", p)
	}
	if *keepDir {
		log.Printf("kept %s", work)
	}
	harness.RunCleanup()
}
