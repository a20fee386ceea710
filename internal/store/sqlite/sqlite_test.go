package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
	"sandpit.dev/sandpit/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTest(t, filepath.Join(t.TempDir(), "sandpit.db"), nil)
	})
}

// openTest opens path; the caller closes the store (storetest.Run does) or
// the test's cleanup does, whichever comes first.
func openTest(t *testing.T, path string, logger *slog.Logger) *Store {
	t.Helper()
	s, err := Open(t.Context(), path, logger)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// logBuffer records log lines for assertions on what Open did.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) count(msg string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), "msg=\""+msg+"\"")
}

type migrationRow struct {
	Version   int
	AppliedAt string
}

func migrationRows(t *testing.T, s *Store) []migrationRow {
	t.Helper()
	rows, err := s.reader.QueryContext(t.Context(), "SELECT version, applied_at FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []migrationRow
	for rows.Next() {
		var r migrationRow
		if err := rows.Scan(&r.Version, &r.AppliedAt); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func knownVersion(t *testing.T) int {
	t.Helper()
	ms, err := loadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	return ms[len(ms)-1].version
}

func TestMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sandpit.db")
	known := knownVersion(t)

	var logs logBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	s := openTest(t, path, logger)
	first := migrationRows(t, s)
	if len(first) != known {
		t.Fatalf("fresh database has %d migrations recorded, want %d", len(first), known)
	}
	for i, r := range first {
		if r.Version != i+1 {
			t.Errorf("migration row %d is version %d", i, r.Version)
		}
		if _, err := parseTime(r.AppliedAt); err != nil {
			t.Errorf("applied_at: %v", err)
		}
	}
	if n := logs.count("applied store migration"); n != known {
		t.Errorf("logged %d applied migrations, want %d", n, known)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	var logs2 logBuffer
	s = openTest(t, path, slog.New(slog.NewTextHandler(&logs2, nil)))
	if n := logs2.count("applied store migration"); n != 0 {
		t.Errorf("re-open applied %d migrations, want none", n)
	}
	if again := migrationRows(t, s); fmt.Sprint(again) != fmt.Sprint(first) {
		t.Errorf("re-open changed schema_migrations:\n got %v\nwant %v", again, first)
	}
}

func TestFutureSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sandpit.db")
	known := knownVersion(t)
	s := openTest(t, path, nil)
	if _, err := s.writer.ExecContext(t.Context(),
		"INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", known+4, formatTime(now())); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	_, err := Open(t.Context(), path, nil)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a newer database: %v, want ErrSchemaTooNew", err)
	}
	want := fmt.Sprintf("database schema version %d is newer than this sandpit (knows %d): upgrade sandpit or use a backup", known+4, known)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q\ndoes not say %q", err, want)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
}

func TestLoadMigrationsChecksNumbering(t *testing.T) {
	sql := &fstest.MapFile{Data: []byte("SELECT 1;")}
	for _, tc := range []struct {
		name  string
		files []string
		ok    bool
	}{
		{"contiguous", []string{"0001_init.sql", "0002_more.sql"}, true},
		{"gap", []string{"0001_init.sql", "0003_more.sql"}, false},
		{"duplicate", []string{"0001_init.sql", "0001_again.sql"}, false},
		{"not from one", []string{"0002_init.sql"}, false},
		{"bad name", []string{"0001_init.sql", "2_more.sql"}, false},
		{"none", nil, false},
	} {
		fsys := fstest.MapFS{"migrations": &fstest.MapFile{Mode: os.ModeDir}}
		for _, f := range tc.files {
			fsys["migrations/"+f] = sql
		}
		_, err := loadMigrations(fsys)
		if (err == nil) != tc.ok {
			t.Errorf("%s: loadMigrations error %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	if _, err := loadMigrations(migrationFS); err != nil {
		t.Errorf("embedded migrations: %v", err)
	}
}

func TestConnectionSettings(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "sandpit.db"), nil)
	for _, tc := range []struct {
		pool, pragma, want string
	}{
		{"writer", "journal_mode", "wal"},
		{"reader", "journal_mode", "wal"},
		{"writer", "foreign_keys", "1"},
		{"reader", "foreign_keys", "1"},
		{"writer", "synchronous", "1"}, // NORMAL
		{"reader", "synchronous", "1"},
		{"writer", "busy_timeout", fmt.Sprint(busyTimeout.Milliseconds())},
		{"reader", "busy_timeout", fmt.Sprint(busyTimeout.Milliseconds())},
		{"writer", "query_only", "0"},
		{"reader", "query_only", "1"},
	} {
		db := s.writer
		if tc.pool == "reader" {
			db = s.reader
		}
		var got string
		if err := db.QueryRowContext(t.Context(), "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatalf("%s: PRAGMA %s: %v", tc.pool, tc.pragma, err)
		}
		if got != tc.want {
			t.Errorf("%s: PRAGMA %s = %s, want %s", tc.pool, tc.pragma, got, tc.want)
		}
	}
}

// blockWriter starts an UpdateSpec whose fn waits for release, and returns
// once fn is running, that is, while the write transaction is open.
func blockWriter(t *testing.T, s *Store, id string) (release func() error) {
	t.Helper()
	inside, proceed := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := s.UpdateSpec(context.Background(), id, func(sp *sandbox.Spec) error {
			sp.Ref = "written"
			close(inside)
			<-proceed
			return nil
		})
		done <- err
	}()
	<-inside
	var once sync.Once
	var err error
	release = func() error {
		once.Do(func() {
			close(proceed)
			err = <-done
		})
		return err
	}
	t.Cleanup(func() { release() })
	return release
}

