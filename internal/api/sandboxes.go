package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/lifecycle"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
	"sandpit.dev/sandpit/internal/template"
)

func (s *Server) createSandbox(w http.ResponseWriter, r *http.Request) {
	var req client.CreateSandboxRequest
	if e := decodeJSON(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	sb, e := s.create(r, req)
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusCreated, s.decorate(r.Context(), sb))
}

// create validates a request for a sandbox and creates it, or claims one
// from the template's warm pool (for POST /api/v1/sandboxes and /launch).
func (s *Server) create(r *http.Request, req client.CreateSandboxRequest) (*sandbox.Sandbox, *client.Error) {
	if err := sandbox.ValidateSandboxName(req.Name); err != nil {
		return nil, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: err.Error()}
	}
	if req.Template == "" {
		return nil, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: "no template given", Hint: templateHint}
	}
	if req.Version < 0 {
		return nil, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: fmt.Sprintf("template version %d is not a version: versions count from 1 (0 or none means the latest)", req.Version)}
	}
	if err := validRef(req.Ref); err != nil {
		return nil, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: err.Error()}
	}
	tv, err := s.cfg.Store.GetTemplate(r.Context(), req.Template, req.Version)
	if err != nil {
		return nil, s.templateLookupError(r, err, req.Template, req.Version)
	}
	t, err := template.Parse(tv.Filename, tv.Source)
	if err != nil {
		return nil, &client.Error{Status: http.StatusUnprocessableEntity, Code: "invalid_template",
			Message: fmt.Sprintf("template %s version %d no longer parses with this sandpit: %v", tv.Name, tv.Version, err),
			Hint:    "apply a fixed version with `sandpit template apply -f FILE`"}
	}
	if req.Ref != "" && t.Source == nil {
		return nil, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request",
			Message: fmt.Sprintf("template %s has no source, so ref %q means nothing", t.Name, req.Ref), Hint: "drop --ref, or give the template a source"}
	}
	if err := t.ValidateSet(req.Set); err != nil {
		e := templateError(err)
		e.Code, e.Status = "invalid_request", http.StatusBadRequest
		e.Message = "invalid --set overrides"
		return nil, e
	}
	if e := validOverrides(req.Lifecycle); e != nil {
		return nil, e
	}
	user := s.user(r)
	s.quotaMu.Lock()
	defer s.quotaMu.Unlock()
	sbs, err := s.cfg.Store.ListSandboxes(r.Context(), store.ListOptions{})
	if err != nil {
		return nil, storeError(err, "")
	}
	if err := lifecycle.CheckCreate(s.cfg.Policy, user, sbs, ""); err != nil {
		return nil, quotaError(err)
	}
	// A taken name makes the claim fail with a conflict; the create below
	// then reports it.
	claimed, err := s.claim(r.Context(), req, user, tv, t, sbs)
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return nil, storeError(err, "")
	}
	if claimed != nil {
		s.cfg.Enqueue(claimed.ID)
		s.cfg.Broker.Notify(claimed.ID)
		// The pool refills once the claimed sandbox is Ready (the
		// reconciler asks then): a refill's checkout and builds would
		// compete for the CPU with the claim's restart.
		return claimed, nil
	}
	sb := &sandbox.Sandbox{
		ID:        sandbox.NewID(),
		Name:      req.Name,
		Spec:      sandbox.Spec{Template: tv.Name, TemplateVersion: tv.Version, Ref: req.Ref, Set: req.Set, CreatedBy: user, Lifecycle: req.Lifecycle},
		CreatedAt: s.cfg.Now().UTC(),
	}
	if err := s.cfg.Store.CreateSandbox(r.Context(), sb); err != nil {
		e := storeError(err, "")
		if errors.Is(err, store.ErrConflict) {
			e.Message = fmt.Sprintf("a sandbox named %q already exists", req.Name)
			e.Hint = fmt.Sprintf("choose another name, or delete the existing one with `sandpit delete %s --wait`", req.Name)
		}
		return nil, e
	}
	msg := fmt.Sprintf("created from template %s version %d", tv.Name, tv.Version)
	if req.Ref != "" {
		msg += " at ref " + req.Ref
	}
	_, _ = s.cfg.Store.AppendEvent(r.Context(), sandbox.Event{SandboxID: sb.ID, Type: sandbox.EventNormal, Reason: sandbox.ReasonCreated, Message: msg})
	s.log.Info("sandbox created", "sandbox", sb.Name, "id", sb.ID, "template", tv.Name, "version", tv.Version)
	s.cfg.Enqueue(sb.ID)
	s.cfg.Broker.Notify(sb.ID)
	return sb, nil
}

