package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/lifecycle"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
	"sandpit.dev/sandpit/internal/template"
)

// user is who makes the request. Until accounts exist (one admin token),
// everyone is "admin".
func (s *Server) user(*http.Request) string { return "admin" }

// decorate adds what is computed at read time: the lifecycle in force and
// its deadlines, and activity the server has not stored yet.
func (s *Server) decorate(ctx context.Context, sb *sandbox.Sandbox) *sandbox.Sandbox {
	if s.cfg.Activity != nil {
		if t := s.cfg.Activity.Last(sb.Name); !t.IsZero() && (sb.LastActivityAt == nil || t.After(*sb.LastActivityAt)) {
			t := t.Truncate(time.Microsecond)
			sb.LastActivityAt = &t
		}
	}
	if s.cfg.Lifecycle != nil && !sb.Spec.Deleting() {
		lc, d := s.cfg.Lifecycle(ctx, sb)
		sb.Lifecycle = &lc
		if d != (sandbox.Deadlines{}) {
			sb.Deadlines = &d
		}
	}
	return sb
}

// quotaError turns a refused quota into an API error naming the limit and
// how to make room.
func quotaError(err error) *client.Error {
	var qe *lifecycle.QuotaError
	if errors.As(err, &qe) {
		return &client.Error{Status: http.StatusForbidden, Code: "quota_exceeded", Message: qe.Error(), Hint: qe.Hint}
	}
	return &client.Error{Status: http.StatusInternalServerError, Code: "internal", Message: err.Error()}
}

// changeLifecycle runs fn on a sandbox's spec, records an event, wakes the
// reconciler and answers with the sandbox.
func (s *Server) changeLifecycle(w http.ResponseWriter, r *http.Request, sb *sandbox.Sandbox, status int, event string, fn func(*sandbox.Spec) error) {
	updated, err := s.cfg.Store.UpdateSpec(r.Context(), sb.ID, fn)
	if err != nil {
		var ce *client.Error
		if errors.As(err, &ce) {
			writeError(w, ce)
			return
		}
		writeError(w, storeError(err, ""))
		return
	}
	_, _ = s.cfg.Store.AppendEvent(r.Context(), sandbox.Event{SandboxID: sb.ID, Type: sandbox.EventNormal, Reason: sandbox.ReasonLifecycle, Message: event})
	s.log.Info("sandbox lifecycle changed", "sandbox", sb.Name, "id", sb.ID, "change", event, "by", s.user(r))
	s.cfg.Enqueue(sb.ID)
	s.cfg.Broker.Notify(sb.ID)
	writeJSON(w, status, s.decorate(r.Context(), updated))
}

func notWhileDeleting(sb *sandbox.Spec, name string) error {
	if sb.Deleting() {
		return &client.Error{Status: http.StatusConflict, Code: "conflict", Message: fmt.Sprintf("sandbox %q is being deleted", name)}
	}
	return nil
}

func (s *Server) suspendSandbox(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.sandboxByName(w, r)
	if !ok {
		return
	}
	if sb.Status.Phase == sandbox.PhaseFailed {
		writeError(w, &client.Error{Status: http.StatusConflict, Code: "conflict",
			Message: fmt.Sprintf("sandbox %q failed; it is kept as it is for debugging, not suspended", sb.Name),
			Hint:    fmt.Sprintf("see why with `sandpit logs %s`, then `sandpit delete %s`", sb.Name, sb.Name)})
		return
	}
	now, user := s.cfg.Now().UTC(), s.user(r)
	s.changeLifecycle(w, r, sb, http.StatusAccepted, "suspend requested by "+user, func(sp *sandbox.Spec) error {
		if err := notWhileDeleting(sp, sb.Name); err != nil {
			return err
		}
		if sp.SuspendRequestedAt == nil {
			sp.SuspendRequestedAt, sp.SuspendRequestedBy = &now, user
		}
		return nil
	})
}

