package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/sandbox"
)

func (a *app) snapshotCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "snapshot",
		Aliases: []string{"snapshots"},
		Short:   "Capture, import, list, restore and delete data snapshots",
		Long: `Snapshots are named, immutable copies of a dependency's data. A dependency
with "snapshot: NAME" in its template starts from that data without copying it
(btrfs snapshots or reflink copies; the server logs which one it uses when it
starts), so a seeded database is as cheap as an empty one.

  sandpit snapshot import shop-seed --type postgres --file shop.dump
  sandpit snapshot create good-state --from demo/db
  sandpit snapshot list
  sandpit snapshot get shop-seed
  sandpit snapshot restore shop-seed --to demo/db      reset demo's data
  sandpit snapshot delete good-state

In a template:

  dependencies:
    db: {type: postgres, version: "15", snapshot: shop-seed}`,
	}
	c.AddCommand(a.snapshotCreateCmd(), a.snapshotImportCmd(), a.snapshotListCmd(), a.snapshotGetCmd(), a.snapshotDeleteCmd(), a.snapshotRestoreCmd())
	return c
}

// splitTarget parses SANDBOX/DEPENDENCY.
func splitTarget(flag, v string) (string, string, error) {
	sb, dep, ok := strings.Cut(v, "/")
	if !ok || sb == "" || dep == "" || strings.Contains(dep, "/") {
		return "", "", fmt.Errorf("invalid argument %q for %s: write SANDBOX/DEPENDENCY, e.g. demo/db", v, flag)
	}
	return sb, dep, nil
}

func (a *app) snapshotCreateCmd() *cobra.Command {
	var from, output string
	var wait bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "create NAME --from SANDBOX/DEPENDENCY",
		Short: "Capture a sandbox's dependency as a snapshot",
		Long: `Capture a running sandbox's dependency as a snapshot: the dependency is
stopped (cleanly, so the copy needs no recovery), copied and started again —
for well under a second with btrfs. Its clients see their connections drop
once. By default the command waits until the snapshot is Ready.

  sandpit snapshot create good-state --from demo/db`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "table", "json", "yaml"); err != nil {
				return err
			}
			if from == "" {
				return errors.New(`required flag "from" not set: sandpit snapshot create NAME --from SANDBOX/DEPENDENCY`)
			}
			sbName, dep, err := splitTarget("--from", from)
			if err != nil {
				return err
			}
			cl, err := a.connect()
			if err != nil {
				return err
			}
			s, err := cl.CreateSnapshot(cmd.Context(), client.CreateSnapshotRequest{Name: args[0], Sandbox: sbName, Dependency: dep})
			if err != nil {
				return err
			}
			return a.finishSnapshot(cmd.Context(), cl, s, wait, timeout, output, fmt.Sprintf("capturing %s of %s", dep, sbName))
		},
	}
	c.Flags().StringVar(&from, "from", "", "the dependency to capture, as SANDBOX/DEPENDENCY")
	snapshotWaitFlags(c, &wait, &timeout)
	outputFlag(c, &output, "table, json, yaml")
	return c
}

func snapshotWaitFlags(c *cobra.Command, wait *bool, timeout *time.Duration) {
	c.Flags().BoolVarP(wait, "wait", "w", true, "wait until the snapshot is Ready (--wait=false returns at once)")
	c.Flags().DurationVar(timeout, "timeout", 2*time.Hour, "with --wait, how long to wait")
}

