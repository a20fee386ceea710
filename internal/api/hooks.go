package api

import (
	"errors"
	"io"
	"net/http"
	"strings"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/github"
	"sandpit.dev/sandpit/internal/sandbox"
)

// maxHookBody bounds a webhook delivery (GitHub caps payloads at 25 MB,
// but the events Sandpit reads are far smaller).
const maxHookBody = 5 << 20

// prActions are the pull_request actions that can change which pull
// requests get a sandbox, or at which commit.
var prActions = map[string]bool{"opened": true, "reopened": true, "synchronize": true, "labeled": true, "unlabeled": true, "closed": true}

// githubHook receives GitHub webhook deliveries. It needs no bearer token:
// a delivery is accepted when its X-Hub-Signature-256 is the HMAC of the
// body under the webhook secret of a binding of the payload's repository.
// Unknown repositories and missing or wrong signatures get the same 401,
// so the answer tells nothing about which bindings exist. An accepted
// delivery only asks gitsync for a pass over the bindings (and, for a
// pull request event, hands it the pull request's state for when the
// server has no GitHub token); it never changes a sandbox itself.
func (s *Server) githubHook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxHookBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, &client.Error{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: "webhook delivery is larger than 5 MiB"})
			return
		}
		writeError(w, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: "read the delivery: " + err.Error()})
		return
	}
	denied := func() {
		writeError(w, &client.Error{Status: http.StatusUnauthorized, Code: "unauthorized",
			Message: "webhook delivery not accepted: no repository binding of this repository has a webhook secret that signs it",
			Hint:    "set the webhook's secret (content type application/json) to the one `sandpit repo add` printed or was given"})
	}
	sig := r.Header.Get(github.SignatureHeader)
	if sig == "" {
		denied()
		return
	}
	// A payload that does not parse gets the same answer as a wrong
	// signature: the answer tells nothing before a binding's secret
	// signed the delivery.
	ev, err := github.ParseEvent(r.Header.Get(github.EventHeader), r.Header.Get("Content-Type"), body)
	if err != nil {
		s.log.Info("webhook delivery refused", "event", r.Header.Get(github.EventHeader), "error", err)
		denied()
		return
	}
	repos, err := s.cfg.Store.ListRepos(r.Context())
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	var matched []*sandbox.Repo
	for _, rp := range repos {
		// Every binding is checked, in the same way, whether or not it is
		// of this repository.
		ok := hookRepoMatches(rp, ev.Repository, s.cfg.GitHubAPIURL)
		if github.ValidSignature([]byte(rp.WebhookSecret), body, sig) && ok {
			matched = append(matched, rp)
		}
	}
	if len(matched) == 0 {
		s.log.Info("webhook delivery refused", "event", r.Header.Get(github.EventHeader), "repository", ev.Repository.FullName)
		denied()
		return
	}
	event := r.Header.Get(github.EventHeader)
	out := client.HookResponse{Event: event, Action: ev.Action, Repos: []string{}}
	act := false
	switch event {
	case "ping":
	case "push", "delete":
		act = true
	case "pull_request":
		act = prActions[ev.Action] && ev.PullRequest != nil
	}
	for _, rp := range matched {
		if !act {
			continue
		}
		out.Repos = append(out.Repos, rp.Name)
		if event == "pull_request" && s.cfg.PullRequestEvent != nil {
			s.cfg.PullRequestEvent(rp.Name, *ev.PullRequest)
		} else {
			s.repoChanged(rp.Name)
		}
	}
	s.log.Info("webhook delivery", "event", event, "action", ev.Action, "repository", ev.Repository.FullName, "synced", out.Repos,
		"delivery", r.Header.Get("X-GitHub-Delivery"))
	writeJSON(w, http.StatusAccepted, out)
}

// hookRepoMatches reports whether binding rp is of the delivery's
// repository: by OWNER/NAME, or by one of its clone URLs.
func hookRepoMatches(rp *sandbox.Repo, hr *github.Repository, apiURL string) bool {
	name := rp.GitHub
	if name == "" {
		name = github.RepoName(rp.URL, apiURL)
	}
	if name != "" && strings.EqualFold(name, hr.FullName) {
		return true
	}
	u := normGitURL(rp.URL)
	for _, c := range []string{hr.CloneURL, hr.SSHURL, hr.GitURL, hr.HTMLURL} {
		if c != "" && normGitURL(c) == u {
			return true
		}
	}
	return false
}

func normGitURL(u string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimRight(u, "/"), ".git"))
}
