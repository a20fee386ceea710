package cli_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sandpit.dev/sandpit/internal/testenv"
)

// bareRemote makes a bare repository with branches main, feature-a and
// feature-no-infra, in a directory the service user can read.
func bareRemote(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "sandpit-cli-repo-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bare, work := filepath.Join(dir, "app.git"), filepath.Join(dir, "work")
	g := func(in string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"}, args...)...)
		cmd.Dir = in
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	g(dir, "init", "-q", "--bare", bare)
	g(dir, "init", "-q", work)
	if err := os.WriteFile(filepath.Join(work, "README"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g(work, "add", ".")
	g(work, "commit", "-qm", "first")
	g(work, "push", "-q", bare, "main", "main:feature-a", "main:feature-no-infra")
	return "file://" + bare
}

func TestRepoCommands(t *testing.T) {
	t.Parallel()
	s := testenv.StartWith(t, testenv.Options{GitSync: true})
	e := stackEnv(s)
	url := bareRemote(t)
	sc := scrubber(s).Literal(url, "<url>").Pattern(`(\s)\d+[smh] ago`, "${1}<age> ago")
	run := func(name string, want int, args ...string) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			r := e.sandpit(t, args...)
			if !strings.Contains(strings.Join(args, " "), "-o ") {
				r.stdout = collapse(r.stdout)
			}
			expect(t, "repo/"+name, sc, want, r)
		})
	}
	tmpl := filepath.Join(t.TempDir(), "branchy.yaml")
	if err := os.WriteFile(tmpl, []byte("apiVersion: sandpit/v1\nname: branchy\nservices:\n  app: {run: exec sleep 1000}\ngit:\n  branches: [\"*\", \"!*-no-infra\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := e.sandpit(t, "template", "apply", "-f", tmpl); r.code != 0 {
		t.Fatalf("apply: %s", r.stderr)
	}

	run("list_empty", 0, "repo", "list")
	run("add_missing_flags", 2, "repo", "add", "app")
	run("add", 0, "repo", "add", "app", "--url", url, "--template", "branchy", "--every", "10m")
	run("add_taken", 1, "repo", "add", "app", "--url", url, "-t", "branchy")
	testenv.Eventually(t, "the first sync", func() bool {
		r, err := s.Store.GetRepo(context.Background(), "app")
		return err == nil && r.Status.LastSuccessAt != nil
	})
	s.WaitPhase(t, "main", "Ready")
	s.WaitPhase(t, "feature-a", "Ready")
	run("list", 0, "repo", "list")
	run("get", 0, "repo", "get", "app")
	run("get_json", 0, "repo", "get", "app", "-o", "json")
	run("get_unknown", 1, "repo", "get", "nope")
	run("sync", 0, "repo", "sync", "app")
	run("remove_keep", 0, "repo", "remove", "app")
	run("add_again", 0, "repo", "add", "app", "--url", url, "--template", "branchy")
	run("remove_delete", 0, "repo", "remove", "app", "--delete-sandboxes")
	s.WaitGone(t, "main")
	s.WaitGone(t, "feature-a")
	if r := e.sandpit(t, "list"); strings.Contains(r.stdout, "no-infra") {
		t.Errorf("feature-no-infra got a sandbox:\n%s", r.stdout)
	}
}
