package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/sandbox"
)

// The lifecycle commands: suspend, resume, extend, pin, unpin.

func (a *app) suspendCmd() *cobra.Command {
	var output string
	var wait bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "suspend NAME",
		Short: "Suspend a sandbox: stop its processes, keep its files and data",
		Long: `Suspend a sandbox: its services and dependencies are stopped and their
memory and ports freed; its checkout, builds and databases stay on disk, so a
suspended sandbox costs nothing but disk space. The next request to one of
its endpoints wakes it (the request waits meanwhile), and so does
sandpit resume.

Sandboxes are also suspended on their own after a while without activity
(lifecycle.idle_suspend in the template, or create --idle-suspend); suspend
does it now. With --wait, return once the sandbox is Suspended.

  sandpit suspend demo
  sandpit suspend demo --wait
  sandpit resume demo --wait`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "table", "json", "yaml"); err != nil {
				return err
			}
			cl, err := a.connect()
			if err != nil {
				return err
			}
			name := args[0]
			start := time.Now()
			sb, err := cl.SuspendSandbox(cmd.Context(), name)
			if err != nil {
				return err
			}
			wake := fmt.Sprintf("a request to one of its endpoints wakes it, or sandpit resume %s", name)
			if sb.Status.Phase == sandbox.PhaseSuspended {
				if output != "table" {
					return printData(a.env.Stdout, output, sb)
				}
				fmt.Fprintf(a.env.Stdout, "sandbox %s is already suspended%s\n", name, suspendedSince(sb, "since", time.Now()))
				fmt.Fprintln(a.env.Stderr, wake)
				return nil
			}
			if !wait {
				if output != "table" {
					return printData(a.env.Stdout, output, sb)
				}
				fmt.Fprintf(a.env.Stdout, "sandbox %s is being suspended\n", name)
				fmt.Fprintf(a.env.Stderr, "%s; follow it with sandpit events %s -f (or suspend with --wait)\n", wake, name)
				return nil
			}
			ctx, cancel := withTimeout(cmd.Context(), timeout)
			defer cancel()
			fmt.Fprintf(a.env.Stderr, "suspending %s ...\n", name)
			since := start
			if t := sb.Spec.SuspendRequestedAt; t != nil {
				since = *t
			}
			var final *client.Sandbox
			err = cl.Watch(ctx, name, 0, client.WatchHandler{
				Event: func(ev client.Event) error {
					// Only what goes wrong with this suspension.
					if ev.SandboxID == sb.ID && !ev.Time.Before(since) &&
						(ev.Type == sandbox.EventWarning || ev.Reason == sandbox.ReasonStageFailed) {
						fmt.Fprintf(a.env.Stderr, "  %s\n", firstLine(ev.Message))
					}
					return nil
				},
				Sandbox: func(cur *client.Sandbox) error {
					if cur.ID != sb.ID {
						return nil
					}
					switch cur.Status.Phase {
					case sandbox.PhaseSuspended, sandbox.PhaseFailed:
						final = cur
						return client.ErrStopWatch
					}
					return nil
				},
				Deleted: func() error { return fmt.Errorf("sandbox %s was deleted while it was being suspended", name) },
			})
			if err != nil {
				if errors.Is(err, context.DeadlineExceeded) {
					return fmt.Errorf("sandbox %s is not suspended after %s (the request stands): see sandpit events %s", name, timeout, name)
				}
				return err
			}
			if output != "table" {
				if err := printData(a.env.Stdout, output, final); err != nil {
					return err
				}
			}
			if final.Status.Phase == sandbox.PhaseFailed {
				fmt.Fprintf(a.env.Stderr, "sandbox %s failed before it could be suspended: %s\n", name, withoutLogsHint(final.Status.Message))
				return &exitError{code: 1}
			}
			if output == "table" {
				fmt.Fprintf(a.env.Stdout, "sandbox %s suspended (%s): processes stopped, files and data kept\n", name, dur(time.Since(start)))
			}
			fmt.Fprintln(a.env.Stderr, wake)
			return nil
		},
	}
	c.Flags().BoolVarP(&wait, "wait", "w", false, "wait until the sandbox is Suspended")
	c.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "with --wait, how long to wait")
	outputFlag(c, &output, "table, json, yaml")
	return c
}

