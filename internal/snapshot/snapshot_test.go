package snapshot_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/runtime/local/volume"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const pgBin = "/usr/lib/postgresql/15/bin"

// template of a sandbox with one PostgreSQL 15 dependency, started from
// snapshot when it is not empty.
func tmpl(name, snapshot string) string {
	snap := ""
	if snapshot != "" {
		snap = ", snapshot: " + snapshot
	}
	return fmt.Sprintf(`apiVersion: sandpit/v1
name: %s
services:
  idle:
    run: exec sleep 100000
dependencies:
  db: {type: postgres, version: "15", databases: [app]%s}
`, name, snap)
}

func needPostgres(t *testing.T) {
	t.Helper()
	skip := t.Skip
	if os.Getenv("CI") != "" {
		skip = t.Fatal // scripts/test.sh installs everything
	}
	if _, err := os.Stat(filepath.Join(pgBin, "postgres")); err != nil {
		skip("PostgreSQL 15 is not installed (scripts/test.sh installs it)")
	}
	if _, err := os.Stat("/usr/sbin/mkfs.btrfs"); err != nil {
		skip("btrfs-progs is not installed (scripts/test.sh installs it)")
	}
	if os.Geteuid() != 0 {
		skip("needs root: databases run as an unprivileged user, and the btrfs snapshot store is a loop-mounted image")
	}
}

func waitReady(t *testing.T, s *testenv.Stack, name string) *client.Sandbox {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
	defer cancel()
	sb, err := s.Client.WaitFor(ctx, name, 20*time.Millisecond, func(sb *client.Sandbox) bool {
		return sb != nil && sb.Status.ObservedGeneration == sb.Generation && (sb.Status.Phase == sandbox.PhaseReady || sb.Status.Phase == sandbox.PhaseFailed)
	})
	if err != nil {
		cur, _ := s.Client.GetSandbox(context.Background(), name)
		evs, _ := s.Client.Events(context.Background(), name, 0)
		var b strings.Builder
		for _, ev := range evs {
			fmt.Fprintf(&b, "  %s %s %s %s\n", ev.Time.Format("15:04:05.000"), ev.Reason, ev.Stage, ev.Message)
		}
		if cur != nil {
			fmt.Fprintf(&b, "status: %s %q deps %+v\n", cur.Status.Phase, cur.Status.Message, cur.Status.Dependencies)
		}
		t.Fatalf("wait for %s: %v\n%s", name, err, b.String())
	}
	if sb.Status.Phase != sandbox.PhaseReady {
		t.Fatalf("sandbox %s is %s: %s", name, sb.Status.Phase, sb.Status.Message)
	}
	return sb
}

func waitSnapshot(t *testing.T, s *testenv.Stack, name string) *client.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*testenv.WaitTimeout)
	defer cancel()
	sn, err := s.Client.WaitSnapshot(ctx, name, 20*time.Millisecond, nil)
	if err != nil {
		t.Fatalf("wait for snapshot %s: %v", name, err)
	}
	return sn
}

