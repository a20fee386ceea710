package sandbox

import "time"

// Repo is a repository binding: the branches of the repository at URL that
// the template's git.branches selects each get a sandbox of Template,
// kept in step with the remote by gitsync.
type Repo struct {
	Name string `json:"name"`
	// URL is anything `git ls-remote` and `git clone` accept. It should be
	// the template's source.git: sandboxes check out the template's source
	// at the branch's commit.
	URL      string `json:"url"`
	Template string `json:"template"`
	// Every is how often the remote is listed (0: the server's default,
	// one minute).
	Every Duration `json:"every,omitempty"`
	// GitHub is the repository's "OWNER/NAME" on GitHub when URL does not
	// say it (a mirror, a file:// URL); empty: parsed from URL. It names
	// the repository for the pull request listing, webhooks and reports.
	GitHub string `json:"github,omitempty"`
	// AllowForkSecrets lets sandboxes of pull requests from forks have the
	// template's secrets (once templates have secrets); by default they
	// get none. Spec.Git.Fork marks such sandboxes.
	AllowForkSecrets bool `json:"allow_fork_secrets,omitempty"`
	// WebhookSecret keys the HMAC of GitHub webhook deliveries
	// (X-Hub-Signature-256). The store keeps it as it is (in plaintext:
	// encryption at rest is for the secrets work); the API never returns
	// it, except once, when it generated it.
	WebhookSecret string     `json:"-"`
	CreatedAt     time.Time  `json:"created_at"`
	CreatedBy     string     `json:"created_by,omitempty"`
	Status        RepoStatus `json:"status"`
}

// RepoStatus is what gitsync last saw of a repository binding.
type RepoStatus struct {
	// LastSyncAt is when the remote was last listed (successfully or not).
	LastSyncAt *time.Time `json:"last_sync_at,omitempty"`
	// LastSuccessAt is when it was last listed successfully.
	LastSuccessAt *time.Time `json:"last_success_at,omitempty"`
	// Error is why the last pass failed; empty after a successful one.
	Error string `json:"error,omitempty"`
	// Branches counts the remote's branches, Matched those that get a
	// sandbox, at the last successful pass.
	Branches int `json:"branches"`
	Matched  int `json:"matched"`
	// PullRequests counts the open pull requests that have a sandbox, at
	// the last pass that could know them (the GitHub API, or webhooks).
	PullRequests int `json:"pull_requests,omitempty"`
}