// suspendedSince says since when and why a sandbox is suspended, after
// word: " (suspended 12m ago: idle for 30m)".
func suspendedSince(sb *client.Sandbox, word string, now time.Time) string {
	st := sb.Status
	if st.SuspendedAt == nil {
		return ""
	}
	s := " (" + word + " " + ago(*st.SuspendedAt, now)
	if st.SuspendReason != "" {
		s += ": " + st.SuspendReason
	}
	return s + ")"
}

func (a *app) resumeCmd() *cobra.Command {
	var output string
	var wait bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "resume NAME",
		Short: "Wake a suspended sandbox",
		Long: `Wake a suspended sandbox: its dependencies and services start again from
what was kept on disk, with the same data, ports reassigned as needed. A
request to one of its endpoints wakes it too; resume does it ahead of time
(or from a script). Resuming counts as activity, so the idle countdown starts
over. With --wait, follow it until the sandbox is Ready, print how long
waking took, and its endpoint URLs.

  sandpit resume demo
  sandpit resume demo --wait`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "table", "json", "yaml"); err != nil {
				return err
			}
			cl, err := a.connect()
			if err != nil {
				return err
			}
			name := args[0]
			sb, err := cl.ResumeSandbox(cmd.Context(), name)
			if err != nil {
				return err
			}
			suspended := sb.Status.Phase == sandbox.PhaseSuspended
			if !wait {
				if output != "table" {
					return printData(a.env.Stdout, output, sb)
				}
				if !suspended {
					fmt.Fprintf(a.env.Stdout, "sandbox %s is not suspended (%s)\n", name, phaseOf(sb))
					return nil
				}
				fmt.Fprintf(a.env.Stdout, "sandbox %s is resuming\n", name)
				fmt.Fprintf(a.env.Stderr, "follow it with: sandpit events %s -f   (or resume with --wait)\n", name)
				return nil
			}
			ctx, cancel := withTimeout(cmd.Context(), timeout)
			defer cancel()
			var final *client.Sandbox
			switch sb.Status.Phase {
			case sandbox.PhaseSuspended:
				final, err = a.followResume(ctx, cl, sb)
			case sandbox.PhasePending, sandbox.PhaseProvisioning:
				// Launching (perhaps asked to suspend mid-launch): the
				// launch carries on.
				final, err = a.follow(ctx, cl, sb)
			default:
				final = sb
				fmt.Fprintf(a.env.Stderr, "sandbox %s was not suspended (%s)\n", name, phaseOf(sb))
			}
			if err != nil {
				if errors.Is(err, context.DeadlineExceeded) {
					return fmt.Errorf("sandbox %s is not Ready after %s (it keeps waking): watch it with sandpit events %s -f", name, timeout, name)
				}
				return err
			}
			launching := sb.Status.Phase == sandbox.PhasePending || sb.Status.Phase == sandbox.PhaseProvisioning
			if launching || final.Status.Phase != sandbox.PhaseReady {
				return a.reportLaunch(final, output) // it says what failed
			}
			if output != "table" {
				return printData(a.env.Stdout, output, final)
			}
			if r := final.Status.Resume; suspended && r != nil && r.TookMS > 0 {
				fmt.Fprintf(a.env.Stderr, "\nSandbox %s is Ready (resumed in %s)\n", name, dur(ms2d(r.TookMS)))
			}
			for _, ep := range final.Status.Endpoints {
				fmt.Fprintf(a.env.Stdout, "%s\t%s\n", ep.Name, ep.URL)
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&wait, "wait", "w", false, "wait until the sandbox is Ready (or Failed), showing progress")
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "with --wait, how long to wait")
	outputFlag(c, &output, "table, json, yaml")
	return c
}

