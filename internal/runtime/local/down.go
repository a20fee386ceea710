package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/sandbox"
)

// Down implements runtime.Runtime: stop every process of the sandbox (found
// by marker, so ones whose pid was never recorded too), remove its
// directory (checkout, data, logs), free its ports and forget its handle —
// in that order, so an interrupted Down is simply run again.
func (r *Runtime) Down(ctx context.Context, id string, p runtime.Progress) error {
	unlock, err := r.lockSandbox(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	p.StageStarted("stop")
	err = r.stopUnits(ctx, id)
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
	// Data volumes first: they may be subvolumes, which RemoveAll cannot
	// remove, and they are the biggest thing to leak.
	deps, err := r.vols.List(ctx, "deps/"+id)
	if err != nil {
		return err
	}
	for _, dep := range deps {
		if err := r.vols.Delete(ctx, dataVolume(id, dep)); err != nil {
			return fmt.Errorf("remove the data of %s: %w", dep, err)
		}
	}
	if p, err := r.vols.Path("deps/" + id); err == nil {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	// The processes are gone (Down stopped them): the group can go.
	if err := r.removeGroup(id); err != nil {
		return fmt.Errorf("remove the resource group: %w", err)
	}
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
