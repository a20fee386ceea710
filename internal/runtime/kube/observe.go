package kube

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/template"
)

// Annotations the runtime adds to rendered workloads so that Observe (which
// has no template) knows what each one is.
const (
	AnnotationService        = "sandpit.dev/service"
	AnnotationDependency     = "sandpit.dev/dependency"
	AnnotationDependencyType = "sandpit.dev/dependency-type"
	AnnotationDependencyVer  = "sandpit.dev/dependency-version"
)

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }

// Observe implements runtime.Runtime.
func (r *Runtime) Observe(ctx context.Context, id string) (*runtime.Observation, error) {
	return r.observe(ctx, id, nil)
}

func (r *Runtime) observe(ctx context.Context, id string, _ *template.Template) (*runtime.Observation, error) {
	nsName := r.Namespace(id)
	ns, err := r.cs.CoreV1().Namespaces().Get(ctx, nsName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && ns.DeletionTimestamp != nil) {
		return nil, fmt.Errorf("sandbox %s: namespace %s: %w", id, nsName, runtime.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read namespace %s: %w", nsName, err)
	}
	suspended := ns.Annotations[AnnotationSuspended] != ""
	obs := &runtime.Observation{Upstreams: map[string]map[string]string{}, Healthy: true}
	sel := metav1.ListOptions{LabelSelector: r.selector(id)}
	deps, err := r.cs.AppsV1().Deployments(nsName).List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("list deployments in %s: %w", nsName, err)
	}
	sts, err := r.cs.AppsV1().StatefulSets(nsName).List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("list statefulsets in %s: %w", nsName, err)
	}
	present := map[string]bool{}
	state := func(st rollout) (sandbox.ServiceState, string) {
		switch {
		case suspended:
			return sandbox.ServiceStopped, "suspended"
		case st.Ready:
			return sandbox.ServiceRunning, ""
		}
		return sandbox.ServiceStarting, st.Message
	}
	for i := range deps.Items {
		d := &deps.Items[i]
		present["Deployment/"+d.Name] = true
		st := r.deploymentStatus(ctx, d)
		s, msg := state(st)
		name := d.Annotations[AnnotationService]
		if name == "" {
			name = d.Name
		}
		obs.Services = append(obs.Services, sandbox.ServiceStatus{Name: name, State: s, Ready: st.Ready && !suspended, Restarts: st.Restarts, Message: msg})
		if !suspended && !st.Ready && d.Status.ObservedGeneration >= d.Generation && d.Status.AvailableReplicas == 0 {
			obs.Healthy = false
		}
	}
	for i := range sts.Items {
		s := &sts.Items[i]
		present["StatefulSet/"+s.Name] = true
		st := r.statefulSetStatus(ctx, s)
		state, msg := state(st)
		if dep := s.Annotations[AnnotationDependency]; dep != "" {
			obs.Dependencies = append(obs.Dependencies, sandbox.DependencyStatus{
				Name: dep, Type: s.Annotations[AnnotationDependencyType], Version: s.Annotations[AnnotationDependencyVer],
				State: state, Ready: st.Ready && !suspended, Host: dep + "." + nsName + ".svc", Port: 5432, Message: msg,
			})
		} else {
			obs.Services = append(obs.Services, sandbox.ServiceStatus{Name: s.Name, State: state, Ready: st.Ready && !suspended, Restarts: st.Restarts, Message: msg})
		}
		if !suspended && !st.Ready && s.Status.ObservedGeneration >= s.Generation && s.Status.ReadyReplicas == 0 {
			obs.Healthy = false
		}
	}
	// A workload the last apply made that is gone (deleted by hand) needs
	// another Up.
	for _, ref := range parseApplied(ns) {
		if (ref.Kind == "Deployment" || ref.Kind == "StatefulSet") && !present[ref.Kind+"/"+ref.Name] {
			obs.Healthy = false
		}
	}
	sort.Slice(obs.Services, func(i, j int) bool { return obs.Services[i].Name < obs.Services[j].Name })
	sort.Slice(obs.Dependencies, func(i, j int) bool { return obs.Dependencies[i].Name < obs.Dependencies[j].Name })
	if suspended {
		return obs, nil
	}
	svcs, err := r.cs.CoreV1().Services(nsName).List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("list services in %s: %w", nsName, err)
	}
	for _, s := range svcs.Items {
		if s.Spec.ClusterIP == "None" {
			continue
		}
		ups := map[string]string{}
		for _, p := range s.Spec.Ports {
			if p.Name == "" {
				continue
			}
			if r.cfg.InCluster {
				ups[p.Name] = net.JoinHostPort(s.Name+"."+nsName+".svc", strconv.Itoa(int(p.Port)))
			} else {
				addr, err := r.fwd.Upstream(nsName, s.Name, p.Name)
				if err != nil {
					return nil, err
				}
				ups[p.Name] = addr
			}
		}
		obs.Upstreams[s.Name] = ups
	}
	return obs, nil
}
