package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"sandpit.dev/sandpit/bench/internal/harness"
	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/sandbox"
)

// server is a `sandpit serve` started for the benchmark.
type server struct{ *harness.Server }

// startServer builds ./cmd/sandpit and starts it on free loopback ports
// with its data dir in work, as bench/launch does, with the extra serve
// flags (-serve-args). At exit it deletes every sandbox and snapshot, then
// stops the server: stopping it alone would leave sandboxes (and their
// postgres) running.
func startServer(repo, work string, extra []string) (*server, error) {
	s, err := harness.Start(harness.Config{
		Repo: repo, Work: work,
		Args: append([]string{"--port-range", "41000-41999", "--log-level", "warn"}, extra...),
	})
	if err != nil {
		return nil, err
	}
	return &server{s}, nil
}

// snapshotSupport reports whether the server answers the snapshot API,
// with the store's method and description.
func (s *server) snapshotSupport(ctx context.Context) (method, store string, err error) {
	l, err := s.Client.ListSnapshots(ctx)
	if err != nil {
		return "", "", err
	}
	return l.Method, l.Store, nil
}

// importSnapshot uploads the dump as snapshot name and waits until it is
// Ready.
func (s *server) importSnapshot(ctx context.Context, name string, ds *dataset) (time.Duration, *client.Snapshot, error) {
	f, err := os.Open(ds.dump)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	t0 := time.Now()
	if _, err := s.Client.ImportSnapshot(ctx, client.ImportSnapshotRequest{Name: name, Type: "postgres", Version: "15", Filename: filepath.Base(ds.dump)}, f); err != nil {
		return 0, nil, fmt.Errorf("import snapshot %s: %w", name, err)
	}
	sn, err := s.Client.WaitSnapshot(ctx, name, 200*time.Millisecond, nil)
	d := time.Since(t0)
	if err != nil {
		return d, nil, err
	}
	if sn.Phase != sandbox.SnapshotReady {
		return d, sn, fmt.Errorf("snapshot %s is %s: %s", name, sn.Phase, sn.Message)
	}
	return d, sn, nil
}

// applyTemplate stores a template whose only dependency, db, starts from
// the snapshot; its one service does nothing.
func (s *server) applyTemplate(ctx context.Context, name, snapshot string) error {
	src := fmt.Sprintf(`apiVersion: sandpit/v1
name: %s
description: bench/seed — a database seeded from snapshot %s
services:
  idle:
    run: sleep infinity
dependencies:
  db: {type: postgres, version: "15", snapshot: %s, databases: [%s]}
`, name, snapshot, snapshot, dbName)
	_, err := s.Client.ApplyTemplate(ctx, client.ApplyTemplateRequest{Filename: name + ".yaml", Source: src})
	return err
}

// launch is one sandbox started from the snapshot.
type launch struct {
	query   time.Duration // create request sent → check query answered with the data
	port    time.Duration // → the dependency's port known
	ready   time.Duration // → phase Ready seen
	stage   time.Duration // the sandbox's own dependencies/db stage
	total   time.Duration // status.timing.total_ms (server: accepted → Ready)
	id      string
	name    string
	dataDSN string
}