// finishSnapshot waits (unless told not to) and reports a snapshot.
func (a *app) finishSnapshot(ctx context.Context, cl *client.Client, s *client.Snapshot, wait bool, timeout time.Duration, output, doing string) error {
	if !wait {
		if output != "table" {
			return printData(a.env.Stdout, output, s)
		}
		fmt.Fprintf(a.env.Stdout, "snapshot %s is being created\n", s.Name)
		fmt.Fprintf(a.env.Stderr, "see when it is Ready with: sandpit snapshot get %s\n", s.Name)
		return nil
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	tty := a.env.IsTerminal(a.env.Stderr)
	start := time.Now()
	fmt.Fprintf(a.env.Stderr, "%s as snapshot %s ...\n", doing, s.Name)
	last := time.Now()
	final, err := cl.WaitSnapshot(ctx, s.Name, 250*time.Millisecond, func(*client.Snapshot) {
		// A long import gets a sign of life; a terminal gets it in place.
		if tty {
			// \x1b[K clears what a longer line drawn before left.
			fmt.Fprintf(a.env.Stderr, "\r  %s elapsed\x1b[K", dur(time.Since(start)))
		} else if time.Since(last) > 30*time.Second {
			last = time.Now()
			fmt.Fprintf(a.env.Stderr, "  still working (%s)\n", dur(time.Since(start)))
		}
	})
	if tty {
		fmt.Fprint(a.env.Stderr, "\r\x1b[K")
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("snapshot %s is not Ready after %s (the server carries on): sandpit snapshot get %s", s.Name, timeout, s.Name)
		}
		if client.IsNotFound(err) {
			return fmt.Errorf("snapshot %s was deleted while it was being created", s.Name)
		}
		return err
	}
	if output != "table" {
		if err := printData(a.env.Stdout, output, final); err != nil {
			return err
		}
	}
	if final.Phase == sandbox.SnapshotFailed {
		fmt.Fprintf(a.env.Stderr, "snapshot %s failed: %s\n", final.Name, final.Message)
		return &exitError{code: 1}
	}
	if output == "table" {
		fmt.Fprintf(a.env.Stdout, "snapshot %s is Ready: %s %s, %s, stored by %s (%s)\n", final.Name, final.Type, final.Version, humanBytes(final.SizeBytes), final.Method, dur(time.Since(start)))
	}
	return nil
}

func (a *app) snapshotImportCmd() *cobra.Command {
	var file, typ, version, database, output string
	var wait bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "import NAME --type postgres --file DUMP",
		Short: "Import a pg_dump file as a snapshot",
		Long: `Import a database dump as a snapshot: the file is uploaded to the server,
restored once into a fresh cluster (pg_restore for custom and tar dumps,
psql for plain SQL), vacuumed and analysed, and frozen as the snapshot.

Owners and grants in custom and tar dumps are skipped (the roles of the
cluster they came from do not exist here). A plain SQL dump must either create
its database itself (pg_dump --create) or be given --database.

  pg_dump -Fc shop > shop.dump
  sandpit snapshot import shop-seed --type postgres --file shop.dump
  sandpit snapshot import fixtures --type postgres --file fixtures.sql --database app`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "table", "json", "yaml"); err != nil {
				return err
			}
			if file == "" {
				return errors.New(`required flag "file" not set: sandpit snapshot import NAME --type postgres --file DUMP`)
			}
			if typ == "" {
				return errors.New(`required flag "type" not set: sandpit snapshot import NAME --type postgres --file DUMP`)
			}
			f, err := os.Open(file)
			if err != nil {
				return fmt.Errorf("open the dump: %w", err)
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			if st.IsDir() {
				return fmt.Errorf("%s is a directory: import a single-file dump (pg_dump -Fc, or plain SQL); for a directory-format dump run pg_restore -Fd --file=- ... or dump again with -Fc", file)
			}
			cl, err := a.connect()
			if err != nil {
				return err
			}
			var body io.Reader = f
			stopProgress := func() {}
			if a.env.IsTerminal(a.env.Stderr) && st.Size() > 0 {
				pr := &progressReader{r: f, total: st.Size()}
				stopProgress = pr.show(a.env.Stderr)
				body = pr
			}
			s, err := cl.ImportSnapshot(cmd.Context(), client.ImportSnapshotRequest{
				Name: args[0], Type: typ, Version: version, Database: database, Filename: filepath.Base(file),
			}, body)
			// The upload is over: its progress line goes before the wait
			// draws its own.
			stopProgress()
			if err != nil {
				return err
			}
			return a.finishSnapshot(cmd.Context(), cl, s, wait, timeout, output, "importing "+filepath.Base(file))
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "the dump: pg_dump custom (-Fc) or tar (-Ft) archive, or plain SQL")
	c.Flags().StringVar(&typ, "type", "", "dependency type: postgres")
	c.Flags().StringVar(&version, "version", "", "major version to restore into (default: the dump's own when installed, else the newest installed)")
	c.Flags().StringVar(&database, "database", "", "database to restore into (default: the dump's own)")
	snapshotWaitFlags(c, &wait, &timeout)
	outputFlag(c, &output, "table, json, yaml")
	return c
}

// progressReader shows an upload's progress on a terminal.
type progressReader struct {
	r     io.Reader
	total int64
	n     atomic.Int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n.Add(int64(n))
	return n, err
}

func (p *progressReader) show(w io.Writer) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			n := p.n.Load()
			fmt.Fprintf(w, "\r  uploading %s / %s (%d%%)\x1b[K", humanBytes(n), humanBytes(p.total), n*100/p.total)
			select {
			case <-done:
				fmt.Fprint(w, "\r\x1b[K")
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		select {
		case <-done:
		default:
			close(done)
			<-finished
		}
	}
}

