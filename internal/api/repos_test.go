package api_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/testenv"
)

func TestRepos(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	sc := s.Scrubber()
	s.Apply(t, soloTemplate)
	s.Apply(t, "apiVersion: sandpit/v1\nname: elsewhere\nsource: {git: \"https://example.com/acme/other.git\"}\nservices:\n  main: {run: exec sleep 1000}\n")
	add := func(body map[string]any) call { return call{method: "POST", path: "/api/v1/repos", body: body} }
	url := "https://example.com/acme/solo.git"
	runSteps(t, s, sc, "repos", []step{
		{"add", add(map[string]any{"name": "solo", "url": url, "template": "solo", "every": "30s", "webhook_secret": "0123456789abcdef-given"}), 201},
		{"add_short_secret", add(map[string]any{"name": "x", "url": url, "template": "solo", "webhook_secret": "short"}), 400},
		{"add_bad_github", add(map[string]any{"name": "x", "url": url, "template": "solo", "github": "acme/shop/extra"}), 400},
		{"add_taken", add(map[string]any{"name": "solo", "url": url, "template": "solo"}), 409},
		{"add_bad_name", add(map[string]any{"name": "Solo_Repo", "url": url, "template": "solo"}), 400},
		{"add_bad_url", add(map[string]any{"name": "x", "url": "--upload-pack=evil", "template": "solo"}), 400},
		{"add_no_template", add(map[string]any{"name": "x", "url": url, "template": "nope"}), 404},
		{"add_other_source", add(map[string]any{"name": "x", "url": url, "template": "elsewhere"}), 400},
		{"list", call{method: "GET", path: "/api/v1/repos"}, 200},
		{"get", call{method: "GET", path: "/api/v1/repos/solo"}, 200},
		{"get_unknown", call{method: "GET", path: "/api/v1/repos/nope"}, 404},
		{"sync", call{method: "POST", path: "/api/v1/repos/solo/sync"}, 202},
	})

	// A sandbox the binding made (as gitsync would have).
	branchSandbox := func() {
		t.Helper()
		err := s.Store.CreateSandbox(context.Background(), &sandbox.Sandbox{Name: "main", Spec: sandbox.Spec{
			Template: "solo", TemplateVersion: 1, CreatedBy: sandbox.RepoOwner("solo"),
			Git: &sandbox.GitSource{Repo: "solo", Branch: "main", SHA: "0123456789abcdef0123456789abcdef01234567"}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	branchSandbox()
	runSteps(t, s, sc, "repos", []step{
		{"remove_keeps_sandboxes", call{method: "DELETE", path: "/api/v1/repos/solo"}, 200},
		{"remove_unknown", call{method: "DELETE", path: "/api/v1/repos/solo"}, 404},
		{"add_again", add(map[string]any{"name": "solo", "url": url, "template": "solo", "github": "acme/solo", "allow_fork_secrets": true, "webhook_secret": "0123456789abcdef-given"}), 201},
		{"remove_deletes_sandboxes", call{method: "DELETE", path: "/api/v1/repos/solo?delete_sandboxes=true"}, 200},
	})
	s.WaitGone(t, "main")

	// Without a secret the server generates one and shows it once.
	r := do(t, s, add(map[string]any{"name": "gen", "url": url, "template": "solo"}))
	var created struct {
		WebhookSecret string `json:"webhook_secret"`
	}
	if err := json.Unmarshal(r.body, &created); err != nil || r.status != 201 || len(created.WebhookSecret) != 64 {
		t.Fatalf("add without a secret: %d %s", r.status, r.body)
	}
	if got := do(t, s, call{method: "GET", path: "/api/v1/repos/gen"}); strings.Contains(string(got.body), created.WebhookSecret) || strings.Contains(string(got.body), "webhook_secret") {
		t.Errorf("get returns the secret: %s", got.body)
	}
	if repo, err := s.Store.GetRepo(context.Background(), "gen"); err != nil || repo.WebhookSecret != created.WebhookSecret {
		t.Errorf("stored secret differs from the one shown (%v)", err)
	}
}
