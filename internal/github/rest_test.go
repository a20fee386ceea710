package github_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"sandpit.dev/sandpit/internal/github"
)

// apiCall is one request the stand-in GitHub API received.
type apiCall struct {
	Method, Path, Query, Auth string
	Body                      map[string]any
}

// fakeAPI is an httptest server standing in for GitHub's REST API (it
// cannot be reached from tests): it serves two pages of open pull
// requests, an issue's comments, and records every call.
func fakeAPI(t *testing.T) (*httptest.Server, func() []apiCall) {
	t.Helper()
	var mu sync.Mutex
	var calls []apiCall
	comments := []map[string]any{{"id": 1, "body": "LGTM"}}
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c := apiCall{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization")}
		if len(b) > 0 {
			if err := json.Unmarshal(b, &c.Body); err != nil {
				t.Errorf("%s %s: body %s is not JSON", r.Method, r.URL.Path, b)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, c)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == "GET" && r.URL.Path == "/repos/acme/shop/pulls" && r.URL.Query().Get("page") == "":
			w.Header().Set("Link", fmt.Sprintf(`<%s/repos/acme/shop/pulls?state=open&per_page=100&page=2>; rel="next", <%s/repos/acme/shop/pulls?state=open&per_page=100&page=2>; rel="last"`, srv.URL, srv.URL))
			fmt.Fprint(w, `[{"number": 7, "state": "open", "user": {"login": "ada"}, "labels": [{"name": "preview"}], "head": {"ref": "feature", "sha": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "repo": {"full_name": "acme/shop"}}, "base": {"ref": "main", "repo": {"full_name": "acme/shop"}}}]`)
		case r.Method == "GET" && r.URL.Path == "/repos/acme/shop/pulls":
			fmt.Fprint(w, `[{"number": 9, "state": "open", "user": {"login": "eve"}, "labels": [], "head": {"ref": "patch-1", "sha": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "repo": {"full_name": "eve/shop", "fork": true}}, "base": {"ref": "main", "repo": {"full_name": "acme/shop"}}}]`)
		case r.Method == "GET" && r.URL.Path == "/repos/acme/shop/issues/7/comments":
			_ = json.NewEncoder(w).Encode(comments)
		case r.Method == "POST" && r.URL.Path == "/repos/acme/shop/issues/7/comments":
			comments = append(comments, map[string]any{"id": 42, "body": c.Body["body"]})
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, `{"id": 42}`)
		case r.Method == "PATCH" && r.URL.Path == "/repos/acme/shop/issues/comments/42":
			comments[1]["body"] = c.Body["body"]
			fmt.Fprint(w, `{"id": 42}`)
		case r.Method == "POST" && strings.HasPrefix(r.URL.Path, "/repos/acme/shop/statuses/"):
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, `{"id": 1}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"message": "Not Found"}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, func() []apiCall {
		mu.Lock()
		defer mu.Unlock()
		return append([]apiCall(nil), calls...)
	}
}

func TestClient(t *testing.T) {
	srv, calls := fakeAPI(t)
	gh, err := github.NewClient(srv.URL+"/", "t0ken", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	prs, err := gh.OpenPullRequests(ctx, "acme/shop")
	if err != nil {
		t.Fatal(err)
	}
	if len(prs) != 2 || prs[0].Number != 7 || !prs[0].HasLabel([]string{"x", "preview"}) || prs[0].Fork() ||
		prs[1].Number != 9 || prs[1].HasLabel([]string{"preview"}) || !prs[1].Fork() || prs[1].User.Login != "eve" {
		t.Errorf("pull requests: %+v", prs)
	}

	marker := "<!-- sandpit:pr-7 -->"
	if _, err := gh.UpsertComment(ctx, "acme/shop", 7, marker, marker+"\nReady"); err != nil {
		t.Fatal(err)
	}
	if _, err := gh.UpsertComment(ctx, "acme/shop", 7, marker, marker+"\nFailed"); err != nil {
		t.Fatal(err)
	}
	if err := gh.SetStatus(ctx, "acme/shop", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", github.Status{State: "success", Context: "sandpit/shop", TargetURL: "http://web--pr-7.localhost", Description: "sandbox pr-7 is ready"}); err != nil {
		t.Fatal(err)
	}
	if _, err := gh.OpenPullRequests(ctx, "acme/nope"); err == nil || !strings.Contains(err.Error(), "404 Not Found") || strings.Contains(err.Error(), "t0ken") {
		t.Errorf("missing repository: %v", err)
	}

	want := []string{
		"GET /repos/acme/shop/pulls state=open&per_page=100",
		"GET /repos/acme/shop/pulls state=open&per_page=100&page=2",
		"GET /repos/acme/shop/issues/7/comments per_page=100",
		"POST /repos/acme/shop/issues/7/comments ",
		"GET /repos/acme/shop/issues/7/comments per_page=100",
		"PATCH /repos/acme/shop/issues/comments/42 ",
		"POST /repos/acme/shop/statuses/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa ",
		"GET /repos/acme/nope/pulls state=open&per_page=100",
	}
	got := calls()
	if len(got) != len(want) {
		t.Fatalf("calls: %+v", got)
	}
	for i, c := range got {
		if s := c.Method + " " + c.Path + " " + c.Query; s != want[i] {
			t.Errorf("call %d: %s; want %s", i, s, want[i])
		}
		if c.Auth != "Bearer t0ken" {
			t.Errorf("call %d: Authorization %q", i, c.Auth)
		}
	}
	if b := got[3].Body["body"]; b != marker+"\nReady" {
		t.Errorf("created comment %v", b)
	}
	if b := got[5].Body["body"]; b != marker+"\nFailed" {
		t.Errorf("updated comment %v", b)
	}
	if b := got[6].Body; b["state"] != "success" || b["context"] != "sandpit/shop" || b["target_url"] != "http://web--pr-7.localhost" {
		t.Errorf("status %v", b)
	}
}

func TestClientRefusesForeignNextPage(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the token went to another host: %s %s", r.Method, r.URL)
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", `<`+other.URL+`/repos/acme/shop/pulls?page=2>; rel="next"`)
		fmt.Fprint(w, `[]`)
	}))
	defer srv.Close()
	gh, _ := github.NewClient(srv.URL, "t0ken", nil)
	if _, err := gh.OpenPullRequests(context.Background(), "acme/shop"); err == nil {
		t.Error("followed a next page on another host")
	}
}

func TestRepoName(t *testing.T) {
	for _, c := range []struct{ url, api, want string }{
		{"https://github.com/acme/shop.git", "", "acme/shop"},
		{"https://github.com/acme/shop", github.DefaultAPIURL, "acme/shop"},
		{"git@github.com:acme/shop.git", "", "acme/shop"},
		{"ssh://git@github.com/acme/shop.git", "", "acme/shop"},
		{"git://github.com/acme/shop.git", "", "acme/shop"},
		{"https://ghe.example.com/acme/shop.git", "https://ghe.example.com/api/v3", "acme/shop"},
		{"https://ghe.example.com/acme/shop.git", "", ""},
		{"https://gitlab.com/acme/shop.git", "", ""},
		{"file:///srv/git/shop.git", "", ""},
		{"/srv/git/shop.git", "", ""},
		{"https://github.com/acme", "", ""},
		{"https://github.com/acme/shop/tree/main", "", ""},
	} {
		if got := github.RepoName(c.url, c.api); got != c.want {
			t.Errorf("RepoName(%q, %q) = %q; want %q", c.url, c.api, got, c.want)
		}
	}
}
