package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"sandpit.dev/sandpit/bench/internal/harness"
	"sandpit.dev/sandpit/internal/runtime/kube"
)

// components are the control plane's processes, found by their command
// line naming the cluster's directory, by name (etcd, kube-apiserver, …).
func components(clusterDir string) map[string]int {
	out := map[string]int{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(b), clusterDir) {
			continue
		}
		argv0, _, _ := strings.Cut(string(b), "\x00")
		out[filepath.Base(argv0)] = pid
	}
	return out
}

// cpuSample is the CPU used so far by each part of the run.
type cpuSample struct {
	at   time.Time
	host int64
	// by part: the control plane's components, "benchmark" (this process:
	// the sandpit runtime's client side) and "kubectl" (this process's
	// waited-for children).
	parts map[string]int64
}

// cpuParts lists the parts in report order.
var cpuParts = []string{"kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok", "benchmark", "kubectl"}

func sampleCPU(procs map[string]int) cpuSample {
	s := cpuSample{at: time.Now(), host: harness.HostBusyTicks(), parts: map[string]int64{}}
	for name, pid := range procs {
		own, _ := harness.ProcTicks(pid)
		s.parts[name] = own
	}
	own, children := harness.ProcTicks(os.Getpid())
	s.parts["benchmark"], s.parts["kubectl"] = own, children
	return s
}

// cpuUse is the cores each part used on average between two samples, and
// the rest of the host ("other").
type cpuUse struct {
	wall  time.Duration
	cores map[string]float64
	other float64
	total float64 // the whole host
}

func cpuBetween(a, b cpuSample) cpuUse {
	wall := b.at.Sub(a.at)
	u := cpuUse{wall: wall, cores: map[string]float64{}}
	if wall <= 0 {
		return u
	}
	sec := wall.Seconds()
	var ours float64
	for name, t := range b.parts {
		c := float64(t-a.parts[name]) / harness.ClockTicks / sec
		u.cores[name] = c
		ours += c
	}
	u.total = float64(b.host-a.host) / harness.ClockTicks / sec
	u.other = max(0, u.total-ours)
	return u
}

// orphans counts what is left of an instance's sandboxes: its namespaces
// (by label, or by name prefix, whatever their state) and every object of
// every listable kind, namespaced or not, that carries its instance label.
// It returns the count and a few examples.
func orphans(ctx context.Context, cfg *rest.Config, cs kubernetes.Interface, instance, prefix string) (int, []string, error) {
	var found []string
	nss, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, nil, fmt.Errorf("list namespaces: %w", err)
	}
	for _, ns := range nss.Items {
		if strings.HasPrefix(ns.Name, prefix) || ns.Labels[kube.LabelInstance] == instance {
			found = append(found, "Namespace/"+ns.Name+" ("+string(ns.Status.Phase)+")")
		}
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return 0, nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return 0, nil, err
	}
	lists, err := dc.ServerPreferredResources()
	if err != nil {
		return 0, nil, fmt.Errorf("discovery: %w", err)
	}
	sel := metav1.ListOptions{LabelSelector: kube.LabelInstance + "=" + instance}
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, res := range l.APIResources {
			// Namespaces were counted above; ComponentStatus is
			// deprecated and holds no sandbox's objects.
			if strings.Contains(res.Name, "/") || !hasVerb(res.Verbs, "list") || res.Kind == "Namespace" || res.Kind == "ComponentStatus" {
				continue
			}
			items, err := dyn.Resource(gv.WithResource(res.Name)).List(ctx, sel)
			if err != nil {
				return 0, nil, fmt.Errorf("list %s: %w", res.Name, err)
			}
			for _, it := range items.Items {
				found = append(found, res.Kind+" "+it.GetNamespace()+"/"+it.GetName())
			}
		}
	}
	sort.Strings(found)
	n := len(found)
	if len(found) > 5 {
		found = found[:5]
	}
	return n, found, nil
}

func hasVerb(verbs []string, v string) bool {
	for _, x := range verbs {
		if x == v {
			return true
		}
	}
	return false
}

// complete counts the namespaces of an instance that hold every object
// the template makes (expectedKinds, labelled with the instance): the
// check that each sandbox really was applied.
func complete(ctx context.Context, cs kubernetes.Interface, instance string) (int, error) {
	sel := metav1.ListOptions{LabelSelector: kube.LabelInstance + "=" + instance}
	per := map[string]map[string]int{} // namespace → kind → count
	add := func(kind, ns string) {
		if per[ns] == nil {
			per[ns] = map[string]int{}
		}
		per[ns][kind]++
	}
	deps, err := cs.AppsV1().Deployments("").List(ctx, sel)
	if err != nil {
		return 0, err
	}
	for _, o := range deps.Items {
		add("Deployment", o.Namespace)
	}
	svcs, err := cs.CoreV1().Services("").List(ctx, sel)
	if err != nil {
		return 0, err
	}
	for _, o := range svcs.Items {
		add("Service", o.Namespace)
	}
	cms, err := cs.CoreV1().ConfigMaps("").List(ctx, sel)
	if err != nil {
		return 0, err
	}
	for _, o := range cms.Items {
		add("ConfigMap", o.Namespace)
	}
	ings, err := cs.NetworkingV1().Ingresses("").List(ctx, sel)
	if err != nil {
		return 0, err
	}
	for _, o := range ings.Items {
		add("Ingress", o.Namespace)
	}
	n := 0
	for _, kinds := range per {
		ok := true
		for k, want := range expectedKinds {
			if kinds[k] != want {
				ok = false
			}
		}
		if ok {
			n++
		}
	}
	return n, nil
}