func (s *Server) resumeSandbox(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.sandboxByName(w, r)
	if !ok {
		return
	}
	if sb.Status.Phase == sandbox.PhaseSuspended {
		if err := s.checkRunning(r.Context(), sb); err != nil {
			writeError(w, quotaError(err))
			return
		}
	}
	// Activity first: a sandbox that idle suspend put to sleep stays
	// asleep until something happens after it was suspended.
	if err := s.cfg.Store.TouchSandboxes(r.Context(), map[string]time.Time{sb.ID: s.cfg.Now().UTC()}); err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	if s.cfg.Activity != nil {
		s.cfg.Activity.Touch(sb.Name)
	}
	s.changeLifecycle(w, r, sb, http.StatusAccepted, "resume requested by "+s.user(r), func(sp *sandbox.Spec) error {
		if err := notWhileDeleting(sp, sb.Name); err != nil {
			return err
		}
		sp.SuspendRequestedAt, sp.SuspendRequestedBy = nil, ""
		return nil
	})
}

// checkRunning refuses to wake sb when its owner is at the limit of running
// sandboxes.
func (s *Server) checkRunning(ctx context.Context, sb *sandbox.Sandbox) error {
	if s.cfg.Policy.MaxRunningPerUser <= 0 || sb.Spec.Pool != "" {
		return nil
	}
	sbs, err := s.cfg.Store.ListSandboxes(ctx, store.ListOptions{})
	if err != nil {
		return err
	}
	return lifecycle.CheckRunning(s.cfg.Policy, sb.Spec.CreatedBy, sbs, sb.ID)
}

// Wake is what the endpoint proxy calls for a request to a suspended
// sandbox: it records the activity that wakes it (once per suspension,
// however many requests arrive) and asks the reconciler to act.
func (s *Server) Wake(ctx context.Context, name, endpoint string) error {
	sb, err := s.cfg.Store.GetSandboxByName(ctx, name)
	if err != nil {
		return fmt.Errorf("look up sandbox %q: %w", name, err)
	}
	if sb.Status.Phase != sandbox.PhaseSuspended {
		return nil
	}
	if sb.Spec.Pool != "" {
		return fmt.Errorf("sandbox %q is kept asleep in the warm pool of template %s until someone claims it with `sandpit create NAME --template %s`", name, sb.Spec.Pool, sb.Spec.Pool)
	}
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	// Re-read under the lock: the first of many concurrent requests did
	// the work already.
	if sb, err = s.cfg.Store.GetSandboxByName(ctx, name); err != nil {
		return err
	}
	if sb.Status.Phase != sandbox.PhaseSuspended {
		return nil
	}
	if sb.LastActivityAt != nil && lifecycle.Awake(sb, *sb.LastActivityAt) {
		s.cfg.Enqueue(sb.ID) // already woken; make sure it is being acted on
		return nil
	}
	if err := s.checkRunning(ctx, sb); err != nil {
		return err
	}
	now := s.cfg.Now().UTC()
	if err := s.cfg.Store.TouchSandboxes(ctx, map[string]time.Time{sb.ID: now}); err != nil {
		return err
	}
	if sb.Spec.SuspendRequestedAt != nil {
		if _, err := s.cfg.Store.UpdateSpec(ctx, sb.ID, func(sp *sandbox.Spec) error {
			sp.SuspendRequestedAt, sp.SuspendRequestedBy = nil, ""
			return nil
		}); err != nil {
			return err
		}
	}
	_, _ = s.cfg.Store.AppendEvent(ctx, sandbox.Event{SandboxID: sb.ID, Type: sandbox.EventNormal, Reason: sandbox.ReasonLifecycle,
		Message: fmt.Sprintf("woken by a request to endpoint %s", endpoint)})
	s.log.Info("waking sandbox on request", "sandbox", name, "endpoint", endpoint)
	s.cfg.Enqueue(sb.ID)
	s.cfg.Broker.Notify(sb.ID)
	return nil
}

