package local

import (
	"context"

	"sandpit.dev/sandpit/internal/runtime"
)

var _ runtime.Suspender = (*Runtime)(nil)

// Suspend implements runtime.Suspender: it stops every process of the
// sandbox (services and dependencies, which shut down cleanly: PostgreSQL
// gets a fast shutdown, so its data is consistent on disk) and gives its
// ports back to the allocator. The checkout, build outputs, init markers
// and data stay, so Up resumes without rebuilding or reseeding.
//
// The handle keeps the ports as the ones to take back. The allocator hands
// ports out round-robin across its whole range, so they are almost always
// still free at resume; when one is not, the unit gets a new port and the
// services whose configuration mentions it start with the new value.
func (r *Runtime) Suspend(ctx context.Context, id string, p runtime.Progress) error {
	unlock, err := r.lockSandbox(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	h, err := r.loadHandle(ctx, id)
	if err != nil {
		return err
	}
	if h != nil && !h.Suspended {
		// Recorded first (write-ahead): a server killed after this point
		// does not reserve the ports on restart, and the stop is redone.
		h.Suspended = true
		if err := r.saveHandle(ctx, id, h); err != nil {
			return err
		}
	}
	p.StageStarted("stop")
	err = r.stopUnits(ctx, id)
	p.StageFinished("stop", err)
	if err != nil {
		return err
	}
	r.ports.release(id)
	return nil
}
