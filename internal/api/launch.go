package api

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
)

// launch serves launch links, GET /launch?template=T&ref=R&set.K=V&name=N:
// the link a bot puts in a pull request. The first visit creates the
// sandbox; every later one opens the same sandbox, because the default name
// is derived from template, ref and overrides. A Ready (or Suspended: the
// proxy wakes it) sandbox answers with a redirect to its first endpoint; a
// launching one with a status page that reloads itself every 2 s (for
// browsers) or the sandbox as JSON.
//
// It sits behind the API's bearer token like everything else, so for now
// the link works from clients that send the token (curl -L -H
// "Authorization: Bearer $SANDPIT_TOKEN"); a browser sign-in comes with the
// web console.
func (s *Server) launch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	set := map[string]string{}
	for k, vs := range q {
		switch {
		case k == "template" || k == "ref" || k == "name":
			if len(vs) > 1 {
				writeError(w, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: fmt.Sprintf("%s is given %d times: give it once", k, len(vs))})
				return
			}
		case strings.HasPrefix(k, "set.") && len(k) > len("set."):
			set[strings.TrimPrefix(k, "set.")] = vs[len(vs)-1]
		default:
			writeError(w, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request",
				Message: fmt.Sprintf("unknown launch parameter %q: use template, ref, name and set.KEY (as set.env.LOG_LEVEL=debug)", k)})
			return
		}
	}
	tmpl, ref, name := q.Get("template"), q.Get("ref"), q.Get("name")
	if tmpl == "" {
		writeError(w, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: "no template given: a launch link is /launch?template=TEMPLATE[&ref=REF][&set.KEY=VALUE...][&name=NAME]", Hint: templateHint})
		return
	}
	if len(set) == 0 {
		set = nil
	}
	if name == "" {
		name = sandbox.LaunchName(tmpl, ref, set)
	}
	sb, err := s.cfg.Store.GetSandboxByName(r.Context(), name)
	created := false
	if errors.Is(err, store.ErrNotFound) {
		err = nil
		var e *client.Error
		sb, e = s.create(r, client.CreateSandboxRequest{Name: name, Template: tmpl, Ref: ref, Set: set})
		switch {
		case e != nil && e.Code == "conflict":
			// Another visit of the same link created it meanwhile.
			sb, err = s.cfg.Store.GetSandboxByName(r.Context(), name)
		case e != nil:
			writeError(w, e)
			return
		default:
			created = true
		}
	}
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	if sb.Spec.Template != tmpl {
		writeError(w, &client.Error{Status: http.StatusConflict, Code: "conflict",
			Message: fmt.Sprintf("sandbox %q exists, from template %s, not %s", name, sb.Spec.Template, tmpl),
			Hint:    "give another name=, or leave name= out for the link's own"})
		return
	}
	if sb.Spec.Deleting() {
		writeError(w, &client.Error{Status: http.StatusConflict, Code: "conflict",
			Message: fmt.Sprintf("sandbox %q is being deleted", name), Hint: "open the link again once it is gone to launch a new one"})
		return
	}
	if !created {
		s.log.Info("launch link opened a sandbox", "sandbox", sb.Name, "phase", sb.Status.Phase)
	}
	sb = s.decorate(r.Context(), sb)
	settled := sb.Status.ObservedGeneration == sb.Generation
	ph := sb.Status.Phase
	if (ph == sandbox.PhaseReady && settled || ph == sandbox.PhaseSuspended) && len(sb.Status.Endpoints) > 0 {
		w.Header().Set("Location", sb.Status.Endpoints[0].URL)
		if wantsHTML(r) {
			launchPage(w, http.StatusSeeOther, sb)
			return
		}
		writeJSON(w, http.StatusSeeOther, sb)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	if wantsHTML(r) {
		launchPage(w, code, sb)
		return
	}
	writeJSON(w, code, sb)
}

// wantsHTML reports whether the client (a browser) asks for HTML.
func wantsHTML(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(mt), "text/html") {
			return true
		}
	}
	return false
}

var launchTmpl = template.Must(template.New("launch").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
{{if .Refresh}}<meta http-equiv="refresh" content="2">
{{end}}<title>{{.Name}} · {{.Phase}} · Sandpit</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em}code{background:#f3f3f3;padding:0 .2em}.Failed{color:#b00}.Ready{color:#070}li.failed{color:#b00}li.succeeded{color:#070}</style>
</head>
<body>
<h1>{{.Name}}</h1>
<p>Template {{.Template}} version {{.Version}}{{if .Ref}}, ref <code>{{.Ref}}</code>{{end}}: <strong class="{{.Phase}}">{{.Phase}}</strong>{{if .Message}} — {{.Message}}{{end}}</p>
{{if .URL}}<p>Open <a href="{{.URL}}">{{.URL}}</a></p>
{{end}}{{if .Stages}}<ul>
{{range .Stages}}<li class="{{.State}}">{{.Name}}: {{.State}}</li>
{{end}}</ul>
{{end}}{{if .Refresh}}<p>This page reloads every 2 seconds and opens the sandbox once it is ready.</p>
{{end}}{{if .Failed}}<p>It is kept for debugging: <code>sandpit logs {{.Name}}</code>, <code>sandpit get {{.Name}}</code>.</p>
{{end}}</body>
</html>
`))

// launchPage writes the small status page of a launch link.
func launchPage(w http.ResponseWriter, code int, sb *sandbox.Sandbox) {
	ph := sb.Status.Phase
	if ph == "" {
		ph = sandbox.PhasePending
	}
	data := struct {
		Name, Template, Ref, Message, URL string
		Version                           int
		Phase                             sandbox.Phase
		Stages                            []sandbox.Stage
		Refresh, Failed                   bool
	}{
		Name: sb.Name, Template: sb.Spec.Template, Ref: sb.Spec.Ref, Version: sb.Spec.TemplateVersion,
		Phase: ph, Message: firstLineOf(sb.Status.Message), Stages: sb.Status.Stages,
		Refresh: ph == sandbox.PhasePending || ph == sandbox.PhaseProvisioning || ph == sandbox.PhaseReady && sb.Status.ObservedGeneration != sb.Generation,
		Failed:  ph == sandbox.PhaseFailed,
	}
	if len(sb.Status.Endpoints) > 0 && (ph == sandbox.PhaseReady || ph == sandbox.PhaseSuspended) {
		data.URL = sb.Status.Endpoints[0].URL
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_ = launchTmpl.Execute(w, data)
}
