package gitsync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/github"
	"sandpit.dev/sandpit/internal/gitsync"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/testenv"
)

func prTemplate(url string) string {
	return fmt.Sprintf(`apiVersion: sandpit/v1
name: app
source: {git: %q}
services:
  web:
    run: exec sleep 1000
    ports: [{name: http}]
endpoints:
  web: {routes: [{path: /, to: web:http}]}
git:
  branches: ["release/*"] # no such branch: pull requests only
  pull_requests: {labels: [preview]}
`, url)
}

func openPR(n int, branch, sha string, labels ...string) github.PullRequest {
	pr := github.PullRequest{Number: n, State: "open", User: github.User{Login: "Codertocat"},
		Head: github.Ref{Ref: branch, SHA: sha, Repo: &github.Repository{FullName: "Codertocat/Hello-World"}},
		Base: github.Ref{Ref: "main", Repo: &github.Repository{FullName: "Codertocat/Hello-World"}}}
	for _, l := range labels {
		pr.Labels = append(pr.Labels, github.Label{Name: l})
	}
	return pr
}

// TestPullRequestsFromWebhooks: without a GitHub token, the pull requests
// webhooks report are all a pass knows: a labelled open one gets a
// sandbox (a fork's is marked), losing the label or closing deletes it,
// and pull requests no webhook mentioned are left alone.
func TestPullRequestsFromWebhooks(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	r := newRemote(t)
	sha := r.Commit("changes")
	apply(t, st, prTemplate(r.URL()))
	if err := st.CreateRepo(ctx, &sandbox.Repo{Name: "hello", URL: r.URL(), Template: "app"}); err != nil {
		t.Fatal(err)
	}
	s := gitsync.New(gitsync.Config{Store: st})
	fork := openPR(3, "patch-1", sha, "preview")
	fork.Head.Repo = &github.Repository{FullName: "eve/Hello-World", Fork: true}
	s.ObservePullRequest("hello", openPR(2, "changes", sha, "preview"))
	s.ObservePullRequest("hello", fork)
	s.ObservePullRequest("hello", openPR(4, "changes", sha, "wip"))
	res, err := s.Sync(ctx, "hello")
	if err != nil || len(res.Created) != 2 || res.PullRequests != 2 {
		t.Fatalf("first pass: %+v, %v", res, err)
	}
	sb, err := st.GetSandboxByName(ctx, "pr-2")
	if err != nil {
		t.Fatal(err)
	}
	want := sandbox.GitSource{Repo: "hello", Branch: "changes", PR: 2, SHA: sha, Author: "Codertocat"}
	if sb.Spec.Ref != sha || *sb.Spec.Git != want {
		t.Errorf("pr-2: ref %s, git %+v; want %+v", sb.Spec.Ref, sb.Spec.Git, want)
	}
	if sb, err := st.GetSandboxByName(ctx, "pr-3"); err != nil || !sb.Spec.Git.Fork {
		t.Errorf("pr-3 (a fork's): %+v, %v", sb, err)
	}

	// A pass without news keeps them.
	if res, err := s.Sync(ctx, "hello"); err != nil || len(res.Created)+len(res.Deleted) != 0 || res.PullRequests != 2 {
		t.Errorf("quiet pass: %+v, %v", res, err)
	}
	// Unlabelled and closed.
	s.ObservePullRequest("hello", openPR(2, "changes", sha))
	closed := fork
	closed.State = "closed"
	s.ObservePullRequest("hello", closed)
	res, err = s.Sync(ctx, "hello")
	if err != nil || len(res.Deleted) != 2 || res.PullRequests != 0 {
		t.Fatalf("after unlabel and close: %+v, %v", res, err)
	}
	for name, reason := range map[string]string{"pr-2": sandbox.DeletedPRUnlabeled, "pr-3": sandbox.DeletedPRClosed} {
		sb, err := st.GetSandboxByName(ctx, name)
		if err != nil || !sb.Spec.Deleting() || sb.Spec.DeletionReason != reason {
			t.Errorf("%s: %+v, %v; want deletion for %q", name, sb, err, reason)
		}
	}
}

