package kube

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"sandpit.dev/sandpit/internal/runtime"
)

// target is the pod and container a service's logs and exec go to.
type target struct {
	Service, Pod, Container string
}

// workloads lists the sandbox's services and dependencies as their
// Deployments and StatefulSets, with their pod selectors.
func (r *Runtime) workloads(ctx context.Context, id string) (map[string]*metav1.LabelSelector, error) {
	ns := r.Namespace(id)
	sel := metav1.ListOptions{LabelSelector: r.selector(id)}
	out := map[string]*metav1.LabelSelector{}
	deps, err := r.cs.AppsV1().Deployments(ns).List(ctx, sel)
	if err != nil {
		return nil, err
	}
	for _, d := range deps.Items {
		out[nameOf(d.Annotations, d.Name)] = d.Spec.Selector
	}
	sts, err := r.cs.AppsV1().StatefulSets(ns).List(ctx, sel)
	if err != nil {
		return nil, err
	}
	for _, s := range sts.Items {
		out[nameOf(s.Annotations, s.Name)] = s.Spec.Selector
	}
	return out, nil
}

func nameOf(ann map[string]string, name string) string {
	if s := ann[AnnotationService]; s != "" {
		return s
	}
	if s := ann[AnnotationDependency]; s != "" {
		return s
	}
	return name
}

// pick chooses the pod of service: the newest running one, else the newest.
// The container is the one named after the service, else the first.
func (r *Runtime) pick(ctx context.Context, id, service string, sel *metav1.LabelSelector) (target, error) {
	ns := r.Namespace(id)
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return target{}, err
	}
	pods, err := r.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: s.String()})
	if err != nil {
		return target{}, err
	}
	if len(pods.Items) == 0 {
		return target{}, fmt.Errorf("service %q has no pod in namespace %s (suspended, or not rolled out yet)", service, ns)
	}
	sort.Slice(pods.Items, func(i, j int) bool {
		a, b := pods.Items[i], pods.Items[j]
		if (a.Status.Phase == corev1.PodRunning) != (b.Status.Phase == corev1.PodRunning) {
			return a.Status.Phase == corev1.PodRunning
		}
		return a.CreationTimestamp.After(b.CreationTimestamp.Time)
	})
	pod := pods.Items[0]
	c := pod.Spec.Containers[0].Name
	for _, ct := range pod.Spec.Containers {
		if ct.Name == service {
			c = ct.Name
		}
	}
	return target{Service: service, Pod: pod.Name, Container: c}, nil
}

func (r *Runtime) targets(ctx context.Context, id, service string) ([]target, error) {
	wl, err := r.workloads(ctx, id)
	if err != nil {
		return nil, err
	}
	var names []string
	if service != "" {
		if _, ok := wl[service]; !ok {
			have := make([]string, 0, len(wl))
			for n := range wl {
				have = append(have, n)
			}
			sort.Strings(have)
			return nil, fmt.Errorf("no service or dependency %q in this sandbox (it has %s): %w", service, strings.Join(have, ", "), runtime.ErrNotFound)
		}
		names = []string{service}
	} else {
		for n := range wl {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	var out []target
	for _, n := range names {
		t, err := r.pick(ctx, id, n, wl[n])
		if err != nil {
			if service != "" {
				return nil, err
			}
			continue
		}
		out = append(out, t)
	}
	return out, nil
}

// Logs implements runtime.LogReader through the API server's pods/log
// subresource. Each service's stream starts with a "system" line naming
// the pod and container it reads.
func (r *Runtime) Logs(ctx context.Context, id string, opts runtime.LogOptions, fn func(runtime.LogLine) error) error {
	ts, err := r.targets(ctx, id, opts.Service)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	emit := func(l runtime.LogLine) error {
		mu.Lock()
		defer mu.Unlock()
		return fn(l)
	}
	one := func(ctx context.Context, t target) error {
		if err := emit(runtime.LogLine{Time: time.Now().UTC(), Service: t.Service, Stream: "system", Text: fmt.Sprintf("logs of pod %s, container %s", t.Pod, t.Container)}); err != nil {
			return err
		}
		po := &corev1.PodLogOptions{Container: t.Container, Follow: opts.Follow, Timestamps: true}
		if opts.Tail > 0 {
			n := int64(opts.Tail)
			po.TailLines = &n
		}
		rc, err := r.cs.CoreV1().Pods(r.Namespace(id)).GetLogs(t.Pod, po).Stream(ctx)
		if err != nil {
			return fmt.Errorf("logs of pod %s container %s: %w", t.Pod, t.Container, err)
		}
		defer rc.Close()
		sc := bufio.NewScanner(rc)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			when := time.Now().UTC()
			if i := strings.IndexByte(line, ' '); i > 0 {
				if t, err := time.Parse(time.RFC3339Nano, line[:i]); err == nil {
					when, line = t.UTC(), line[i+1:]
				}
			}
			if err := emit(runtime.LogLine{Time: when, Service: t.Service, Stream: "stdout", Text: line}); err != nil {
				return err
			}
		}
		if err := sc.Err(); err != nil && ctx.Err() == nil {
			return fmt.Errorf("logs of pod %s container %s: %w", t.Pod, t.Container, err)
		}
		return nil
	}
	if !opts.Follow || len(ts) == 1 {
		for _, t := range ts {
			if err := one(ctx, t); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(ts))
	for _, t := range ts {
		go func(t target) { errs <- one(ctx, t) }(t)
	}
	var first error
	for range ts {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// Exec implements runtime.Execer through the API server's exec
// subresource. It names the pod and container on stderr first, because a
// service may have several.
func (r *Runtime) Exec(ctx context.Context, id string, req runtime.ExecRequest) (int, error) {
	if req.Service == "" {
		return -1, errors.New("exec needs a service name")
	}
	ts, err := r.targets(ctx, id, req.Service)
	if err != nil {
		return -1, err
	}
	t := ts[0]
	if req.Stderr != nil {
		fmt.Fprintf(req.Stderr, "sandpit: exec in pod %s, container %s\n", t.Pod, t.Container)
	}
	rq := r.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(r.Namespace(id)).Name(t.Pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: t.Container, Command: req.Command,
			Stdin: req.Stdin != nil, Stdout: req.Stdout != nil, Stderr: req.Stderr != nil,
		}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(r.rest, "POST", rq.URL())
	if err != nil {
		return -1, fmt.Errorf("exec in pod %s container %s: %w", t.Pod, t.Container, err)
	}
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr})
	var ce utilexec.CodeExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ce):
		return ce.Code, nil
	}
	return -1, fmt.Errorf("exec in pod %s container %s: %w", t.Pod, t.Container, err)
}
