package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/sandbox"
)

// Exit codes of `sandpit ci run` besides COMMAND's own.
const (
	// ciNoSandbox: COMMAND did not run because there was no Ready
	// sandbox for it (create refused, launch failed, timed out).
	ciNoSandbox = 125
	// ciNotExecutable and ciNotFound: COMMAND could not be started, as a
	// shell says it.
	ciNotExecutable = 126
	ciNotFound      = 127
	// ciInterrupted: Ctrl-C (SIGINT) or SIGTERM; the sandbox was deleted.
	ciInterrupted = 130
)

// ciCleanupTimeout bounds the deletion at the end of a run.
const ciCleanupTimeout = 5 * time.Minute

func (a *app) ciCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "ci",
		Short: "Run a command (end-to-end tests) against a fresh sandbox, for CI jobs",
		Long: `Commands for CI jobs. sandpit ci run launches a sandbox, runs your tests
against it, deletes it when they pass and keeps it for debugging when they
fail. See examples/ci/github-actions.yml for a GitHub Actions workflow.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	c.AddCommand(a.ciRunCmd())
	return c
}

func (a *app) ciRunCmd() *cobra.Command {
	var tmpl, ref, name, in string
	var sets []string
	var keep, timeout time.Duration
	var noPool bool
	c := &cobra.Command{
		Use:   "run --template TEMPLATE [--ref REF] [flags] -- COMMAND [ARG...]",
		Short: "Launch a sandbox, run COMMAND against it, delete it on success, keep it on failure",
		Long: `Launch a sandbox (or claim a ready one from the template's warm pool), wait
until it is Ready showing progress on stderr, then run COMMAND on this machine
with the sandbox's addresses in its environment:

  SANDPIT_SANDBOX=NAME                 the sandbox's name
  SANDPIT_URL_<ENDPOINT>=URL           each endpoint's URL (the name upper-cased,
                                       '-' as '_'), e.g. SANDPIT_URL_APP
  SANDPIT_<DEP>_HOST, _PORT, _DATABASE each dependency's address and first
                                       database, e.g. SANDPIT_DB_PORT
  SANDPIT_SERVER                       the server, for sandpit commands in COMMAND

Passwords are not among them: the API never hands them out (a template can
put them in a service's env, and --in runs there).

COMMAND's output passes through, and its exit code becomes sandpit's (128+N
when a signal N killed it). When COMMAND succeeds, the sandbox is deleted
(sandpit waits until it is gone). When it fails, the sandbox is kept as it
is — processes running — in phase Failed for --keep-on-failure, then deleted
on its own; sandpit prints how to read its logs and exec into it. With
--keep-on-failure 0 it is deleted anyway.

With --in SERVICE, COMMAND runs in that service's (or dependency's)
environment inside the sandbox instead, as with sandpit exec, the variables
above added with env(1).

Exit codes: COMMAND's; 125 when COMMAND did not run because the sandbox
could not be created or did not become Ready (it is kept the same way, for
debugging); 126/127 when COMMAND cannot be executed or is not found; 130
after Ctrl-C or SIGTERM: COMMAND gets SIGINT, then the sandbox is deleted
(a second Ctrl-C exits at once); 2 for mistakes on the command
line.

Without --name the sandbox is named from the template, the ref and a random
suffix (shop-feature-login-k3x9q).