// ghCall is one request the stand-in GitHub API received.
type ghCall struct {
	Method, Path, Auth string
	Body               map[string]any
}

// fakeGitHub stands in for GitHub's REST API (which tests cannot reach):
// it serves the open pull requests the test sets and keeps comments, and
// records every call.
type fakeGitHub struct {
	*httptest.Server
	mu       sync.Mutex
	pulls    []github.PullRequest
	comments []map[string]any
	calls    []ghCall
}

func newFakeGitHub(t *testing.T) *fakeGitHub {
	f := &fakeGitHub{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c := ghCall{Method: r.Method, Path: r.URL.Path, Auth: r.Header.Get("Authorization")}
		_ = json.Unmarshal(b, &c.Body)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls = append(f.calls, c)
		w.Header().Set("Content-Type", "application/json")
		const repo = "/repos/Codertocat/Hello-World"
		switch {
		case r.Method == "GET" && r.URL.Path == repo+"/pulls":
			_ = json.NewEncoder(w).Encode(f.pulls)
		case r.Method == "GET" && r.URL.Path == repo+"/issues/2/comments":
			_ = json.NewEncoder(w).Encode(f.comments)
		case r.Method == "POST" && r.URL.Path == repo+"/issues/2/comments":
			f.comments = append(f.comments, map[string]any{"id": len(f.comments) + 100, "body": c.Body["body"]})
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(f.comments[len(f.comments)-1])
		case r.Method == "PATCH" && strings.HasPrefix(r.URL.Path, repo+"/issues/comments/"):
			for _, cm := range f.comments {
				if fmt.Sprint(cm["id"]) == strings.TrimPrefix(r.URL.Path, repo+"/issues/comments/") {
					cm["body"] = c.Body["body"]
				}
			}
			fmt.Fprint(w, `{}`)
		case r.Method == "POST" && strings.HasPrefix(r.URL.Path, repo+"/statuses/"):
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, `{}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"message": "Not Found"}`)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeGitHub) setPulls(prs ...github.PullRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pulls = prs
}

func (f *fakeGitHub) snapshot() ([]ghCall, []map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var cs []map[string]any
	for _, c := range f.comments {
		cs = append(cs, map[string]any{"id": c["id"], "body": c["body"]})
	}
	return append([]ghCall(nil), f.calls...), cs
}

// TestPullRequestSandboxes runs pull request sandboxes in a full stack
// (real local runtime; a real bare repository over file:// whose branch
// "changes" is the pull request's head) with an httptest server standing
// in for the GitHub API: a signed pull_request webhook makes the pass
// list the open pull requests, pr-2 appears and gets Ready, the reporter
// comments once (then edits that comment) and sets commit statuses with
// the endpoint URL, and removing the label deletes the sandbox. The
// period is an hour, so only webhooks drive the passes.
func TestPullRequestSandboxes(t *testing.T) {
	r := newRemote(t)
	sha1 := r.Commit("changes")
	gh := newFakeGitHub(t)
	client, err := github.NewClient(gh.URL, "test-token", nil)
	if err != nil {
		t.Fatal(err)
	}
	var rep atomic.Pointer[gitsync.Reporter]
	s := testenv.StartWith(t, testenv.Options{GitSync: true,
		GitSyncOptions: func(c *gitsync.Config) { c.Every, c.GitHub = time.Hour, client },
		OnChange: func(sb *sandbox.Sandbox, gone bool) {
			if p := rep.Load(); p != nil {
				p.Observe(sb, gone)
			}
		},
	})
	reporter := gitsync.NewReporter(gitsync.ReporterConfig{GitHub: client, Store: s.Store, MinBackoff: 50 * time.Millisecond})
	rep.Store(reporter)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); reporter.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	s.Apply(t, prTemplate(r.URL()))
	const secret = "a webhook secret for the test"
	if err := s.Store.CreateRepo(context.Background(), &sandbox.Repo{Name: "hello", URL: r.URL(), GitHub: "Codertocat/Hello-World", Template: "app", WebhookSecret: secret}); err != nil {
		t.Fatal(err)
	}
	payload, err := os.ReadFile("../api/testdata/hooks/pull_request.json")
	if err != nil {
		t.Fatal(err)
	}
	deliver := func(action, sha string) {
		t.Helper()
		body := bytes.Replace(payload, []byte(`"action": "opened"`), []byte(`"action": "`+action+`"`), 1)
		body = bytes.ReplaceAll(body, []byte("ec26c3e57ca3a959ca5aad62de7213c562f8c821"), []byte(sha))
		req, _ := http.NewRequest("POST", s.URL+"/hooks/github", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(github.EventHeader, "pull_request")
		req.Header.Set(github.SignatureHeader, github.Sign([]byte(secret), body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("webhook %s: %d %s", action, resp.StatusCode, b)
		}
	}

	// Opened with the label.
	gh.setPulls(openPR(2, "changes", sha1, "preview"))
	deliver("opened", sha1)
	sb := s.WaitPhase(t, "pr-2", sandbox.PhaseReady)
	if sb.Status.SHA != sha1 || sb.Spec.Git == nil || sb.Spec.Git.PR != 2 || sb.Spec.Git.Branch != "changes" || sb.Spec.Git.Author != "Codertocat" || len(sb.Status.Endpoints) == 0 {
		t.Fatalf("pr-2: %+v / %+v", sb.Spec, sb.Status)
	}
	url := sb.Status.Endpoints[0].URL
	statusFor := func(sha string) ghCall {
		var found ghCall
		testenv.Eventually(t, "a commit status on "+sha, func() bool {
			calls, _ := gh.snapshot()
			for _, c := range calls {
				if c.Method == "POST" && c.Path == "/repos/Codertocat/Hello-World/statuses/"+sha {
					found = c
					return true
				}
			}
			return false
		})
		return found
	}
	st := statusFor(sha1)
	if st.Body["state"] != "success" || st.Body["context"] != "sandpit/hello" || st.Body["target_url"] != url || st.Auth != "Bearer test-token" {
		t.Errorf("status %+v; want success, sandpit/hello, %s", st, url)
	}
	calls, comments := gh.snapshot()
	if len(comments) != 1 || !strings.Contains(fmt.Sprint(comments[0]["body"]), "<!-- sandpit:pr-2 -->") || !strings.Contains(fmt.Sprint(comments[0]["body"]), url) {
		t.Errorf("comments %+v; want one with the marker and %s", comments, url)
	}
	listed := false
	for _, c := range calls {
		if c.Auth != "Bearer test-token" {
			t.Errorf("%s %s without the token", c.Method, c.Path)
		}
		listed = listed || c.Method == "GET" && c.Path == "/repos/Codertocat/Hello-World/pulls"
	}
	if !listed {
		t.Error("the pass did not list the pull requests")
	}

	// A push to the head branch (synchronize): relaunched at the new
	// commit; the comment is edited, not added.
	sha2 := r.Commit("changes")
	gh.setPulls(openPR(2, "changes", sha2, "preview"))
	deliver("synchronize", sha2)
	testenv.Eventually(t, "pr-2 Ready at the new commit", func() bool {
		sb, err := s.Store.GetSandboxByName(context.Background(), "pr-2")
		return err == nil && sb.Status.SHA == sha2 && sb.Status.Phase == sandbox.PhaseReady && sb.Status.ObservedGeneration == sb.Generation
	})
	statusFor(sha2)
	testenv.Eventually(t, "the comment edited for the new commit", func() bool {
		_, comments := gh.snapshot()
		return len(comments) == 1 && strings.Contains(fmt.Sprint(comments[0]["body"]), sha2[:12])
	})
	patched := false
	calls, _ = gh.snapshot()
	for _, c := range calls {
		patched = patched || c.Method == "PATCH"
	}
	if !patched {
		t.Error("the comment was not updated with PATCH")
	}

	// The label removed: the sandbox goes.
	gh.setPulls(openPR(2, "changes", sha2))
	deliver("unlabeled", sha2)
	s.WaitGone(t, "pr-2")
}
