package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
	"sandpit.dev/sandpit/internal/template"
)

// maxRepoNameLength bounds repository binding names (a DNS label).
const maxRepoNameLength = 63

func (s *Server) addRepo(w http.ResponseWriter, r *http.Request) {
	var req client.AddRepoRequest
	if e := decodeJSON(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	bad := func(msg, hint string) {
		writeError(w, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: msg, Hint: hint})
	}
	if err := sandbox.ValidateName("repository", req.Name, maxRepoNameLength); err != nil {
		bad(err.Error(), "")
		return
	}
	if msg := checkRepoURL(req.URL); msg != "" {
		bad(msg, "give the URL you would `git clone`, like https://example.com/acme/shop.git")
		return
	}
	if req.Template == "" {
		bad("no template given", templateHint)
		return
	}
	tv, err := s.cfg.Store.GetTemplate(r.Context(), req.Template, 0)
	if err != nil {
		writeError(w, s.templateLookupError(r, err, req.Template, 0))
		return
	}
	t, err := template.Parse(tv.Filename, tv.Source)
	if err != nil {
		writeError(w, &client.Error{Status: http.StatusUnprocessableEntity, Code: "invalid_template",
			Message: fmt.Sprintf("template %s version %d no longer parses with this sandpit: %v", tv.Name, tv.Version, err),
			Hint:    "apply a fixed version with `sandpit template apply -f FILE`"})
		return
	}
	if t.Source != nil && t.Source.Git != "" && t.Source.Git != req.URL {
		bad(fmt.Sprintf("template %s checks out %s, not %s: its sandboxes would look for this repository's commits in another one", t.Name, t.Source.Git, req.URL),
			fmt.Sprintf("bind the template's source URL (--url %s), or point the template's source.git at this repository", t.Source.Git))
		return
	}
	if t.Source != nil && t.Source.Path != "" {
		bad(fmt.Sprintf("template %s takes its code from a directory (source.path), so branches of %s mean nothing to it", t.Name, req.URL),
			"give the template source: {git: URL} with this repository's URL")
		return
	}
	if req.GitHub != "" {
		if o, n, ok := strings.Cut(req.GitHub, "/"); !ok || !validGitHubPart(o) || !validGitHubPart(n) {
			bad(fmt.Sprintf("GitHub repository %q is not OWNER/NAME", req.GitHub), "write it as GitHub shows it, like acme/shop")
			return
		}
	}
	out := client.AddRepoResponse{}
	secret := req.WebhookSecret
	if secret == "" {
		var raw [32]byte
		if _, err := rand.Read(raw[:]); err != nil {
			writeError(w, &client.Error{Status: http.StatusInternalServerError, Code: "internal", Message: "generate a webhook secret: " + err.Error()})
			return
		}
		secret = hex.EncodeToString(raw[:])
		out.WebhookSecret = secret
	} else if len(secret) < 16 {
		bad("the webhook secret is shorter than 16 characters", "use a long random secret, e.g. `openssl rand -hex 32`, or leave it out to have one generated")
		return
	}
	repo := &sandbox.Repo{Name: req.Name, URL: req.URL, Template: req.Template, Every: req.Every, GitHub: req.GitHub,
		WebhookSecret: secret, AllowForkSecrets: req.AllowForkSecrets, CreatedBy: s.user(r), CreatedAt: s.cfg.Now().UTC()}
	if err := s.cfg.Store.CreateRepo(r.Context(), repo); err != nil {
		e := storeError(err, "")
		if errors.Is(err, store.ErrConflict) {
			e.Message = fmt.Sprintf("a repository binding named %q exists", req.Name)
			e.Hint = fmt.Sprintf("choose another name, or remove it with `sandpit repo remove %s`", req.Name)
		}
		writeError(w, e)
		return
	}
	s.log.Info("repository bound", "repo", repo.Name, "url", repo.URL, "template", repo.Template, "github", repo.GitHub,
		"allow_fork_secrets", repo.AllowForkSecrets, "by", repo.CreatedBy)
	s.repoChanged(repo.Name)
	out.Repo = *repo
	writeJSON(w, http.StatusCreated, out)
}

