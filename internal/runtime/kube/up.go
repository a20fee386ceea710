package kube

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/runtime/kube/render"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/template"
)

// credentialsSecret holds the passwords of a sandbox's dependencies. The
// runtime makes it once, with random passwords, and reads it back on every
// later render, so that a restarted (or another) server renders the same
// objects and a database keeps the password it was initialised with.
const credentialsSecret = "sandpit-credentials"

// Up implements runtime.Runtime: render, apply, prune, wait for rollouts.
func (r *Runtime) Up(ctx context.Context, inst *runtime.Instance, p runtime.Progress) (*runtime.Observation, error) {
	objs, src, err := r.apply(ctx, inst, p)
	if err != nil {
		return nil, err
	}
	p.StageStarted(sandbox.StageReady)
	done := p.External("rollout")
	err = r.waitReady(ctx, inst.ID, objs, p)
	done()
	p.StageFinished(sandbox.StageReady, err)
	if err != nil {
		return nil, err
	}
	obs, err := r.observe(ctx, inst.ID, inst.Template)
	if err != nil {
		return nil, err
	}
	obs.Ref, obs.SHA = src.Ref, src.SHA
	return obs, nil
}

// Apply renders inst and applies it (pruning what the render no longer
// makes) without waiting for rollouts: Up without its last stage. The
// benchmark measures it.
func (r *Runtime) Apply(ctx context.Context, inst *runtime.Instance, p runtime.Progress) error {
	_, _, err := r.apply(ctx, inst, p)
	return err
}

func (r *Runtime) apply(ctx context.Context, inst *runtime.Instance, p runtime.Progress) ([]*unstructured.Unstructured, source, error) {
	p.StageStarted(sandbox.StageCheckout)
	done := p.External("checkout")
	src, err := r.checkout(ctx, inst)
	done()
	p.StageFinished(sandbox.StageCheckout, err)
	if err != nil {
		return nil, src, err
	}

	p.StageStarted(sandbox.StageBuild)
	objs, err := r.Render(ctx, inst, src)
	p.StageFinished(sandbox.StageBuild, err)
	if err != nil {
		return nil, src, err
	}

	p.StageStarted(sandbox.StageStart)
	err = r.applySandbox(ctx, inst, objs, p)
	p.StageFinished(sandbox.StageStart, err)
	return objs, src, err
}

// RenderInstance renders a sandbox's objects without applying anything
// (for `sandpit render`). Credentials are shown as placeholders.
func (r *Runtime) RenderInstance(ctx context.Context, inst *runtime.Instance) ([]*unstructured.Unstructured, error) {
	src, err := r.checkout(ctx, inst)
	if err != nil {
		return nil, err
	}
	return r.render(inst, src, func(string) string { return Redacted })
}

// Render renders inst's objects with the sandbox's real credentials.
func (r *Runtime) Render(ctx context.Context, inst *runtime.Instance, src source) ([]*unstructured.Unstructured, error) {
	creds, err := r.credentials(ctx, inst)
	if err != nil {
		return nil, err
	}
	return r.render(inst, src, func(dep string) string { return creds[dep] })
}

func (r *Runtime) render(inst *runtime.Instance, src source, password func(string) string) ([]*unstructured.Unstructured, error) {
	var res *render.Resources
	if rs := inst.Template.Resources; rs != nil && rs.Class != "" {
		rc, ok := r.cfg.ResourceClasses[rs.Class]
		if !ok {
			return nil, runtime.Permanent(fmt.Errorf("resources.class %q is not a class of this server", rs.Class))
		}
		rc.Class = rs.Class
		res = &rc
	}
	out, err := render.Render(inst.Template, render.Options{
		Namespace:          r.Namespace(inst.ID),
		SandboxID:          inst.ID,
		SandboxName:        inst.Name,
		Labels:             map[string]string{LabelManagedBy: ManagedBy, LabelInstance: r.cfg.Instance, LabelSandboxID: inst.ID, LabelSandbox: inst.Name},
		SourceDir:          src.Dir,
		GitRef:             src.Ref,
		GitSHA:             src.SHA,
		Host:               func(name string) string { return r.cfg.Host(name, inst.Name) },
		EndpointURLs:       inst.EndpointURLs,
		Resources:          res,
		AllowClusterKinds:  r.cfg.AllowClusterKinds,
		DependencyPassword: password,
	})
	if err != nil {
		return nil, runtime.Permanent(err)
	}
	markWorkloads(inst.Template, out)
	return out.Objects, nil
}

// markWorkloads annotates the workloads that are a template service or
// dependency (by name, or bound by label in the manifests), so that
// Observe, logs and exec (which see only the cluster) report them under
// the template's names.
func markWorkloads(t *template.Template, res *render.Result) {
	which := map[string]render.Workload{}
	for _, w := range res.Workloads {
		which[w.Kind+"/"+w.Name] = w
	}
	for _, o := range res.Objects {
		w, ok := which[o.GetKind()+"/"+o.GetName()]
		if !ok || (w.Service == "" && w.Dependency == "") {
			continue
		}
		ann := o.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		if w.Dependency != "" {
			d := t.Dependencies[w.Dependency]
			ann[AnnotationDependency] = w.Dependency
			if d != nil {
				ann[AnnotationDependencyType] = d.Type
				ann[AnnotationDependencyVer] = d.Version
			}
		} else {
			ann[AnnotationService] = w.Service
		}
		o.SetAnnotations(ann)
	}
}

