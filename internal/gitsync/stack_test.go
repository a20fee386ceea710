package gitsync_test

import (
	"context"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/gitsync"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
	"sandpit.dev/sandpit/internal/testenv"
)

// TestBranchSandboxes runs the branch reconciler in a full stack (real
// local runtime) against a bare repository served by `git daemon`: the
// template's source and the binding both use the git:// URL, and only the
// periodic passes drive it (no webhook, no Enqueue).
func TestBranchSandboxes(t *testing.T) {
	r := newRemote(t)
	url := r.Daemon()
	s := testenv.StartWith(t, testenv.Options{GitSync: true, GitSyncOptions: func(c *gitsync.Config) {
		c.Every = 100 * time.Millisecond
	}})
	s.Apply(t, appTemplate(url, `["*", "!main", "!*-no-infra"]`))
	ctx := context.Background()
	if err := s.Store.CreateRepo(ctx, &sandbox.Repo{Name: "app", URL: url, Template: "app"}); err != nil {
		t.Fatal(err)
	}

	// Create a branch → a sandbox appears and gets Ready at its commit.
	sha1 := r.Commit("feature-a")
	sb := s.WaitPhase(t, "feature-a", sandbox.PhaseReady)
	if sb.Status.SHA != sha1 || sb.Spec.Ref != sha1 || sb.Spec.Git == nil || sb.Spec.Git.Branch != "feature-a" {
		t.Fatalf("feature-a: status sha %s, ref %s, git %+v; want %s", sb.Status.SHA, sb.Spec.Ref, sb.Spec.Git, sha1)
	}
	id := sb.ID

	// Push → the same sandbox relaunches at the new commit.
	sha2 := r.Commit("feature-a")
	testenv.Eventually(t, "feature-a relaunched at the new commit", func() bool {
		sb, err := s.Store.GetSandboxByName(ctx, "feature-a")
		return err == nil && sb.Status.SHA == sha2 && sb.Status.Phase == sandbox.PhaseReady && sb.Status.ObservedGeneration == sb.Generation
	})
	sb = s.WaitPhase(t, "feature-a", sandbox.PhaseReady)
	if sb.ID != id || sb.Spec.Git.SHA != sha2 {
		t.Errorf("after the push: id %s (was %s), git sha %s; want the same sandbox at %s", sb.ID, id, sb.Spec.Git.SHA, sha2)
	}

	// An excluded branch gets none: wait for a pass that has seen it.
	r.Commit("feature-no-infra")
	testenv.Eventually(t, "a pass that sees three branches", func() bool {
		repo, err := s.Store.GetRepo(ctx, "app")
		return err == nil && repo.Status.Branches == 3 && repo.Status.Matched == 1
	})
	if _, err := s.Store.GetSandboxByName(ctx, "feature-no-infra"); err == nil {
		t.Errorf("branch feature-no-infra got a sandbox")
	}

	// Delete the branch → its sandbox goes.
	r.Delete("feature-a")
	s.WaitGone(t, "feature-a")
	sbs, err := s.Store.ListSandboxes(ctx, store.ListOptions{})
	if err != nil || len(sbs) != 0 {
		t.Errorf("left: %v, %v; want no sandboxes", sbs, err)
	}
}
