package local

import (
	"context"
	"errors"
	"fmt"
	"os"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/sandbox"
)

// Down implements runtime.Runtime: stop every process of the sandbox (found
// by marker, so ones whose pid was never recorded too), remove its
// directory (checkout, data, logs), free its ports and forget its handle —
// in that order, so an interrupted Down is simply run again.
func (r *Runtime) Down(ctx context.Context, id string, p runtime.Progress) error {
	p.StageStarted("stop")
	err := r.stopUnits(ctx, id)
	p.StageFinished("stop", err)
	if err != nil {
		return err
	}
	p.StageStarted("cleanup")
	err = r.cleanup(ctx, id)
	p.StageFinished("cleanup", err)
	return err
}

func (r *Runtime) cleanup(ctx context.Context, id string) error {
	if err := os.RemoveAll(r.SandboxDir(id)); err != nil {
		return fmt.Errorf("remove %s: %w", r.SandboxDir(id), err)
	}
	if err := r.cfg.Handles.DeleteHandle(ctx, id); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete handle: %w", err)
	}
	r.ports.release(id)
	return nil
}

func isNotFound(err error) bool { return errors.Is(err, sandbox.ErrNotFound) }