// followResume watches a suspended sandbox wake until it is Ready or
// Failed, drawing progress on stderr. sb is the answer to the resume
// request: what happened before it is history.
func (a *app) followResume(ctx context.Context, c *client.Client, sb *client.Sandbox) (*client.Sandbox, error) {
	since := sb.UpdatedAt
	header := fmt.Sprintf("Resuming sandbox %s%s", sb.Name, suspendedSince(sb, "suspended", time.Now()))
	// The stages shown are the wake's, not the last launch's.
	shown := *sb
	shown.Status.Stages = nil
	p := newProgressView(a.env.Stderr, a.env.IsTerminal(a.env.Stderr), &shown, header, since, true)
	defer p.close()
	var final *client.Sandbox
	err := c.Watch(ctx, sb.Name, 0, client.WatchHandler{
		Event: func(ev client.Event) error {
			if ev.SandboxID == sb.ID {
				p.event(ev)
			}
			return nil
		},
		Sandbox: func(cur *client.Sandbox) error {
			if cur.ID != sb.ID {
				return nil
			}
			if r := cur.Status.Resume; r != nil && !r.StartedAt.Before(since) {
				p.update(cur)
			}
			ph := cur.Status.Phase
			if cur.Status.ObservedGeneration >= sb.Generation && (ph == sandbox.PhaseReady || ph == sandbox.PhaseFailed) {
				final = cur
				return client.ErrStopWatch
			}
			return nil
		},
		Deleted: func() error {
			return fmt.Errorf("sandbox %s was deleted while it was waking", sb.Name)
		},
	})
	if err != nil {
		return nil, err
	}
	return final, nil
}

func (a *app) extendCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "extend NAME DURATION",
		Short: "Push back a sandbox's expiry: it is deleted DURATION from now instead",
		Long: `Set when a sandbox expires to DURATION from now (24h, 90m; a week is
168h), whatever its TTL said before; run it again to move it again. Only a
sandbox with a TTL (lifecycle.ttl in its template, or create --ttl) has an
expiry to push back: one without lives until it is deleted. To keep a
sandbox regardless of its TTL, pin it.

  sandpit extend pr-42 24h
  sandpit extend pr-42 72h -o json | jq -r .deadlines.expires_at`,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.ExactArgs(2)(cmd, args); err != nil {
				return err
			}
			if d, err := time.ParseDuration(args[1]); err != nil || d <= 0 {
				return fmt.Errorf("invalid argument %q for DURATION: give a positive duration like 24h or 90m", args[1])
			}
			return nil
		},
	}
	return actCommand(a, c, func(ctx context.Context, cl *client.Client, args []string) (*client.Sandbox, error) {
		return cl.ExtendSandbox(ctx, args[0], args[1])
	}, func(sb *client.Sandbox, now time.Time) {
		exp := sb.Spec.ExpiresAt
		if d := sb.Deadlines; d != nil && d.ExpiresAt != nil {
			exp = d.ExpiresAt
		}
		if exp == nil {
			fmt.Fprintf(a.env.Stdout, "sandbox %s extended\n", sb.Name)
			return
		}
		fmt.Fprintf(a.env.Stdout, "sandbox %s expires %s\n", sb.Name, at(*exp, now))
		if sb.Spec.Pin != nil {
			fmt.Fprintf(a.env.Stderr, "it is pinned: the expiry applies once it is unpinned (sandpit unpin %s)\n", sb.Name)
		}
	})
}

