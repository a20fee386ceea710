package gitsync_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/gitsync"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
	"sandpit.dev/sandpit/internal/store/sqlite"
)

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sandpit.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func apply(t *testing.T, st store.Store, src string) store.TemplateVersion {
	t.Helper()
	sum := sha256.Sum256([]byte(src))
	tv, _, err := st.ApplyTemplate(context.Background(), store.TemplateVersion{
		Name: "app", Source: []byte(src), Filename: "app.yaml", Digest: hex.EncodeToString(sum[:])})
	if err != nil {
		t.Fatal(err)
	}
	return tv
}

func appTemplate(url, branches string) string {
	return fmt.Sprintf("apiVersion: sandpit/v1\nname: app\nsource: {git: %q}\nservices:\n  app: {run: sleep 600}\ngit: {branches: %s}\n", url, branches)
}

// branchSandboxes returns the repository's sandboxes by branch.
func branchSandboxes(t *testing.T, st store.Store) map[string]*sandbox.Sandbox {
	t.Helper()
	sbs, err := st.ListSandboxes(context.Background(), store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*sandbox.Sandbox{}
	for _, sb := range sbs {
		if sb.Spec.Git == nil {
			t.Fatalf("sandbox %s has no git source", sb.Name)
		}
		if _, dup := out[sb.Spec.Git.Branch]; dup {
			t.Fatalf("two sandboxes for branch %s", sb.Spec.Git.Branch)
		}
		out[sb.Spec.Git.Branch] = sb
	}
	return out
}

// TestSyncPass drives passes by hand over a file:// remote and checks the
// records they leave: create, move, exclusions, deletion, a template that
// stops matching, and a remote that cannot be listed.
func TestSyncPass(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	r := newRemote(t)
	mainSHA := r.git(r.work, "rev-parse", "main")
	loginSHA := r.Commit("Feature/Login")
	r.Commit("feature-no-infra")
	tv := apply(t, st, appTemplate(r.URL(), `["*", "!*-no-infra"]`))
	if err := st.CreateRepo(ctx, &sandbox.Repo{Name: "app", URL: r.URL(), Template: "app"}); err != nil {
		t.Fatal(err)
	}
	var enqueued []string
	s := gitsync.New(gitsync.Config{Store: st, Enqueue: func(id string) { enqueued = append(enqueued, id) }})

	res, err := s.Sync(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if res.Branches != 3 || res.Matched != 2 || len(res.Created) != 2 || len(res.Deleted)+len(res.Updated) != 0 {
		t.Fatalf("first pass = %+v; want 3 branches, 2 matched and created", res)
	}
	got := branchSandboxes(t, st)
	if len(got) != 2 || got["feature-no-infra"] != nil {
		t.Fatalf("sandboxes by branch = %v; want main and Feature/Login", got)
	}
	m, login := got["main"], got["Feature/Login"]
	if m.Name != "main" || login.Name != "feature-login" {
		t.Errorf("names = %q, %q; want main, feature-login", m.Name, login.Name)
	}
	want := sandbox.GitSource{Repo: "app", Branch: "Feature/Login", SHA: loginSHA, Author: "Ada Lovelace <ada@example.com>"}
	if *login.Spec.Git != want || login.Spec.Ref != loginSHA {
		t.Errorf("Feature/Login's git = %+v, ref %s; want %+v, ref the SHA", *login.Spec.Git, login.Spec.Ref, want)
	}
	if m.Spec.Ref != mainSHA || m.Spec.CreatedBy != "repo:app" || m.Spec.Template != "app" || m.Spec.TemplateVersion != tv.Version {
		t.Errorf("main's spec = %+v", m.Spec)
	}
	if len(enqueued) != 2 {
		t.Errorf("enqueued %v; want both new sandboxes", enqueued)
	}
	repo, err := st.GetRepo(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if repo.Status.Error != "" || repo.Status.Branches != 3 || repo.Status.Matched != 2 || repo.Status.LastSuccessAt == nil {
		t.Errorf("status = %+v", repo.Status)
	}

	// Nothing changed: a pass changes nothing.
	if res, err := s.Sync(ctx, "app"); err != nil || len(res.Created)+len(res.Updated)+len(res.Deleted) != 0 {
		t.Fatalf("idle pass = %+v, %v; want no change", res, err)
	}

	// A push moves the sandbox to the new commit, in place.
	newSHA := r.Commit("main")
	res, err = s.Sync(ctx, "app")
	if err != nil || !slices.Equal(res.Updated, []string{"main"}) {
		t.Fatalf("pass after a push = %+v, %v; want main updated", res, err)
	}
	got = branchSandboxes(t, st)
	if sb := got["main"]; sb.ID != m.ID || sb.Spec.Ref != newSHA || sb.Spec.Git.SHA != newSHA || sb.Spec.Git.Author == "" || sb.Generation != m.Generation+1 {
		t.Errorf("main after the push: id %s ref %s git %+v generation %d", sb.ID, sb.Spec.Ref, sb.Spec.Git, sb.Generation)
	}

	// A remote that cannot be listed changes nothing but the status.
	if err := st.DeleteRepo(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateRepo(ctx, &sandbox.Repo{Name: "app", URL: r.URL() + "-missing", Template: "app"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sync(ctx, "app"); err == nil {
		t.Fatal("pass over a missing remote succeeded")
	}
	if n := len(branchSandboxes(t, st)); n != 2 {
		t.Fatalf("a failed listing left %d sandboxes; want 2", n)
	}
	repo, _ = st.GetRepo(ctx, "app")
	if repo.Status.Error == "" || repo.Status.LastSyncAt == nil {
		t.Errorf("status after a failed listing = %+v; want the error", repo.Status)
	}
	if err := st.DeleteRepo(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateRepo(ctx, &sandbox.Repo{Name: "app", URL: r.URL(), Template: "app"}); err != nil {
		t.Fatal(err)
	}

	// A deleted branch's sandbox goes.
	r.Delete("Feature/Login")
	res, err = s.Sync(ctx, "app")
	if err != nil || !slices.Equal(res.Deleted, []string{"feature-login"}) {
		t.Fatalf("pass after deleting a branch = %+v, %v", res, err)
	}
	sb, _ := st.GetSandboxByName(ctx, "feature-login")
	if !sb.Spec.Deleting() || sb.Spec.DeletionReason != sandbox.DeletedBranchGone {
		t.Errorf("feature-login: deleting %v, reason %q; want %q", sb.Spec.Deleting(), sb.Spec.DeletionReason, sandbox.DeletedBranchGone)
	}

	// A template that stops matching a branch deletes its sandbox; the
	// others move to the new template version.
	tv2 := apply(t, st, appTemplate(r.URL(), `["*", "!main", "!*-no-infra"]`))
	r.Commit("other")
	res, err = s.Sync(ctx, "app")
	if err != nil || !slices.Equal(res.Deleted, []string{"main"}) || !slices.Equal(res.Created, []string{"other"}) {
		t.Fatalf("pass after a template change = %+v, %v", res, err)
	}
	sb, _ = st.GetSandboxByName(ctx, "main")
	if sb.Spec.DeletionReason != sandbox.DeletedBranchUnmatched {
		t.Errorf("main's deletion reason = %q; want %q", sb.Spec.DeletionReason, sandbox.DeletedBranchUnmatched)
	}
	if sb, _ := st.GetSandboxByName(ctx, "other"); sb.Spec.TemplateVersion != tv2.Version {
		t.Errorf("new sandbox has template version %d; want the latest, %d", sb.Spec.TemplateVersion, tv2.Version)
	}
}

// TestSyncNames: branches that slugify alike get distinct names, the first
// one seen keeping the plain one; a name taken by someone else's sandbox
// is not reused.
func TestSyncNames(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	r := newRemote(t)
	r.Commit("feature-x")
	r.Commit("Feature/X")
	long := "feature/" + strings.Repeat("a-very-long-branch-name-", 3)
	r.Commit(long)
	apply(t, st, appTemplate(r.URL(), `["*"]`))
	// "main" is taken by a sandbox the repository did not make.
	if err := st.CreateSandbox(ctx, &sandbox.Sandbox{Name: "main", Spec: sandbox.Spec{Template: "app", TemplateVersion: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateRepo(ctx, &sandbox.Repo{Name: "app", URL: r.URL(), Template: "app"}); err != nil {
		t.Fatal(err)
	}
	s := gitsync.New(gitsync.Config{Store: st})
	if _, err := s.Sync(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	sbs, _ := st.ListSandboxes(ctx, store.ListOptions{})
	names := map[string]string{}
	for _, sb := range sbs {
		if sb.Spec.Git != nil {
			names[sb.Spec.Git.Branch] = sb.Name
		}
	}
	// Branches are visited in name order: "Feature/X" < "feature-x".
	want := map[string]string{"main": hashed("main"), "Feature/X": "feature-x", "feature-x": hashed("feature-x"), long: hashed(long)}
	for br, n := range want {
		if names[br] != n {
			t.Errorf("branch %q is sandbox %q; want %q", br, names[br], n)
		}
	}
}

func hashed(branch string) string {
	_, h := sandbox.BranchNames("app", branch)
	return h
}

// TestSyncManyBranches: 200 branches (and 50 excluded) in one pass.
func TestSyncManyBranches(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	r := newRemote(t)
	r.Branches("feature/%d", 199) // and main
	r.Branches("skip-%d-no-infra", 50)
	apply(t, st, "apiVersion: sandpit/v1\nname: app\nservices:\n  app: {run: sleep 600}\ngit: {branches: [\"*\", \"!*-no-infra\"]}\n")
	if err := st.CreateRepo(ctx, &sandbox.Repo{Name: "app", URL: r.URL(), Template: "app"}); err != nil {
		t.Fatal(err)
	}
	s := gitsync.New(gitsync.Config{Store: st})
	start := time.Now()
	res, err := s.Sync(ctx, "app")
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if res.Branches != 250 || res.Matched != 200 || len(res.Created) != 200 {
		t.Fatalf("pass = %d branches, %d matched, %d created; want 250, 200, 200", res.Branches, res.Matched, len(res.Created))
	}
	if n := len(branchSandboxes(t, st)); n != 200 {
		t.Fatalf("%d sandboxes; want 200", n)
	}
	t.Logf("one pass over 250 branches creating 200 sandboxes took %s", took)
	start = time.Now()
	res, err = s.Sync(ctx, "app")
	if err != nil || len(res.Created)+len(res.Updated)+len(res.Deleted) != 0 {
		t.Fatalf("second pass = %+v, %v; want no change", res, err)
	}
	t.Logf("an idle pass over 250 branches took %s", time.Since(start))
}
