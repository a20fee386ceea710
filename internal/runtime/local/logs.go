package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/runtime/local/logfile"
	"sandpit.dev/sandpit/internal/runtime/local/proc"
	"sandpit.dev/sandpit/internal/runtime/local/shim"
)

// Logs implements runtime.LogReader: a unit's log is its shim-written
// output merged with its build/init output, in time order.
func (r *Runtime) Logs(ctx context.Context, id string, opts runtime.LogOptions, fn func(runtime.LogLine) error) error {
	h, err := r.loadHandle(ctx, id)
	if err != nil {
		return err
	}
	if h == nil {
		return fmt.Errorf("sandbox %s has no logs yet: %w", id, runtime.ErrNotFound)
	}
	var sources []logfile.Source
	for _, u := range h.Units {
		if opts.Service != "" && u.Name != opts.Service {
			continue
		}
		sources = append(sources,
			logfile.Source{Unit: u.Name, Path: r.taskLog(id, u.Name)},
			logfile.Source{Unit: u.Name, Path: r.runLog(id, u.Name)})
	}
	if len(sources) == 0 {
		return fmt.Errorf("no service or dependency %q: choose one of %s: %w", opts.Service, unitNames(h), runtime.ErrNotFound)
	}
	return logfile.Read(ctx, sources, opts.Tail, opts.Follow, func(l logfile.Line) error {
		return fn(runtime.LogLine{Time: l.Time, Service: l.Unit, Stream: l.Stream, Text: l.Text})
	})
}

func unitNames(h *handle) string {
	var names []string
	for _, u := range h.Units {
		names = append(names, u.Name)
	}
	return strings.Join(names, ", ")
}

// Exec implements runtime.Execer. A service's command runs in its workdir
// with its env and user, as the service itself would; a postgres
// dependency's runs with PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE
// set, so `sandpit exec NAME db -- psql` just works.
func (r *Runtime) Exec(ctx context.Context, id string, req runtime.ExecRequest) (int, error) {
	h, err := r.loadHandle(ctx, id)
	if err != nil {
		return -1, err
	}
	if h == nil {
		return -1, fmt.Errorf("sandbox %s has not started: %w", id, runtime.ErrNotFound)
	}
	u, ok := h.unit(req.Service)
	if !ok {
		return -1, fmt.Errorf("no service or dependency %q: choose one of %s: %w", req.Service, unitNames(h), runtime.ErrNotFound)
	}
	if len(req.Command) == 0 {
		return -1, errors.New("no command given")
	}
	var dir string
	var env []string
	if u.Kind == "service" {
		spec, err := shim.ReadSpec(r.specPath(id, u.Name))
		if err != nil {
			return -1, fmt.Errorf("service %s has not been started yet; wait until the sandbox is Ready", u.Name)
		}
		dir, env = spec.Dir, spec.Env
	} else {
		dir = r.depDir(id, u.Name)
		env = mergeEnv(r.baseEnv(id, h.Name), []string{
			"PGHOST=127.0.0.1", "PGPORT=" + strconv.Itoa(h.Ports[u.Name]["postgres"]), "PGUSER=" + postgresUser,
			"PGPASSWORD=" + r.readPassword(id, u.Name), "PGDATABASE=postgres",
		})
		if bin, err := r.pgBinForUnit(id, u.Name); err == nil {
			env = mergeEnv(env, []string{"PATH=" + bin + ":" + os.Getenv("PATH")})
		}
	}
	cmd := exec.Command(req.Command[0], req.Command[1:]...)
	cmd.Dir = dir
	cmd.Env = mergeEnv(env, proc.MarkerEnv(r.node, id, proc.RoleExec, u.Name))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = req.Stdin, req.Stdout, req.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: r.cfg.User.Credential()}
	// A client that never closes stdin must not keep Wait from returning
	// once the command has exited.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return 127, fmt.Errorf("command %q not found in the service's PATH", req.Command[0])
		}
		return -1, fmt.Errorf("run %q: %w", req.Command[0], err)
	}
	pid := cmd.Process.Pid
	r.trackTask(id, pid, true)
	defer r.trackTask(id, pid, false)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = proc.SignalGroup(pid, syscall.SIGKILL)
		<-done
		return -1, ctx.Err()
	}
	_ = proc.SignalGroup(pid, syscall.SIGKILL)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

// pgBinForUnit finds the binaries of the postgres a dependency runs, from
// its shim spec.
func (r *Runtime) pgBinForUnit(id, unit string) (string, error) {
	spec, err := shim.ReadSpec(r.specPath(id, unit))
	if err != nil {
		return "", err
	}
	return filepath.Dir(spec.Argv[0]), nil
}
