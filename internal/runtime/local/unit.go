package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/runtime/local/proc"
	"sandpit.dev/sandpit/internal/runtime/local/shim"
)

// shimStartTimeout bounds how long a new shim may take to report that it
// started its service.
const shimStartTimeout = 10 * time.Second

// ensureShim makes unit run under a shim with spec. A shim that already
// runs the same spec (the server restarted, say) is adopted; one running an
// older spec is stopped first. salt joins the spec in its hash: what the
// spec does not show but a restart must follow (the checkout it runs in).
// It reports whether it adopted.
func (r *Runtime) ensureShim(ctx context.Context, id, unit string, spec *shim.Spec, salt string) (adopted bool, err error) {
	spec.Env = mergeEnv(spec.Env, proc.MarkerEnv(r.node, id, proc.RoleService, unit))
	if r.cfg.User.Switch {
		spec.Switch, spec.UID, spec.GID = true, r.cfg.User.UID, r.cfg.User.GID
	}
	spec.Log = r.runLog(id, unit)
	spec.LogMaxBytes = r.cfg.LogMaxBytes
	spec.Status = r.statusPath(id, unit)
	if spec.StopTimeout == 0 {
		spec.StopTimeout = r.cfg.StopTimeout
	}
	// Every process of the sandbox is born in its resource group. A spec
	// read back from disk (to start a dependency again) keeps its own.
	if spec.Cgroups == nil {
		spec.Cgroups = r.cgroupFiles(id)
	}
	spec.Hash = ""
	b, _ := json.Marshal(spec)
	if salt != "" {
		b = append(append(b, 0), salt...)
	}
	sum := sha256.Sum256(b)
	spec.Hash = hex.EncodeToString(sum[:12])

	if st, _ := shim.ReadStatus(spec.Status); st != nil && r.shimAlive(id, unit, st.ShimPID) {
		if st.Hash == spec.Hash {
			return true, nil
		}
		r.log.Info("service definition changed; restarting it", "sandbox", id, "unit", unit)
	}
	if err := r.stopUnits(ctx, id, unit); err != nil {
		return false, err
	}
	return false, r.startShim(ctx, id, unit, spec)
}

