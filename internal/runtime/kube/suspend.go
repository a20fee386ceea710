package kube

import (
	"context"
	"fmt"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/sandbox"
)

// Suspend implements runtime.Suspender: every Deployment and StatefulSet of
// the sandbox is scaled to zero, its replica count kept in an annotation
// for resume, and the call returns once their pods are gone. Volumes,
// ConfigMaps and Services stay, so resuming reseeds and rebuilds nothing.
func (r *Runtime) Suspend(ctx context.Context, id string, p runtime.Progress) error {
	nsName := r.Namespace(id)
	if _, err := r.cs.CoreV1().Namespaces().Get(ctx, nsName, metav1.GetOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("sandbox %s: namespace %s: %w", id, nsName, runtime.ErrNotFound)
		}
		return err
	}
	// Mark first: a crash between scaling and marking must still resume.
	mark := []byte(`{"metadata":{"annotations":{"` + AnnotationSuspended + `":"` + time.Now().UTC().Format(time.RFC3339) + `"}}}`)
	if _, err := r.cs.CoreV1().Namespaces().Patch(ctx, nsName, types.MergePatchType, mark, metav1.PatchOptions{FieldManager: lifecycleManager}); err != nil {
		return fmt.Errorf("mark %s suspended: %w", nsName, err)
	}
	sel := metav1.ListOptions{LabelSelector: r.selector(id)}
	deps, err := r.cs.AppsV1().Deployments(nsName).List(ctx, sel)
	if err != nil {
		return err
	}
	sts, err := r.cs.AppsV1().StatefulSets(nsName).List(ctx, sel)
	if err != nil {
		return err
	}
	type target struct {
		kind, name string
		replicas   *int32
		kept       string
	}
	var ts []target
	for _, d := range deps.Items {
		ts = append(ts, target{"Deployment", d.Name, d.Spec.Replicas, d.Annotations[AnnotationReplicas]})
	}
	for _, s := range sts.Items {
		ts = append(ts, target{"StatefulSet", s.Name, s.Spec.Replicas, s.Annotations[AnnotationReplicas]})
	}
	err = r.parallel(ctx, len(ts), func(i int) error {
		t := ts[i]
		n := int32(1)
		if t.replicas != nil {
			n = *t.replicas
		}
		if n == 0 && t.kept != "" {
			return nil // already suspended
		}
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}},"spec":{"replicas":0}}`, AnnotationReplicas, strconv.Itoa(int(n)))
		return r.patchWorkload(ctx, nsName, t.kind, t.name, []byte(patch))
	})
	if err != nil {
		return err
	}
	p.Event(sandbox.EventNormal, "ScaledDown", fmt.Sprintf("scaled %d workload(s) in %s to zero", len(ts), nsName))
	// Wait for the pods to go, so that "Suspended" means nothing runs.
	deadline := time.Now().Add(r.cfg.ReadyTimeout)
	for {
		pods, err := r.cs.CoreV1().Pods(nsName).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		left := 0
		for _, pod := range pods.Items {
			if pod.OwnerReferences != nil && !isJobPod(pod.OwnerReferences) {
				left++
			}
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d pod(s) of %s still running after %s", left, nsName, r.cfg.ReadyTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.cfg.Poll):
		}
	}
}

func isJobPod(refs []metav1.OwnerReference) bool {
	for _, o := range refs {
		if o.Kind == "Job" {
			return true
		}
	}
	return false
}

// restoreReplicas scales every workload Suspend scaled down back to the
// count it kept.
func (r *Runtime) restoreReplicas(ctx context.Context, id string) error {
	nsName := r.Namespace(id)
	sel := metav1.ListOptions{LabelSelector: r.selector(id)}
	deps, err := r.cs.AppsV1().Deployments(nsName).List(ctx, sel)
	if err != nil {
		return err
	}
	sts, err := r.cs.AppsV1().StatefulSets(nsName).List(ctx, sel)
	if err != nil {
		return err
	}
	type target struct{ kind, name, kept string }
	var ts []target
	for _, d := range deps.Items {
		if k := d.Annotations[AnnotationReplicas]; k != "" {
			ts = append(ts, target{"Deployment", d.Name, k})
		}
	}
	for _, s := range sts.Items {
		if k := s.Annotations[AnnotationReplicas]; k != "" {
			ts = append(ts, target{"StatefulSet", s.Name, k})
		}
	}
	return r.parallel(ctx, len(ts), func(i int) error {
		t := ts[i]
		n, err := strconv.Atoi(t.kept)
		if err != nil || n < 0 {
			n = 1
		}
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:null}},"spec":{"replicas":%d}}`, AnnotationReplicas, n)
		return r.patchWorkload(ctx, nsName, t.kind, t.name, []byte(patch))
	})
}

func (r *Runtime) patchWorkload(ctx context.Context, ns, kind, name string, patch []byte) error {
	opts := metav1.PatchOptions{FieldManager: lifecycleManager}
	var err error
	switch kind {
	case "Deployment":
		_, err = r.cs.AppsV1().Deployments(ns).Patch(ctx, name, types.MergePatchType, patch, opts)
	case "StatefulSet":
		_, err = r.cs.AppsV1().StatefulSets(ns).Patch(ctx, name, types.MergePatchType, patch, opts)
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("scale %s: %w", kindName(kind, name), err)
	}
	return nil
}
