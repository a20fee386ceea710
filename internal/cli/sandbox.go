package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/sandbox"
)

func (a *app) createCmd() *cobra.Command {
	var tmpl, ref, output string
	var sets []string
	var version int
	var wait, noPool bool
	var timeout, ttl, idleSuspend, keepFailed time.Duration
	c := &cobra.Command{
		Use:   "create NAME --template TEMPLATE",
		Short: "Create a sandbox from a template",
		Long: `Create a sandbox from a template. It launches in the background: checkout,
build, dependencies, init, start, ready. With --wait, follow the launch (live
per stage on a terminal, one line per event otherwise) and print the
endpoint URLs once it is Ready; a failed launch exits 1 and says where to look.

NAME is a DNS label: lowercase letters, digits and single '-', starting with
a letter, at most 40 characters; endpoints are served at
<endpoint>--NAME.<domain>.

--set overrides env for the sandbox:
  --set env.KEY=VALUE                  every service
  --set services.SERVICE.env.KEY=VALUE one service

Lifecycle: a sandbox is suspended after --idle-suspend without activity
(requests to its endpoints, logs -f, exec; the next request wakes it), is
deleted --ttl after it was created (sandpit extend moves that), and when it
fails it is kept --keep-failed for debugging; 0 means never. Without the
flags the template's lifecycle settings apply (for idle suspend and
keep_failed the server may set its own). sandpit get NAME shows what is in
force, where it comes from, and when it will act.

When the template keeps a warm pool (lifecycle.pool), create claims one of its
ready sandboxes, which is ready at once; --no-pool launches a fresh one.

Examples:
  sandpit create demo --template guestbook --wait
  sandpit create pr-42 --template shop --ref feature/login --set env.LOG_LEVEL=debug
  sandpit create pr-42 --template shop --ttl 72h --idle-suspend 30m
  sandpit create keep-me --template shop --ttl 0 --idle-suspend 0`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "table", "json", "yaml"); err != nil {
				return err
			}
			if tmpl == "" {
				return fmt.Errorf("required flag \"template\" not set: sandpit create NAME --template TEMPLATE (see sandpit template list)")
			}
			set := map[string]string{}
			for _, kv := range sets {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("invalid argument %q for --set: write KEY=VALUE, e.g. --set env.LOG_LEVEL=debug", kv)
				}
				set[k] = v
			}
			lc, err := lifecycleFlags(cmd, ttl, idleSuspend, keepFailed)
			if err != nil {
				return err
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			sb, err := c.CreateSandbox(cmd.Context(), client.CreateSandboxRequest{Name: args[0], Template: tmpl, Version: version, Ref: ref, Set: set, Lifecycle: lc, NoPool: noPool})
			if err != nil {
				return err
			}
			claimed := sb.Spec.ClaimedAt != nil
			if !wait {
				switch {
				case output != "table":
					if err := printData(a.env.Stdout, output, sb); err != nil {
						return err
					}
				case claimed:
					fmt.Fprintf(a.env.Stdout, "sandbox %s claimed from the warm pool of %s version %d\n", sb.Name, sb.Spec.Template, sb.Spec.TemplateVersion)
				default:
					fmt.Fprintf(a.env.Stdout, "sandbox %s created from %s version %d; it is launching\n", sb.Name, sb.Spec.Template, sb.Spec.TemplateVersion)
					fmt.Fprintf(a.env.Stderr, "follow it with: sandpit events %s -f   (or create with --wait)\n", sb.Name)
				}
				if claimed {
					fmt.Fprintf(a.env.Stderr, "a sandbox the pool had launched ahead is now yours: it is ready at once, or within seconds if it was asleep (sandpit get %s; create with --no-pool for a fresh launch)\n", sb.Name)
				}
				return nil
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			final, err := a.follow(ctx, c, sb)
			if err != nil {
				if errors.Is(err, context.DeadlineExceeded) {
					return fmt.Errorf("sandbox %s is not Ready after %s (it keeps launching): watch it with sandpit events %s -f", sb.Name, timeout, sb.Name)
				}
				var apiErr *client.Error
				if !errors.As(err, &apiErr) && cmd.Context().Err() == nil {
					// The stream broke (the server restarted, the network
					// went): the launch itself carries on on the server.
					return fmt.Errorf("lost the server while waiting for %s (%v); the launch continues there: sandpit events %s -f, or sandpit get %s", sb.Name, err, sb.Name, sb.Name)
				}
				return err
			}
			return a.reportLaunch(final, output)
		},
	}
	c.Flags().StringVarP(&tmpl, "template", "t", "", "template to create from (see sandpit template list)")
	c.Flags().IntVar(&version, "version", 0, "template version (default: the latest)")
	c.Flags().StringVar(&ref, "ref", "", "git ref (branch, tag or commit) to check out (default: the template's)")
	c.Flags().StringArrayVar(&sets, "set", nil, "override, KEY=VALUE (repeatable): env.KEY or services.SERVICE.env.KEY")
	c.Flags().BoolVarP(&wait, "wait", "w", false, "wait until the sandbox is Ready (or Failed), showing progress")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "with --wait, how long to wait")
	c.Flags().DurationVar(&ttl, "ttl", 0, "delete the sandbox this long after creation, e.g. 72h; 0: never (default: the template's)")
	c.Flags().DurationVar(&idleSuspend, "idle-suspend", 0, "suspend the sandbox after this long without activity, e.g. 30m; 0: never (default: the server's or the template's)")
	c.Flags().DurationVar(&keepFailed, "keep-failed", 0, "keep a failed sandbox this long for debugging, e.g. 24h; 0: until deleted (default: the template's or the server's)")
	c.Flags().BoolVar(&noPool, "no-pool", false, "launch a fresh sandbox even when the template's warm pool has one ready")
	outputFlag(c, &output, "table, json, yaml")
	return c
}