// validGitHubPart is a GitHub owner or repository name: letters, digits,
// '-', '_' and '.', not "." or "..".
func validGitHubPart(p string) bool {
	if p == "" || p == "." || p == ".." || len(p) > 100 {
		return false
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// checkRepoURL refuses what git would take for an option, and text that
// cannot be a URL or path.
func checkRepoURL(u string) string {
	switch {
	case strings.TrimSpace(u) == "":
		return "no repository URL given"
	case strings.HasPrefix(u, "-"):
		return fmt.Sprintf("repository URL %q starts with '-'", u)
	}
	for _, r := range u {
		if r <= ' ' || r == 0x7f {
			return fmt.Sprintf("repository URL %q has %q", u, r)
		}
	}
	return ""
}

func (s *Server) repoChanged(name string) {
	if s.cfg.RepoChanged != nil {
		s.cfg.RepoChanged(name)
	}
}

func (s *Server) listRepos(w http.ResponseWriter, r *http.Request) {
	repos, err := s.cfg.Store.ListRepos(r.Context())
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	out := client.RepoList{Items: []client.Repo{}}
	for _, rp := range repos {
		out.Items = append(out.Items, *rp)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) repoByName(w http.ResponseWriter, r *http.Request) (*sandbox.Repo, bool) {
	name := r.PathValue("name")
	repo, err := s.cfg.Store.GetRepo(r.Context(), name)
	if err != nil {
		e := storeError(err, "")
		if errors.Is(err, store.ErrNotFound) {
			e.Message = fmt.Sprintf("no repository binding named %q", name)
			e.Hint = "`sandpit repo list` shows them"
		}
		writeError(w, e)
		return nil, false
	}
	return repo, true
}

func (s *Server) getRepo(w http.ResponseWriter, r *http.Request) {
	if repo, ok := s.repoByName(w, r); ok {
		writeJSON(w, http.StatusOK, repo)
	}
}

func (s *Server) syncRepo(w http.ResponseWriter, r *http.Request) {
	if repo, ok := s.repoByName(w, r); ok {
		s.repoChanged(repo.Name)
		writeJSON(w, http.StatusAccepted, repo)
	}
}

// removeRepo removes a binding. Its sandboxes are kept (they stop
// following their branches; binding the name again adopts them) unless
// delete_sandboxes=true asks for their deletion.
func (s *Server) removeRepo(w http.ResponseWriter, r *http.Request) {
	repo, ok := s.repoByName(w, r)
	if !ok {
		return
	}
	del := r.URL.Query().Get("delete_sandboxes") == "true"
	// The binding goes first, so that no sync recreates what is deleted.
	if err := s.cfg.Store.DeleteRepo(r.Context(), repo.Name); err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	s.repoChanged(repo.Name)
	s.log.Info("repository binding removed", "repo", repo.Name, "delete_sandboxes", del, "by", s.user(r))
	out := client.RemoveRepoResponse{Repo: *repo, DeletedSandboxes: []string{}, Kept: []string{}}
	sbs, err := s.cfg.Store.ListSandboxes(r.Context(), store.ListOptions{})
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	now := s.cfg.Now().UTC()
	for _, sb := range sbs {
		if sb.Spec.Git == nil || sb.Spec.Git.Repo != repo.Name || sb.Spec.Deleting() {
			continue
		}
		if !del {
			out.Kept = append(out.Kept, sb.Name)
			continue
		}
		_, err := s.cfg.Store.UpdateSpec(r.Context(), sb.ID, func(sp *sandbox.Spec) error {
			if sp.DeletionRequestedAt == nil {
				sp.DeletionRequestedAt, sp.DeletionReason = &now, sandbox.DeletedRepoRemoved
			}
			return nil
		})
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			writeError(w, storeError(err, ""))
			return
		}
		_, _ = s.cfg.Store.AppendEvent(r.Context(), sandbox.Event{SandboxID: sb.ID, Type: sandbox.EventNormal, Reason: sandbox.ReasonDeleting, Message: "deleting: " + sandbox.DeletedRepoRemoved})
		s.cfg.Enqueue(sb.ID)
		s.cfg.Broker.Notify(sb.ID)
		out.DeletedSandboxes = append(out.DeletedSandboxes, sb.Name)
	}
	writeJSON(w, http.StatusOK, out)
}
