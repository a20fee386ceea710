package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"sandpit.dev/sandpit/internal/sandbox"
)

// handleVersion is bumped when the handle's meaning changes; a newer server
// must still read older handles.
const handleVersion = 1

// handle is what the local runtime records for a sandbox, in the store,
// before it acts on it (write-ahead): which ports it holds and what its
// checkout resolved to. Everything else is found on disk or by marker.
type handle struct {
	V    int    `json:"v"`
	Name string `json:"name"`
	// Ports maps unit (service or dependency) → port name → port.
	Ports map[string]map[string]int `json:"ports"`
	// Units lists services then dependencies, in template order.
	Units []unitRef `json:"units"`
	// SourceRoot is the checkout's root relative to the sandbox directory.
	SourceRoot string `json:"source_root,omitempty"`
	Ref        string `json:"ref,omitempty"`
	SHA        string `json:"sha,omitempty"`
	// Resources is the resource class as the last Up applied it (nil
	// when the template names none).
	Resources *resourceRecord `json:"resources,omitempty"`
	// Suspended is true from the moment Suspend starts until Up resumes
	// the sandbox: its processes are (being) stopped and its ports are
	// not reserved; Ports are the ones to take back.
	Suspended bool `json:"suspended,omitempty"`
}

type unitRef struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // "service" or "postgres"
}

func (h *handle) unit(name string) (unitRef, bool) {
	for _, u := range h.Units {
		if u.Name == name {
			return u, true
		}
	}
	return unitRef{}, false
}

func (r *Runtime) loadHandle(ctx context.Context, id string) (*handle, error) {
	rt, data, err := r.cfg.Handles.LoadHandle(ctx, id)
	if errors.Is(err, sandbox.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load handle of %s: %w", id, err)
	}
	if rt != Name {
		return nil, fmt.Errorf("sandbox %s is held by runtime %q, not %q", id, rt, Name)
	}
	var h handle
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("decode handle of %s: %w", id, err)
	}
	if h.V > handleVersion {
		return nil, fmt.Errorf("handle of %s has version %d, newer than this sandpit knows (%d): upgrade sandpit", id, h.V, handleVersion)
	}
	return &h, nil
}

func (r *Runtime) saveHandle(ctx context.Context, id string, h *handle) error {
	h.V = handleVersion
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := r.cfg.Handles.SaveHandle(ctx, id, Name, b); err != nil {
		return fmt.Errorf("save handle of %s: %w", id, err)
	}
	return nil
}