// lifecycleFlags turns the lifecycle flags the user gave into overrides;
// flags not given are left out, so the template's settings apply.
func lifecycleFlags(cmd *cobra.Command, ttl, idleSuspend, keepFailed time.Duration) (*sandbox.LifecycleOverrides, error) {
	var lc sandbox.LifecycleOverrides
	given := false
	for _, f := range []struct {
		name string
		v    time.Duration
		dst  **sandbox.Duration
	}{{"ttl", ttl, &lc.TTL}, {"idle-suspend", idleSuspend, &lc.IdleSuspend}, {"keep-failed", keepFailed, &lc.KeepFailed}} {
		if !cmd.Flags().Changed(f.name) {
			continue
		}
		if f.v < 0 {
			return nil, fmt.Errorf("invalid argument %q for --%s: give a duration like 30m or 72h, or 0 for never", cmd.Flags().Lookup(f.name).Value, f.name)
		}
		d := sandbox.Duration(f.v)
		*f.dst, given = &d, true
	}
	if !given {
		return nil, nil
	}
	return &lc, nil
}

// follow watches a launch until the sandbox is Ready or Failed, drawing
// progress on stderr. A sandbox claimed from a warm pool was launched
// before: only what happens from the claim on is shown.
func (a *app) follow(ctx context.Context, c *client.Client, sb *client.Sandbox) (*client.Sandbox, error) {
	header := fmt.Sprintf("Launching sandbox %s from %s version %d", sb.Name, sb.Spec.Template, sb.Spec.TemplateVersion)
	since := sb.CreatedAt
	if sb.Spec.ClaimedAt != nil {
		header = fmt.Sprintf("Claimed a ready sandbox from the warm pool of %s version %d: it is usually ready at once", sb.Spec.Template, sb.Spec.TemplateVersion)
		since = *sb.Spec.ClaimedAt
	}
	p := newProgressView(a.env.Stderr, a.env.IsTerminal(a.env.Stderr), sb, header, since, sb.Spec.ClaimedAt != nil)
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
			p.update(cur)
			ph := cur.Status.Phase
			if cur.Status.ObservedGeneration == cur.Generation && (ph == sandbox.PhaseReady || ph == sandbox.PhaseFailed) {
				final = cur
				return client.ErrStopWatch
			}
			return nil
		},
		Deleted: func() error {
			return fmt.Errorf("sandbox %s was deleted while launching", sb.Name)
		},
	})
	if err != nil {
		return nil, err
	}
	return final, nil
}