func (a *app) pinCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "pin NAME",
		Short: "Keep a sandbox: no idle suspend, no expiry, no retention until it is unpinned",
		Long: `Pin a sandbox so that its lifecycle leaves it alone: it is not suspended
when idle, and not deleted when its TTL or the server's retention of
suspended sandboxes runs out, until it is unpinned. It can still be
suspended, resumed and deleted by hand. The server limits how many
sandboxes each user may pin (sandpit serve --max-pins-per-user).

  sandpit pin demo
  sandpit unpin demo`,
		Args: cobra.ExactArgs(1),
	}
	return actCommand(a, c, func(ctx context.Context, cl *client.Client, args []string) (*client.Sandbox, error) {
		return cl.PinSandbox(ctx, args[0])
	}, func(sb *client.Sandbox, now time.Time) {
		by := ""
		if p := sb.Spec.Pin; p != nil && p.By != "" {
			by = " by " + p.By
		}
		fmt.Fprintf(a.env.Stdout, "sandbox %s is pinned%s: no idle suspend, expiry or retention until sandpit unpin %s\n", sb.Name, by, sb.Name)
	})
}

func (a *app) unpinCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "unpin NAME",
		Short: "Let a sandbox's lifecycle apply again: idle suspend, expiry, retention",
		Long: `Unpin a sandbox: its idle suspend, TTL and the server's retention apply
again, counted as if it had never been pinned (a TTL that ran out while it
was pinned deletes it right away; sandpit extend first to avoid that). The
command says what its lifecycle will do next.

  sandpit unpin demo`,
		Args: cobra.ExactArgs(1),
	}
	return actCommand(a, c, func(ctx context.Context, cl *client.Client, args []string) (*client.Sandbox, error) {
		return cl.UnpinSandbox(ctx, args[0])
	}, func(sb *client.Sandbox, now time.Time) {
		plans := plansOf(sb, now)
		if len(plans) == 0 {
			fmt.Fprintf(a.env.Stdout, "sandbox %s is not pinned: nothing is planned for it (no idle suspend, no expiry)\n", sb.Name)
			return
		}
		fmt.Fprintf(a.env.Stdout, "sandbox %s is not pinned: it %s\n", sb.Name, strings.Join(plans, ", and "))
	})
}

// actCommand turns c into a command that changes a sandbox and prints the
// answer: as JSON or YAML with -o, else through table for people.
func actCommand(a *app, c *cobra.Command, act func(ctx context.Context, cl *client.Client, args []string) (*client.Sandbox, error), table func(sb *client.Sandbox, now time.Time)) *cobra.Command {
	var output string
	outputFlag(c, &output, "table, json, yaml")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(output, "table", "json", "yaml"); err != nil {
			return err
		}
		cl, err := a.connect()
		if err != nil {
			return err
		}
		sb, err := act(cmd.Context(), cl, args)
		if err != nil {
			return err
		}
		if output != "table" {
			return printData(a.env.Stdout, output, sb)
		}
		table(sb, time.Now())
		return nil
	}
	return c
}

func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// plansOf says what the lifecycle will do to a sandbox, soonest first:
// "suspends 2026-11-22 14:12 UTC (in 12m) unless it is used".
func plansOf(sb *client.Sandbox, now time.Time) []string {
	d := sb.Deadlines
	if d == nil {
		return nil
	}
	type plan struct {
		t    time.Time
		text string
	}
	var plans []plan
	if d.SuspendAt != nil {
		plans = append(plans, plan{*d.SuspendAt, "suspends " + at(*d.SuspendAt, now) + " unless it is used"})
	}
	if d.ExpiresAt != nil {
		plans = append(plans, plan{*d.ExpiresAt, "expires " + at(*d.ExpiresAt, now)})
	}
	if d.DeleteAt != nil {
		plans = append(plans, plan{*d.DeleteAt, "is deleted " + at(*d.DeleteAt, now)})
	}
	sort.SliceStable(plans, func(i, j int) bool { return plans[i].t.Before(plans[j].t) })
	out := make([]string, len(plans))
	for i, p := range plans {
		out[i] = p.text
	}
	return out
}