func (s *Server) extendSandbox(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.sandboxByName(w, r)
	if !ok {
		return
	}
	var req client.ExtendRequest
	if e := decodeJSON(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	by, err := time.ParseDuration(req.By)
	if err != nil || by <= 0 {
		writeError(w, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request",
			Message: fmt.Sprintf("extend by %q: give a positive duration, like 24h or 90m", req.By)})
		return
	}
	if sb.Lifecycle == nil {
		s.decorate(r.Context(), sb)
	}
	if sb.Spec.ExpiresAt == nil && (sb.Lifecycle == nil || sb.Lifecycle.TTL <= 0) {
		writeError(w, &client.Error{Status: http.StatusConflict, Code: "conflict",
			Message: fmt.Sprintf("sandbox %q has no TTL: it lives until deleted, so there is nothing to extend", sb.Name),
			Hint:    "give one at creation with `sandpit create --ttl 24h`, or set lifecycle.ttl in the template"})
		return
	}
	until := s.cfg.Now().UTC().Add(by).Truncate(time.Second)
	s.changeLifecycle(w, r, sb, http.StatusOK, fmt.Sprintf("extended by %s (until %s) by %s", by, until.Format(time.RFC3339), s.user(r)), func(sp *sandbox.Spec) error {
		if err := notWhileDeleting(sp, sb.Name); err != nil {
			return err
		}
		sp.ExpiresAt = &until
		return nil
	})
}

func (s *Server) pinSandbox(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.sandboxByName(w, r)
	if !ok {
		return
	}
	user := s.user(r)
	if sb.Spec.Pin != nil {
		writeJSON(w, http.StatusOK, s.decorate(r.Context(), sb))
		return
	}
	s.quotaMu.Lock()
	defer s.quotaMu.Unlock()
	sbs, err := s.cfg.Store.ListSandboxes(r.Context(), store.ListOptions{})
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	if err := lifecycle.CheckPin(s.cfg.Policy, user, sbs); err != nil {
		writeError(w, quotaError(err))
		return
	}
	now := s.cfg.Now().UTC()
	s.changeLifecycle(w, r, sb, http.StatusOK, "pinned by "+user+": no idle suspend, TTL or retention", func(sp *sandbox.Spec) error {
		if err := notWhileDeleting(sp, sb.Name); err != nil {
			return err
		}
		if sp.Pool != "" {
			return &client.Error{Status: http.StatusConflict, Code: "conflict", Message: fmt.Sprintf("sandbox %q belongs to the warm pool of template %s; claim it first", sb.Name, sp.Pool)}
		}
		sp.Pin = &sandbox.Pin{By: user, At: now}
		return nil
	})
}

func (s *Server) unpinSandbox(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.sandboxByName(w, r)
	if !ok {
		return
	}
	if sb.Spec.Pin == nil {
		writeJSON(w, http.StatusOK, s.decorate(r.Context(), sb))
		return
	}
	s.changeLifecycle(w, r, sb, http.StatusOK, "unpinned by "+s.user(r), func(sp *sandbox.Spec) error {
		sp.Pin = nil
		return nil
	})
}

// validOverrides checks lifecycle overrides given at creation.
func validOverrides(o *sandbox.LifecycleOverrides) *client.Error {
	if o == nil {
		return nil
	}
	for name, d := range map[string]*sandbox.Duration{"idle_suspend": o.IdleSuspend, "ttl": o.TTL, "keep_failed": o.KeepFailed} {
		if d != nil && *d < 0 {
			return &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: fmt.Sprintf("lifecycle.%s is negative: give 0 for never, or a duration like 30m", name)}
		}
	}
	if o.TTL != nil && *o.TTL > 0 && o.TTL.D() < time.Minute {
		return &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: fmt.Sprintf("a TTL of %s would delete the sandbox before it is ready; give at least 1m (or 0 for none)", o.TTL)}
	}
	return nil
}

