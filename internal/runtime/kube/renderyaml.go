package kube

import (
	"context"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/runtime/kube/render"
)

var _ runtime.Renderer = (*Runtime)(nil)

// Redacted replaces every Secret value in `sandpit render`.
const Redacted = "REDACTED"

// RenderYAML implements runtime.Renderer: the objects Up would apply for
// inst, as multi-document YAML, with every Secret's values redacted (the
// dependencies' passwords are never read for it).
func (r *Runtime) RenderYAML(ctx context.Context, inst *runtime.Instance) ([]byte, error) {
	objs, err := r.RenderInstance(ctx, inst)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		redactSecret(o)
	}
	return render.YAML(objs)
}

func redactSecret(o *unstructured.Unstructured) {
	if o.GetKind() != "Secret" || o.GroupVersionKind().Group != "" {
		return
	}
	for _, field := range []string{"data", "stringData"} {
		m, ok, _ := unstructured.NestedMap(o.Object, field)
		if !ok {
			continue
		}
		for k := range m {
			m[k] = Redacted
		}
		_ = unstructured.SetNestedMap(o.Object, m, field)
	}
}
