package kube

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/sandbox"
)

// Down implements runtime.Runtime: it deletes the sandbox's cluster-scoped
// objects and its namespace, and returns once the namespace is gone. A
// namespace still terminating after DeleteWait is an error that names the
// finalizers and contents holding it; the caller retries, so the sandbox
// stays in Deleting until the namespace really is gone.
func (r *Runtime) Down(ctx context.Context, id string, p runtime.Progress) error {
	if r.fwd != nil {
		r.fwd.Forget(r.Namespace(id))
	}
	nsName := r.Namespace(id)
	ns, err := r.cs.CoreV1().Namespaces().Get(ctx, nsName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return r.removeWork(id)
	}
	if err != nil {
		return fmt.Errorf("read namespace %s: %w", nsName, err)
	}
	if ns.Labels[LabelInstance] != r.cfg.Instance || ns.Labels[LabelSandboxID] != id {
		// Not ours (a namespace that happens to have the name): leave it.
		return r.removeWork(id)
	}
	var cluster []objRef
	for _, ref := range parseApplied(ns) {
		if ref.Namespace == "" {
			cluster = append(cluster, ref)
		}
	}
	if err := r.prune(ctx, cluster); err != nil {
		return err
	}
	if ns.DeletionTimestamp == nil {
		bg := metav1.DeletePropagationBackground
		err := r.cs.CoreV1().Namespaces().Delete(ctx, nsName, metav1.DeleteOptions{PropagationPolicy: &bg})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete namespace %s: %w", nsName, err)
		}
		p.Event(sandbox.EventNormal, "NamespaceDeleting", "deleting namespace "+nsName)
	}
	deadline := time.Now().Add(r.cfg.DeleteWait)
	reported := ""
	for {
		ns, err := r.cs.CoreV1().Namespaces().Get(ctx, nsName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return r.removeWork(id)
		}
		if err != nil {
			return fmt.Errorf("read namespace %s: %w", nsName, err)
		}
		if why := terminating(ns); why != "" && why != reported && time.Since(ns.DeletionTimestamp.Time) > 10*time.Second {
			reported = why
			p.Event(sandbox.EventWarning, "NamespaceStuck", fmt.Sprintf("namespace %s is still terminating: %s", nsName, why))
		}
		if time.Now().After(deadline) {
			why := terminating(ns)
			if why == "" {
				why = "the namespace controller has not finished"
			}
			return fmt.Errorf("namespace %s still terminating after %s: %s; remove what holds it (kubectl get ns %s -o yaml) or its finalizers", nsName, r.cfg.DeleteWait, why, nsName)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.cfg.Poll):
		}
	}
}

// terminating says what holds a terminating namespace: the finalizers
// remaining on it or its contents, from the namespace controller's
// conditions.
func terminating(ns *corev1.Namespace) string {
	var parts []string
	if len(ns.Spec.Finalizers) > 0 {
		fs := make([]string, len(ns.Spec.Finalizers))
		for i, f := range ns.Spec.Finalizers {
			fs[i] = string(f)
		}
		parts = append(parts, "namespace finalizers "+strings.Join(fs, ", "))
	}
	for _, c := range ns.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case corev1.NamespaceFinalizersRemaining, corev1.NamespaceContentRemaining,
			corev1.NamespaceDeletionContentFailure, corev1.NamespaceDeletionDiscoveryFailure, corev1.NamespaceDeletionGVParsingFailure:
			parts = append(parts, c.Message)
		}
	}
	return strings.Join(parts, "; ")
}

// Sandboxes implements runtime.Runtime: the ids of this installation's
// namespaces, so the reconciler deletes the ones no sandbox owns (the
// orphan sweep runs on every resync).
func (r *Runtime) Sandboxes(ctx context.Context) ([]string, error) {
	list, err := r.cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: r.instanceSelector()})
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	ids := make([]string, 0, len(list.Items))
	for _, ns := range list.Items {
		if id := ns.Labels[LabelSandboxID]; id != "" && ns.Name == r.Namespace(id) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}