// claim gives the caller a ready sandbox from the template's warm pool,
// renamed and with their ref and overrides, when one is compatible with
// what they asked for. It returns nil (and no error) when there is none.
func (s *Server) claim(ctx context.Context, req client.CreateSandboxRequest, user string, tv store.TemplateVersion, t *template.Template, sbs []*sandbox.Sandbox) (*sandbox.Sandbox, error) {
	if req.NoPool || t.Lifecycle == nil || t.Lifecycle.Pool == nil || t.Lifecycle.Pool.Min == 0 {
		return nil, nil
	}
	if why := t.SetAffectsBuild(req.Set); why != "" {
		s.log.Info("not claiming from the pool: the overrides change what was built", "template", t.Name, "why", why)
		return nil, nil
	}
	var candidates []*sandbox.Sandbox
	for _, sb := range sbs {
		if sb.Spec.Pool != tv.Name || sb.Spec.TemplateVersion != tv.Version || sb.Spec.Deleting() || sb.Spec.Restores != nil {
			continue
		}
		if req.Ref != "" && req.Ref != sb.Status.Ref && !(t.Source != nil && req.Ref == t.Source.Ref) {
			continue // another ref: another checkout and build
		}
		switch sb.Status.Phase {
		case sandbox.PhaseReady:
			candidates = append([]*sandbox.Sandbox{sb}, candidates...) // running ones first
		case sandbox.PhaseSuspended:
			candidates = append(candidates, sb)
		}
	}
	now := s.cfg.Now().UTC()
	for _, c := range candidates {
		claimed, err := s.cfg.Store.RenameSandbox(ctx, c.ID, req.Name, func(sp *sandbox.Spec) error {
			if sp.Pool == "" || sp.Deleting() {
				return errTaken
			}
			sp.Pool, sp.CreatedBy, sp.ClaimedAt = "", user, &now
			// The ref stays as the pool built it: the one asked for names
			// the same checkout, and another would mean checking out again.
			sp.Set, sp.Lifecycle = req.Set, req.Lifecycle
			return nil
		})
		if errors.Is(err, errTaken) {
			continue // another request claimed it first
		}
		if err != nil {
			return nil, err
		}
		// Activity after its suspension wakes a sleeping pool sandbox.
		_ = s.cfg.Store.TouchSandboxes(ctx, map[string]time.Time{claimed.ID: now})
		if s.cfg.Activity != nil {
			s.cfg.Activity.Forget(c.Name)
		}
		_, _ = s.cfg.Store.AppendEvent(ctx, sandbox.Event{SandboxID: claimed.ID, Type: sandbox.EventNormal, Reason: sandbox.ReasonClaimed,
			Message: fmt.Sprintf("claimed from the warm pool of template %s (was %s) by %s", tv.Name, c.Name, user)})
		s.log.Info("sandbox claimed from pool", "sandbox", claimed.Name, "was", c.Name, "id", claimed.ID, "template", tv.Name)
		return claimed, nil
	}
	return nil, nil
}

var errTaken = errors.New("claimed by another request")

// maxFailReason bounds a fail request's reason (it becomes the status
// message and an event).
const maxFailReason = 2000

func (s *Server) failSandbox(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.sandboxByName(w, r)
	if !ok {
		return
	}
	var req client.FailSandboxRequest
	if e := decodeJSON(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	var keep *sandbox.Duration
	if req.Keep != "" {
		d, err := time.ParseDuration(req.Keep)
		if err != nil || d < 0 {
			writeError(w, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request",
				Message: fmt.Sprintf("keep %q is not a duration: give how long to keep the failed sandbox, like 24h or 90m, or 0 to keep it until deleted", req.Keep)})
			return
		}
		v := sandbox.Duration(d)
		keep = &v
	}
	if len(req.Reason) > maxFailReason {
		writeError(w, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request",
			Message: fmt.Sprintf("reason is %d bytes long; the limit is %d", len(req.Reason), maxFailReason)})
		return
	}
	now, user := s.cfg.Now().UTC().Truncate(time.Microsecond), s.user(r)
	reason := req.Reason
	if reason == "" {
		reason = "marked Failed by " + user
	}
	event := fmt.Sprintf("marked Failed for debugging by %s: %s", user, firstLineOf(reason))
	if keep != nil {
		event += fmt.Sprintf(" (keep_failed %s)", keep)
	}
	s.changeLifecycle(w, r, sb, http.StatusAccepted, event, func(sp *sandbox.Spec) error {
		if err := notWhileDeleting(sp, sb.Name); err != nil {
			return err
		}
		if sp.Pool != "" {
			return &client.Error{Status: http.StatusConflict, Code: "conflict", Message: fmt.Sprintf("sandbox %q belongs to the warm pool of template %s; claim it first", sb.Name, sp.Pool)}
		}
		sp.FailRequested = &sandbox.FailRequest{Reason: reason, At: now, By: user}
		if keep != nil {
			lc := sandbox.LifecycleOverrides{}
			if sp.Lifecycle != nil {
				lc = *sp.Lifecycle
			}
			lc.KeepFailed = keep
			sp.Lifecycle = &lc
		}
		return nil
	})
}

func firstLineOf(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
