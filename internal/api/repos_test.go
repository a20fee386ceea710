package api_test

import (
	"context"
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
		{"add", add(map[string]any{"name": "solo", "url": url, "template": "solo", "every": "30s"}), 201},
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
		{"add_again", add(map[string]any{"name": "solo", "url": url, "template": "solo"}), 201},
		{"remove_deletes_sandboxes", call{method: "DELETE", path: "/api/v1/repos/solo?delete_sandboxes=true"}, 200},
	})
	s.WaitGone(t, "main")
}