func (a *app) reportLaunch(sb *client.Sandbox, output string) error {
	if output != "table" {
		if err := printData(a.env.Stdout, output, sb); err != nil {
			return err
		}
	}
	if sb.Status.Phase == sandbox.PhaseFailed {
		fmt.Fprintf(a.env.Stderr, "\nSandbox %s failed: %s\n", sb.Name, withoutLogsHint(sb.Status.Message))
		fmt.Fprintf(a.env.Stderr, "It is kept for debugging:\n  sandpit logs %s%s\n  sandpit get %s\n  sandpit delete %s\n", sb.Name, failedServiceArg(sb), sb.Name, sb.Name)
		return &exitError{code: 1}
	}
	msg := fmt.Sprintf("\nSandbox %s is Ready", sb.Name)
	switch claimed, t := sb.Spec.ClaimedAt, sb.Status.Timing; {
	case claimed != nil && sb.Status.ReadyAt != nil && sb.Status.ReadyAt.After(*claimed):
		msg += fmt.Sprintf(" (%s after it was claimed from the warm pool)", dur(sb.Status.ReadyAt.Sub(*claimed)))
	case claimed != nil:
		msg += " (claimed ready from the warm pool)"
	case t != nil:
		msg += fmt.Sprintf(" (%s; platform overhead %s)", dur(ms2d(t.TotalMS)), dur(ms2d(t.OverheadMS)))
	}
	fmt.Fprintln(a.env.Stderr, msg)
	if output == "table" {
		for _, ep := range sb.Status.Endpoints {
			fmt.Fprintf(a.env.Stdout, "%s\t%s\n", ep.Name, ep.URL)
		}
	}
	return nil
}

func failedServiceArg(sb *client.Sandbox) string {
	for i := len(sb.Status.Stages) - 1; i >= 0; i-- {
		s := sb.Status.Stages[i]
		if _, part, ok := strings.Cut(s.Name, "/"); ok && s.State == sandbox.StageFailed {
			return " " + part
		}
	}
	return ""
}

func ms2d(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }

func (a *app) listCmd() *cobra.Command {
	var tmpl, phase, output string
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List sandboxes",
		Long: `List sandboxes, oldest first, with their template version, source ref,
phase, age, what their lifecycle does next and first endpoint URL.

LIFECYCLE shows the next thing that happens on its own: "suspends in 12m"
(idle suspend), "expires in 3h" (TTL), "deleted in 23h" (a failed sandbox's
keep_failed, or a suspended one's retention), or "pinned" (none of these),
"pool" (kept ready in a template's warm pool), "-" (nothing planned).
sandpit get NAME says more.

  sandpit list
  sandpit list --template shop --phase Failed
  sandpit list -o name | xargs sandpit delete`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, "table", "json", "yaml", "name"); err != nil {
				return err
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			items, err := c.ListSandboxes(cmd.Context(), client.ListOptions{Template: tmpl, Phase: phase})
			if err != nil {
				return err
			}
			switch output {
			case "json", "yaml":
				return printData(a.env.Stdout, output, client.SandboxList{Items: items})
			case "name":
				for _, sb := range items {
					fmt.Fprintln(a.env.Stdout, sb.Name)
				}
				return nil
			}
			if len(items) == 0 {
				// Stdout stays empty, for scripts; the hint is for people.
				fmt.Fprintln(a.env.Stderr, "no sandboxes: create one with sandpit create NAME --template TEMPLATE")
				return nil
			}
			return printSandboxes(a.env.Stdout, items, time.Now())
		},
	}
	c.Flags().StringVarP(&tmpl, "template", "t", "", "only sandboxes of this template")
	c.Flags().StringVar(&phase, "phase", "", "only sandboxes in this phase (Pending, Provisioning, Ready, Suspended, Deleting, Failed)")
	outputFlag(c, &output, "table, json, yaml, name")
	return c
}

