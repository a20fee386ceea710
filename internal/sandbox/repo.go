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
	Every     Duration   `json:"every,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by,omitempty"`
	Status    RepoStatus `json:"status"`
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
}
