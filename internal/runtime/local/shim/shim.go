package shim

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"sandpit.dev/sandpit/internal/runtime/local/logfile"
	"sandpit.dev/sandpit/internal/runtime/local/proc"
)

// Restart backoff: quick at first, since most crashes at start are a
// dependency not quite up, then slower so a crash loop does not burn CPU.
const (
	backoffStart = 250 * time.Millisecond
	backoffMax   = 30 * time.Second
	// healthyAfter resets the backoff: a process that ran this long was
	// not crash-looping.
	healthyAfter = 10 * time.Second
	defaultStop  = 10 * time.Second
)

// Main is the shim's entry point: `sandpit shim SPEC-FILE`. It returns the
// process exit code.
func Main(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: sandpit shim SPEC-FILE (started by the server, not by hand)")
		return 2
	}
	spec, err := ReadSpec(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandpit shim:", err)
		return 1
	}
	s := &supervisor{spec: spec, status: Status{ShimPID: os.Getpid(), Hash: spec.Hash, StartedAt: time.Now().UTC()}}
	if err := s.run(); err != nil {
		fmt.Fprintln(os.Stderr, "sandpit shim:", err)
		return 1
	}
	return 0
}

type supervisor struct {
	spec   *Spec
	log    *logfile.Writer
	mu     sync.Mutex
	status Status
}

func (s *supervisor) setStatus(fn func(*Status)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(&s.status)
	s.status.UpdatedAt = time.Now().UTC()
	if err := WriteJSON(s.spec.Status, s.status, 0o644); err != nil {
		s.system("cannot write status file: %v", err)
	}
}

func (s *supervisor) system(format string, args ...any) {
	if s.log != nil {
		_ = s.log.WriteLine(time.Now(), "system", fmt.Sprintf(format, args...))
	}
}

func (s *supervisor) run() error {
	// Become a subreaper so that a service that daemonises (forks and lets
	// its parent exit) stays below us, where we can reap and kill it,
	// instead of escaping to init.
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	lw, err := logfile.Open(s.spec.Log, s.spec.LogMaxBytes)
	if err != nil {
		return err
	}
	s.log = lw
	defer lw.Close()
	s.joinCgroups()

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	// SIGPIPE must not kill the shim if a reader of ours goes away. It is
	// caught, not ignored: an ignored signal stays ignored across exec, and
	// services must start with SIGPIPE at its default (`yes | head` would
	// otherwise never end quietly).
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	backoff := backoffStart
	for restarts := 0; ; restarts++ {
		s.setStatus(func(st *Status) { st.State = StateStarting; st.Restarts = restarts })
		started := time.Now()
		code, sig, stopped, err := s.runOnce(sigs)
		ran := time.Since(started)
		if err != nil {
			s.system("cannot start: %v", err)
			code = 127
		}
		exitCode := code
		s.setStatus(func(st *Status) {
			st.PID = 0
			st.ExitCode = &exitCode
			st.ExitSignal = sig
		})
		if stopped {
			s.setStatus(func(st *Status) { st.State = StateStopped; st.Message = "stopped on request" })
			return nil
		}
		desc := fmt.Sprintf("exited with code %d", code)
		if sig != "" {
			desc = "killed by signal " + sig
		}
		restart := s.spec.Restart == "always" || s.spec.Restart == "" || (s.spec.Restart == "on-failure" && code != 0)
		if !restart {
			s.system("process %s; restart policy %q: not restarting", desc, s.spec.Restart)
			s.setStatus(func(st *Status) { st.State = StateExited; st.Message = "process " + desc })
			return nil
		}
		if ran >= healthyAfter {
			backoff = backoffStart
		}
		s.system("process %s after %s; restarting in %s", desc, ran.Round(time.Millisecond), backoff)
		s.setStatus(func(st *Status) {
			st.State = StateBackoff
			st.Message = fmt.Sprintf("process %s; restarting in %s", desc, backoff)
		})
		select {
		case <-time.After(backoff):
		case sg := <-sigs:
			s.system("received %v while waiting to restart: stopping", sg)
			s.setStatus(func(st *Status) { st.State = StateStopped; st.Message = "stopped on request" })
			return nil
		}
		backoff = min(backoff*2, backoffMax)
	}
}