func TestReadersNotBlockedByWrite(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "sandpit.db"), nil)
	ctx := t.Context()
	sb := &sandbox.Sandbox{ID: sandbox.NewID(), Name: "a", Spec: sandbox.Spec{Template: "shop", Ref: "before"}}
	if err := s.CreateSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendEvent(ctx, sandbox.Event{SandboxID: sb.ID, Reason: sandbox.ReasonInfo}); err != nil {
		t.Fatal(err)
	}
	release := blockWriter(t, s, sb.ID)

	// If readers waited for the writer, these would hang until the test
	// times out; with WAL they read the last committed state.
	got, err := s.GetSandbox(ctx, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Ref != "before" || got.Generation != 1 {
		t.Errorf("reader saw uncommitted state: ref %q generation %d", got.Spec.Ref, got.Generation)
	}
	if _, err := s.ListSandboxes(ctx, store.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListEvents(ctx, sb.ID, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListHandles(ctx, "local"); err != nil {
		t.Fatal(err)
	}
	// A concurrent batch, so that several reader connections are in use.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := s.GetSandboxByName(ctx, "a"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	if err := release(); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetSandbox(ctx, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Ref != "written" || got.Generation != 2 {
		t.Errorf("after commit: ref %q generation %d, want written 2", got.Spec.Ref, got.Generation)
	}
}

func TestWaitingWriterHonoursCancel(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "sandpit.db"), nil)
	sb := &sandbox.Sandbox{ID: sandbox.NewID(), Name: "a"}
	if err := s.CreateSandbox(t.Context(), sb); err != nil {
		t.Fatal(err)
	}
	release := blockWriter(t, s, sb.ID)

	// The writer is busy, so this write can only end by its context.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.CreateSandbox(ctx, &sandbox.Sandbox{Name: "b"}) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("write waiting for the writer: %v, want context.Canceled", err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSandboxByName(t.Context(), "b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("canceled create stored the sandbox: %v", err)
	}
}