func (a *app) snapshotListCmd() *cobra.Command {
	return readCommand(a, &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List snapshots with their size, source and users",
		Args:    cobra.NoArgs,
	}, func(ctx context.Context, cl *client.Client, _ []string) (*client.SnapshotList, error) {
		return cl.ListSnapshots(ctx)
	}, func(l *client.SnapshotList) error {
		if len(l.Items) == 0 {
			fmt.Fprintln(a.env.Stderr, "no snapshots: make one with sandpit snapshot import NAME --type postgres --file DUMP, or sandpit snapshot create NAME --from SANDBOX/DEPENDENCY")
			return nil
		}
		return printSnapshots(a.env.Stdout, l.Items, time.Now())
	})
}

func printSnapshots(w io.Writer, items []client.Snapshot, now time.Time) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tTYPE\tPHASE\tSIZE\tSOURCE\tUSED BY\tAGE")
	for _, s := range items {
		size := "-"
		if s.Phase == sandbox.SnapshotReady {
			size = humanBytes(s.SizeBytes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, typeOf(s), s.Phase, size, sourceOf(s), orDash(strings.Join(s.UsedBy, ",")), age(now.Sub(s.CreatedAt)))
	}
	return tw.Flush()
}

// typeOf is a snapshot's type and major version ("postgres 15"), or its
// type alone while the version is unknown (an import that failed before
// reading its dump's).
func typeOf(s client.Snapshot) string {
	return strings.TrimSpace(s.Type + " " + s.Version)
}

func sourceOf(s client.Snapshot) string {
	if s.Source.Kind == sandbox.SnapshotFromSandbox {
		return s.Source.Sandbox + "/" + s.Source.Dependency
	}
	if s.Source.File != "" {
		return "import " + s.Source.File
	}
	return "import"
}

func (a *app) snapshotGetCmd() *cobra.Command {
	return readCommand(a, &cobra.Command{
		Use:   "get NAME",
		Short: "Show a snapshot",
		Args:  cobra.ExactArgs(1),
	}, func(ctx context.Context, cl *client.Client, args []string) (*client.Snapshot, error) {
		return cl.GetSnapshot(ctx, args[0])
	}, func(s *client.Snapshot) error {
		return describeSnapshot(a.env.Stdout, s, time.Now())
	})
}

func describeSnapshot(w io.Writer, s *client.Snapshot, now time.Time) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "Name:\t%s\n", s.Name)
	fmt.Fprintf(tw, "ID:\t%s\n", s.ID)
	fmt.Fprintf(tw, "Type:\t%s\n", typeOf(*s))
	phase := string(s.Phase)
	if s.Message != "" {
		phase += " (" + firstLine(s.Message) + ")"
	}
	fmt.Fprintf(tw, "Phase:\t%s\n", phase)
	if s.Phase == sandbox.SnapshotReady {
		fmt.Fprintf(tw, "Size:\t%s\n", humanBytes(s.SizeBytes))
		fmt.Fprintf(tw, "Stored by:\t%s\n", s.Method)
	}
	src := sourceOf(*s)
	if s.Source.Kind == sandbox.SnapshotFromImport {
		var extra []string
		if s.Source.Format != "" {
			extra = append(extra, s.Source.Format+" format")
		}
		if s.Source.Database != "" {
			extra = append(extra, "database "+s.Source.Database)
		}
		if len(extra) > 0 {
			src += " (" + strings.Join(extra, ", ") + ")"
		}
	}
	fmt.Fprintf(tw, "Source:\t%s\n", src)
	fmt.Fprintf(tw, "Created:\t%s (%s ago) by %s\n", s.CreatedAt.Local().Format("2006-01-02 15:04:05"), age(now.Sub(s.CreatedAt)), orDash(s.CreatedBy))
	if s.ReadyAt != nil {
		fmt.Fprintf(tw, "Ready after:\t%s\n", dur(s.ReadyAt.Sub(s.CreatedAt)))
	}
	fmt.Fprintf(tw, "Used by:\t%s\n", orDash(strings.Join(s.UsedBy, ", ")))
	if err := tw.Flush(); err != nil {
		return err
	}
	if s.Phase == sandbox.SnapshotFailed && strings.Contains(s.Message, "\n") {
		fmt.Fprintf(w, "\nError:\n  %s\n", strings.ReplaceAll(s.Message, "\n", "\n  "))
	}
	return nil
}