// joinCgroups moves the shim into the spec's cgroups, so that the service
// it is about to start is born there. Failing to join does not stop the
// service: a sandbox without its limits is more use than no sandbox. The
// failure goes to the log, to stderr (the server's .shim.err file) and to
// the status, where the server reports the limits as not enforced.
func (s *supervisor) joinCgroups() {
	var errs []string
	for _, f := range s.spec.Cgroups {
		// "0" is the writing process, in v1 and v2 alike, and whatever
		// pid namespace we are in; cgroup.procs moves all its threads.
		fh, err := os.OpenFile(f, os.O_WRONLY, 0)
		if err == nil {
			_, err = fh.WriteString("0")
			if cerr := fh.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) == 0 {
		return
	}
	msg := fmt.Sprintf("could not join its resource group (%s): running without CPU and memory limits", strings.Join(errs, "; "))
	s.system("%s", msg)
	fmt.Fprintln(os.Stderr, "sandpit shim:", msg)
	s.mu.Lock()
	s.status.CgroupError = msg
	s.mu.Unlock()
}

// runOnce starts the service and waits for it to exit or for a stop signal.
func (s *supervisor) runOnce(sigs <-chan os.Signal) (code int, sig string, stopped bool, err error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return 0, "", false, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return 0, "", false, err
	}
	cmd := exec.Command(s.spec.Argv[0], s.spec.Argv[1:]...)
	cmd.Dir = s.spec.Dir
	cmd.Env = s.spec.Env
	// Pipes we own as *os.File: exec then does not wait for copying to
	// end, which a daemonised grandchild holding the pipe would block.
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.spec.Switch {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(s.spec.UID), Gid: uint32(s.spec.GID), Groups: []uint32{}}
	}
	startErr := cmd.Start()
	outW.Close()
	errW.Close()
	if startErr != nil {
		outR.Close()
		errR.Close()
		return 0, "", false, startErr
	}
	pid := cmd.Process.Pid
	var copying sync.WaitGroup
	for _, p := range []struct {
		r      *os.File
		stream string
	}{{outR, "stdout"}, {errR, "stderr"}} {
		copying.Add(1)
		go func(r *os.File, stream string) {
			defer copying.Done()
			defer r.Close()
			lw := s.log.Stream(stream)
			_, _ = io.Copy(lw, r)
			_ = lw.Flush()
		}(p.r, p.stream)
	}
	s.setStatus(func(st *Status) {
		st.State, st.PID, st.ExitCode, st.ExitSignal, st.Message = StateRunning, pid, nil, "", ""
	})

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var waitErr error
	select {
	case waitErr = <-done:
	case sg := <-sigs:
		stopped = true
		waitErr = s.stop(pid, sg, done)
	}
	// Whatever the service left in its group (workers, a daemonised
	// helper) goes with it, so a restart finds its ports free.
	_ = proc.SignalGroup(pid, syscall.SIGKILL)
	killOrphans(pid)
	copying.Wait()
	code, sig = exitStatus(cmd.ProcessState, waitErr)
	return code, sig, stopped, nil
}

// stop sends the stop signal to the service's group, waits for the grace
// period, then kills the group.
func (s *supervisor) stop(pid int, received os.Signal, done <-chan error) error {
	stopSig := s.spec.StopSignal
	if stopSig == 0 {
		stopSig = syscall.SIGTERM
	}
	timeout := s.spec.StopTimeout
	if timeout <= 0 {
		timeout = defaultStop
	}
	s.system("received %v: stopping (signal %v, then SIGKILL after %s)", received, stopSig, timeout)
	s.setStatus(func(st *Status) { st.Message = "stopping" })
	_ = proc.SignalGroup(pid, stopSig)
	grace := time.NewTimer(timeout)
	defer grace.Stop()
	var err error
	select {
	case err = <-done:
	case <-grace.C:
		s.system("still running %s after %v: sending SIGKILL", timeout, stopSig)
		_ = proc.SignalGroup(pid, syscall.SIGKILL)
		return <-done
	}
	// The main process is often a shell (`sh -c RUN`) that dies of the
	// signal at once while the program it started is still shutting down
	// cleanly: give the rest of the group the same grace period before
	// the caller's SIGKILL. Only now that the main process has been waited
	// for may we reap the others (reparented to us, the subreaper).
	for {
		reapOrphans()
		if !proc.GroupExists(pid) {
			return err
		}
		select {
		case <-grace.C:
			s.system("processes of the service still running %s after %v: sending SIGKILL", timeout, stopSig)
			return err
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func exitStatus(ps *os.ProcessState, err error) (int, string) {
	if ps == nil {
		return 127, ""
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), unix.SignalName(ws.Signal())
	}
	return ps.ExitCode(), ""
}

// killOrphans waits for the service's group to end and kills what escaped
// it: a process that left the group (a daemon that called setsid) is
// reparented to us, the subreaper, when its parent dies, and may hold the
// service's port or its output pipe (which would keep the log copy, and so
// the restart or the stop, waiting for ever). Killing one reparents its own
// children to us, hence the loop. It gives up after a bound; the server
// kills whatever carries the sandbox's marker when it deletes it.
func killOrphans(pgid int) {
	self := os.Getpid()
	deadline := time.Now().Add(5 * time.Second)
	for {
		reapOrphans()
		kids := proc.Children(self)
		if len(kids) == 0 && !proc.GroupExists(pgid) {
			return
		}
		if time.Now().After(deadline) {
			return
		}
		for _, k := range kids {
			_ = proc.Signal(k, syscall.SIGKILL)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// reapOrphans collects exited processes reparented to us as subreaper.
func reapOrphans() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