func TestPanicInUpdateSpecReleasesWriter(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "sandpit.db"), nil)
	sb := &sandbox.Sandbox{ID: sandbox.NewID(), Name: "a"}
	if err := s.CreateSandbox(t.Context(), sb); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic in fn did not reach the caller")
			}
		}()
		s.UpdateSpec(t.Context(), sb.ID, func(sp *sandbox.Spec) error {
			sp.Ref = "half-done"
			panic("boom")
		})
	}()
	// Would hang if the transaction were still open on the only writer.
	got, err := s.UpdateSpec(t.Context(), sb.ID, func(*sandbox.Spec) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Ref != "" || got.Generation != 2 {
		t.Errorf("after the panic: ref %q generation %d, want \"\" 2", got.Spec.Ref, got.Generation)
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sandpit.db")
	ctx := t.Context()
	s := openTest(t, path, nil)
	tv, _, err := s.ApplyTemplate(ctx, store.TemplateVersion{Name: "shop", Source: []byte("name: shop\n"), Filename: "shop.yaml", Digest: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	sb := &sandbox.Sandbox{ID: sandbox.NewID(), Name: "a", Spec: sandbox.Spec{Template: "shop", Set: map[string]string{"k": "v"}}}
	if err := s.CreateSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateStatus(ctx, sb.ID, sandbox.Status{Phase: sandbox.PhaseReady, Message: "up"}); err != nil {
		t.Fatal(err)
	}
	ev, err := s.AppendEvent(ctx, sandbox.Event{SandboxID: sb.ID, Reason: sandbox.ReasonCreated, Message: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveHandle(ctx, sb.ID, "local", []byte("handle")); err != nil {
		t.Fatal(err)
	}
	ready := now()
	snap := &sandbox.Snapshot{Name: "snap", Type: "postgres", Version: "15", Phase: sandbox.SnapshotReady,
		SizeBytes: 42, Method: "copy", ReadyAt: &ready, Handle: []byte{0x00, 'h'},
		Source: sandbox.SnapshotSource{Kind: sandbox.SnapshotFromSandbox, Sandbox: sb.Name, SandboxID: sb.ID, Dependency: "db"}}
	if err := s.CreateSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	before, err := s.GetSandbox(ctx, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, path, nil)
	gotTV, err := s.GetTemplate(ctx, "shop", 0)
	if err != nil {
		t.Fatal(err)
	}
	if gotTV.Version != tv.Version || string(gotTV.Source) != "name: shop\n" || !gotTV.CreatedAt.Equal(tv.CreatedAt) {
		t.Errorf("template after reopen: %+v, want %+v", gotTV, tv)
	}
	got, err := s.GetSandbox(ctx, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != sandbox.PhaseReady || got.Spec.Set["k"] != "v" ||
		!got.CreatedAt.Equal(before.CreatedAt) || !got.UpdatedAt.Equal(before.UpdatedAt) {
		t.Errorf("sandbox after reopen: %+v, want %+v", got, before)
	}
	evs, err := s.ListEvents(ctx, sb.ID, 0, 0)
	if err != nil || len(evs) != 1 || evs[0].Seq != ev.Seq || !evs[0].Time.Equal(ev.Time) {
		t.Errorf("events after reopen: %+v, %v; want [%+v]", evs, err, ev)
	}
	if rt, data, err := s.LoadHandle(ctx, sb.ID); err != nil || rt != "local" || string(data) != "handle" {
		t.Errorf("handle after reopen: %q %q %v", rt, data, err)
	}
	gotSnap, err := s.GetSnapshotByName(ctx, "snap")
	if err != nil {
		t.Fatal(err)
	}
	if gotSnap.ID != snap.ID || gotSnap.SizeBytes != 42 || !bytes.Equal(gotSnap.Handle, snap.Handle) ||
		!gotSnap.CreatedAt.Equal(snap.CreatedAt) || gotSnap.ReadyAt == nil || !gotSnap.ReadyAt.Equal(ready) {
		t.Errorf("snapshot after reopen: %+v, want %+v", gotSnap, snap)
	}
	// The sequence carries on rather than restarting.
	next, err := s.AppendEvent(ctx, sandbox.Event{SandboxID: sb.ID, Reason: sandbox.ReasonInfo})
	if err != nil {
		t.Fatal(err)
	}
	if next.Seq <= ev.Seq {
		t.Errorf("seq after reopen %d, want > %d", next.Seq, ev.Seq)
	}
}

// TestTwoStoresOneFile stands in for two processes sharing a database:
// their writes meet in SQLite's locks, not in one writer pool, and IMMEDIATE
// transactions with busy_timeout must make them wait rather than fail.
func TestTwoStoresOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sandpit.db")
	a, b := openTest(t, path, nil), openTest(t, path, nil)
	sb := &sandbox.Sandbox{ID: sandbox.NewID(), Name: "shared"}
	if err := a.CreateSandbox(t.Context(), sb); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			_, err := s.UpdateSpec(t.Context(), sb.ID, func(sp *sandbox.Spec) error {
				if sp.Set == nil {
					sp.Set = map[string]string{}
				}
				sp.Set[fmt.Sprint(i)] = "x"
				return nil
			})
			if err != nil {
				t.Errorf("update %d: %v", i, err)
			}
			if _, _, err := s.ApplyTemplate(t.Context(), store.TemplateVersion{Name: "t", Digest: fmt.Sprint(i)}); err != nil {
				t.Errorf("apply %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	got, err := b.GetSandbox(t.Context(), sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.Set) != n || got.Generation != n+1 {
		t.Errorf("%d updates and generation %d, want %d and %d", len(got.Spec.Set), got.Generation, n, n+1)
	}
	vs, err := a.ListTemplateVersions(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != n {
		t.Errorf("%d template versions, want %d", len(vs), n)
	}
}

func TestPathsNeedNoEscaping(t *testing.T) {
	// Characters that mean something in a URI must reach the filesystem
	// as they are.
	dir := filepath.Join(t.TempDir(), "we?ird #dir %20 & =x")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "state?.db")
	s := openTest(t, path, nil)
	if err := s.CreateSandbox(t.Context(), &sandbox.Sandbox{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != "state?.db" {
		t.Errorf("files in the directory: %q, want only %q", names, "state?.db")
	}
	s = openTest(t, path, nil)
	if _, err := s.GetSandboxByName(t.Context(), "a"); err != nil {
		t.Errorf("data not found on reopen: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, path := range []string{
		filepath.Join(dir, "missing", "sandpit.db"),
		dir,
	} {
		s, err := Open(t.Context(), path, nil)
		if err == nil {
			s.Close()
			t.Errorf("Open(%s) succeeded", path)
			continue
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("Open(%s): error %q does not name the path", path, err)
		}
	}
	if _, err := Open(t.Context(), "", nil); err == nil {
		t.Error("Open with an empty path succeeded")
	}
}

func TestCloseTwice(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "sandpit.db"), nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// migrationsUpTo is the embedded migrations directory cut at version v: what
// an older Sandpit had.
func migrationsUpTo(t *testing.T, v int) fstest.MapFS {
	t.Helper()
	ms, err := loadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{"migrations": &fstest.MapFile{Mode: os.ModeDir | 0o755}}
	for _, m := range ms[:v] {
		fsys["migrations/"+m.name] = &fstest.MapFile{Data: []byte(m.sql)}
	}
	return fsys
}

// schemaOf describes every table and index (with its SQL), so that two
// databases' schemas can be compared. SQLite's own bookkeeping tables
// (sqlite_sequence, and the sqlite_stat tables PRAGMA optimize makes) are
// left out: they depend on what the database has seen, not on its schema.
func schemaOf(t *testing.T, s *Store) []string {
	t.Helper()
	rows, err := s.reader.QueryContext(t.Context(), `SELECT type, name, tbl_name, sql FROM sqlite_schema
		WHERE name <> 'sqlite_sequence' AND name NOT LIKE 'sqlite_stat%' ORDER BY type, name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var typ, name, tbl string
		var def sql.NullString
		if err := rows.Scan(&typ, &name, &tbl, &def); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %s on %s: %s", typ, name, tbl, def.String))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUpgradeFromV1 opens a database as Sandpit left it before snapshots
// (schema version 1, with data in every table) with the current code: it
// must gain the snapshots table and keep everything else as it was.
func TestUpgradeFromV1(t *testing.T) {
	if knownVersion(t) < 2 {
		t.Fatal("this test expects at least schema version 2")
	}
	path := filepath.Join(t.TempDir(), "sandpit.db")
	ctx := t.Context()

	old, err := open(ctx, path, nil, migrationsUpTo(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := schemaVersion(ctx, old.reader); err != nil || v != 1 {
		t.Fatalf("old database at schema version %d, %v; want 1", v, err)
	}
	if err := old.CreateSnapshot(ctx, &sandbox.Snapshot{Name: "too-early"}); err == nil {
		t.Fatal("CreateSnapshot worked on a version 1 database; the test is not testing an old schema")
	}
	tv, _, err := old.ApplyTemplate(ctx, store.TemplateVersion{Name: "shop", Source: []byte("name: shop\n"), Filename: "shop.yaml", Digest: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	// Written with SQL of that schema: the current CreateSandbox and
	// UpdateStatus also write usage intervals, which it does not have.
	sb := &sandbox.Sandbox{ID: sandbox.NewID(), Name: "kept", Spec: sandbox.Spec{Template: "shop", TemplateVersion: 1, Set: map[string]string{"k": "v"}, CreatedBy: "carol"}}
	napping := &sandbox.Sandbox{ID: sandbox.NewID(), Name: "napping", Spec: sandbox.Spec{Template: "blog", TemplateVersion: 1}}
	for _, c := range []struct {
		sb *sandbox.Sandbox
		st sandbox.Status
	}{
		{sb, sandbox.Status{Phase: sandbox.PhaseReady, Message: "up"}},
		{napping, sandbox.Status{Phase: sandbox.PhaseSuspended, SuspendReason: "idle for 30m"}},
	} {
		c.sb.Status = c.st
		spec, status, err := marshalSandbox(c.sb)
		if err != nil {
			t.Fatal(err)
		}
		at := formatTime(now())
		if _, err := old.writer.ExecContext(ctx, `INSERT INTO sandboxes (id, name, spec, status, phase, template, generation, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)`, c.sb.ID, c.sb.Name, spec, status, string(c.st.Phase), c.sb.Spec.Template, at, at); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := old.AppendEvent(ctx, sandbox.Event{SandboxID: sb.ID, Reason: sandbox.ReasonCreated, Message: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.SaveHandle(ctx, sb.ID, "local", []byte{0x00, 0xff}); err != nil {
		t.Fatal(err)
	}
	// Read with SQL of that schema: the current GetSandbox reads columns
	// a version 1 database does not have yet.
	sbBefore := &sandbox.Sandbox{}
	var created, updated string
	if err := old.reader.QueryRowContext(ctx, `SELECT generation, created_at, updated_at FROM sandboxes WHERE id = ?`, sb.ID).Scan(&sbBefore.Generation, &created, &updated); err != nil {
		t.Fatal(err)
	}
	if sbBefore.CreatedAt, err = parseTime(created); err != nil {
		t.Fatal(err)
	}
	if sbBefore.UpdatedAt, err = parseTime(updated); err != nil {
		t.Fatal(err)
	}
	rowsBefore := migrationRows(t, old)
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	var logs logBuffer
	s := openTest(t, path, slog.New(slog.NewTextHandler(&logs, nil)))
	if n := logs.count("applied store migration"); n != knownVersion(t)-1 {
		t.Errorf("upgrade logged %d applied migrations, want %d", n, knownVersion(t)-1)
	}
	if !strings.Contains(logs.buf.String(), "version=2 name=0002_snapshots.sql") {
		t.Errorf("upgrade log does not mention 0002_snapshots.sql:\n%s", logs.buf.String())
	}
	rows := migrationRows(t, s)
	if len(rows) != knownVersion(t) || rows[0] != rowsBefore[0] {
		t.Errorf("schema_migrations after the upgrade: %v; want %v and the newer versions", rows, rowsBefore)
	}
	for i, r := range rows {
		if r.Version != i+1 {
			t.Errorf("migration row %d is version %d", i, r.Version)
		}
	}
	if v, err := schemaVersion(ctx, s.reader); err != nil || v != knownVersion(t) {
		t.Errorf("schema version after the upgrade %d, %v; want %d", v, err, knownVersion(t))
	}

	// The old data is all there.
	got, err := s.GetSandbox(ctx, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "kept" || got.Status.Phase != sandbox.PhaseReady || got.Spec.Set["k"] != "v" ||
		got.Generation != sbBefore.Generation || !got.CreatedAt.Equal(sbBefore.CreatedAt) || !got.UpdatedAt.Equal(sbBefore.UpdatedAt) ||
		got.LastActivityAt != nil {
		t.Errorf("sandbox after the upgrade: %+v, want %+v", got, sbBefore)
	}
	if gotTV, err := s.GetTemplate(ctx, "shop", 0); err != nil || gotTV.Version != tv.Version || !gotTV.CreatedAt.Equal(tv.CreatedAt) {
		t.Errorf("template after the upgrade: %+v, %v; want %+v", gotTV, err, tv)
	}
	if evs, err := s.ListEvents(ctx, sb.ID, 0, 0); err != nil || len(evs) != 1 || evs[0].Seq != ev.Seq {
		t.Errorf("events after the upgrade: %+v, %v; want [%+v]", evs, err, ev)
	}
	if rt, data, err := s.LoadHandle(ctx, sb.ID); err != nil || rt != "local" || !bytes.Equal(data, []byte{0x00, 0xff}) {
		t.Errorf("handle after the upgrade: %q %q %v", rt, data, err)
	}

	// Sandboxes that were there are counted from the upgrade on, in the
	// state their phase says.
	upgraded := time.Now()
	ivs, err := s.UsageIntervals(ctx, upgraded.Add(-time.Minute), upgraded.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(ivs) != 2 {
		t.Fatalf("usage intervals after the upgrade: %+v, want 2", ivs)
	}
	for _, iv := range ivs {
		want := sandbox.UsageInterval{SandboxID: sb.ID, Name: "kept", Template: "shop", Owner: "carol", State: sandbox.UsageRunning, Start: iv.Start}
		if iv.SandboxID == napping.ID {
			want = sandbox.UsageInterval{SandboxID: napping.ID, Name: "napping", Template: "blog", Owner: sandbox.UnknownOwner, State: sandbox.UsageSuspended, Idle: true, Start: iv.Start}
		}
		if fmt.Sprintf("%+v", iv) != fmt.Sprintf("%+v", want) || iv.Start.Before(upgraded.Add(-time.Minute)) || iv.Start.Location() != time.UTC {
			t.Errorf("usage interval after the upgrade: %+v, want %+v (starting about now)", iv, want)
		}
	}
	// The store writes them from then on.
	if err := s.UpdateStatus(ctx, sb.ID, sandbox.Status{Phase: sandbox.PhaseSuspended, SuspendReason: "suspend requested"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSandbox(ctx, napping.ID); err != nil {
		t.Fatal(err)
	}
	if ivs, err := s.UsageIntervals(ctx, upgraded.Add(-time.Minute), upgraded.Add(time.Minute)); err != nil || len(ivs) != 3 {
		t.Errorf("usage intervals after a suspend and a delete: %+v, %v; want 3", ivs, err)
	}

	// Snapshots work.
	snap := &sandbox.Snapshot{Name: "first", Type: "postgres", Version: "15", Handle: []byte("h"),
		Source: sandbox.SnapshotSource{Kind: sandbox.SnapshotFromSandbox, Sandbox: sb.Name, SandboxID: sb.ID, Dependency: "db"}}
	if err := s.CreateSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if l, err := s.ListSnapshots(ctx); err != nil || len(l) != 1 || l[0].ID != snap.ID || string(l[0].Handle) != "h" {
		t.Errorf("ListSnapshots after the upgrade: %+v, %v", l, err)
	}

	// An upgraded database has exactly the schema of a new one.
	fresh := openTest(t, filepath.Join(t.TempDir(), "fresh.db"), nil)
	if up, nw := schemaOf(t, s), schemaOf(t, fresh); strings.Join(up, "\n") != strings.Join(nw, "\n") {
		t.Errorf("upgraded schema differs from a new database's:\n%s\n---\n%s", strings.Join(up, "\n"), strings.Join(nw, "\n"))
	}
}

// TestSnapshotQueriesUseIndexes checks that the lookups by name and the
// list's ORDER BY name use the index behind name's UNIQUE constraint rather
// than a scan and a sort.
func TestSnapshotQueriesUseIndexes(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "sandpit.db"), nil)
	for _, q := range []string{
		`SELECT ` + snapshotColumns + ` FROM snapshots ORDER BY name`,
		`SELECT ` + snapshotColumns + ` FROM snapshots WHERE name = 'x'`,
		`SELECT ` + snapshotColumns + ` FROM snapshots WHERE id = 'x'`,
	} {
		rows, err := s.reader.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		if strings.Contains(p, "TEMP B-TREE") || !strings.Contains(p, "INDEX") {
			t.Errorf("%s\nplan: %s; want an index and no sort", q, p)
		}
	}
}

// TestOlderSandpitRefusesUpgradedDatabase: once upgraded, a database is not
// opened by a Sandpit that predates the upgrade (it would not know the
// snapshots table), and trying leaves it intact.
func TestOlderSandpitRefusesUpgradedDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sandpit.db")
	s := openTest(t, path, nil)
	if err := s.CreateSnapshot(t.Context(), &sandbox.Snapshot{Name: "new"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := open(t.Context(), path, nil, migrationsUpTo(t, 1))
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("open by a version 1 Sandpit: %v, want ErrSchemaTooNew", err)
	}
	if want := fmt.Sprintf("database schema version %d is newer than this sandpit (knows 1)", knownVersion(t)); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	s = openTest(t, path, nil)
	if _, err := s.GetSnapshotByName(t.Context(), "new"); err != nil {
		t.Errorf("snapshot after the refused open: %v", err)
	}
}
