package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/runtime/local/proc"
	"sandpit.dev/sandpit/internal/runtime/local/shim"
	"sandpit.dev/sandpit/internal/template"
)

// Probe defaults; templates normally get them from the decoder's defaults.
const (
	defaultReadyTimeout  = 2 * time.Minute
	defaultReadyInterval = time.Second
	// firstProbeDelay is short because most services are up within tens of
	// milliseconds, and every millisecond of probe delay is launch time.
	firstProbeDelay = 5 * time.Millisecond
	attemptTimeout  = 2 * time.Second
)

// probeClient does not follow redirects (a 3xx is an answer) and keeps no
// idle connections, so probing never holds a service's sockets.
var probeClient = &http.Client{
	Timeout:       attemptTimeout,
	Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// probeTarget is what a readiness check needs to know about a service.
type probeTarget struct {
	id, name, unit string
	probe          *template.Probe
	ports          map[string]int
	workdir        string
	env            []string
}

// waitReady checks a service until it is ready, its process ends for good,
// or the probe's timeout passes (a permanent error: the sandbox fails and
// is kept for debugging).
func (r *Runtime) waitReady(ctx context.Context, t probeTarget) error {
	timeout, interval := defaultReadyTimeout, defaultReadyInterval
	if t.probe != nil {
		if t.probe.Timeout > 0 {
			timeout = t.probe.Timeout.D()
		}
		if t.probe.Interval > 0 {
			interval = t.probe.Interval.D()
		}
	}
	deadline := time.Now().Add(timeout)
	wait := firstProbeDelay
	var last error
	for {
		st, _ := shim.ReadStatus(r.statusPath(t.id, t.unit))
		if st != nil && st.Final() {
			return runtime.Permanent(fmt.Errorf("service %s %s before becoming ready; see `sandpit logs %s %s`", t.unit, st.Message, t.name, t.unit))
		}
		if st != nil && !r.shimAlive(t.id, t.unit, st.ShimPID) {
			// Killed from outside (not an exit the policy ended): worth
			// another attempt, which starts a new supervisor.
			return fmt.Errorf("the supervisor of service %s exited unexpectedly while waiting for it to be ready", t.unit)
		}
		running := st != nil && st.State == shim.StateRunning
		if running {
			if t.probe == nil {
				return nil
			}
			last = r.check(ctx, t)
			if last == nil {
				return nil
			}
		} else if st != nil {
			last = errors.New(st.Message)
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("service %s did not become ready within %s", t.unit, timeout)
			if last != nil {
				msg += ": last check: " + last.Error()
			}
			if st != nil && st.Restarts > 0 {
				msg += fmt.Sprintf(" (it restarted %d times)", st.Restarts)
			}
			return runtime.Permanent(fmt.Errorf("%s; see `sandpit logs %s %s`", msg, t.name, t.unit))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*3/2+time.Millisecond, interval)
	}
}

func (r *Runtime) check(ctx context.Context, t probeTarget) error {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	p := t.probe
	switch {
	case p.HTTP != nil:
		port := t.ports[p.HTTP.Port]
		path := p.HTTP.Path
		if path == "" {
			path = "/"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(port)+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "sandpit-probe")
		resp, err := probeClient.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", path, unwrapURLError(err))
		}
		resp.Body.Close()
		if resp.StatusCode >= 400 {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return nil
	case p.TCP != nil:
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(t.ports[p.TCP.Port]))
		if err != nil {
			return fmt.Errorf("connect to port %s: %w", p.TCP.Port, err)
		}
		return c.Close()
	case p.Exec != nil:
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", p.Exec.Command)
		cmd.Dir = t.workdir
		cmd.Env = append(append([]string(nil), t.env...), proc.MarkerEnv(r.node, t.id, proc.RoleTask, t.unit)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: r.cfg.User.Credential()}
		cmd.Cancel = func() error { return proc.SignalGroup(cmd.Process.Pid, syscall.SIGKILL) }
		out, err := cmd.CombinedOutput()
		if err != nil {
			msg := string(out)
			if len(msg) > 200 {
				msg = msg[len(msg)-200:]
			}
			return fmt.Errorf("%q: %v %s", p.Exec.Command, err, msg)
		}
		return nil
	}
	return nil
}

// unwrapURLError drops net/http's "Get \"http://...\":" prefix, which only
// repeats what the message already says.
func unwrapURLError(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}