// credentials returns each dependency's password, making the secret that
// keeps them the first time. The namespace must exist for that; before it
// does, the passwords are made and the secret is created with it.
func (r *Runtime) credentials(ctx context.Context, inst *runtime.Instance) (map[string]string, error) {
	creds := map[string]string{}
	if len(inst.Template.Dependencies) == 0 {
		return creds, nil
	}
	ns := r.Namespace(inst.ID)
	sec, err := r.cs.CoreV1().Secrets(ns).Get(ctx, credentialsSecret, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		sec = nil
	case err != nil:
		return nil, fmt.Errorf("read %s/%s: %w", ns, credentialsSecret, err)
	}
	missing := false
	for dep := range inst.Template.Dependencies {
		if sec != nil && len(sec.Data[dep]) > 0 {
			creds[dep] = string(sec.Data[dep])
			continue
		}
		creds[dep] = randomPassword()
		missing = true
	}
	if !missing {
		return creds, nil
	}
	// The namespace may not exist yet: create it bare (the full apply
	// follows) so the secret has somewhere to live.
	if err := r.ensureNamespaceExists(ctx, inst.ID, inst.Name); err != nil {
		return nil, err
	}
	if sec == nil {
		sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: credentialsSecret, Namespace: ns,
			Labels: map[string]string{LabelManagedBy: ManagedBy, LabelInstance: r.cfg.Instance, LabelSandboxID: inst.ID}}}
	}
	if sec.Data == nil {
		sec.Data = map[string][]byte{}
	}
	for dep, pw := range creds {
		if len(sec.Data[dep]) == 0 {
			sec.Data[dep] = []byte(pw)
		}
	}
	if sec.ResourceVersion == "" {
		_, err = r.cs.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{FieldManager: FieldManager})
	} else {
		_, err = r.cs.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{FieldManager: FieldManager})
	}
	if err != nil {
		// Someone else (another replica) wrote it first: read theirs next
		// time round.
		return nil, fmt.Errorf("store dependency credentials in %s: %w", ns, err)
	}
	return creds, nil
}

func (r *Runtime) ensureNamespaceExists(ctx context.Context, id, name string) error {
	ns, err := r.cs.CoreV1().Namespaces().Get(ctx, r.Namespace(id), metav1.GetOptions{})
	if err == nil {
		if ns.DeletionTimestamp != nil {
			return fmt.Errorf("namespace %s is still being deleted (from an earlier delete); will retry once it is gone", ns.Name)
		}
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return err
	}
	_, err = r.applyNamespace(ctx, id, name, nil, nil)
	return err
}

func randomPassword() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// applySandbox brings the namespace to objs: it records the union of the
// old and new apply sets first (so a crash mid-apply still prunes later),
// restores replicas of a suspended sandbox, applies, prunes, and then
// records the new set alone.
func (r *Runtime) applySandbox(ctx context.Context, inst *runtime.Instance, objs []*unstructured.Unstructured, p runtime.Progress) error {
	nsName := r.Namespace(inst.ID)
	cur := make([]objRef, 0, len(objs))
	for _, o := range objs {
		cur = append(cur, refOf(o))
	}
	existing, err := r.cs.CoreV1().Namespaces().Get(ctx, nsName, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("read namespace %s: %w", nsName, err)
	}
	if err != nil {
		existing = nil
	}
	prev := parseApplied(existing)
	if _, err := r.applyNamespace(ctx, inst.ID, inst.Name, union(prev, cur), nil); err != nil {
		return err
	}
	if existing != nil && existing.Annotations[AnnotationSuspended] != "" {
		if err := r.restoreReplicas(ctx, inst.ID); err != nil {
			return err
		}
	}
	if err := r.applyAll(ctx, objs); err != nil {
		return err
	}
	stale := minus(prev, cur)
	if len(stale) > 0 {
		if err := r.prune(ctx, stale); err != nil {
			return err
		}
		names := make([]string, len(stale))
		for i, s := range stale {
			names[i] = s.String()
		}
		p.Event(sandbox.EventNormal, "Pruned", fmt.Sprintf("deleted %d object(s) the template no longer makes: %s", len(stale), quoteList(names)))
	}
	if _, err := r.applyNamespace(ctx, inst.ID, inst.Name, cur, nil); err != nil {
		return err
	}
	if existing != nil && existing.Annotations[AnnotationSuspended] != "" {
		patch := []byte(`{"metadata":{"annotations":{"` + AnnotationSuspended + `":null}}}`)
		if _, err := r.cs.CoreV1().Namespaces().Patch(ctx, nsName, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: lifecycleManager}); err != nil {
			return fmt.Errorf("mark %s resumed: %w", nsName, err)
		}
	}
	return nil
}

// removeWork deletes the sandbox's checkout.
func (r *Runtime) removeWork(id string) error {
	if r.cfg.WorkDir == "" {
		return nil
	}
	return os.RemoveAll(filepath.Join(r.cfg.WorkDir, id))
}