func printSandboxes(w io.Writer, items []client.Sandbox, now time.Time) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tTEMPLATE\tREF\tPHASE\tAGE\tLIFECYCLE\tURL")
	for _, sb := range items {
		url := ""
		if len(sb.Status.Endpoints) > 0 {
			url = sb.Status.Endpoints[0].URL
			if len(sb.Status.Endpoints) > 1 {
				url += fmt.Sprintf(" (+%d)", len(sb.Status.Endpoints)-1)
			}
		}
		ref := sb.Spec.Ref
		if g := sb.Spec.Git; g != nil && g.Branch != "" {
			ref = g.Branch // a branch sandbox's ref is its commit: show the branch
			if g.PR > 0 {
				ref = fmt.Sprintf("#%d %s", g.PR, g.Branch)
			}
		}
		if ref == sb.Status.SHA {
			ref = ""
		}
		if sb.Status.SHA != "" {
			ref = strings.TrimPrefix(ref+"@", "@") + sb.Status.SHA[:min(7, len(sb.Status.SHA))]
		}
		fmt.Fprintf(tw, "%s\t%s:%d\t%s\t%s\t%s\t%s\t%s\n", sb.Name, sb.Spec.Template, sb.Spec.TemplateVersion, orDash(ref), phaseOf(&sb), age(now.Sub(sb.CreatedAt)), nextLifecycle(&sb, now), orDash(url))
	}
	return tw.Flush()
}

func phaseOf(sb *client.Sandbox) string {
	p := string(sb.Status.Phase)
	if p == "" {
		p = string(sandbox.PhasePending)
	}
	if sb.Spec.Deleting() && sb.Status.Phase != sandbox.PhaseDeleting {
		p = string(sandbox.PhaseDeleting)
	}
	return p
}

func (a *app) getCmd() *cobra.Command {
	return readCommand(a, &cobra.Command{
		Use:   "get NAME",
		Short: "Show a sandbox: phase, lifecycle, endpoints, services, dependencies and launch stages",
		Long: `Show a sandbox: its phase, its lifecycle (last activity, idle suspend, TTL,
pin, pool, suspensions and resumes: the setting in force, where it comes from
— sandbox, template, server or default — and when it acts), its resource
limits, endpoints, services, dependencies and the stages of its last launch
with their durations. -o json or -o yaml prints everything the API knows,
for scripts.

  sandpit get demo
  sandpit get demo -o json | jq -r '.status.endpoints[0].url'`,
		Args: cobra.ExactArgs(1),
	}, func(ctx context.Context, cl *client.Client, args []string) (*client.Sandbox, error) {
		return cl.GetSandbox(ctx, args[0])
	}, func(sb *client.Sandbox) error {
		return describe(a.env.Stdout, sb, time.Now())
	})
}

