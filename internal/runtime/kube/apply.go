package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"sandpit.dev/sandpit/internal/runtime"
)

// objRef names one applied object in the namespace's apply set.
type objRef struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Namespace is empty for cluster-scoped objects.
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

func (o objRef) key() string {
	gv, _ := schema.ParseGroupVersion(o.APIVersion)
	return gv.Group + "/" + o.Kind + "/" + o.Namespace + "/" + o.Name
}

func (o objRef) String() string { return kindName(o.Kind, o.Name) }

func refOf(u *unstructured.Unstructured) objRef {
	return objRef{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
}

func parseApplied(ns *corev1.Namespace) []objRef {
	if ns == nil {
		return nil
	}
	var refs []objRef
	_ = json.Unmarshal([]byte(ns.Annotations[AnnotationApplied]), &refs)
	return refs
}

func encodeApplied(refs []objRef) string {
	sort.Slice(refs, func(i, j int) bool { return refs[i].key() < refs[j].key() })
	b, _ := json.Marshal(refs)
	return string(b)
}

// union is a ∪ b by key, keeping b's apiVersion when both hold an object.
func union(a, b []objRef) []objRef {
	m := map[string]objRef{}
	for _, r := range a {
		m[r.key()] = r
	}
	for _, r := range b {
		m[r.key()] = r
	}
	out := make([]objRef, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	return out
}

// minus is a − b by key.
func minus(a, b []objRef) []objRef {
	drop := map[string]bool{}
	for _, r := range b {
		drop[r.key()] = true
	}
	var out []objRef
	for _, r := range a {
		if !drop[r.key()] {
			out = append(out, r)
		}
	}
	return out
}

// applyNamespace creates or updates the sandbox's namespace with its labels
// and the given apply set, by server-side apply. It returns the namespace
// as it was before (nil when new). A namespace being deleted cannot take
// new objects: that is an error the caller retries once it is gone.
func (r *Runtime) applyNamespace(ctx context.Context, id, name string, applied []objRef, extra map[string]string) (*corev1.Namespace, error) {
	nsName := r.Namespace(id)
	before, err := r.cs.CoreV1().Namespaces().Get(ctx, nsName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		before = nil
	case err != nil:
		return nil, fmt.Errorf("read namespace %s: %w", nsName, err)
	case before.DeletionTimestamp != nil:
		return nil, fmt.Errorf("namespace %s is still being deleted (from an earlier delete); will retry once it is gone", nsName)
	case before.Labels[LabelInstance] != r.cfg.Instance || before.Labels[LabelSandboxID] != id:
		return nil, runtime.Permanent(fmt.Errorf("namespace %s exists and is not this sandbox's (labels %v): delete it, or start the server with another --kube-namespace-prefix", nsName, before.Labels))
	}
	ann := map[string]any{AnnotationApplied: encodeApplied(applied)}
	for k, v := range extra {
		ann[k] = v
	}
	obj := map[string]any{
		"apiVersion": "v1",
		"kind":       "Namespace",
		"metadata": map[string]any{
			"name":        nsName,
			"labels":      r.labels(id, name),
			"annotations": ann,
		},
	}
	body, _ := json.Marshal(obj)
	_, err = r.cs.CoreV1().Namespaces().Patch(ctx, nsName, types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: FieldManager, Force: ptrTrue()})
	if err != nil {
		return nil, fmt.Errorf("apply namespace %s: %w", nsName, err)
	}
	return before, nil
}

func (r *Runtime) labels(id, name string) map[string]any {
	return map[string]any{
		LabelManagedBy: ManagedBy,
		LabelInstance:  r.cfg.Instance,
		LabelSandboxID: id,
		LabelSandbox:   name,
	}
}

func ptrTrue() *bool { t := true; return &t }

// applyAll server-side applies objs in waves: every object of a wave is
// applied concurrently, and a wave starts when the one before is done
// (ConfigMaps and Services before the workloads that use them).
func (r *Runtime) applyAll(ctx context.Context, objs []*unstructured.Unstructured) error {
	var waves [][]*unstructured.Unstructured
	last := -1
	for _, o := range objs {
		w := wave(o.GetKind())
		if w != last {
			waves = append(waves, nil)
			last = w
		}
		waves[len(waves)-1] = append(waves[len(waves)-1], o)
	}
	for _, w := range waves {
		if err := r.parallel(ctx, len(w), func(i int) error { return r.applyObject(ctx, w[i]) }); err != nil {
			return err
		}
	}
	return nil
}

// wave orders kinds so that what workloads mount or reach exists first.
func wave(kind string) int {
	switch kind {
	case "ServiceAccount", "Secret", "ConfigMap", "PersistentVolumeClaim", "ResourceQuota", "LimitRange",
		"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition":
		return 0
	case "Service":
		return 1
	case "StatefulSet", "Deployment", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod":
		return 2
	}
	return 3
}

func (r *Runtime) parallel(ctx context.Context, n int, fn func(i int) error) error {
	sem := make(chan struct{}, r.cfg.Concurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				mu.Lock()
				errs = append(errs, err.Error())
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if len(errs) > 0 {
		sort.Strings(errs)
		if len(errs) > 3 {
			errs = append(errs[:3], fmt.Sprintf("and %d more", len(errs)-3))
		}
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func (r *Runtime) resource(u *unstructured.Unstructured) (resourceClient, error) {
	m, err := r.mapping(u.GroupVersionKind())
	if err != nil {
		return nil, err
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return r.dyn.Resource(m.Resource).Namespace(u.GetNamespace()), nil
	}
	return r.dyn.Resource(m.Resource), nil
}

func (r *Runtime) applyObject(ctx context.Context, u *unstructured.Unstructured) error {
	rc, err := r.resource(u)
	if err != nil {
		return fmt.Errorf("apply %s: %w", kindName(u.GetKind(), u.GetName()), err)
	}
	body, err := u.MarshalJSON()
	if err != nil {
		return err
	}
	_, err = rc.Patch(ctx, u.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: FieldManager, Force: ptrTrue()})
	if err != nil {
		err = fmt.Errorf("apply %s: %w", kindName(u.GetKind(), u.GetName()), err)
		if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			// The object itself is wrong; retrying the same render
			// cannot help.
			return runtime.Permanent(err)
		}
		return err
	}
	return nil
}

// prune deletes the objects of refs; ones already gone are fine.
func (r *Runtime) prune(ctx context.Context, refs []objRef) error {
	return r.parallel(ctx, len(refs), func(i int) error {
		ref := refs[i]
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err != nil {
			return nil
		}
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gv.WithKind(ref.Kind))
		u.SetNamespace(ref.Namespace)
		rc, err := r.resource(u)
		if err != nil {
			if runtime.IsPermanent(err) {
				return nil // the kind is gone from the cluster, and so are its objects
			}
			return err
		}
		bg := metav1.DeletePropagationBackground
		err = rc.Delete(ctx, ref.Name, metav1.DeleteOptions{PropagationPolicy: &bg})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("prune %s: %w", ref, err)
		}
		return nil
	})
}
