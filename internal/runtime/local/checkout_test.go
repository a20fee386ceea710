package local

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/runtime/runtimetest"
	"sandpit.dev/sandpit/internal/sandbox"
)

// gitRepo makes a real repository with two commits: main has app/v.txt
// "two", branch "old" and tag v1 point at the first commit ("one"), and the
// working tree has an uncommitted change ("dirty").
func gitRepo(t *testing.T) (dir, first, second string) {
	t.Helper()
	dir = t.TempDir()
	g := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	write := func(content string) {
		if err := os.MkdirAll(filepath.Join(dir, "app"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "app", "v.txt"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g("init", "-q")
	write("one")
	g("add", ".")
	g("commit", "-qm", "one")
	first = g("rev-parse", "HEAD")
	g("branch", "old")
	g("tag", "v1")
	write("two")
	g("commit", "-qam", "two")
	second = g("rev-parse", "HEAD")
	write("dirty")
	return dir, first, second
}

func TestCheckout(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	repo, first, second := gitRepo(t)
	tests := []struct {
		name    string
		source  string // the template's source block
		ref     string
		want    string // content of v.txt in the sandbox
		wantSHA string
		gitDir  bool // whether the checkout is a git repository
	}{
		{name: "git URL, default branch", source: "git: " + repo, want: "two", wantSHA: second, gitDir: true},
		{name: "git URL at a branch", source: "git: " + repo, ref: "old", want: "one", wantSHA: first, gitDir: true},
		{name: "git URL at a tag", source: "git: " + repo, ref: "v1", want: "one", wantSHA: first, gitDir: true},
		{name: "git URL at a commit", source: "git: " + repo, ref: first[:12], want: "one", wantSHA: first, gitDir: true},
		{name: "git URL, template's ref", source: "git: " + repo + "\n  ref: old", want: "one", wantSHA: first, gitDir: true},
		{name: "path as it is, uncommitted change included", source: "path: " + repo, want: "dirty", wantSHA: second},
		{name: "path in a repository, at a ref: that commit, same subdirectory", source: "path: " + filepath.Join(repo, "app"), ref: "old", want: "one", wantSHA: first, gitDir: true},
	}
	r := newRuntime(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inst := checkoutInstance(t, r, tt.source, tt.ref)
			res, err := r.checkout(context.Background(), inst)
			if err != nil {
				t.Fatalf("checkout: %v", err)
			}
			root := filepath.Join(r.SandboxDir(inst.ID), res.root)
			v := filepath.Join(root, "v.txt")
			if !strings.HasSuffix(tt.source, "/app") {
				v = filepath.Join(root, "app", "v.txt")
			}
			got, err := os.ReadFile(v)
			if err != nil || string(got) != tt.want {
				t.Errorf("v.txt = %q (%v), want %q", got, err, tt.want)
			}
			if res.sha != tt.wantSHA {
				t.Errorf("sha = %s, want %s", res.sha, tt.wantSHA)
			}
			_, gerr := os.Stat(filepath.Join(r.SandboxDir(inst.ID), strings.SplitN(res.root, "/", 2)[0], ".git"))
			if (gerr == nil) != tt.gitDir {
				t.Errorf(".git in the checkout: %v, want %v", gerr == nil, tt.gitDir)
			}
			// The source is never touched: the working tree keeps its change.
			if b, _ := os.ReadFile(filepath.Join(repo, "app", "v.txt")); string(b) != "dirty" {
				t.Errorf("the source's working tree changed to %q", b)
			}
		})
	}
	t.Run("unknown ref is a permanent error naming branches", func(t *testing.T) {
		inst := checkoutInstance(t, r, "git: "+repo, "no-such-branch")
		_, err := r.checkout(context.Background(), inst)
		if !runtime.IsPermanent(err) || !strings.Contains(err.Error(), `ref "no-such-branch" not found`) || !strings.Contains(err.Error(), "old") {
			t.Errorf("err = %v (permanent %v); want a permanent error listing branches", err, runtime.IsPermanent(err))
		}
	})
	t.Run("ref on a directory outside git", func(t *testing.T) {
		plain := t.TempDir()
		inst := checkoutInstance(t, r, "path: "+plain, "main")
		_, err := r.checkout(context.Background(), inst)
		if !runtime.IsPermanent(err) || !strings.Contains(err.Error(), "not in a git repository") {
			t.Errorf("err = %v; want a permanent error saying the path is not in git", err)
		}
	})
}

// A full launch from a git source: ${git.ref} and ${git.sha} reach the
// service.
func TestUpFromGitSource(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	repo, first, _ := gitRepo(t)
	r := newRuntime(t)
	inst := instance(t, &r, `apiVersion: sandpit/v1
name: from-git
source: {git: `+repo+`}
services:
  app:
    workdir: app
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}]
    files:
      - path: built-from.txt
        content: "${git.ref} ${git.sha}"
`)
	inst.Ref = "old"
	up(t, r, inst, nil)
	b, err := os.ReadFile(filepath.Join(r.SandboxDir(inst.ID), "src", "app", "built-from.txt"))
	if err != nil || string(b) != "old "+first {
		t.Errorf("built-from.txt = %q (%v), want %q", b, err, "old "+first)
	}
}

func checkoutInstance(t *testing.T, r *Runtime, source, ref string) *runtime.Instance {
	t.Helper()
	inst := &runtime.Instance{
		ID: sandbox.NewID(), Name: "co", Ref: ref,
		Template: runtimetest.ParseTemplate(t, testsvc, "apiVersion: sandpit/v1\nname: co\nsource:\n  "+source+"\nservices:\n  app:\n    run: sleep 1\n", nil),
	}
	if err := os.MkdirAll(r.SandboxDir(inst.ID), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(r.SandboxDir(inst.ID)) })
	return inst
}