// describe prints a sandbox for people.
func describe(w io.Writer, sb *client.Sandbox, now time.Time) error {
	st := sb.Status
	tw := newTable(w)
	fmt.Fprintf(tw, "Name:\t%s\n", sb.Name)
	fmt.Fprintf(tw, "ID:\t%s\n", sb.ID)
	fmt.Fprintf(tw, "Template:\t%s version %d\n", sb.Spec.Template, sb.Spec.TemplateVersion)
	phase := phaseOf(sb)
	if st.Message != "" {
		phase += " (" + firstLine(st.Message) + ")"
	}
	fmt.Fprintf(tw, "Phase:\t%s\n", phase)
	if sb.Spec.Ref != "" || st.SHA != "" {
		fmt.Fprintf(tw, "Source:\t%s %s\n", orDash(sb.Spec.Ref), st.SHA)
	}
	fmt.Fprintf(tw, "Created:\t%s (%s ago)\n", sb.CreatedAt.Local().Format("2006-01-02 15:04:05"), age(now.Sub(sb.CreatedAt)))
	if st.Timing != nil {
		fmt.Fprintf(tw, "Launch:\t%s (external work %s, of which checkout %s; platform overhead %s)\n",
			dur(ms2d(st.Timing.TotalMS)), dur(ms2d(st.Timing.ExternalMS)), dur(ms2d(st.Timing.CheckoutMS)), dur(ms2d(st.Timing.OverheadMS)))
	}
	if r := st.Resources; r != nil {
		fmt.Fprintf(tw, "Resources:\t%s\n", resourcesOf(r))
	}
	if len(sb.Spec.Set) > 0 {
		keys := make([]string, 0, len(sb.Spec.Set))
		for k := range sb.Spec.Set {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			label := ""
			if i == 0 {
				label = "Overrides:"
			}
			fmt.Fprintf(tw, "%s\t%s=%s\n", label, k, sb.Spec.Set[k])
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if lines := lifecycleLines(sb, now); len(lines) > 0 {
		fmt.Fprintln(w, "\nLifecycle:")
		tw = newTable(w)
		for _, l := range lines {
			fmt.Fprintf(tw, "  %s:\t%s\n", l[0], l[1])
		}
		tw.Flush()
	}
	if len(st.Endpoints) > 0 {
		fmt.Fprintln(w, "\nEndpoints:")
		tw = newTable(w)
		for _, ep := range st.Endpoints {
			var routes []string
			for _, r := range ep.Routes {
				routes = append(routes, r.PathPrefix+" → "+r.Service+":"+r.Port)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", ep.Name, ep.URL, strings.Join(routes, ", "))
		}
		tw.Flush()
	}
	if len(st.Services) > 0 {
		fmt.Fprintln(w, "\nServices:")
		tw = newTable(w)
		fmt.Fprintln(tw, "  NAME\tSTATE\tREADY\tRESTARTS\tPORTS\tPID\tMESSAGE")
		for _, s := range st.Services {
			fmt.Fprintf(tw, "  %s\t%s\t%v\t%d\t%s\t%s\t%s\n", s.Name, s.State, s.Ready, s.Restarts, portsOf(s.Ports), pidOf(s.PID), firstLine(s.Message))
		}
		tw.Flush()
	}
	if len(st.Dependencies) > 0 {
		fmt.Fprintln(w, "\nDependencies:")
		tw = newTable(w)
		fmt.Fprintln(tw, "  NAME\tTYPE\tSTATE\tADDRESS\tDATABASES\tSNAPSHOT")
		for _, d := range st.Dependencies {
			addr := "-"
			if d.Port > 0 {
				addr = fmt.Sprintf("%s:%d", d.Host, d.Port)
			}
			fmt.Fprintf(tw, "  %s\t%s %s\t%s\t%s\t%s\t%s\n", d.Name, d.Type, d.Version, d.State, addr, orDash(strings.Join(d.Databases, ",")), orDash(d.Snapshot))
		}
		tw.Flush()
	}
	if len(st.Stages) > 0 {
		fmt.Fprintln(w, "\nStages:")
		tw = newTable(w)
		for _, s := range orderStages(st.Stages) {
			d := "-"
			if s.FinishedAt != nil {
				d = dur(s.Duration(now))
			} else if s.State == sandbox.StageRunning {
				d = dur(s.Duration(now)) + "…"
			}
			name := s.Name
			if strings.Contains(name, "/") {
				name = "  " + name
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", name, s.State, d, firstLine(s.Message))
		}
		tw.Flush()
	}
	return nil
}

func portsOf(p map[string]int) string {
	if len(p) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%s=%d", k, p[k]))
	}
	return strings.Join(out, ",")
}

func pidOf(pid int) string {
	if pid == 0 {
		return "-"
	}
	return fmt.Sprint(pid)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func (a *app) deleteCmd() *cobra.Command {
	var wait bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:     "delete NAME...",
		Aliases: []string{"rm"},
		Short:   "Delete sandboxes: stop their processes, remove their files, data and ports",
		Long: `Delete sandboxes: stop their processes, remove their checkouts, databases
and logs, and free their ports. Deletion goes on in the background; with
--wait the command returns once everything is gone. Deleting a sandbox that
is already being deleted is fine.

  sandpit delete demo
  sandpit delete pr-41 pr-42 --wait`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.connect()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if wait && timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			for _, name := range args {
				sb, err := c.DeleteSandbox(ctx, name)
				if err != nil {
					return err
				}
				if !wait {
					fmt.Fprintf(a.env.Stdout, "sandbox %s is being deleted\n", name)
					continue
				}
				start := time.Now()
				fmt.Fprintf(a.env.Stderr, "deleting %s ...\n", name)
				err = c.Watch(ctx, name, 0, client.WatchHandler{
					Event: func(ev client.Event) error {
						// Only what happens to this deletion, not the launch's history.
						if ev.SandboxID == sb.ID && ev.Reason == sandbox.ReasonStageFailed &&
							sb.Spec.DeletionRequestedAt != nil && !ev.Time.Before(*sb.Spec.DeletionRequestedAt) {
							fmt.Fprintf(a.env.Stderr, "  %s\n", firstLine(ev.Message))
						}
						return nil
					},
				})
				if client.IsNotFound(err) {
					err = nil // gone before the watch began
				}
				if err != nil {
					if errors.Is(err, context.DeadlineExceeded) {
						return fmt.Errorf("sandbox %s is still being deleted after %s: see sandpit get %s", name, timeout, name)
					}
					return err
				}
				fmt.Fprintf(a.env.Stdout, "sandbox %s deleted (%s)\n", name, dur(time.Since(start)))
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&wait, "wait", "w", false, "wait until everything of the sandbox is gone")
	c.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "with --wait, how long to wait")
	return c
}

func (a *app) eventsCmd() *cobra.Command {
	var follow bool
	var output string
	c := &cobra.Command{
		Use:   "events NAME",
		Short: "Show a sandbox's event log (what happened, when, how long each stage took)",
		Long: `Show a sandbox's event log: phase changes, launch stages with how long each
took, retries, warnings. With -f, keep printing new events until the sandbox
is deleted.

  sandpit events demo
  sandpit events demo -f -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "table", "json"); err != nil {
				return err
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			print := func(ev client.Event) {
				if output == "json" {
					_ = printCompactJSON(a.env.Stdout, ev)
					return
				}
				fmt.Fprintf(a.env.Stdout, "%s  %-7s  %-14s  %s\n", ev.Time.Local().Format("15:04:05.000"), ev.Type, ev.Reason, ev.Message)
			}
			if !follow {
				evs, err := c.Events(cmd.Context(), args[0], 0)
				if err != nil {
					return err
				}
				for _, ev := range evs {
					print(ev)
				}
				return nil
			}
			return c.Watch(cmd.Context(), args[0], 0, client.WatchHandler{
				Event: func(ev client.Event) error { print(ev); return nil },
			})
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events until the sandbox is deleted (Ctrl-C to stop)")
	c.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json (one object per line)")
	return c
}

// withoutLogsHint drops the runtime's "see `sandpit logs ...`" line from a
// failure message where the CLI prints its own list of next steps.
func withoutLogsHint(msg string) string {
	var keep []string
	for _, l := range strings.Split(msg, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "see `sandpit logs") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// orderStages lists stages in launch order, each stage's parts (build/api)
// right after it, in start order. The stored order is arrival order, which
// varies because builds and dependencies run at once.
func orderStages(stages []sandbox.Stage) []sandbox.Stage {
	rank := func(name string) int {
		top, _, _ := strings.Cut(name, "/")
		for i, s := range launchStages {
			if s == top {
				return i
			}
		}
		return len(launchStages) // stop, cleanup, and anything newer
	}
	out := append([]sandbox.Stage(nil), stages...)
	sort.SliceStable(out, func(i, j int) bool {
		ri, rj := rank(out[i].Name), rank(out[j].Name)
		if ri != rj {
			return ri < rj
		}
		ti, _, subI := strings.Cut(out[i].Name, "/")
		tj, _, subJ := strings.Cut(out[j].Name, "/")
		if ti != tj {
			return out[i].StartedAt.Before(out[j].StartedAt)
		}
		if subI != subJ {
			return !subI // the stage itself before its parts
		}
		return out[i].StartedAt.Before(out[j].StartedAt)
	})
	return out
}