func (r *Runtime) startShim(ctx context.Context, id, unit string, spec *shim.Spec) error {
	specPath := r.specPath(id, unit)
	// The spec holds the service's env, which may carry credentials: only
	// the server (and the shim it starts) may read it.
	if err := shim.WriteJSON(specPath, spec, 0o600); err != nil {
		return fmt.Errorf("write spec of %s: %w", unit, err)
	}
	_ = os.Remove(spec.Status)
	errPath := specPath[:len(specPath)-len(".spec.json")] + ".shim.err"
	errFile, err := os.OpenFile(errPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	defer errFile.Close()
	argv := append(append([]string(nil), r.cfg.ShimCommand...), specPath)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(proc.MarkerEnv(r.node, id, proc.RoleShim, unit), "PATH="+os.Getenv("PATH"))
	cmd.Stdout, cmd.Stderr = errFile, errFile
	cmd.Dir = "/"
	// A session of its own: the shim outlives the server and is not hit
	// by signals sent to the server's process group (Ctrl-C in a terminal).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start shim for %s: %w", unit, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }() // reap it while we live

	deadline := time.After(shimStartTimeout)
	for {
		if st, _ := shim.ReadStatus(spec.Status); st != nil && st.State != shim.StateStarting {
			return nil
		}
		select {
		case <-exited:
			if st, _ := shim.ReadStatus(spec.Status); st != nil {
				return nil // it ran and ended; the caller reads why
			}
			msg, _ := os.ReadFile(errPath)
			return fmt.Errorf("shim for %s exited at start: %s", unit, strings.TrimSpace(string(msg)))
		case <-deadline:
			return fmt.Errorf("shim for %s did not start its process within %s", unit, shimStartTimeout)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// stopUnits stops every process of the given units of a sandbox (all units
// when none are named): shims get SIGTERM and stop their services with each
// service's stop signal; other processes' groups get SIGTERM; after the
// grace period whatever is left gets SIGKILL. It returns an error only if
// something survives SIGKILL.
func (r *Runtime) stopUnits(ctx context.Context, id string, units ...string) error {
	match := func(p proc.Process) bool {
		if p.Sandbox != id {
			return false
		}
		if len(units) == 0 {
			return true
		}
		for _, u := range units {
			if p.Unit == u {
				return true
			}
		}
		return false
	}
	find := func() []proc.Process {
		all, err := proc.Scan(r.node)
		if err != nil {
			r.log.Warn("scan processes", "err", err)
		}
		var out []proc.Process
		for _, p := range all {
			if match(p) {
				out = append(out, p)
			}
		}
		return out
	}
	procs := find()
	if len(procs) == 0 {
		return nil
	}
	shims := map[string]bool{}
	for _, p := range procs {
		if p.Role == proc.RoleShim {
			shims[p.Unit] = true
		}
	}
	for _, p := range procs {
		switch p.Role {
		case proc.RoleShim:
			_ = proc.Signal(p.PID, syscall.SIGTERM)
		case proc.RoleService:
			// Left to its shim, which knows the right stop signal. An
			// orphan (its shim was killed) gets that signal from us now,
			// rather than SIGKILL only after the whole grace period.
			if !shims[p.Unit] {
				sig := syscall.SIGTERM
				if spec, err := shim.ReadSpec(r.specPath(id, p.Unit)); err == nil && spec.StopSignal != 0 {
					sig = spec.StopSignal
				}
				_ = proc.SignalGroup(p.PGID, sig)
			}
		default:
			_ = proc.SignalGroup(p.PGID, syscall.SIGTERM)
		}
	}
	graceCtx, cancel := context.WithTimeout(ctx, r.cfg.StopTimeout+2*time.Second)
	defer cancel()
	// Watch the processes signalled (a few reads of /proc/<pid>) and
	// rescan the whole process table only once they are gone, to catch
	// any started meanwhile: a full scan per poll costs milliseconds on a
	// busy host, and a restart (a pool claim renaming a sandbox) waits on
	// this.
	gone := func() bool {
		for _, p := range procs {
			if _, alive := proc.Inspect(p.PID, r.node); alive {
				return false
			}
		}
		procs = find()
		return len(procs) == 0
	}
	if proc.WaitGone(graceCtx, gone) {
		return nil
	}
	left := find()
	for _, p := range left {
		r.log.Warn("process still running after the grace period: killing it", "sandbox", id, "pid", p.PID, "unit", p.Unit, "role", p.Role)
		_ = proc.SignalGroup(p.PGID, syscall.SIGKILL)
		_ = proc.Signal(p.PID, syscall.SIGKILL)
	}
	killCtx, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if !proc.WaitGone(killCtx, func() bool { return len(find()) == 0 }) {
		return fmt.Errorf("processes of sandbox %s survived SIGKILL: %v", id, find())
	}
	return nil
}

// stopRemoved stops the services and dependencies of a sandbox that its
// template no longer has (a new template version dropped them): Up makes
// the sandbox run as the instance describes, and nothing else. Their ports
// stay held until Down.
func (r *Runtime) stopRemoved(ctx context.Context, inst *runtime.Instance) error {
	keep := map[string]bool{}
	for _, n := range inst.Template.ServiceOrder {
		keep[n] = true
	}
	for _, n := range inst.Template.DependencyOrder {
		keep[n] = true
	}
	procs, err := proc.Scan(r.node)
	if err != nil {
		return err
	}
	var removed []string
	for _, p := range procs {
		if p.Sandbox == inst.ID && (p.Role == proc.RoleShim || p.Role == proc.RoleService) && !keep[p.Unit] && !slices.Contains(removed, p.Unit) {
			removed = append(removed, p.Unit)
		}
	}
	if len(removed) == 0 {
		return nil
	}
	r.log.Info("stopping what the template no longer has", "sandbox", inst.ID, "units", removed)
	return r.stopUnits(ctx, inst.ID, removed...)
}

// shimAlive reports whether pid is the running shim of unit (not merely
// some process of the sandbox that was given a recycled pid).
func (r *Runtime) shimAlive(id, unit string, pid int) bool {
	p, ok := proc.Inspect(pid, r.node)
	return ok && p.Sandbox == id && p.Role == proc.RoleShim && p.Unit == unit
}