func (s *Server) listSandboxes(w http.ResponseWriter, r *http.Request) {
	opts := store.ListOptions{Template: r.URL.Query().Get("template")}
	if p := r.URL.Query().Get("phase"); p != "" {
		phase, err := sandbox.ParsePhase(p)
		if err != nil {
			writeError(w, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: err.Error()})
			return
		}
		opts.Phase = phase
	}
	switch v := r.URL.Query().Get("watch"); v {
	case "", "false":
	case "true":
		s.watchSandboxes(w, r, opts)
		return
	default:
		writeError(w, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: fmt.Sprintf("watch=%q: use watch=true or leave it out", v)})
		return
	}
	out, err := s.sandboxList(r.Context(), opts)
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) sandboxList(ctx context.Context, opts store.ListOptions) (client.SandboxList, error) {
	sbs, err := s.cfg.Store.ListSandboxes(ctx, opts)
	if err != nil {
		return client.SandboxList{}, err
	}
	out := client.SandboxList{Items: []client.Sandbox{}}
	for _, sb := range sbs {
		out.Items = append(out.Items, *s.decorate(ctx, sb))
	}
	return out, nil
}

func (s *Server) sandboxByName(w http.ResponseWriter, r *http.Request) (*sandbox.Sandbox, bool) {
	name := r.PathValue("name")
	sb, err := s.cfg.Store.GetSandboxByName(r.Context(), name)
	if err != nil {
		e := storeError(err, "")
		if errors.Is(err, store.ErrNotFound) {
			e.Message = fmt.Sprintf("no sandbox named %q", name)
			e.Hint = "`sandpit list` shows the sandboxes"
			if near := s.nearbyNames(r, name); len(near) > 0 {
				e.Hint = fmt.Sprintf("did you mean %s? %s", near[0], e.Hint)
			}
		}
		writeError(w, e)
		return nil, false
	}
	return sb, true
}

// nearbyNames suggests existing sandbox names that share a prefix with a
// mistyped one.
func (s *Server) nearbyNames(r *http.Request, name string) []string {
	sbs, err := s.cfg.Store.ListSandboxes(r.Context(), store.ListOptions{})
	if err != nil {
		return nil
	}
	var out []string
	for _, sb := range sbs {
		if n := commonPrefix(sb.Name, name); n >= 3 || (n > 0 && n == len(name)) {
			out = append(out, sb.Name)
		}
	}
	sort.Strings(out)
	return out
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func (s *Server) getSandbox(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.sandboxByName(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, s.decorate(r.Context(), sb))
}

func (s *Server) deleteSandbox(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.sandboxByName(w, r)
	if !ok {
		return
	}
	if !sb.Spec.Deleting() {
		now := s.cfg.Now().UTC()
		updated, err := s.cfg.Store.UpdateSpec(r.Context(), sb.ID, func(sp *sandbox.Spec) error {
			if sp.DeletionRequestedAt == nil {
				sp.DeletionRequestedAt, sp.DeletionReason = &now, sandbox.DeletedByUser
			}
			return nil
		})
		if err != nil {
			writeError(w, storeError(err, ""))
			return
		}
		sb = updated
		_, _ = s.cfg.Store.AppendEvent(r.Context(), sandbox.Event{SandboxID: sb.ID, Type: sandbox.EventNormal, Reason: sandbox.ReasonDeleting, Message: "deletion requested"})
		s.log.Info("sandbox deletion requested", "sandbox", sb.Name, "id", sb.ID)
	}
	s.cfg.Enqueue(sb.ID)
	s.cfg.Broker.Notify(sb.ID)
	writeJSON(w, http.StatusAccepted, sb)
}