// launchSandbox creates a sandbox from tmpl and times it until its
// database answers the check query with the snapshot's data, then until
// it is Ready.
func (s *server) launchSandbox(ctx context.Context, tmpl, name string, ds *dataset) (launch, error) {
	l := launch{name: name}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	t0 := time.Now()
	sb, err := s.Client.CreateSandbox(ctx, client.CreateSandboxRequest{Name: name, Template: tmpl})
	if err != nil {
		return l, fmt.Errorf("create sandbox %s: %w", name, err)
	}
	l.id = sb.ID
	port := 0
	for port == 0 {
		if port, err = depPort(sb); err != nil {
			return l, err
		}
		if port == 0 {
			time.Sleep(5 * time.Millisecond)
			if sb, err = s.Client.GetSandbox(ctx, name); err != nil {
				return l, err
			}
		}
	}
	l.port = time.Since(t0)
	pwPath := filepath.Join(s.Data, "sandboxes", l.id, "state", "db.password")
	for {
		pw, err := os.ReadFile(pwPath)
		if err == nil && len(pw) > 0 {
			l.dataDSN = pgDSN(port, string(pw), dbName)
			break
		}
		if ctx.Err() != nil {
			return l, fmt.Errorf("no password in %s: %v", pwPath, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := checkUntil(ctx, l.dataDSN, ds, 5*time.Minute, false); err != nil {
		return l, fmt.Errorf("sandbox %s: %w", name, err)
	}
	l.query = time.Since(t0)
	ready, err := s.Client.WaitFor(ctx, name, 5*time.Millisecond, func(sb *client.Sandbox) bool {
		return sb == nil || sb.Status.Phase == client.PhaseReady || sb.Status.Phase == client.PhaseFailed
	})
	if err != nil {
		return l, err
	}
	l.ready = time.Since(t0)
	if ready == nil || ready.Status.Phase != client.PhaseReady {
		return l, fmt.Errorf("sandbox %s did not become Ready: %+v", name, ready)
	}
	for _, st := range ready.Status.Stages {
		if st.Name == sandbox.StageDependencies+"/db" && st.FinishedAt != nil {
			l.stage = st.FinishedAt.Sub(st.StartedAt)
		}
	}
	if t := ready.Status.Timing; t != nil {
		l.total = time.Duration(t.TotalMS * float64(time.Millisecond))
	}
	if *verbose {
		s.logTimeline(ctx, ready)
	}
	return l, nil
}

// logTimeline logs a sandbox's stages and events relative to its
// creation (the server's clock), to see where a launch's time goes.
func (s *server) logTimeline(ctx context.Context, sb *client.Sandbox) {
	at := func(t time.Time) string { return fmtDur(max(t.Sub(sb.CreatedAt), time.Microsecond)) }
	for _, st := range sb.Status.Stages {
		end := "running"
		if st.FinishedAt != nil {
			end = at(*st.FinishedAt)
		}
		log.Printf("      stage %-22s %-9s %8s → %8s", st.Name, st.State, at(st.StartedAt), end)
	}
	evs, err := s.Client.Events(ctx, sb.Name, 0)
	if err != nil {
		log.Printf("      events: %v", err)
		return
	}
	for _, e := range evs {
		log.Printf("      event %8s %-18s %s", at(e.Time), e.Reason, e.Message)
	}
	_ = s.Client.Logs(ctx, sb.Name, client.LogOptions{Service: "db"}, func(l client.LogLine) error {
		log.Printf("      db log %8s %s", at(l.Time), l.Text)
		return nil
	})
}

// depPort is the port of dependency db once known; an error if the
// sandbox failed.
func depPort(sb *client.Sandbox) (int, error) {
	if sb.Status.Phase == client.PhaseFailed {
		return 0, fmt.Errorf("sandbox %s failed: %s", sb.Name, sb.Status.Message)
	}
	for _, d := range sb.Status.Dependencies {
		if d.Name == "db" && d.Port != 0 {
			return d.Port, nil
		}
	}
	return 0, nil
}

// deleteSandbox deletes a sandbox and waits until it is gone.
func (s *server) deleteSandbox(ctx context.Context, name string) error {
	if _, err := s.Client.DeleteSandbox(ctx, name); err != nil {
		if client.IsNotFound(err) {
			return nil
		}
		return err
	}
	_, err := s.Client.WaitFor(ctx, name, 50*time.Millisecond, func(sb *client.Sandbox) bool { return sb == nil })
	return err
}

// inPlace is one restore of a running sandbox's database to the snapshot.
type inPlace struct {
	done     time.Duration // request sent → both of the below
	observed time.Duration // → status.observed_generation reached the returned generation
	data     time.Duration // → the check query answered with the snapshot's data again
}

// restoreInPlace changes the sandbox's data (so that the check query
// answers differently), keeps a connection open as an app would, then
// restores the dependency to the snapshot and times it.
func (s *server) restoreInPlace(ctx context.Context, l launch, snapshot string, ds *dataset) (inPlace, error) {
	var r inPlace
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	app, err := pgx.Connect(ctx, l.dataDSN)
	if err != nil {
		return r, err
	}
	defer app.Close(context.Background())
	for _, q := range []string{
		fmt.Sprintf("UPDATE events SET kind = 'changed' WHERE id = %d", checkKey(ds.Scale)),
		"INSERT INTO products (sku, name, category, price_cents, stock, description, created_at) VALUES ('SKU-CHANGED', 'Changed', 'home', 1, 1, 'changed by bench/seed', now())",
	} {
		if _, err := app.Exec(ctx, q); err != nil {
			return r, fmt.Errorf("change the sandbox's data: %s: %w", q, err)
		}
	}
	var wa *wrongAnswer
	if err := checkOnce(ctx, l.dataDSN, ds); !errors.As(err, &wa) {
		return r, fmt.Errorf("after changing the data the check query should differ; got %v", err)
	}

	var lastSeq int64
	if *verbose {
		if evs, err := s.Client.Events(ctx, l.name, 0); err == nil && len(evs) > 0 {
			lastSeq = evs[len(evs)-1].Seq
		}
	}
	t0 := time.Now()
	sb, err := s.Client.RestoreSnapshot(ctx, client.RestoreSnapshotRequest{Snapshot: snapshot, Sandbox: l.name, Dependency: "db"})
	if err != nil {
		return r, fmt.Errorf("restore %s to %s: %w", l.name, snapshot, err)
	}
	gen := sb.Generation
	for r.observed == 0 || r.data == 0 {
		if r.observed == 0 {
			cur, err := s.Client.GetSandbox(ctx, l.name)
			if err != nil {
				return r, err
			}
			if cur.Status.Phase == client.PhaseFailed {
				return r, fmt.Errorf("sandbox %s failed during the restore: %s", l.name, cur.Status.Message)
			}
			if cur.Status.ObservedGeneration >= gen {
				r.observed = time.Since(t0)
			}
		}
		if r.data == 0 {
			if err := checkOnce(ctx, l.dataDSN, ds); err == nil {
				r.data = time.Since(t0)
			}
		}
		if ctx.Err() != nil {
			return r, fmt.Errorf("restore of %s not done within 10 min (observed generation after %s, data after %s)", l.name, r.observed, r.data)
		}
		if r.observed == 0 || r.data == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	r.done = max(r.observed, r.data)
	if *verbose {
		if evs, err := s.Client.Events(ctx, l.name, lastSeq); err == nil && len(evs) > 0 {
			for _, e := range evs {
				log.Printf("      event %8s %-18s %s", fmtDur(e.Time.Sub(evs[0].Time)), e.Reason, e.Message)
			}
		}
	}
	// The app's connection was cut by the restart; it must not see stale
	// data if it was not.
	var got string
	if err := app.QueryRow(ctx, ds.CheckSQL).Scan(&got); err == nil && got != ds.Expected {
		log.Printf("    note: a connection opened before the restore still answers %q (stale data)", got)
	}
	return r, nil
}
