package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"sandpit.dev/sandpit/internal/api"
	"sandpit.dev/sandpit/internal/github"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store/sqlite"
)

// The payloads in testdata/hooks are reconstructed from GitHub's
// documented example webhook payloads (the "Codertocat/Hello-World"
// examples of the pull_request and push events): every field Sandpit
// reads (action, number, pull_request.{number,state,labels[].name,
// user.login,head.{ref,sha,repo.full_name},base.repo.full_name},
// repository.{full_name,clone_url,ssh_url,git_url,html_url}) has GitHub's
// name and nesting; the rest is kept for realism.

const hookSecret = "It's a Secret to Everybody"

type hookRecorder struct {
	mu      sync.Mutex
	synced  []string
	pulls   map[string][]github.PullRequest
	hookURL string
}

func (h *hookRecorder) state() ([]string, map[string][]github.PullRequest) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string][]github.PullRequest{}
	for k, v := range h.pulls {
		out[k] = append([]github.PullRequest(nil), v...)
	}
	return append([]string(nil), h.synced...), out
}

func startHookServer(t *testing.T) *hookRecorder {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sandpit.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	for _, r := range []*sandbox.Repo{
		// By URL: the payload's clone_url.
		{Name: "hello", URL: "https://github.com/Codertocat/Hello-World.git", Template: "app", WebhookSecret: hookSecret},
		// By the OWNER/NAME override, with another secret.
		{Name: "mirror", URL: "file:///srv/git/hello.git", GitHub: "codertocat/hello-world", Template: "app", WebhookSecret: "another secret, 16+ chars"},
		// Another repository with the same secret: never matched.
		{Name: "other", URL: "https://github.com/acme/other.git", Template: "app", WebhookSecret: hookSecret},
		// A binding without a secret (made before webhooks): never matched.
		{Name: "old", URL: "git@github.com:Codertocat/Hello-World.git", Template: "app"},
	} {
		if err := st.CreateRepo(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	h := &hookRecorder{pulls: map[string][]github.PullRequest{}}
	srv := httptest.NewServer(api.New(api.Config{
		Store: st, Token: "admin-token-admin-token",
		RepoChanged: func(name string) { h.mu.Lock(); h.synced = append(h.synced, name); h.mu.Unlock() },
		PullRequestEvent: func(name string, pr github.PullRequest) {
			h.mu.Lock()
			h.pulls[name] = append(h.pulls[name], pr)
			h.mu.Unlock()
		},
	}))
	t.Cleanup(srv.Close)
	h.hookURL = srv.URL + "/hooks/github"
	return h
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "hooks", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func deliver(t *testing.T, url, event string, body []byte, sig string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(github.EventHeader, event)
	req.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	if sig != "" {
		req.Header.Set(github.SignatureHeader, sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// TestGitHubSignature checks the signature against GitHub's documented
// example (secret "It's a Secret to Everybody", payload "Hello, World!").
func TestGitHubSignature(t *testing.T) {
	const want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got := github.Sign([]byte(hookSecret), []byte("Hello, World!")); got != want {
		t.Errorf("Sign = %s; want %s", got, want)
	}
	if !github.ValidSignature([]byte(hookSecret), []byte("Hello, World!"), want) {
		t.Error("the documented signature does not validate")
	}
	for _, bad := range []string{"", "sha256=", "sha1=757107ea", want[:len(want)-1] + "0", strings.ToUpper(want)} {
		if github.ValidSignature([]byte(hookSecret), []byte("Hello, World!"), bad) {
			t.Errorf("signature %q validates", bad)
		}
	}
	if github.ValidSignature(nil, []byte("x"), github.Sign(nil, []byte("x"))) {
		t.Error("an empty secret validates")
	}
}

func TestGitHubHook(t *testing.T) {
	t.Parallel()
	h := startHookServer(t)
	pr := fixture(t, "pull_request.json")
	push := fixture(t, "push.json")

	// Rejected: all 401 with the same answer, and nothing synced.
	tampered := bytes.Replace(pr, []byte(`"preview"`), []byte(`"previeW"`), 1)
	unknown := bytes.ReplaceAll(pr, []byte("Codertocat/Hello-World"), []byte("Codertocat/Goodbye"))
	var first string
	for _, c := range []struct {
		name string
		body []byte
		sig  string
	}{
		{"missing signature", pr, ""},
		{"wrong secret", pr, github.Sign([]byte("not the secret"), pr)},
		{"tampered body", tampered, github.Sign([]byte(hookSecret), pr)},
		{"sha1 signature", pr, "sha1=" + strings.Repeat("0", 40)},
		{"unknown repository", unknown, github.Sign([]byte(hookSecret), unknown)},
		{"not JSON", []byte("payload"), github.Sign([]byte(hookSecret), []byte("payload"))},
	} {
		code, body := deliver(t, h.hookURL, "pull_request", c.body, c.sig)
		if code != http.StatusUnauthorized {
			t.Errorf("%s: %d %s; want 401", c.name, code, body)
		}
		if first == "" {
			first = body
		} else if body != first {
			t.Errorf("%s: answer %s differs from %s: it must not tell why", c.name, body, first)
		}
	}
	big := append(append([]byte(`{"zen":"`), bytes.Repeat([]byte("a"), 5<<20)...), `"}`...)
	if code, body := deliver(t, h.hookURL, "ping", big, github.Sign([]byte(hookSecret), big)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d %s; want 413", code, body)
	}
	if synced, pulls := h.state(); len(synced)+len(pulls) != 0 {
		t.Fatalf("rejected deliveries synced %v, %v", synced, pulls)
	}

	// A pull request event, signed with hello's secret: hello gets the
	// pull request (mirror's secret differs; other is another repository).
	code, body := deliver(t, h.hookURL, "pull_request", pr, github.Sign([]byte(hookSecret), pr))
	if code != http.StatusAccepted {
		t.Fatalf("pull_request: %d %s", code, body)
	}
	var ans struct {
		Event, Action string
		Repos         []string
	}
	if err := json.Unmarshal([]byte(body), &ans); err != nil || ans.Event != "pull_request" || ans.Action != "opened" || len(ans.Repos) != 1 || ans.Repos[0] != "hello" {
		t.Errorf("answer %s (%v)", body, err)
	}
	_, pulls := h.state()
	got := pulls["hello"]
	if len(pulls) != 1 || len(got) != 1 {
		t.Fatalf("pull requests handed on: %+v", pulls)
	}
	p := got[0]
	if p.Number != 2 || p.State != "open" || p.Head.Ref != "changes" || p.Head.SHA != "ec26c3e57ca3a959ca5aad62de7213c562f8c821" ||
		p.User.Login != "Codertocat" || !p.HasLabel([]string{"preview"}) || p.Fork() {
		t.Errorf("pull request read as %+v", p)
	}

	// The same delivery signed with mirror's secret reaches mirror (found
	// by its OWNER/NAME, case-insensitively).
	if code, body := deliver(t, h.hookURL, "pull_request", pr, github.Sign([]byte("another secret, 16+ chars"), pr)); code != http.StatusAccepted || !strings.Contains(body, `"mirror"`) {
		t.Errorf("pull_request for mirror: %d %s", code, body)
	}

	// push and delete ask for a pass; ping and other actions do nothing.
	if code, body := deliver(t, h.hookURL, "push", push, github.Sign([]byte(hookSecret), push)); code != http.StatusAccepted {
		t.Errorf("push: %d %s", code, body)
	}
	edited := bytes.Replace(pr, []byte(`"action": "opened"`), []byte(`"action": "edited"`), 1)
	if code, body := deliver(t, h.hookURL, "pull_request", edited, github.Sign([]byte(hookSecret), edited)); code != http.StatusAccepted || !strings.Contains(body, `"repos": []`) {
		t.Errorf("pull_request edited: %d %s", code, body)
	}
	ping := []byte(`{"zen":"Keep it logically awesome.","hook_id":1,"repository":{"full_name":"Codertocat/Hello-World"}}`)
	if code, body := deliver(t, h.hookURL, "ping", ping, github.Sign([]byte(hookSecret), ping)); code != http.StatusAccepted {
		t.Errorf("ping: %d %s", code, body)
	}
	synced, _ := h.state()
	if len(synced) != 1 || synced[0] != "hello" {
		t.Errorf("synced %v; want [hello] (the push)", synced)
	}
}
