package postgres

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
)

// These tests stand for two or more `sandpit serve` replicas on one
// database: separate Stores (separate pools, so separate connections and
// sessions), as separate processes would have.

// openReplicas opens n stores on one new database at the same moment, so
// that their migrations race.
func openReplicas(t *testing.T, n int, logs *logBuffer) []*Store {
	t.Helper()
	dsn := newDatabase(t)
	var logger *slog.Logger
	if logs != nil {
		logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	stores := make([]*Store, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(t.Context(), dsn, logger)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: Open: %v", i, err)
		}
		s := stores[i]
		t.Cleanup(func() { s.Close() })
	}
	return stores
}

func TestReplicasMigrateConcurrently(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	stores := openReplicas(t, 8, &logs)
	known := knownVersion(t)
	if n := logs.count("applied store migration"); n != known {
		t.Errorf("%d replicas starting at once logged %d applied migrations, want %d (each exactly once)\n%s", len(stores), n, known, logs.String())
	}
	rows := migrationRows(t, stores[0])
	if len(rows) != known {
		t.Fatalf("schema_migrations has %d rows, want %d", len(rows), known)
	}
	for i, r := range rows {
		if r.Version != i+1 {
			t.Errorf("migration row %d is version %d", i, r.Version)
		}
	}
	// Every replica works on the one schema.
	for i, s := range stores {
		if err := s.CreateSandbox(t.Context(), &sandbox.Sandbox{Name: fmt.Sprint("from-", i)}); err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
	l, err := stores[0].ListSandboxes(t.Context(), store.ListOptions{})
	if err != nil || len(l) != len(stores) {
		t.Errorf("ListSandboxes: %d sandboxes, %v; want %d", len(l), err, len(stores))
	}
}

// TestReplicasUpdateSpecLosesNothing: concurrent UpdateSpec calls from two
// replicas on one sandbox each see the previous one's change.
func TestReplicasUpdateSpecLosesNothing(t *testing.T) {
	t.Parallel()
	stores := openReplicas(t, 2, nil)
	ctx := t.Context()
	sb := &sandbox.Sandbox{Name: "busy", Spec: sandbox.Spec{Template: "shop"}}
	if err := stores[0].CreateSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	const perReplica = 25
	var wg sync.WaitGroup
	errs := make(chan error, 2*perReplica)
	start := make(chan struct{})
	for r, s := range stores {
		for i := range perReplica {
			wg.Go(func() {
				<-start
				_, err := s.UpdateSpec(ctx, sb.ID, func(sp *sandbox.Spec) error {
					if sp.Set == nil {
						sp.Set = map[string]string{}
					}
					sp.Set[fmt.Sprintf("r%d-%d", r, i)] = "v"
					return nil
				})
				if err != nil {
					errs <- fmt.Errorf("replica %d, update %d: %w", r, i, err)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for r, s := range stores {
		got, err := s.GetSandbox(ctx, sb.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Spec.Set) != 2*perReplica {
			t.Errorf("replica %d reads %d of %d concurrent spec changes", r, len(got.Spec.Set), 2*perReplica)
		}
		if got.Generation != 1+2*perReplica {
			t.Errorf("replica %d: Generation = %d, want %d", r, got.Generation, 1+2*perReplica)
		}
	}
}

// TestReplicasApplyTemplate: concurrent applies of one template from two
// replicas get versions 1..n, each once.
func TestReplicasApplyTemplate(t *testing.T) {
	t.Parallel()
	stores := openReplicas(t, 2, nil)
	const n = 20
	versions := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			tv, created, err := stores[i%2].ApplyTemplate(t.Context(), store.TemplateVersion{
				Name: "shop", Source: []byte(fmt.Sprint(i)), Digest: fmt.Sprint("d", i)})
			if err == nil && !created {
				err = errors.New("new content reported unchanged")
			}
			versions[i], errs[i] = tv.Version, err
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
	slices.Sort(versions)
	for i, v := range versions {
		if v != i+1 {
			t.Fatalf("versions %v, want 1..%d each once", versions, n)
		}
	}
}

// TestReplicasRenameRace: two replicas claiming pool sandboxes under one
// name: exactly one wins, the other gets ErrConflict and changes nothing.
func TestReplicasRenameRace(t *testing.T) {
	t.Parallel()
	stores := openReplicas(t, 2, nil)
	ctx := t.Context()
	for round := range 10 {
		a := &sandbox.Sandbox{Name: fmt.Sprint("pool-a-", round)}
		b := &sandbox.Sandbox{Name: fmt.Sprint("pool-b-", round)}
		for _, sb := range []*sandbox.Sandbox{a, b} {
			if err := stores[0].CreateSandbox(ctx, sb); err != nil {
				t.Fatal(err)
			}
		}
		want := fmt.Sprint("alice-", round)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, sb := range []*sandbox.Sandbox{a, b} {
			wg.Go(func() {
				_, errs[i] = stores[i].RenameSandbox(ctx, sb.ID, want, func(sp *sandbox.Spec) error {
					sp.CreatedBy = "alice"
					return nil
				})
			})
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("round %d, replica %d: %v, want nil or ErrConflict", round, i, err)
			}
		}
		if won != 1 {
			t.Errorf("round %d: %d renames to %q succeeded, want exactly 1 (errors %v)", round, won, want, errs)
		}
		for i, sb := range []*sandbox.Sandbox{a, b} {
			got, err := stores[1-i].GetSandbox(ctx, sb.ID)
			if err != nil {
				t.Fatal(err)
			}
			if errs[i] != nil && (got.Name != sb.Name || got.Generation != 1 || got.Spec.CreatedBy != "") {
				t.Errorf("round %d: the losing rename changed the sandbox: %+v", round, got)
			}
		}
	}
}

// TestReplicasEventSeqIsCommitOrder: while several writers in two replicas
// append events, a reader that pages with "after the last seq I saw" (as
// the API's event streams do) sees every event. Without commit-ordered
// seqs it could see seq 11 committed before seq 10 and skip 10 forever.
func TestReplicasEventSeqIsCommitOrder(t *testing.T) {
	t.Parallel()
	stores := openReplicas(t, 2, nil)
	ctx := t.Context()
	sb := &sandbox.Sandbox{Name: "chatty"}
	if err := stores[0].CreateSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	const writers, perWriter = 8, 40
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				if _, err := stores[w%2].AppendEvent(ctx, sandbox.Event{SandboxID: sb.ID, Reason: sandbox.ReasonInfo, Message: fmt.Sprint(w, "/", i)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	go func() { wg.Wait(); close(done) }()

	var seen []sandbox.Event
	var after int64
	tail := func() {
		page, err := stores[1].ListEvents(ctx, sb.ID, after, 0)
		if err != nil {
			t.Error(err)
			return
		}
		for _, ev := range page {
			if ev.Seq <= after {
				t.Errorf("seq %d listed after %d", ev.Seq, after)
			}
			after = ev.Seq
		}
		seen = append(seen, page...)
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
			time.Sleep(time.Millisecond)
		}
		tail()
	}
	all, err := stores[0].ListEvents(ctx, sb.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != writers*perWriter {
		t.Fatalf("%d events stored, want %d", len(all), writers*perWriter)
	}
	if len(seen) != len(all) {
		t.Errorf("a reader paging by seq saw %d of %d events: seq order is not commit order", len(seen), len(all))
	}
}