// nextLifecycle is the LIFECYCLE column of list: the next thing the
// lifecycle does on its own, or why it does nothing.
func nextLifecycle(sb *client.Sandbox, now time.Time) string {
	switch {
	case sb.Spec.Deleting():
		return "-"
	case sb.Spec.Pin != nil:
		return "pinned"
	case sb.Spec.Pool != "":
		return "pool"
	}
	d := sb.Deadlines
	if d == nil {
		return "-"
	}
	next, what := time.Time{}, ""
	for _, c := range []struct {
		t    *time.Time
		what string
	}{{d.SuspendAt, "suspends"}, {d.ExpiresAt, "expires"}, {d.DeleteAt, "deleted"}} {
		if c.t != nil && (what == "" || c.t.Before(next)) {
			next, what = *c.t, c.what
		}
	}
	if what == "" {
		return "-"
	}
	return what + " " + fromNow(next.Sub(now))
}

// lifecycleLines is the Lifecycle section of get: label and value pairs.
func lifecycleLines(sb *client.Sandbox, now time.Time) [][2]string {
	var out [][2]string
	add := func(k, v string) { out = append(out, [2]string{k, v}) }
	sp, st, lc := sb.Spec, sb.Status, sb.Lifecycle
	d := sb.Deadlines
	if d == nil {
		d = &sandbox.Deadlines{}
	}
	pinned := sp.Pin != nil

	if sp.Deleting() {
		why := sp.DeletionReason
		if why == "" || why == sandbox.DeletedByUser {
			why = "requested"
		}
		add("Deletion", why+", "+ago(*sp.DeletionRequestedAt, now))
	}
	// (A server that predates the lifecycle sends none of it.)
	if t := sb.LastActivityAt; t != nil {
		add("Last activity", ago(*t, now))
	} else if lc != nil {
		add("Last activity", "never")
	}
	if lc != nil {
		v := setting(lc.IdleSuspend, lc.IdleSuspendFrom, "off")
		switch {
		case d.SuspendAt != nil:
			v += ", suspends " + at(*d.SuspendAt, now) + " unless it is used"
		case pinned && lc.IdleSuspend > 0:
			v += ", not while pinned"
		case sp.Pool != "" && lc.IdleSuspend > 0:
			v += ", from when it is claimed"
		}
		add("Idle suspend", v)

		v = setting(lc.TTL, lc.TTLFrom, "none")
		if sp.ExpiresAt != nil {
			v += ", extended"
		}
		switch {
		case d.ExpiresAt != nil:
			v += ", expires " + at(*d.ExpiresAt, now)
		case pinned && (lc.TTL > 0 || sp.ExpiresAt != nil):
			v += ", not while pinned"
		case sp.Pool != "" && lc.TTL > 0:
			v += ", from when it is claimed"
		}
		add("TTL", v)

		switch {
		case st.Phase == sandbox.PhaseFailed:
			v = setting(lc.KeepFailed, lc.KeepFailedFrom, "until deleted")
			if d.DeleteAt != nil {
				v += ", deleted " + at(*d.DeleteAt, now)
			} else if pinned && lc.KeepFailed > 0 {
				v += ", not while pinned"
			}
			add("Keep failed", v)
		case st.Phase == sandbox.PhaseSuspended && lc.SuspendedRetention > 0 && sp.Pool == "":
			v = "after " + sandbox.ShortDuration(lc.SuspendedRetention.D()) + " suspended (server)"
			if d.DeleteAt != nil {
				v += ", deleted " + at(*d.DeleteAt, now)
			} else if pinned {
				v += ", not while pinned"
			}
			add("Retention", v)
		}
	}
	if pinned {
		add("Pinned", "by "+orDash(sp.Pin.By)+", "+ago(sp.Pin.At, now))
	}
	if sp.Pool != "" {
		v := "kept ready in the warm pool of template " + sp.Pool
		if lc != nil && lc.PoolSuspend {
			v = "kept asleep in the warm pool of template " + sp.Pool
		}
		add("Pool", v+"; sandpit create NAME --template "+sp.Pool+" claims it")
	}
	if sp.ClaimedAt != nil {
		add("Claimed", "from the warm pool of template "+sp.Template+", "+ago(*sp.ClaimedAt, now))
	}
	if t := sp.SuspendRequestedAt; t != nil && st.Phase != sandbox.PhaseSuspended {
		v := "requested"
		if sp.SuspendRequestedBy != "" {
			v += " by " + sp.SuspendRequestedBy
		}
		add("Suspend", v+", "+ago(*t, now))
	}
	if st.Phase == sandbox.PhaseSuspended && st.SuspendedAt != nil {
		v := ago(*st.SuspendedAt, now)
		if st.SuspendReason != "" {
			v += " (" + st.SuspendReason + ")"
		}
		add("Suspended", v)
	}
	if r := st.Resume; r != nil {
		var v string
		if r.TookMS > 0 {
			v = "took " + dur(ms2d(r.TookMS)) + ", " + ago(r.StartedAt, now)
		} else {
			v = "in progress, started " + ago(r.StartedAt, now)
		}
		if r.Reason != "" {
			v += " (" + r.Reason + ")"
		}
		add("Last resume", v)
	}
	return out
}

