package client

import (
	"context"
	"net/http"
	"net/url"

	"sandpit.dev/sandpit/internal/sandbox"
)

// Repo is a repository binding as the API returns it.
type Repo = sandbox.Repo

// RepoList is the answer of GET /api/v1/repos.
type RepoList struct {
	Items []Repo `json:"items"`
}

// AddRepoRequest binds a repository: its branches that the template's
// git.branches selects each get a sandbox of the template.
type AddRepoRequest struct {
	Name     string `json:"name"`
	URL      string `json:"url"`
	Template string `json:"template"`
	// Every is how often the remote's branches are listed (default 1m).
	Every sandbox.Duration `json:"every,omitempty"`
	// GitHub is the repository's OWNER/NAME on GitHub when the URL does
	// not say it (default: parsed from a GitHub URL).
	GitHub string `json:"github,omitempty"`
	// WebhookSecret keys the signatures of GitHub webhook deliveries;
	// empty: the server generates one and returns it, once.
	WebhookSecret string `json:"webhook_secret,omitempty"`
	// AllowForkSecrets gives sandboxes of pull requests from forks the
	// template's secrets (default: none).
	AllowForkSecrets bool `json:"allow_fork_secrets,omitempty"`
}

// AddRepoResponse is the answer of POST /api/v1/repos: the binding and,
// when the server generated it, its webhook secret (shown this once).
type AddRepoResponse struct {
	Repo
	WebhookSecret string `json:"webhook_secret,omitempty"`
}

// HookResponse is the answer to an accepted webhook delivery.
type HookResponse struct {
	Event  string `json:"event"`
	Action string `json:"action,omitempty"`
	// Repos names the bindings a sync was asked for (none for a ping or
	// an event that changes nothing).
	Repos []string `json:"repos"`
}

// RemoveRepoResponse is the answer of DELETE /api/v1/repos/{name}.
type RemoveRepoResponse struct {
	Repo Repo `json:"repo"`
	// DeletedSandboxes names the sandboxes whose deletion was requested
	// (with delete_sandboxes=true); without it the binding's sandboxes are
	// kept, unmanaged, and Kept names them.
	DeletedSandboxes []string `json:"deleted_sandboxes"`
	Kept             []string `json:"kept"`
}

// AddRepo creates a repository binding; its first sync starts at once.
func (c *Client) AddRepo(ctx context.Context, req AddRepoRequest) (*AddRepoResponse, error) {
	var out AddRepoResponse
	return &out, c.do(ctx, http.MethodPost, "/api/v1/repos", nil, req, &out)
}

// ListRepos lists repository bindings by name.
func (c *Client) ListRepos(ctx context.Context) (*RepoList, error) {
	var out RepoList
	return &out, c.do(ctx, http.MethodGet, "/api/v1/repos", nil, nil, &out)
}

// GetRepo returns one repository binding with its sync status.
func (c *Client) GetRepo(ctx context.Context, name string) (*Repo, error) {
	var out Repo
	return &out, c.do(ctx, http.MethodGet, "/api/v1/repos/"+url.PathEscape(name), nil, nil, &out)
}

// SyncRepo asks for a sync of the binding now (what a webhook does).
func (c *Client) SyncRepo(ctx context.Context, name string) (*Repo, error) {
	var out Repo
	return &out, c.do(ctx, http.MethodPost, "/api/v1/repos/"+url.PathEscape(name)+"/sync", nil, nil, &out)
}

// RemoveRepo removes a binding; with deleteSandboxes its sandboxes are
// deleted too, else they are kept and no longer follow the branches.
func (c *Client) RemoveRepo(ctx context.Context, name string, deleteSandboxes bool) (*RemoveRepoResponse, error) {
	var q url.Values
	if deleteSandboxes {
		q = url.Values{"delete_sandboxes": {"true"}}
	}
	var out RemoveRepoResponse
	return &out, c.do(ctx, http.MethodDelete, "/api/v1/repos/"+url.PathEscape(name), q, nil, &out)
}