func (a *app) snapshotDeleteCmd() *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:     "delete NAME...",
		Aliases: []string{"rm"},
		Short:   "Delete snapshots",
		Long: `Delete snapshots. A snapshot that sandboxes use (their template starts a
dependency from it, or they were restored from it) is kept unless --force:
those sandboxes keep their own data either way, but new sandboxes and
restores from it then fail.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.connect()
			if err != nil {
				return err
			}
			for _, name := range args {
				if err := cl.DeleteSnapshot(cmd.Context(), name, force); err != nil {
					return err
				}
				fmt.Fprintf(a.env.Stdout, "snapshot %s deleted\n", name)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&force, "force", false, "delete even while sandboxes use it")
	return c
}

func (a *app) snapshotRestoreCmd() *cobra.Command {
	var to, output string
	var wait bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "restore NAME --to SANDBOX/DEPENDENCY",
		Short: "Reset a sandbox's dependency to a snapshot's data",
		Long: `Reset a sandbox's dependency to a snapshot's data ("give me a clean
database again") without recreating the sandbox: the dependency is stopped,
its data replaced by a copy-on-write clone of the snapshot, and started again.
Services keep running; their database connections drop once. The snapshot
must hold the same type and major version as the dependency.

  sandpit snapshot restore shop-seed --to demo/db`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "table", "json", "yaml"); err != nil {
				return err
			}
			if to == "" {
				return errors.New(`required flag "to" not set: sandpit snapshot restore NAME --to SANDBOX/DEPENDENCY`)
			}
			sbName, dep, err := splitTarget("--to", to)
			if err != nil {
				return err
			}
			cl, err := a.connect()
			if err != nil {
				return err
			}
			start := time.Now()
			sb, err := cl.RestoreSnapshot(cmd.Context(), client.RestoreSnapshotRequest{Snapshot: args[0], Sandbox: sbName, Dependency: dep})
			if err != nil {
				return err
			}
			if !wait {
				if output != "table" {
					return printData(a.env.Stdout, output, sb)
				}
				fmt.Fprintf(a.env.Stdout, "restore of %s/%s from snapshot %s requested\n", sbName, dep, args[0])
				return nil
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			fmt.Fprintf(a.env.Stderr, "restoring %s/%s from snapshot %s ...\n", sbName, dep, args[0])
			requested := sb.Spec.Restores[dep].RequestedAt
			var final *client.Sandbox
			err = cl.Watch(ctx, sbName, 0, client.WatchHandler{
				Event: func(ev client.Event) error {
					if ev.SandboxID != sb.ID || ev.Time.Before(requested) {
						return nil
					}
					if ev.Reason == sandbox.ReasonSnapshotRestored || ev.Reason == sandbox.ReasonStageFailed || ev.Reason == sandbox.ReasonRetrying {
						fmt.Fprintf(a.env.Stderr, "  %s\n", firstLine(ev.Message))
					}
					return nil
				},
				Sandbox: func(cur *client.Sandbox) error {
					ph := cur.Status.Phase
					if cur.ID == sb.ID && cur.Status.ObservedGeneration >= sb.Generation && (ph == sandbox.PhaseReady || ph == sandbox.PhaseFailed) {
						final = cur
						return client.ErrStopWatch
					}
					return nil
				},
				Deleted: func() error { return fmt.Errorf("sandbox %s was deleted during the restore", sbName) },
			})
			if err != nil {
				if errors.Is(err, context.DeadlineExceeded) {
					return fmt.Errorf("the restore of %s/%s has not finished after %s (it carries on): sandpit get %s", sbName, dep, timeout, sbName)
				}
				return err
			}
			if output != "table" {
				if err := printData(a.env.Stdout, output, final); err != nil {
					return err
				}
			}
			if final.Status.Phase == sandbox.PhaseFailed {
				fmt.Fprintf(a.env.Stderr, "restore failed: %s\n", withoutLogsHint(final.Status.Message))
				return &exitError{code: 1}
			}
			if output == "table" {
				fmt.Fprintf(a.env.Stdout, "%s/%s restored from snapshot %s (%s)\n", sbName, dep, args[0], dur(time.Since(start)))
			}
			return nil
		},
	}
	c.Flags().StringVar(&to, "to", "", "the dependency to reset, as SANDBOX/DEPENDENCY")
	c.Flags().BoolVarP(&wait, "wait", "w", true, "wait until the dependency runs with the snapshot's data")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "with --wait, how long to wait")
	outputFlag(c, &output, "table, json, yaml")
	return c
}

// humanBytes formats a size in binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