// connect opens the sandbox's database "app" as its superuser, with the
// password the runtime generated for it (the test runs as root, as the
// server does).
func connect(t *testing.T, s *testenv.Stack, name string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	sb, err := s.Client.GetSandbox(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := os.ReadFile(filepath.Join(s.Runtime.SandboxDir(sb.ID), "state", "db.password"))
	if err != nil {
		t.Fatal(err)
	}
	port := sb.Status.Dependencies[0].Port
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/app?sslmode=disable", pw, port))
	if err != nil {
		t.Fatalf("connect to %s's database: %v", name, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func exec1(t *testing.T, c *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := c.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func names(t *testing.T, c *pgx.Conn) []string {
	t.Helper()
	rows, err := c.Query(context.Background(), "SELECT name FROM items ORDER BY name")
	if err != nil {
		t.Fatalf("query items: %v", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func hasEvent(t *testing.T, s *testenv.Stack, sbName, reason, contains string) bool {
	t.Helper()
	evs, err := s.Client.Events(context.Background(), sbName, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Reason == reason && strings.Contains(ev.Message, contains) {
			return true
		}
	}
	return false
}

func apiErr(t *testing.T, err error, status int, contains string) {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) || e.Status != status || !strings.Contains(e.Message+" "+e.Hint, contains) {
		t.Fatalf("got error %v, want HTTP %d mentioning %q", err, status, contains)
	}
}

// TestSnapshotFromSandbox covers the main story on real PostgreSQL
// and a real loop-mounted btrfs store: capture a sandbox's database, start
// three sandboxes from it, write different rows in each, check isolation
// and that the snapshot is unchanged, refuse to delete it while in use,
// restore one in place, and leave no data volume behind.
func TestSnapshotFromSandbox(t *testing.T) {
	needPostgres(t)
	s := testenv.StartWith(t, testenv.Options{SnapshotStore: "auto"})
	if m := s.Volumes.Method(); m != volume.Btrfs {
		t.Fatalf("snapshot store method %s, want btrfs (root with a loop-mounted image): %s", m, s.Volumes.Describe())
	}
	ctx := context.Background()
	c := s.Client

	s.Apply(t, tmpl("plain", ""))
	s.Create(t, "origin", "plain")
	waitReady(t, s, "origin")
	oc := connect(t, s, "origin")
	exec1(t, oc, "CREATE TABLE items (name text PRIMARY KEY)")
	exec1(t, oc, "INSERT INTO items SELECT 'seed-' || i FROM generate_series(1, 3) i")

	sn, err := c.CreateSnapshot(ctx, client.CreateSnapshotRequest{Name: "seed", Sandbox: "origin", Dependency: "db"})
	if err != nil {
		t.Fatal(err)
	}
	if sn.Phase != sandbox.SnapshotCreating {
		t.Errorf("new snapshot is %s, want Creating", sn.Phase)
	}
	sn = waitSnapshot(t, s, "seed")
	if sn.Phase != sandbox.SnapshotReady || sn.Version != "15" || sn.Type != "postgres" || sn.Method != "btrfs" || sn.SizeBytes < 1<<20 {
		t.Fatalf("snapshot: %+v", sn)
	}
	if sn.Source.Kind != sandbox.SnapshotFromSandbox || sn.Source.Sandbox != "origin" || sn.Source.Dependency != "db" {
		t.Errorf("source: %+v", sn.Source)
	}
	// Services (the unprivileged user owns the files inside) cannot reach
	// snapshots at all.
	if fi, err := os.Stat(filepath.Join(s.DataDir, "volumes", "snapshots")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("snapshots directory: %v, mode %v, want 0700", err, fi.Mode().Perm())
	}
	// The event follows the snapshot's Ready record.
	testenv.Eventually(t, "origin's SnapshotCaptured event", func() bool {
		return hasEvent(t, s, "origin", sandbox.ReasonSnapshotCaptured, "captured as snapshot seed")
	})
	// The captured database was stopped and started again: it answers,
	// with its data, on the same port.
	oc = connect(t, s, "origin")
	if got := names(t, oc); len(got) != 3 {
		t.Fatalf("origin after the capture has %v", got)
	}
	// A second snapshot of the same name is refused.
	_, err = c.CreateSnapshot(ctx, client.CreateSnapshotRequest{Name: "seed", Sandbox: "origin", Dependency: "db"})
	apiErr(t, err, 409, "already exists")

	s.Apply(t, tmpl("seeded", "seed"))
	clones := []string{"c1", "c2", "c3"}
	for _, n := range clones {
		s.Create(t, n, "seeded")
	}
	conns := map[string]*pgx.Conn{}
	for _, n := range clones {
		sb := waitReady(t, s, n)
		if d := sb.Status.Dependencies[0]; d.Snapshot != "seed" {
			t.Errorf("%s's dependency status names snapshot %q, want seed", n, d.Snapshot)
		}
		if !hasEvent(t, s, n, sandbox.ReasonSnapshotRestored, "by btrfs snapshot") {
			t.Errorf("%s has no SnapshotRestored event naming the method", n)
		}
		conns[n] = connect(t, s, n)
		if got := names(t, conns[n]); !slices.Equal(got, []string{"seed-1", "seed-2", "seed-3"}) {
			t.Fatalf("%s starts with %v, want the snapshot's three rows", n, got)
		}
		exec1(t, conns[n], "INSERT INTO items VALUES ($1)", "only-"+n)
	}
	exec1(t, oc, "DELETE FROM items WHERE name = 'seed-1'")
	for _, n := range clones {
		want := []string{"only-" + n, "seed-1", "seed-2", "seed-3"}
		if got := names(t, conns[n]); !slices.Equal(got, want) {
			t.Errorf("%s has %v, want %v: writes leaked between sandboxes", n, got, want)
		}
	}
	// Each sandbox has its own password, not the snapshot's.
	pws := map[string]bool{}
	for _, n := range append(clones, "origin") {
		sb, _ := c.GetSandbox(ctx, n)
		pw, _ := os.ReadFile(filepath.Join(s.Runtime.SandboxDir(sb.ID), "state", "db.password"))
		pws[string(pw)] = true
	}
	if len(pws) != 4 {
		t.Errorf("sandboxes share database passwords (%d distinct of 4)", len(pws))
	}

	// The snapshot itself is unchanged: a sandbox started now sees only
	// the captured rows.
	s.Create(t, "later", "seeded")
	waitReady(t, s, "later")
	if got := names(t, connect(t, s, "later")); !slices.Equal(got, []string{"seed-1", "seed-2", "seed-3"}) {
		t.Errorf("a sandbox started after the writes sees %v: the snapshot changed", got)
	}

	sn, err = c.GetSnapshot(ctx, "seed")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"c1", "c2", "c3", "later"}; !slices.Equal(sn.UsedBy, want) {
		t.Errorf("used by %v, want %v", sn.UsedBy, want)
	}
	apiErr(t, c.DeleteSnapshot(ctx, "seed", false), 409, "c1, c2, c3, later")

	// Restore in place: c1 gets the snapshot's data back, keeps its port
	// and its password.
	before, _ := c.GetSandbox(ctx, "c1")
	exec1(t, conns["c1"], "INSERT INTO items VALUES ('more')")
	sb, err := c.RestoreSnapshot(ctx, client.RestoreSnapshotRequest{Snapshot: "seed", Sandbox: "c1", Dependency: "db"})
	if err != nil {
		t.Fatal(err)
	}
	if sb.Generation != before.Generation+1 || sb.Spec.Restores["db"].Seq != 1 {
		t.Errorf("restore request: generation %d (was %d), restores %+v", sb.Generation, before.Generation, sb.Spec.Restores)
	}
	after := waitReady(t, s, "c1")
	if after.Status.Dependencies[0].Port != before.Status.Dependencies[0].Port {
		t.Errorf("the restore moved the database from port %d to %d", before.Status.Dependencies[0].Port, after.Status.Dependencies[0].Port)
	}
	if got := names(t, connect(t, s, "c1")); !slices.Equal(got, []string{"seed-1", "seed-2", "seed-3"}) {
		t.Errorf("after the restore c1 has %v, want the snapshot's rows", got)
	}
	if got := names(t, conns["c2"]); !slices.Contains(got, "only-c2") {
		t.Errorf("restoring c1 changed c2: %v", got)
	}
	// The restore also works from a snapshot of a sandbox that did not
	// start from one (origin), and refuses unknown things clearly.
	if _, err := c.RestoreSnapshot(ctx, client.RestoreSnapshotRequest{Snapshot: "seed", Sandbox: "origin", Dependency: "db"}); err != nil {
		t.Fatal(err)
	}
	waitReady(t, s, "origin")
	if got := names(t, connect(t, s, "origin")); len(got) != 3 {
		t.Errorf("origin after its restore has %v", got)
	}
	_, err = c.RestoreSnapshot(ctx, client.RestoreSnapshotRequest{Snapshot: "nope", Sandbox: "c1", Dependency: "db"})
	apiErr(t, err, 404, "snapshot")
	_, err = c.RestoreSnapshot(ctx, client.RestoreSnapshotRequest{Snapshot: "seed", Sandbox: "c1", Dependency: "cache"})
	apiErr(t, err, 400, "its dependencies: db")

	// Deleting every sandbox leaves no data volume (the stack's cleanup
	// checks that too, and that nothing stays mounted), and the snapshot
	// can then go without --force.
	for _, n := range append(clones, "later", "origin") {
		if _, err := c.DeleteSandbox(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, testenv.WaitTimeout)
	defer cancel()
	for _, n := range append(clones, "later", "origin") {
		if _, err := c.WaitFor(wctx, n, 20*time.Millisecond, func(sb *client.Sandbox) bool { return sb == nil }); err != nil {
			t.Fatal(err)
		}
	}
	if left, _ := s.Volumes.List(ctx, "deps"); len(left) > 0 {
		t.Errorf("data volumes left after the sandboxes were deleted: %v", left)
	}
	if err := c.DeleteSnapshot(ctx, "seed", false); err != nil {
		t.Fatalf("delete the unused snapshot: %v", err)
	}
	if ids, _ := s.Runtime.SnapshotIDs(ctx); len(ids) > 0 {
		t.Errorf("snapshot data left after delete: %v", ids)
	}
	if _, err := c.GetSnapshot(ctx, "seed"); !client.IsNotFound(err) {
		t.Errorf("get deleted snapshot: %v", err)
	}
}

// TestSnapshotImport imports real pg_dump files (custom and plain SQL),
// starts sandboxes from them, and refuses bad dumps with a clear message
// and without leaving data behind.
func TestSnapshotImport(t *testing.T) {
	needPostgres(t)
	s := testenv.StartWith(t, testenv.Options{SnapshotStore: "auto"})
	ctx := context.Background()
	c := s.Client

	// A source database to dump, in a sandbox of its own.
	s.Apply(t, tmpl("plain", ""))
	s.Create(t, "src", "plain")
	waitReady(t, s, "src")
	sc := connect(t, s, "src")
	exec1(t, sc, "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL)")
	exec1(t, sc, "CREATE TABLE items (name text PRIMARY KEY, customer int REFERENCES customers(id))")
	exec1(t, sc, "CREATE INDEX items_customer ON items (customer)")
	exec1(t, sc, "INSERT INTO customers SELECT i, 'c' || i FROM generate_series(1, 1000) i")
	exec1(t, sc, "INSERT INTO items SELECT 'item-' || i, 1 + i % 1000 FROM generate_series(1, 5000) i")
	srcSB, _ := c.GetSandbox(ctx, "src")
	pw, _ := os.ReadFile(filepath.Join(s.Runtime.SandboxDir(srcSB.ID), "state", "db.password"))
	dir := t.TempDir()
	dump := func(file string, args ...string) string {
		p := filepath.Join(dir, file)
		cmd := exec.Command(filepath.Join(pgBin, "pg_dump"), append(args, "--file="+p, "--host=127.0.0.1", "--port="+strconv.Itoa(srcSB.Status.Dependencies[0].Port), "--username=postgres", "app")...)
		cmd.Env = append(os.Environ(), "PGPASSWORD="+string(pw))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("pg_dump: %v: %s", err, out)
		}
		return p
	}
	custom := dump("app.dump", "-Fc")
	plain := dump("app.sql")

	imp := func(name, file string, req client.ImportSnapshotRequest) (*client.Snapshot, error) {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		req.Name, req.Filename = name, filepath.Base(file)
		if req.Type == "" {
			req.Type = "postgres"
		}
		return c.ImportSnapshot(ctx, req, f)
	}
	if _, err := imp("from-custom", custom, client.ImportSnapshotRequest{}); err != nil {
		t.Fatal(err)
	}
	sn := waitSnapshot(t, s, "from-custom")
	if sn.Phase != sandbox.SnapshotReady || sn.Source.Format != "custom" || sn.Source.Database != "app" || sn.Version != "15" || sn.Source.File != "app.dump" {
		t.Fatalf("custom import: %+v", sn)
	}
	// A plain dump does not name its database: it must be given.
	if _, err := imp("from-plain", plain, client.ImportSnapshotRequest{}); err != nil {
		t.Fatal(err)
	}
	if sn := waitSnapshot(t, s, "from-plain"); sn.Phase != sandbox.SnapshotFailed || !strings.Contains(sn.Message, "--database") {
		t.Fatalf("plain import without a database: %s %q", sn.Phase, sn.Message)
	}
	// ... and a Failed snapshot's name can be used again.
	if _, err := imp("from-plain", plain, client.ImportSnapshotRequest{Database: "app"}); err != nil {
		t.Fatal(err)
	}
	if sn := waitSnapshot(t, s, "from-plain"); sn.Phase != sandbox.SnapshotReady || sn.Source.Format != "plain" {
		t.Fatalf("plain import: %s %q", sn.Phase, sn.Message)
	}

	for _, snap := range []string{"from-custom", "from-plain"} {
		s.Apply(t, tmpl("t-"+snap, snap))
		s.Create(t, snap, "t-"+snap)
		waitReady(t, s, snap)
		conn := connect(t, s, snap)
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM items i JOIN customers c ON c.id = i.customer").Scan(&n); err != nil || n != 5000 {
			t.Errorf("%s: joined rows %d (err %v), want 5000", snap, n, err)
		}
		// Indexes and foreign keys came along.
		if _, err := conn.Exec(ctx, "INSERT INTO items VALUES ('x', 999999)"); err == nil || !strings.Contains(err.Error(), "foreign key") {
			t.Errorf("%s: the foreign key is missing: %v", snap, err)
		}
	}

	// Bad input: clear errors, nothing stored.
	garbage := filepath.Join(dir, "garbage.bin")
	os.WriteFile(garbage, []byte("\x00\x01\x02 not a dump"), 0o644)
	if _, err := imp("garbage", garbage, client.ImportSnapshotRequest{}); err != nil {
		t.Fatal(err)
	}
	if sn := waitSnapshot(t, s, "garbage"); sn.Phase != sandbox.SnapshotFailed || !strings.Contains(sn.Message, "neither a pg_dump archive") {
		t.Errorf("garbage import: %s %q", sn.Phase, sn.Message)
	}
	broken := filepath.Join(dir, "broken.sql")
	os.WriteFile(broken, []byte("CREATE TABLE t (id int);\nINSERT INTO nope VALUES (1);\n"), 0o644)
	if _, err := imp("broken", broken, client.ImportSnapshotRequest{Database: "app"}); err != nil {
		t.Fatal(err)
	}
	if sn := waitSnapshot(t, s, "broken"); sn.Phase != sandbox.SnapshotFailed || !strings.Contains(sn.Message, `relation "nope" does not exist`) {
		t.Errorf("broken import: %s %q", sn.Phase, sn.Message)
	}
	_, err := imp("x", custom, client.ImportSnapshotRequest{Type: "mysql"})
	apiErr(t, err, 400, "postgres")
	_, err = imp("Bad_Name", custom, client.ImportSnapshotRequest{})
	apiErr(t, err, 400, "snapshot name")
	_, err = imp("from-custom", custom, client.ImportSnapshotRequest{})
	apiErr(t, err, 409, "already exists")
	_, err = c.ImportSnapshot(ctx, client.ImportSnapshotRequest{Name: "empty", Type: "postgres"}, strings.NewReader(""))
	apiErr(t, err, 400, "empty")
	if _, err := c.GetSnapshot(ctx, "empty"); !client.IsNotFound(err) {
		t.Errorf("a refused upload left a record: %v", err)
	}
	// Failed imports left no data: only the two good snapshots remain.
	ids, err := s.Runtime.SnapshotIDs(ctx)
	if err != nil || len(ids) != 2 {
		t.Errorf("snapshot data ids %v (err %v), want the two Ready ones", ids, err)
	}
	spool, _ := os.ReadDir(filepath.Join(s.DataDir, "incoming"))
	if len(spool) > 0 {
		t.Errorf("uploads left in the spool: %v", spool)
	}
	list, err := c.ListSnapshots(ctx)
	if err != nil || list.Method != "btrfs" || !strings.Contains(list.Store, "btrfs") {
		t.Errorf("list: method %q store %q err %v", list.Method, list.Store, err)
	}
}

// TestTemplateSnapshotChecks: a template naming a snapshot of another
// major version is refused at apply time with the reference's position; a
// missing snapshot is a warning, and a sandbox launched from it fails
// with what to do.
func TestTemplateSnapshotChecks(t *testing.T) {
	needPostgres(t)
	s := testenv.Start(t)
	ctx := context.Background()
	// A record as an import of a PostgreSQL 14 dump would leave (no 14 is
	// installed here to make a real one).
	old := &sandbox.Snapshot{Name: "pg14", Type: "postgres", Version: "14", Phase: sandbox.SnapshotReady, Source: sandbox.SnapshotSource{Kind: sandbox.SnapshotFromImport}}
	if err := s.Store.CreateSnapshot(ctx, old); err != nil {
		t.Fatal(err)
	}
	_, err := s.Client.ApplyTemplate(ctx, client.ApplyTemplateRequest{Filename: "shop.yaml", Source: tmpl("shop", "pg14")})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 422 || len(e.Details) != 1 {
		t.Fatalf("apply: %v", err)
	}
	if d := e.Details[0]; !strings.HasPrefix(d.Pos, "shop.yaml:7:57") || d.Path != "dependencies.db.snapshot" || !strings.Contains(d.Message, `holds postgres 14 data, but dependency db is postgres 15`) {
		t.Errorf("detail: %+v", d)
	}

	// Restoring it into a PostgreSQL 15 dependency is refused up front,
	// and the sandbox's spec is left as it was.
	s.Apply(t, tmpl("plain", ""))
	p := s.Create(t, "p15", "plain")
	_, err = s.Client.RestoreSnapshot(ctx, client.RestoreSnapshotRequest{Snapshot: "pg14", Sandbox: "p15", Dependency: "db"})
	apiErr(t, err, 400, "holds postgres 14 data, but dependency db is postgres 15")
	if cur, _ := s.Client.GetSandbox(ctx, "p15"); cur.Generation != p.Generation || len(cur.Spec.Restores) != 0 {
		t.Errorf("a refused restore changed the sandbox: generation %d, restores %v", cur.Generation, cur.Spec.Restores)
	}
	// Nor can a snapshot that is still being made be restored.
	busy := &sandbox.Snapshot{Name: "busy", Type: "postgres", Version: "15", Source: sandbox.SnapshotSource{Kind: sandbox.SnapshotFromImport}}
	if err := s.Store.CreateSnapshot(ctx, busy); err != nil {
		t.Fatal(err)
	}
	_, err = s.Client.RestoreSnapshot(ctx, client.RestoreSnapshotRequest{Snapshot: "busy", Sandbox: "p15", Dependency: "db"})
	apiErr(t, err, 409, "still being created")
	apiErr(t, s.Client.DeleteSnapshot(ctx, "busy", false), 409, "still being created")

	res, err := s.Client.ApplyTemplate(ctx, client.ApplyTemplateRequest{Filename: "shop.yaml", Source: tmpl("shop", "missing")})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 1 || !strings.HasPrefix(res.Warnings[0], "shop.yaml:7:57") || !strings.Contains(res.Warnings[0], "does not exist yet") {
		t.Errorf("warnings: %q", res.Warnings)
	}
	s.Create(t, "orphan", "shop")
	wctx, cancel := context.WithTimeout(ctx, testenv.WaitTimeout)
	defer cancel()
	sb, err := s.Client.WaitFor(wctx, "orphan", 20*time.Millisecond, func(sb *client.Sandbox) bool { return sb.Status.Phase == sandbox.PhaseFailed })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sb.Status.Message, "snapshot missing does not exist") || !strings.Contains(sb.Status.Message, "sandpit snapshot import missing") {
		t.Errorf("failure message: %q", sb.Status.Message)
	}
}
