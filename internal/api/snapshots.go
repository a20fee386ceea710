package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/snapshot"
)

// snapshotError maps the snapshot manager's errors to API errors.
func snapshotError(err error) *client.Error {
	var e *client.Error
	switch {
	case errors.Is(err, snapshot.ErrInvalid):
		e = &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: err.Error()}
	case errors.Is(err, snapshot.ErrUnsupported):
		e = &client.Error{Status: http.StatusNotImplemented, Code: "unsupported", Message: err.Error()}
	default:
		e = storeError(err, "")
	}
	var h interface{ Hint() string }
	if errors.As(err, &h) {
		e.Hint = h.Hint()
	}
	return e
}

func (s *Server) snapshots() (*snapshot.Manager, *client.Error) {
	if s.cfg.Snapshots == nil {
		return nil, &client.Error{Status: http.StatusNotImplemented, Code: "unsupported", Message: snapshot.ErrUnsupported.Error()}
	}
	return s.cfg.Snapshots, nil
}

func (s *Server) listSnapshots(w http.ResponseWriter, r *http.Request) {
	m, e := s.snapshots()
	if e != nil {
		writeError(w, e)
		return
	}
	all, err := m.List(r.Context())
	if err != nil {
		writeError(w, snapshotError(err))
		return
	}
	out := client.SnapshotList{Items: []client.Snapshot{}}
	out.Method, out.Store = m.Store()
	for _, sn := range all {
		out.Items = append(out.Items, *sn)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getSnapshot(w http.ResponseWriter, r *http.Request) {
	m, e := s.snapshots()
	if e != nil {
		writeError(w, e)
		return
	}
	sn, err := m.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		writeError(w, snapshotError(err))
		return
	}
	writeJSON(w, http.StatusOK, sn)
}

func (s *Server) createSnapshot(w http.ResponseWriter, r *http.Request) {
	m, e := s.snapshots()
	if e != nil {
		writeError(w, e)
		return
	}
	var req client.CreateSnapshotRequest
	if e := decodeJSON(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	if req.Sandbox == "" || req.Dependency == "" {
		writeError(w, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: "name the sandbox and the dependency to capture", Hint: "sandpit snapshot create NAME --from SANDBOX/DEPENDENCY"})
		return
	}
	sn, err := m.Capture(r.Context(), req.Name, req.Sandbox, req.Dependency, "admin")
	if err != nil {
		writeError(w, snapshotError(err))
		return
	}
	writeJSON(w, http.StatusAccepted, sn)
}

func (s *Server) importSnapshot(w http.ResponseWriter, r *http.Request) {
	m, e := s.snapshots()
	if e != nil {
		writeError(w, e)
		return
	}
	q := r.URL.Query()
	sn, err := m.Import(r.Context(), snapshot.ImportRequest{
		Name: r.PathValue("name"), Type: q.Get("type"), Version: q.Get("version"),
		Database: q.Get("database"), Filename: q.Get("filename"), By: "admin",
	}, r.Body)
	if err != nil {
		writeError(w, snapshotError(err))
		return
	}
	writeJSON(w, http.StatusAccepted, sn)
}

func (s *Server) deleteSnapshot(w http.ResponseWriter, r *http.Request) {
	m, e := s.snapshots()
	if e != nil {
		writeError(w, e)
		return
	}
	force := false
	if v := r.URL.Query().Get("force"); v != "" {
		var err error
		if force, err = strconv.ParseBool(v); err != nil {
			writeError(w, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: fmt.Sprintf("force=%q is not true or false", v)})
			return
		}
	}
	if err := m.Delete(r.Context(), r.PathValue("name"), force); err != nil {
		writeError(w, snapshotError(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// restoreSnapshot records a restore request in the sandbox's spec; the
// reconciler carries it out (and again after a crash, until done).
func (s *Server) restoreSnapshot(w http.ResponseWriter, r *http.Request) {
	m, e := s.snapshots()
	if e != nil {
		writeError(w, e)
		return
	}
	var req client.RestoreSnapshotRequest
	if e := decodeJSON(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	if req.Snapshot == "" {
		writeError(w, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: "no snapshot given", Hint: "sandpit snapshot restore SNAPSHOT --to SANDBOX/DEPENDENCY"})
		return
	}
	sb, ok := s.sandboxByName(w, r)
	if !ok {
		return
	}
	dep := r.PathValue("dependency")
	if _, err := m.CheckRestore(r.Context(), sb, dep, req.Snapshot); err != nil {
		writeError(w, snapshotError(err))
		return
	}
	now := s.cfg.Now().UTC()
	updated, err := s.cfg.Store.UpdateSpec(r.Context(), sb.ID, func(spec *sandbox.Spec) error {
		if spec.Deleting() {
			return &client.Error{Status: http.StatusConflict, Code: "conflict", Message: fmt.Sprintf("sandbox %s is being deleted", sb.Name)}
		}
		seq := 1
		if old, ok := spec.Restores[dep]; ok {
			seq = old.Seq + 1
		}
		if spec.Restores == nil {
			spec.Restores = map[string]sandbox.Restore{}
		}
		spec.Restores[dep] = sandbox.Restore{Snapshot: req.Snapshot, Seq: seq, RequestedAt: now.Truncate(time.Microsecond), RequestedBy: "admin"}
		return nil
	})
	var ce *client.Error
	if errors.As(err, &ce) {
		writeError(w, ce)
		return
	}
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	_, _ = s.cfg.Store.AppendEvent(r.Context(), sandbox.Event{SandboxID: sb.ID, Type: sandbox.EventNormal, Reason: sandbox.ReasonInfo,
		Message: fmt.Sprintf("restore of dependency %s from snapshot %s requested", dep, req.Snapshot)})
	s.log.Info("restore requested", "sandbox", sb.Name, "dependency", dep, "snapshot", req.Snapshot)
	s.cfg.Enqueue(sb.ID)
	s.cfg.Broker.Notify(sb.ID)
	writeJSON(w, http.StatusAccepted, updated)
}
