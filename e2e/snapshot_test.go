package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/sandbox"
)

const snapTemplate = `apiVersion: sandpit/v1
name: %NAME%
services:
  idle:
    run: exec sleep 100000
dependencies:
  db: {type: postgres, version: "15", databases: [app]%SNAP%}
`

func snapshotTemplate(t *testing.T, name, snap string) string {
	body := strings.ReplaceAll(snapTemplate, "%NAME%", name)
	if snap != "" {
		body = strings.ReplaceAll(body, "%SNAP%", ", snapshot: "+snap)
	} else {
		body = strings.ReplaceAll(body, "%SNAP%", "")
	}
	return writeTemplate(t, name+".yaml", body)
}

// waitSnapshotGone waits until a snapshot is Ready, Failed or absent.
func (s *server) settleSnapshot(name string, within time.Duration) *client.Snapshot {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		sn, err := s.client.GetSnapshot(context.Background(), name)
		if client.IsNotFound(err) {
			return nil
		}
		if err != nil {
			s.t.Fatal(err)
		}
		if sn.Phase != sandbox.SnapshotCreating {
			return sn
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("snapshot %s still Creating after %s", name, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestServerKilledDuringSnapshotCreation kills the real server while a dump
// is being restored into a new snapshot and while a sandbox's database is
// being captured, restarts it, and checks that each snapshot is complete
// (a sandbox started from it has every row) or absent — never half made —
// and that nothing of the interrupted work survives.
func TestServerKilledDuringSnapshotCreation(t *testing.T) {
	s := newServer(t)
	s.mustCLI("template", "apply", "-f", snapshotTemplate(t, "plain", ""))
	s.mustCLI("create", "src", "--template", "plain", "--wait")
	// 2 million rows with an index: big enough that restoring the dump
	// takes a few seconds, so the kill lands mid-restore.
	s.mustCLI("exec", "src", "db", "--", "psql", "-q", "-d", "app", "-v", "ON_ERROR_STOP=1", "-c",
		"CREATE TABLE items AS SELECT i AS id, md5(i::text) AS name FROM generate_series(1, 2000000) i; ALTER TABLE items ADD PRIMARY KEY (id)")
	dump := filepath.Join(t.TempDir(), "app.dump")
	out := s.mustCLI("exec", "src", "db", "--", "pg_dump", "-Fc", "app")
	if err := os.WriteFile(dump, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}

	s.mustCLI("snapshot", "import", "big", "--type", "postgres", "--file", dump, "--wait=false")
	// Kill once pg_restore runs for the import (a task of the snapshot's
	// workspace).
	sn, err := s.client.GetSnapshot(context.Background(), "big")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for !s.restoreRunning(sn.ID) {
		if time.Now().After(deadline) {
			t.Fatal("the import's pg_restore never ran")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	s.kill()
	t.Log("server killed mid-import")
	s.start()
	if got := s.settleSnapshot("big", 3*time.Minute); got != nil && got.Phase != sandbox.SnapshotReady {
		t.Fatalf("snapshot big after the restart: %s %s", got.Phase, got.Message)
	}

	// Mid-capture: the database of src is being stopped and copied.
	s.mustCLI("snapshot", "create", "cap", "--from", "src/db", "--wait=false")
	s.kill()
	t.Log("server killed mid-capture")
	s.start()
	cap := s.settleSnapshot("cap", 2*time.Minute)
	if cap != nil && cap.Phase != sandbox.SnapshotReady {
		t.Fatalf("snapshot cap after the restart: %s %s", cap.Phase, cap.Message)
	}
	// src's database runs again either way, with its data.
	if out := s.mustCLI("exec", "src", "db", "--", "psql", "-tA", "-d", "app", "-c", "SELECT count(*) FROM items"); strings.TrimSpace(out) != "2000000" {
		t.Errorf("src after the interrupted capture: %q", out)
	}

	// What exists is complete: a sandbox from each has every row.
	for _, snap := range []string{"big", "cap"} {
		if got, _ := s.client.GetSnapshot(context.Background(), snap); got == nil {
			t.Logf("snapshot %s is absent after the restart (allowed: it never completed)", snap)
			continue
		}
		s.mustCLI("template", "apply", "-f", snapshotTemplate(t, "from-"+snap, snap))
		s.mustCLI("create", "s-"+snap, "--template", "from-"+snap, "--wait")
		if out := s.mustCLI("exec", "s-"+snap, "db", "--", "psql", "-tA", "-d", "app", "-c", "SELECT count(*), count(DISTINCT name) FROM items"); strings.TrimSpace(out) != "2000000|2000000" {
			t.Errorf("sandbox from %s has %q, want every row", snap, out)
		}
	}
	// Nothing of the interrupted work is left: no import workspace, no
	// half-made data, no upload, no process of a snapshot.
	for _, dir := range []string{"volumes/tmp", "incoming"} {
		entries, _ := os.ReadDir(filepath.Join(s.dataDir, dir))
		if len(entries) > 0 {
			t.Errorf("%s holds leftovers: %v", dir, entries)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(s.dataDir, "sandboxes"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "snap-") {
			t.Errorf("an import workspace survived: %s", e.Name())
		}
	}
	list, err := s.client.ListSnapshots(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if list.Method != "btrfs" {
		t.Errorf("the server as root stores snapshots by %q, want btrfs: %s", list.Method, list.Store)
	}
	stored, _ := os.ReadDir(filepath.Join(s.dataDir, "volumes", "snapshots"))
	if len(stored) != len(list.Items) {
		t.Errorf("%d snapshot data volumes for %d snapshots", len(stored), len(list.Items))
	}
	for _, sn := range list.Items {
		if pids := markedProcesses(localNodeID(s.dataDir), sn.ID); len(pids) > 0 {
			t.Errorf("processes of snapshot %s survived: %v", sn.Name, pids)
		}
	}
	// The start-up log names the method.
	logText, _ := os.ReadFile(s.logPath)
	if !strings.Contains(string(logText), "snapshot store: btrfs subvolume snapshots") {
		t.Errorf("the server log does not say how snapshots are stored")
	}
	for _, name := range []string{"s-big", "s-cap", "src"} {
		if sb, err := s.client.GetSandbox(context.Background(), name); err == nil {
			s.mustCLI("delete", name, "--wait")
			s.assertGone(sb)
		}
	}
}

// restoreRunning reports whether a pg_restore of the snapshot's import
// runs.
func (s *server) restoreRunning(snapID string) bool {
	for _, pid := range markedProcesses(localNodeID(s.dataDir), snapID) {
		cmd, _ := os.ReadFile("/proc/" + itoa(pid) + "/cmdline")
		if strings.Contains(string(cmd), "pg_restore") {
			return true
		}
	}
	return false
}
