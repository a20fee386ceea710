package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"sandpit.dev/sandpit/internal/runtime/local/logfile"
	"sandpit.dev/sandpit/internal/runtime/local/proc"
)

// baseEnv is what every process of a sandbox starts from; the template's
// env goes on top, and the markers go last so no template can unset them.
func (r *Runtime) baseEnv(id, name string) []string {
	env := []string{
		"HOME=" + r.cfg.HomeDir,
		"USER=" + r.cfg.User.Name,
		"LOGNAME=" + r.cfg.User.Name,
		"SHELL=/bin/sh",
		"TMPDIR=" + filepath.Join(r.SandboxDir(id), "tmp"),
		"SANDPIT_SANDBOX_NAME=" + name,
	}
	hasPath := false
	for _, k := range r.cfg.PassEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
			hasPath = hasPath || k == "PATH"
		}
	}
	if !hasPath {
		env = append(env, "PATH=/usr/local/go/bin:/usr/local/bin:/usr/bin:/bin")
	}
	return env
}

// mergeEnv overlays later lists on earlier ones (last value of a name
// wins) and returns the result sorted by name, so specs hash stably.
func mergeEnv(lists ...[]string) []string {
	m := map[string]string{}
	for _, l := range lists {
		for _, kv := range l {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// taskError is a task that ran and failed; it carries the end of its output
// so the sandbox's events say why without a trip to the logs.
type taskError struct {
	what string
	code int
	tail []string
}

// Error puts the last output line on the first line, since status
// messages and listings show only that, then the rest of the tail.
func (e *taskError) Error() string {
	msg := fmt.Sprintf("%s exited with code %d", e.what, e.code)
	if n := len(e.tail); n > 0 {
		msg += ": " + e.tail[n-1]
		if n > 1 {
			msg += "\nlast output:\n  " + strings.Join(e.tail, "\n  ")
		}
	}
	return msg
}

type task struct {
	unit   string
	what   string // "build of api", for messages
	stream string // log stream name: build, init, ...
	argv   []string
	dir    string
	env    []string
	log    *logfile.Writer
}

// tailBuffer keeps the last lines written through it.
type tailBuffer struct {
	mu    sync.Mutex
	lines []string
	part  []byte
	next  interface{ Write([]byte) (int, error) }
}

const tailLines = 12

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	for _, c := range p {
		if c == '\n' {
			t.lines = append(t.lines, string(t.part))
			if len(t.lines) > tailLines {
				t.lines = t.lines[1:]
			}
			t.part = t.part[:0]
		} else if len(t.part) < 400 {
			t.part = append(t.part, c)
		}
	}
	t.mu.Unlock()
	return t.next.Write(p)
}

func (t *tailBuffer) tail() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append([]string(nil), t.lines...)
	if len(t.part) > 0 {
		out = append(out, string(t.part))
	}
	return out
}

// runTask runs a one-off command of a sandbox (build, init, initdb) as the
// service user, in its own process group, logging its output. Cancelling
// ctx stops the whole group. If the server dies, the kernel kills the
// task's shell (Pdeathsig) and the next Up kills whatever it left.
func (r *Runtime) runTask(ctx context.Context, id string, t task) error {
	cmd := exec.Command(t.argv[0], t.argv[1:]...)
	cmd.Dir = t.dir
	cmd.Env = append(append([]string(nil), t.env...), proc.MarkerEnv(r.node, id, proc.RoleTask, t.unit)...)
	out := &tailBuffer{next: t.log.Stream(t.stream)}
	errOut := &tailBuffer{next: t.log.Stream(t.stream)}
	cmd.Stdout, cmd.Stderr = out, errOut
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: r.cfg.User.Credential()}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", t.what, err)
	}
	pid := cmd.Process.Pid
	r.trackTask(id, pid, true)
	defer r.trackTask(id, pid, false)

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = proc.SignalGroup(pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(r.cfg.StopTimeout):
			_ = proc.SignalGroup(pid, syscall.SIGKILL)
			<-done
		}
		_ = proc.SignalGroup(pid, syscall.SIGKILL)
		return fmt.Errorf("%s interrupted: %w", t.what, ctx.Err())
	}
	// Nothing a task started may outlive it.
	_ = proc.SignalGroup(pid, syscall.SIGKILL)
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			tail := mergeTails(out.tail(), errOut.tail())
			return &taskError{what: t.what, code: ee.ExitCode(), tail: tail}
		}
		return fmt.Errorf("%s: %w", t.what, err)
	}
	return nil
}

func mergeTails(a, b []string) []string {
	out := append(a, b...)
	if len(out) > tailLines {
		out = out[len(out)-tailLines:]
	}
	return out
}

// killStale kills task and exec processes of sandbox id that this server
// did not start: leftovers of a server that died mid-step.
func (r *Runtime) killStale(id string) {
	procs, err := proc.Scan(r.node)
	if err != nil {
		r.log.Warn("scan for stale processes", "sandbox", id, "err", err)
		return
	}
	for _, p := range procs {
		// Our tasks lead process groups of their own, so their children
		// (a build's compiler, the commands of an exec) are ours by group.
		if p.Sandbox != id || p.Role == proc.RoleShim || p.Role == proc.RoleService || r.ownTask(id, p.PID) || r.ownTask(id, p.PGID) {
			continue
		}
		r.log.Info("killing leftover process of an interrupted step", "sandbox", id, "pid", p.PID, "role", p.Role, "unit", p.Unit)
		_ = proc.SignalGroup(p.PGID, syscall.SIGKILL)
		_ = proc.Signal(p.PID, syscall.SIGKILL)
	}
}