Examples:
  sandpit ci run --template shop --ref "$GITHUB_HEAD_REF" -- make e2e
  sandpit ci run -t shop --keep-on-failure 4h -- sh -c 'curl -fsS "$SANDPIT_URL_APP/healthz"'
  sandpit ci run -t shop --in api -- go test ./e2e/...`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return fmt.Errorf("requires at least 1 arg: the command to run, after --, as in sandpit ci run --template TEMPLATE -- make e2e")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 0 {
				return fmt.Errorf("invalid argument: put the command after --, as in sandpit ci run --template TEMPLATE -- make e2e")
			}
			if tmpl == "" {
				return fmt.Errorf("required flag \"template\" not set: sandpit ci run --template TEMPLATE -- COMMAND (see sandpit template list)")
			}
			if keep < 0 {
				return fmt.Errorf("invalid argument %q for --keep-on-failure: give a duration like 24h, or 0 to delete a failed sandbox too", cmd.Flags().Lookup("keep-on-failure").Value)
			}
			set, err := parseSets(sets)
			if err != nil {
				return err
			}
			if name == "" {
				name = ciSandboxName(tmpl, ref)
			} else if err := sandbox.ValidateSandboxName(name); err != nil {
				return fmt.Errorf("invalid argument %q for --name: %v", name, err)
			}
			cl, err := a.connect()
			if err != nil {
				return err
			}
			r := &ciRun{a: a, cl: cl, name: name, keep: keep, in: in, command: args}
			code := r.run(cmd.Context(), client.CreateSandboxRequest{Name: name, Template: tmpl, Ref: ref, Set: set, NoPool: noPool}, timeout)
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	c.Flags().StringVarP(&tmpl, "template", "t", "", "template to launch (see sandpit template list)")
	c.Flags().StringVar(&ref, "ref", "", "git ref (branch, tag or commit) to check out (default: the template's)")
	c.Flags().StringVar(&name, "name", "", "sandbox name (default: template-ref-<random>)")
	c.Flags().StringArrayVar(&sets, "set", nil, "override, KEY=VALUE (repeatable): env.KEY or services.SERVICE.env.KEY")
	c.Flags().DurationVar(&keep, "keep-on-failure", 24*time.Hour, "keep a failed sandbox this long for debugging; 0: delete it anyway")
	c.Flags().StringVar(&in, "in", "", "run COMMAND in this service's environment inside the sandbox, not on this machine")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "how long to wait for the sandbox to be Ready")
	c.Flags().BoolVar(&noPool, "no-pool", false, "launch a fresh sandbox even when the template's warm pool has one ready")
	return c
}

// parseSets turns --set KEY=VALUE flags into overrides.
func parseSets(sets []string) (map[string]string, error) {
	set := map[string]string{}
	for _, kv := range sets {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid argument %q for --set: write KEY=VALUE, e.g. --set env.LOG_LEVEL=debug", kv)
		}
		set[k] = v
	}
	return set, nil
}

// ciSandboxName derives a sandbox name from a template and ref, with a
// random suffix so that runs of the same ref at once do not collide.
func ciSandboxName(tmpl, ref string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [5]byte
	_, _ = rand.Read(b[:])
	suffix := make([]byte, len(b))
	for i, c := range b {
		suffix[i] = alphabet[int(c)%len(alphabet)]
	}
	return sandbox.SuffixedName(tmpl+"-"+ref, "ci", string(suffix))
}

// ciRun is one `sandpit ci run`.
type ciRun struct {
	a       *app
	cl      *client.Client
	name    string
	keep    time.Duration
	in      string
	command []string
}

func (r *ciRun) errorf(format string, args ...any) {
	fmt.Fprintf(r.a.env.Stderr, "Error: "+format+"\n", args...)
}

// run does the whole job and returns the exit code.
func (r *ciRun) run(ctx context.Context, req client.CreateSandboxRequest, timeout time.Duration) int {
	stderr := r.a.env.Stderr
	if r.in != "" {
		if code := r.checkService(ctx, req.Template); code != 0 {
			return code
		}
	}
	if r.keep > 0 {
		// A launch that fails is kept as long as failed tests are.
		d := sandbox.Duration(r.keep)
		req.Lifecycle = &sandbox.LifecycleOverrides{KeepFailed: &d}
	}
	sb, err := r.cl.CreateSandbox(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			// It may have been created before the interruption.
			return r.interrupted()
		}
		r.errorf("%v", r.a.explain(err))
		return ciNoSandbox
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	final, err := r.a.follow(wctx, r.cl, sb)
	cancel()
	switch {
	case ctx.Err() != nil:
		return r.interrupted()
	case errors.Is(err, context.DeadlineExceeded):
		return r.failed(fmt.Sprintf("not Ready after %s", timeout), ciNoSandbox, fmt.Sprintf("\nSandbox %s is not Ready after %s; COMMAND did not run.\n", r.name, timeout))
	case err != nil:
		r.errorf("waiting for sandbox %s: %v", r.name, err)
		return r.failed("lost track of the launch: "+firstLine(err.Error()), ciNoSandbox, "")
	case final.Status.Phase == sandbox.PhaseFailed:
		return r.failed("", ciNoSandbox, fmt.Sprintf("\nSandbox %s failed to launch: %s\nCOMMAND did not run.\n", r.name, withoutLogsHint(final.Status.Message)))
	}
	msg := fmt.Sprintf("\nSandbox %s is Ready", r.name)
	if t := final.Status.Timing; t != nil && final.Spec.ClaimedAt == nil {
		msg += fmt.Sprintf(" (%s)", dur(ms2d(t.TotalMS)))
	} else if final.Spec.ClaimedAt != nil {
		msg += " (claimed from the warm pool)"
	}
	fmt.Fprintln(stderr, msg)
	for _, ep := range final.Status.Endpoints {
		fmt.Fprintf(stderr, "  %s\t%s\n", ep.Name, ep.URL)
	}
	vars := ciEnv(final, r.cl.BaseURL())
	where := "on this machine"
	if r.in != "" {
		where = "in " + r.in
	}
	fmt.Fprintf(stderr, "Running %s: %s\n\n", where, shellJoin(r.command))

	var code int
	var runErr error
	if r.in != "" {
		code, runErr = r.runIn(ctx, vars)
	} else {
		code, runErr = r.runLocal(ctx, vars)
	}
	if ctx.Err() != nil {
		return r.interrupted()
	}
	if runErr != nil {
		r.errorf("%v", runErr)
	}
	if code == 0 {
		fmt.Fprintf(stderr, "\nCOMMAND succeeded; deleting sandbox %s ...\n", r.name)
		if err := r.deleteAndWait(); err != nil {
			r.errorf("delete sandbox %s: %v (it goes on its own when its TTL ends, or: sandpit delete %s)", r.name, err, r.name)
		} else {
			fmt.Fprintf(stderr, "sandbox %s deleted\n", r.name)
		}
		return 0
	}
	reason := fmt.Sprintf("ci command exited %d", code)
	if runErr != nil {
		reason = "ci command could not run: " + firstLine(runErr.Error())
	}
	return r.failed(reason, code, fmt.Sprintf("\nCOMMAND failed (exit %d).\n", code))
}

// checkService makes sure --in names a service or dependency of the
// template before anything is launched.
func (r *ciRun) checkService(ctx context.Context, tmpl string) int {
	ti, err := r.cl.GetTemplate(ctx, tmpl, 0)
	if err != nil {
		r.errorf("%v", r.a.explain(err))
		return ciNoSandbox
	}
	names := append(append([]string{}, ti.Services...), ti.Dependencies...)
	for _, n := range names {
		if n == r.in {
			return 0
		}
	}
	sort.Strings(names)
	r.errorf("template %s has no service or dependency %q for --in: use one of %s", tmpl, r.in, strings.Join(names, ", "))
	return 2
}

// failed ends a run whose tests (or launch) failed: the sandbox is kept as
// Failed for r.keep, or deleted with --keep-on-failure 0. reason, when set,
// is the failure to record (a launch failure records itself).
func (r *ciRun) failed(reason string, code int, headline string) int {
	stderr := r.a.env.Stderr
	fmt.Fprint(stderr, headline)
	if r.keep == 0 {
		fmt.Fprintf(stderr, "Deleting sandbox %s (--keep-on-failure 0) ...\n", r.name)
		if err := r.deleteAndWait(); err != nil {
			r.errorf("delete sandbox %s: %v (sandpit delete %s)", r.name, err, r.name)
		} else {
			fmt.Fprintf(stderr, "sandbox %s deleted\n", r.name)
		}
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sb, err := r.cl.GetSandbox(ctx, r.name)
	if err == nil && reason != "" {
		sb, err = r.cl.FailSandbox(ctx, r.name, reason, r.keep.String())
		if err == nil {
			// The reconciler marks it Failed (and so starts the keep
			// time) in a moment.
			var got *client.Sandbox
			got, err = r.cl.WaitFor(ctx, r.name, 100*time.Millisecond, func(cur *client.Sandbox) bool {
				return cur == nil || cur.Status.Phase == sandbox.PhaseFailed && !cur.Spec.FailRequested.Pending(cur.Status.FailRequestHonored)
			})
			if got != nil {
				sb = got
			}
		}
	}
	if err != nil {
		r.errorf("keep sandbox %s for debugging: %v", r.name, r.a.explain(err))
		return code
	}
	until := "until deleted"
	if sb != nil && sb.Deadlines != nil && sb.Deadlines.DeleteAt != nil {
		until = fmt.Sprintf("until %s (%s from now)", sb.Deadlines.DeleteAt.Local().Format("2006-01-02 15:04 MST"), humanDur(time.Until(*sb.Deadlines.DeleteAt).Round(time.Minute)))
	} else if sb != nil && sb.Lifecycle != nil && sb.Lifecycle.KeepFailed > 0 {
		until = fmt.Sprintf("for %s", humanDur(sb.Lifecycle.KeepFailed.D()))
	}
	service := "SERVICE"
	if sb != nil && len(sb.Status.Services) > 0 {
		service = sb.Status.Services[0].Name
	}
	if r.in != "" {
		service = r.in
	}
	logs := ""
	if sb != nil && sb.Status.Phase == sandbox.PhaseFailed {
		logs = failedServiceArg(sb)
	}
	fmt.Fprintf(stderr, "Sandbox %s is kept as Failed for debugging %s, then deleted:\n", r.name, until)
	tw := newTable(stderr)
	fmt.Fprintf(tw, "  sandpit logs %s%s\tits services' output\n", r.name, logs)
	fmt.Fprintf(tw, "  sandpit exec %s %s -- sh\ta shell in a service\n", r.name, service)
	fmt.Fprintf(tw, "  sandpit get %s\tstate, endpoints, deadlines\n", r.name)
	fmt.Fprintf(tw, "  sandpit delete %s\tdelete it now\n", r.name)
	_ = tw.Flush()
	return code
}

// interrupted deletes the sandbox after Ctrl-C: the run was cancelled, no
// test failed, so there is nothing to keep.
func (r *ciRun) interrupted() int {
	fmt.Fprintf(r.a.env.Stderr, "\nInterrupted; deleting sandbox %s (Ctrl-C again stops waiting; the server finishes the deletion) ...\n", r.name)
	if err := r.deleteAndWait(); err != nil && !client.IsNotFound(err) {
		r.errorf("delete sandbox %s: %v (sandpit delete %s)", r.name, err, r.name)
	} else {
		fmt.Fprintf(r.a.env.Stderr, "sandbox %s deleted\n", r.name)
	}
	return ciInterrupted
}

// deleteAndWait deletes the sandbox and waits until it is gone, on its own
// clock: the run's context may be cancelled already.
func (r *ciRun) deleteAndWait() error {
	ctx, cancel := context.WithTimeout(context.Background(), ciCleanupTimeout)
	defer cancel()
	if _, err := r.cl.DeleteSandbox(ctx, r.name); err != nil {
		if client.IsNotFound(err) {
			return nil
		}
		return err
	}
	err := r.cl.Watch(ctx, r.name, 0, client.WatchHandler{})
	if client.IsNotFound(err) {
		return nil
	}
	return err
}

// runLocal runs COMMAND on this machine. On cancellation (Ctrl-C) it
// forwards SIGINT and waits for COMMAND to end.
func (r *ciRun) runLocal(ctx context.Context, vars []string) (int, error) {
	c := exec.Command(r.command[0], r.command[1:]...)
	c.Env = append(os.Environ(), vars...)
	c.Stdin, c.Stdout, c.Stderr = r.a.env.Stdin, r.a.env.Stdout, r.a.env.Stderr
	// Output still being copied after COMMAND exited (a daemon it left
	// holding the pipe) does not hold the run up for long.
	c.WaitDelay = 5 * time.Second
	if err := c.Start(); err != nil {
		switch {
		case errors.Is(err, exec.ErrNotFound), errors.Is(err, os.ErrNotExist):
			return ciNotFound, fmt.Errorf("run %s: %w", r.command[0], err)
		default:
			return ciNotExecutable, fmt.Errorf("run %s: %w", r.command[0], err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		// COMMAND is in the foreground process group, so a terminal's
		// Ctrl-C reached it too; a SIGINT sent to sandpit alone did not.
		_ = c.Process.Signal(os.Interrupt)
		select {
		case err = <-done:
		case <-time.After(5 * time.Second):
			_ = c.Process.Kill()
			err = <-done
		}
	}
	return exitCode(err)
}

// exitCode turns Wait's answer into a shell-style exit code.
func exitCode(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 1, err
}

// runIn runs COMMAND in a service's environment through the exec API.
func (r *ciRun) runIn(ctx context.Context, vars []string) (int, error) {
	argv := append(append([]string{"env"}, vars...), r.command...)
	code, err := r.cl.Exec(ctx, r.name, client.ExecRequest{Service: r.in, Command: argv}, client.ExecIO{Stdout: r.a.env.Stdout, Stderr: r.a.env.Stderr})
	if err != nil {
		if code > 0 {
			return code, err // could not run (127: not found)
		}
		return 1, fmt.Errorf("exec in %s: %w", r.in, err)
	}
	return code, nil
}

// ciEnv is what COMMAND learns of the sandbox, as KEY=VALUE, sorted.
func ciEnv(sb *client.Sandbox, server string) []string {
	vars := []string{"SANDPIT_SANDBOX=" + sb.Name, "SANDPIT_SERVER=" + server}
	for _, ep := range sb.Status.Endpoints {
		vars = append(vars, "SANDPIT_URL_"+envName(ep.Name)+"="+ep.URL)
	}
	for _, d := range sb.Status.Dependencies {
		p := "SANDPIT_" + envName(d.Name) + "_"
		if d.Host != "" {
			vars = append(vars, p+"HOST="+d.Host)
		}
		if d.Port > 0 {
			vars = append(vars, fmt.Sprintf("%sPORT=%d", p, d.Port))
		}
		if len(d.Databases) > 0 {
			vars = append(vars, p+"DATABASE="+d.Databases[0])
		}
	}
	sort.Strings(vars)
	return vars
}

// envName makes a name (of an endpoint, a dependency) part of a variable
// name: upper-cased, '-' as '_'.
func envName(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "_")) }

// humanDur formats a whole duration without zero units: 24h, 1h30m, 90s.
func humanDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// shellJoin quotes args for showing as one shell command line.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"$;&|<>*?()\\`") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
