package cli_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/testenv"
)

const pgBin = "/usr/lib/postgresql/15/bin"

// needPostgres skips a test that runs real databases on a real btrfs
// snapshot store where that cannot be done (on CI it fails instead:
// scripts/test.sh installs everything).
func needPostgres(t *testing.T) {
	t.Helper()
	skip := t.Skip
	if os.Getenv("CI") != "" {
		skip = t.Fatal
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

// sizeRE matches a size as the CLI prints it: the size of a database
// varies a little from run to run.
var sizeRE = regexp.MustCompile(`\b\d+(\.\d)? (B|KiB|MiB|GiB)\b`)

// TestSnapshotCommands runs the snapshot commands against a stack with a
// real btrfs snapshot store and real PostgreSQL: capture a sandbox's
// database, list and show it, start a sandbox from it, refuse to delete it
// while used, restore it in place, import a real dump and a bad one, and
// delete it by force.
func TestSnapshotCommands(t *testing.T) {
	needPostgres(t)
	t.Parallel()
	s := testenv.StartWith(t, testenv.Options{SnapshotStore: "auto"})
	e := stackEnv(s)
	tmp := t.TempDir()
	abs, _ := filepath.Abs("testdata")
	sc := s.Scrubber().Literal(abs, "<testdata>").Literal(tmp, "<tmp>").
		Pattern(`snap-[0-9a-f]{16}`, "snap-<id>").
		Pattern(sizeRE.String(), "<size>").
		// Ages that end table lines (AGE columns).
		Pattern(`(?m)(\s)\d+[smh]$`, "${1}<age>")
	run := func(name string, want int, args ...string) result {
		t.Helper()
		var r result
		t.Run(name, func(t *testing.T) {
			r = e.sandpit(t, args...)
			expect(t, "snapshot/"+name, sc, want, r)
		})
		return r
	}
	// runWith runs a command whose output needs more than scrubbing.
	runWith := func(name string, want int, fix func(t *testing.T, r *result), args ...string) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			r := e.sandpit(t, args...)
			fix(t, &r)
			expect(t, "snapshot/"+name, sc, want, r)
		})
	}
	// must runs a command that only prepares the next steps.
	must := func(args ...string) string {
		t.Helper()
		r := e.sandpit(t, args...)
		if r.code != 0 {
			t.Fatalf("sandpit %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		return r.stdout
	}
	psql := func(sb, sql string) string {
		t.Helper()
		return strings.TrimSpace(must("exec", sb, "db", "--", "psql", "-qtA", "-v", "ON_ERROR_STOP=1", "-d", "app", "-c", sql))
	}
	// Columns of tables with sizes and ages vary in width.
	table := func(t *testing.T, r *result) { r.stdout = collapse(sc.String(r.stdout)) }
	normalizeJSON := func(t *testing.T, r *result) {
		// Sizes are numbers there.
		r.stdout = regexp.MustCompile(`"size_bytes": [1-9]\d*`).ReplaceAllString(r.stdout, `"size_bytes": "<size>"`)
		out, err := sc.JSON([]byte(r.stdout))
		if err != nil {
			t.Fatal(err)
		}
		r.stdout = string(out)
	}
	// Collapsed before it is scrubbed: a pid can look like a port.
	describe := func(t *testing.T, r *result) { r.stdout = sortSection(sc.String(collapse(r.stdout)), "Stages:") }

	run("list_empty", 0, "snapshot", "list")
	must("template", "apply", "-f", "testdata/pg.yaml")
	must("create", "origin", "-t", "pg", "--wait")
	psql("origin", "CREATE TABLE items (name text PRIMARY KEY); INSERT INTO items SELECT 'seed-' || i FROM generate_series(1, 3) i")

	run("create", 0, "snapshot", "create", "seed", "--from", "origin/db")
	run("create_exists", 1, "snapshot", "create", "seed", "--from", "origin/db")
	run("create_unknown_sandbox", 1, "snapshot", "create", "x", "--from", "nope/db")
	run("create_unknown_dependency", 1, "snapshot", "create", "x", "--from", "origin/cache")
	run("create_bad_name", 1, "snapshot", "create", "Bad_Name", "--from", "origin/db")
	if got := psql("origin", "SELECT count(*) FROM items"); got != "3" {
		t.Fatalf("origin after the capture has %s rows, want 3", got)
	}

	// A sandbox started from the snapshot uses it.
	must("template", "apply", "-f", "testdata/pg-seeded.yaml")
	must("create", "clone", "-t", "pg-seeded", "--wait")
	if got := psql("clone", "SELECT string_agg(name, ',' ORDER BY name) FROM items"); got != "seed-1,seed-2,seed-3" {
		t.Fatalf("clone starts with %q, want the snapshot's rows", got)
	}

	runWith("list", 0, table, "snapshot", "list")
	runWith("list_json", 0, normalizeJSON, "snapshot", "list", "-o", "json")
	run("get", 0, "snapshot", "get", "seed")
	run("get_unknown", 1, "snapshot", "get", "nope")
	run("delete_used", 1, "snapshot", "delete", "seed")

	// Restore in place: origin's changes are undone.
	psql("origin", "DELETE FROM items; INSERT INTO items VALUES ('changed')")
	run("restore", 0, "snapshot", "restore", "seed", "--to", "origin/db")
	if got := psql("origin", "SELECT string_agg(name, ',' ORDER BY name) FROM items"); got != "seed-1,seed-2,seed-3" {
		t.Errorf("origin after the restore has %q, want the snapshot's rows", got)
	}
	run("restore_no_wait", 0, "snapshot", "restore", "seed", "--to", "origin/db", "--wait=false")
	s.WaitPhase(t, "origin", sandbox.PhaseReady)
	run("restore_unknown_dependency", 1, "snapshot", "restore", "seed", "--to", "origin/cache")
	run("restore_unknown_sandbox", 1, "snapshot", "restore", "seed", "--to", "nope/db")
	run("restore_unknown_snapshot", 1, "snapshot", "restore", "nope", "--to", "origin/db")

	// Import a real pg_dump custom archive, made in the sandbox.
	dump := filepath.Join(tmp, "app.dump")
	if err := os.WriteFile(dump, []byte(must("exec", "origin", "db", "--", "pg_dump", "-Fc", "app")), 0o644); err != nil {
		t.Fatal(err)
	}
	run("import", 0, "snapshot", "import", "imported", "--type", "postgres", "--file", dump)
	run("get_imported", 0, "snapshot", "get", "imported")
	run("import_no_wait", 0, "snapshot", "import", "later", "--type", "postgres", "--file", dump, "--wait=false")
	if sn, err := s.Client.WaitSnapshot(t.Context(), "later", 20*time.Millisecond, nil); err != nil || sn.Phase != sandbox.SnapshotReady {
		t.Fatalf("snapshot later: %v %+v", err, sn)
	}
	t.Run("import_tty", func(t *testing.T) {
		// On a terminal the upload and the wait are drawn in place, one
		// after the other. (Not golden: what is drawn depends on timing.)
		tty := e
		tty.tty = true
		r := tty.sandpit(t, "snapshot", "import", "drawn", "--type", "postgres", "--file", dump)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "snapshot drawn is Ready: postgres 15, ") {
			t.Errorf("import on a terminal: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		// The upload's progress ends before the wait's begins, and each
		// redraw clears what a longer one left.
		i := strings.Index(r.stderr, "importing app.dump as snapshot drawn ...\n")
		if i < 0 || strings.Contains(r.stderr[i:], "uploading") || !strings.HasSuffix(r.stderr, "\r\x1b[K") {
			t.Errorf("import on a terminal drew %q", r.stderr)
		}
		if n := strings.Count(r.stderr, "elapsed"); n == 0 || n != strings.Count(r.stderr, "elapsed\x1b[K") {
			t.Errorf("import on a terminal drew %q", r.stderr)
		}
	})
	garbage := filepath.Join(tmp, "garbage.bin")
	if err := os.WriteFile(garbage, []byte("\x00\x01\x02 not a dump"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("import_garbage", 1, "snapshot", "import", "junk", "--type", "postgres", "--file", garbage)
	run("get_failed", 0, "snapshot", "get", "junk")
	run("import_missing_file", 1, "snapshot", "import", "x", "--type", "postgres", "--file", filepath.Join(tmp, "nope.dump"))
	run("import_bad_type", 1, "snapshot", "import", "x", "--type", "mysql", "--file", dump)
	runWith("list_after_import", 0, table, "snapshot", "list")

	runWith("get_sandbox", 0, describe, "get", "clone")
	run("delete_force", 0, "snapshot", "delete", "seed", "--force")
	run("delete_unknown", 1, "snapshot", "delete", "seed")
	run("delete_many", 0, "snapshot", "delete", "imported", "junk", "later", "drawn")
	run("apply_missing_snapshot", 0, "template", "apply", "-f", "testdata/pg-missing.yaml")

	// What the CLI printed is what the server holds.
	if _, err := s.Client.GetSnapshot(t.Context(), "seed"); err == nil {
		t.Error("seed still exists after delete --force")
	}
	sb := s.WaitPhase(t, "clone", sandbox.PhaseReady)
	if d := sb.Status.Dependencies[0]; d.Snapshot != "seed" {
		t.Errorf("clone's dependency names snapshot %q, want seed", d.Snapshot)
	}
}
