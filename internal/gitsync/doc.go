// Package gitsync keeps a sandbox per branch of each bound repository
// (`sandpit repo add`), level-based: every pass lists the remote's branches
// with `git ls-remote --heads`, matches them against the template's
// git.branches, and makes the store agree — it creates sandboxes for
// matching branches that have none, moves a sandbox to its branch's new
// commit (Spec.Ref is the commit SHA, so the reconciler relaunches it in
// place), and requests deletion of sandboxes whose branch is gone or no
// longer matches. A pass remembers nothing from the one before: what it
// made is found again through Spec.Git.Repo. Passes run per repository
// every minute (or its binding's period) and on demand (Enqueue, for
// webhooks), so a missed webhook only delays a change, and branch
// deletion needs none.
//
// When listing the remote fails nothing is created or deleted; the error
// is logged and recorded on the binding's status, and the next period
// tries again.
//
// Pull requests (the template's git.pull_requests.labels) get sandboxes
// "pr-<n>" in the same pass, from the GitHub API's list of open pull
// requests when the server has a token, else from what webhooks reported
// (ObservePullRequest). Reporter comments on pull requests and sets commit
// statuses when their sandboxes are Ready or Failed.
//
// It owns repository bindings' status and the specs of the sandboxes it
// made (only Ref, TemplateVersion, Git and deletion requests). It imports
// the store, the template format, the domain types and internal/github;
// never the API, the CLI, the runtime or the reconciler (it is handed an
// Enqueue function).
package gitsync