// setting formats a lifecycle setting and where it comes from:
// "30m (template)", "off", "off (sandbox)".
func setting(v sandbox.Duration, from, zero string) string {
	s := zero
	if v > 0 {
		s = sandbox.ShortDuration(v.D())
	} else if from == "" || from == "default" {
		return s
	}
	if from != "" {
		s += " (" + from + ")"
	}
	return s
}

// at formats a moment the lifecycle acts: "2026-11-23 14:00 UTC (in 24h)".
// UTC, so that people in different places read the same deadline.
func at(t, now time.Time) string {
	rel := fromNow(t.Sub(now))
	if t.Before(now) {
		rel = ago(t, now)
	}
	return t.UTC().Format("2006-01-02 15:04 MST") + " (" + rel + ")"
}

// ago formats a past moment: "3m ago".
func ago(t, now time.Time) string { return age(now.Sub(t)) + " ago" }

// fromNow formats the time until a future moment, rounded rather than cut (a
// deadline 24h away, read a moment later, is "in 24h"): "in 12m",
// "in 1h30m", "in 23h", "in 3d".
func fromNow(d time.Duration) string {
	if d <= 0 {
		return "now"
	}
	return "in " + approx(d)
}

func approx(d time.Duration) string {
	if s := d.Round(time.Second); s < time.Minute {
		return fmt.Sprintf("%ds", max(1, int(s.Seconds())))
	}
	switch {
	case d < 10*time.Hour:
		d = d.Round(time.Minute)
		h, m := int(d.Hours()), int(d.Minutes())%60
		switch {
		case h == 0:
			return fmt.Sprintf("%dm", m)
		case m == 0:
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	case d < 47*time.Hour+30*time.Minute:
		return fmt.Sprintf("%dh", int(d.Round(time.Hour).Hours()))
	default:
		h := int(d.Round(time.Hour).Hours())
		if h%24 == 0 {
			return fmt.Sprintf("%dd", h/24)
		}
		return fmt.Sprintf("%dd%dh", h/24, h%24)
	}
}

// resourcesOf formats a sandbox's resource class and limits:
// "small (0.5 CPU, 512 MiB), enforced".
func resourcesOf(r *sandbox.ResourceStatus) string {
	var limits []string
	if r.MilliCPU > 0 {
		n := strconv.FormatFloat(float64(r.MilliCPU)/1000, 'f', -1, 64)
		unit := " CPUs"
		if r.MilliCPU <= 1000 {
			unit = " CPU"
		}
		limits = append(limits, n+unit)
	}
	if r.MemoryBytes > 0 {
		limits = append(limits, memory(r.MemoryBytes))
	}
	s := orDash(r.Class)
	if len(limits) > 0 {
		s += " (" + strings.Join(limits, ", ") + ")"
	}
	if r.Enforced {
		return s + ", enforced"
	}
	s += ", not enforced"
	if r.Message != "" {
		s += ": " + firstLine(r.Message)
	}
	return s
}

// memory formats a memory limit: whole GiB or MiB when it is one.
func memory(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return humanBytes(n)
}
