package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
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
	needCluster(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTest(t, newDatabase(t), nil)
	})
}

// openTest opens dsn; the caller closes the store (storetest.Run does) or
// the test's cleanup does, whichever comes first.
func openTest(t *testing.T, dsn string, logger *slog.Logger) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn, logger)
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

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) count(msg string) int {
	return strings.Count(b.String(), "msg=\""+msg+"\"")
}

type migrationRow struct {
	Version   int
	Name      string
	AppliedAt time.Time
}

func migrationRows(t *testing.T, s *Store) []migrationRow {
	t.Helper()
	rows, err := s.pool.Query(t.Context(), "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []migrationRow
	for rows.Next() {
		var r migrationRow
		if err := rows.Scan(&r.Version, &r.Name, &r.AppliedAt); err != nil {
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
	t.Parallel()
	dsn := newDatabase(t)
	known := knownVersion(t)

	var logs logBuffer
	s := openTest(t, dsn, slog.New(slog.NewTextHandler(&logs, nil)))
	first := migrationRows(t, s)
	if len(first) != known {
		t.Fatalf("fresh database has %d migrations recorded, want %d", len(first), known)
	}
	for i, r := range first {
		if r.Version != i+1 || r.AppliedAt.IsZero() || !strings.HasPrefix(r.Name, fmt.Sprintf("%04d_", r.Version)) {
			t.Errorf("migration row %d: %+v", i, r)
		}
	}
	if n := logs.count("applied store migration"); n != known {
		t.Errorf("logged %d applied migrations, want %d", n, known)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	var logs2 logBuffer
	s = openTest(t, dsn, slog.New(slog.NewTextHandler(&logs2, nil)))
	if n := logs2.count("applied store migration"); n != 0 {
		t.Errorf("re-open applied %d migrations, want none", n)
	}
	if again := migrationRows(t, s); fmt.Sprint(again) != fmt.Sprint(first) {
		t.Errorf("re-open changed schema_migrations:\n got %v\nwant %v", again, first)
	}
}

// TestMigrationsMatchSQLite: a schema version means the same tables in both
// adapters, so the two migration directories hold the same file names.
func TestMigrationsMatchSQLite(t *testing.T) {
	ours, err := loadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := loadMigrations(os.DirFS("../sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	var a, b []string
	for _, m := range ours {
		a = append(a, m.name)
	}
	for _, m := range theirs {
		b = append(b, m.name)
	}
	if strings.Join(a, " ") != strings.Join(b, " ") {
		t.Errorf("postgres migrations %v, sqlite migrations %v: add the matching migration to both", a, b)
	}
}

func TestFutureSchemaRefused(t *testing.T) {
	t.Parallel()
	dsn := newDatabase(t)
	known := knownVersion(t)
	s := openTest(t, dsn, nil)
	if _, err := s.pool.Exec(t.Context(),
		"INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'from_the_future.sql', now())", known+4); err != nil {
		t.Fatal(err)
	}
	s.Close()

	_, err := Open(t.Context(), dsn, nil)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a newer database: %v, want ErrSchemaTooNew", err)
	}
	want := fmt.Sprintf("database schema version %d is newer than this sandpit (knows %d): upgrade sandpit or use a backup", known+4, known)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q\ndoes not say %q", err, want)
	}
	if !strings.Contains(err.Error(), Redact(dsn)) {
		t.Errorf("error %q does not name the database", err)
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

// schemaOf describes every column, constraint and index of the store's
// tables, so that two databases' schemas can be compared.
func schemaOf(t *testing.T, s *Store) []string {
	t.Helper()
	rows, err := s.pool.Query(t.Context(), `
		SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' null=' || is_nullable ||
			' default=' || coalesce(column_default, '') || ' collate=' || coalesce(collation_name, '') ||
			' position=' || ordinal_position
		FROM information_schema.columns WHERE table_schema = current_schema()
		UNION ALL
		SELECT 'constraint ' || conrelid::regclass::text || '.' || conname || ' ' || pg_get_constraintdef(oid)
		FROM pg_constraint WHERE connamespace = current_schema()::regnamespace
		UNION ALL
		SELECT 'index ' || indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = current_schema()
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		out = append(out, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUpgradeFromV1 opens a database as Sandpit left it at schema version 1,
// with data in every table, with the current code: it gains the later
// tables and columns, keeps its data, and ends with exactly the schema of a
// new database.
func TestUpgradeFromV1(t *testing.T) {
	t.Parallel()
	if knownVersion(t) < 2 {
		t.Fatal("this test expects at least schema version 2")
	}
	ctx := t.Context()
	dsn := newDatabase(t)
	old, err := open(ctx, dsn, nil, migrationsUpTo(t, 1))
	if err != nil {
		t.Fatal(err)
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
		at := now()
		if _, err := old.pool.Exec(ctx, `INSERT INTO sandboxes (id, name, spec, status, phase, template, generation, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7)`, c.sb.ID, c.sb.Name, spec, status, string(c.st.Phase), c.sb.Spec.Template, at); err != nil {
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
	var generation int64
	var created, updated time.Time
	if err := old.pool.QueryRow(ctx, `SELECT generation, created_at, updated_at FROM sandboxes WHERE id = $1`, sb.ID).Scan(&generation, &created, &updated); err != nil {
		t.Fatal(err)
	}
	old.Close()

	var logs logBuffer
	s := openTest(t, dsn, slog.New(slog.NewTextHandler(&logs, nil)))
	if n := logs.count("applied store migration"); n != knownVersion(t)-1 {
		t.Errorf("upgrade logged %d applied migrations, want %d", n, knownVersion(t)-1)
	}
	if !strings.Contains(logs.String(), "version=2 name=0002_snapshots.sql") {
		t.Errorf("upgrade log does not mention 0002_snapshots.sql:\n%s", logs.String())
	}
	got, err := s.GetSandbox(ctx, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "kept" || got.Status.Phase != sandbox.PhaseReady || got.Spec.Set["k"] != "v" ||
		got.Generation != generation || !got.CreatedAt.Equal(created) || !got.UpdatedAt.Equal(updated) ||
		got.LastActivityAt != nil {
		t.Errorf("sandbox after the upgrade: %+v", got)
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
	if err := s.CreateSnapshot(ctx, &sandbox.Snapshot{Name: "first", Handle: []byte("h")}); err != nil {
		t.Errorf("CreateSnapshot after the upgrade: %v", err)
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
	if err := s.CreateRepo(ctx, &sandbox.Repo{Name: "shop", URL: "u", Template: "shop", GitHub: "acme/shop", AllowForkSecrets: true}); err != nil {
		t.Errorf("CreateRepo after the upgrade: %v", err)
	}

	fresh := openTest(t, newDatabase(t), nil)
	if up, nw := schemaOf(t, s), schemaOf(t, fresh); strings.Join(up, "\n") != strings.Join(nw, "\n") {
		t.Errorf("upgraded schema differs from a new database's:\n%s\n---\n%s", strings.Join(up, "\n"), strings.Join(nw, "\n"))
	}
}

func TestOlderSandpitRefusesUpgradedDatabase(t *testing.T) {
	t.Parallel()
	dsn := newDatabase(t)
	openTest(t, dsn, nil).Close()
	_, err := open(t.Context(), dsn, nil, migrationsUpTo(t, 1))
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("open by a version 1 Sandpit: %v, want ErrSchemaTooNew", err)
	}
}

func TestOpenErrors(t *testing.T) {
	c := needCluster(t)
	t.Parallel()
	if _, err := Open(t.Context(), "", nil); err == nil {
		t.Error("Open with an empty connection string succeeded")
	}
	port, err := freePort() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	for _, dsn := range []string{
		fmt.Sprintf("postgres://sandpit:s3cret-pw@127.0.0.1:%d/sandpit?sslmode=disable&connect_timeout=5", port),
		fmt.Sprintf("host=127.0.0.1 port=%d user=sandpit password=s3cret-pw dbname=sandpit sslmode=disable connect_timeout=5", port),
		"postgres://sandpit:s3cret-pw@127.0.0.1:notaport/sandpit",
		"postgres://sandpit:s3cret-pw@127.0.0.1/sandpit?pool_max_conns=lots",
	} {
		s, err := Open(t.Context(), dsn, nil)
		if err == nil {
			s.Close()
			t.Errorf("Open(%s) succeeded", Redact(dsn))
			continue
		}
		if strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("Open's error shows the password: %v", err)
		}
		if !strings.Contains(err.Error(), "open postgres store") {
			t.Errorf("Open's error %q does not say what failed", err)
		}
	}
	// A database that does not exist.
	dsn := c.URL("no_such_database")
	if _, err := Open(t.Context(), dsn, nil); err == nil || !strings.Contains(err.Error(), "no_such_database") {
		t.Errorf("Open of a missing database: %v; want an error naming it", err)
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://sandpit:s3cret@db.example.com:5432/sandpit?sslmode=require", "postgres://sandpit:xxxxx@db.example.com:5432/sandpit?sslmode=require"},
		{"postgresql://sandpit@db/sandpit", "postgresql://sandpit@db/sandpit"},
		{"postgres://db/sandpit?user=sandpit&password=s3cret", "postgres://db/sandpit?password=xxxxx&user=sandpit"},
		{"postgres://sandpit:p%40ss@db/sandpit", "postgres://sandpit:xxxxx@db/sandpit"},
		{"postgres://sandpit:s3c ret#x@db/sandpit", "postgres://sandpit:xxxxx@db/sandpit"},
		{"host=db user=sandpit password=s3cret dbname=sandpit", "host=db user=sandpit password=xxxxx dbname=sandpit"},
		{"host=db password = 's3c ret\\'x' dbname=sandpit", "host=db password = xxxxx dbname=sandpit"},
		{"host=db dbname=sandpit", "host=db dbname=sandpit"},
		{"mysql://sandpit:s3cret@db/sandpit", "mysql://sandpit:xxxxx@db/sandpit"},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCloseTwice(t *testing.T) {
	t.Parallel()
	s := openTest(t, newDatabase(t), nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestTextPostgresCannotHold: text columns refuse NUL and invalid UTF-8,
// which a message quoting a program's output may hold; the store replaces
// them instead of failing, and returns what it stored.
func TestTextPostgresCannotHold(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTest(t, newDatabase(t), nil)
	sb := &sandbox.Sandbox{Name: "bin", Status: sandbox.Status{Message: "nul \x00 in status"}}
	if err := s.CreateSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetSandbox(ctx, sb.ID); err != nil || got.Status.Message != "nul \x00 in status" {
		t.Errorf("status message = %q, %v; want it byte for byte (json keeps \\u0000)", got.Status.Message, err)
	}
	ev, err := s.AppendEvent(ctx, sandbox.Event{SandboxID: sb.ID, Reason: sandbox.ReasonInfo, Message: "a\x00b\xffc"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "a\uFFFDb\uFFFDc"; ev.Message != want {
		t.Errorf("AppendEvent returned message %q, want %q", ev.Message, want)
	}
	evs, err := s.ListEvents(ctx, sb.ID, 0, 0)
	if err != nil || len(evs) != 1 || evs[0].Message != ev.Message {
		t.Errorf("ListEvents = %+v, %v; want the message as AppendEvent returned it", evs, err)
	}
	snap := &sandbox.Snapshot{Name: "s", Message: "x\x00"}
	if err := s.CreateSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetSnapshot(ctx, snap.ID); err != nil || got.Message != snap.Message || snap.Message != "x\uFFFD" {
		t.Errorf("snapshot message %q stored as %q (%v)", snap.Message, got.Message, err)
	}
}

// TestByteOrderWhateverTheCollation: lists are ordered by bytes, as in
// SQLite, also in a database whose default collation is a natural-language
// one (as most production databases are).
func TestByteOrderWhateverTheCollation(t *testing.T) {
	t.Parallel()
	dsn, err := needCluster(t).CreateDatabase(t.Context(),
		"TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'")
	if err != nil {
		t.Skipf("this PostgreSQL cannot make an ICU en-US database: %v", err)
	}
	s := openTest(t, dsn, nil)
	ctx := t.Context()
	// Check that the database does sort differently, or the test proves
	// nothing.
	var natural string
	if err := s.pool.QueryRow(ctx, `SELECT string_agg(n, ' ' ORDER BY n) FROM unnest(ARRAY['b', 'B', 'a', '_z']) AS n`).Scan(&natural); err != nil {
		t.Fatal(err)
	}
	if natural == "B _z a b" {
		t.Skip("the ICU database sorts by bytes too")
	}
	for _, n := range []string{"b", "B", "a", "_z"} {
		if err := s.CreateSnapshot(ctx, &sandbox.Snapshot{Name: n}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.ApplyTemplate(ctx, store.TemplateVersion{Name: n, Digest: "d"}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateRepo(ctx, &sandbox.Repo{Name: n, URL: "u", Template: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	want := "B _z a b"
	snaps, err := s.ListSnapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tvs, err := s.ListTemplates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	repos, err := s.ListRepos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var a, b, c []string
	for i := range snaps {
		a, b, c = append(a, snaps[i].Name), append(b, tvs[i].Name), append(c, repos[i].Name)
	}
	for what, got := range map[string][]string{"snapshots": a, "templates": b, "repos": c} {
		if strings.Join(got, " ") != want {
			t.Errorf("%s listed as %q, want %q (byte order; the database's own is %q)", what, got, want, natural)
		}
	}
}

func TestCanceledContextWrapsCanceled(t *testing.T) {
	t.Parallel()
	s := openTest(t, newDatabase(t), nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Open(ctx, needCluster(t).URL("postgres"), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a canceled context: %v, want context.Canceled", err)
	}
	if err := s.TouchSandboxes(ctx, map[string]time.Time{"sb-1": time.Now()}); !errors.Is(err, context.Canceled) {
		t.Errorf("TouchSandboxes with a canceled context: %v, want context.Canceled", err)
	}
}
