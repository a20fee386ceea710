package api

import (
	"net/http"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/template"
)

// render answers the objects a sandbox is made of, for review before or
// after a launch (`sandpit render NAME`).
func (s *Server) render(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.sandboxByName(w, r)
	if !ok {
		return
	}
	rr, ok := s.cfg.Runtime.(runtime.Renderer)
	if !ok {
		writeError(w, &client.Error{Status: http.StatusNotImplemented, Code: "unsupported",
			Message: "the " + s.cfg.Runtime.Name() + " runtime has no manifests to render: render shows what the kubernetes runtime applies (sandpit serve --runtime kubernetes)"})
		return
	}
	tv, err := s.cfg.Store.GetTemplate(r.Context(), sb.Spec.Template, sb.Spec.TemplateVersion)
	if err != nil {
		writeError(w, storeError(err, "its template version is gone"))
		return
	}
	t, err := template.Parse(tv.Filename, tv.Source)
	if err == nil {
		t, err = t.WithSet(sb.Spec.Set)
	}
	if err != nil {
		writeError(w, &client.Error{Status: http.StatusUnprocessableEntity, Code: "invalid_template", Message: err.Error()})
		return
	}
	out, err := rr.RenderYAML(r.Context(), &runtime.Instance{
		ID: sb.ID, Name: sb.Name, Template: t, TemplateVersion: tv.Version, BaseDir: tv.BaseDir,
		Ref: sb.Spec.Ref, Set: sb.Spec.Set,
	})
	if err != nil {
		status := http.StatusInternalServerError
		if runtime.IsPermanent(err) {
			status = http.StatusUnprocessableEntity
		}
		writeError(w, &client.Error{Status: status, Code: "render_failed", Message: "render " + sb.Name + ": " + err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(out)
}
