package kube

import (
	"fmt"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/template"
)

var _ runtime.TemplateChecker = (*Runtime)(nil)

// CheckTemplate implements runtime.TemplateChecker: what can be known when
// a template is applied, before any checkout (the manifests, chart or
// kustomization themselves are read at launch), reported at its place in
// the file.
func (r *Runtime) CheckTemplate(t *template.Template) error {
	var errs template.ErrorList
	add := func(path, msg string) {
		errs = append(errs, &template.Error{Pos: t.Pos(path), Path: path, Msg: msg})
	}
	for _, name := range t.ServiceOrder {
		if s := t.Services[name]; s.Image == "" && t.Kubernetes == nil {
			add("services."+name, fmt.Sprintf("service %q has no image: the kubernetes runtime runs containers; add image:, or name the team's manifests in kubernetes: (manifests, kustomize or helm) with a Deployment called %s", name, name))
		}
	}
	for _, name := range t.DependencyOrder {
		d := t.Dependencies[name]
		if d.Type != "postgres" {
			add("dependencies."+name+".type", fmt.Sprintf("dependency %q: the kubernetes runtime runs postgres dependencies only", name))
		}
		if d.Snapshot != "" {
			// Said plainly rather than starting an empty database.
			add("dependencies."+name+".snapshot", fmt.Sprintf("dependency %q: seeding from snapshot %q is not supported by the kubernetes runtime yet; remove snapshot: (the database then starts empty), or run this template on the local runtime", name, d.Snapshot))
		}
	}
	if rs := t.Resources; rs != nil && rs.Class != "" {
		if _, ok := r.cfg.ResourceClasses[rs.Class]; !ok {
			add("resources.class", fmt.Sprintf("resources.class %q is not a class of this server", rs.Class))
		}
	}
	if len(errs) > 0 {
		return &errs
	}
	return nil
}
