package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// GitSource is the branch or pull request of a bound repository that a
// sandbox was made for, and the commit it runs.
type GitSource struct {
	// Repo names the repository binding (`sandpit repo add NAME`).
	Repo string `json:"repo"`
	// Branch is the branch name without "refs/heads/" (for a pull
	// request: its head branch).
	Branch string `json:"branch,omitempty"`
	// PR is the pull request's number; 0 for a branch sandbox.
	PR int `json:"pr,omitempty"`
	// SHA is the commit the branch pointed at when last seen; Spec.Ref
	// holds the same commit, which is what is launched.
	SHA string `json:"sha"`
	// Author is the head commit's author, when known; for a pull request
	// the GitHub login of who opened it.
	Author string `json:"author,omitempty"`
	// Fork marks a pull request whose head is in another repository (a
	// fork): unless the binding allows it, its sandbox gets none of the
	// template's secrets (see Repo.AllowForkSecrets).
	Fork bool `json:"fork,omitempty"`
}

// Reasons gitsync gives for deleting a sandbox it made.
const (
	DeletedBranchGone      = "branch deleted"
	DeletedBranchUnmatched = "branch no longer matches"
	DeletedRepoRemoved     = "repository binding removed"
	DeletedPRClosed        = "pull request closed"
	DeletedPRUnlabeled     = "pull request no longer carries a label of git.pull_requests"
)

// RepoOwner is the CreatedBy of the sandboxes a repository binding made.
func RepoOwner(repo string) string { return "repo:" + repo }

// nameHashLen is how many hex digits of a hash disambiguate a name (32
// bits: a clash needs tens of thousands of branches of one slug).
const nameHashLen = 8

// Slug turns free text (a branch name) into the lowercase letters, digits
// and single hyphens sandbox names allow: other characters become '-',
// runs of '-' collapse, and '-' is trimmed from both ends. The result may
// be empty, start with a digit, or be too long; BranchNames deals with that.
func Slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	return b.String()
}

// BranchNames returns the two names a branch's sandbox may take: plain,
// the slug of the branch when it is a valid sandbox name as it is (else
// ""), and hashed, the slug cut to fit with a hash of the repository and
// branch appended, which is valid for any branch and differs between any
// two branches (of any repositories) short of a 32-bit hash collision.
//
// gitsync names a new sandbox plain when plain is non-empty and not
// taken, else hashed. A sandbox keeps its name once made, so names never
// change under a running sandbox when other branches come and go: of two
// branches that slugify alike ("Feature/X", "feature-x") the first seen
// gets "feature-x", the other "feature-x-<hash>".
func BranchNames(repo, branch string) (plain, hashed string) {
	return names(Slug(branch), repo+"\x00branch\x00"+branch)
}

// PRNames is BranchNames for pull request n: "pr-<n>" plain, and
// "pr-<n>-<hash of the repository>" for a second repository's pull
// request of the same number.
func PRNames(repo string, n int) (plain, hashed string) {
	return names("pr-"+strconv.Itoa(n), repo+"\x00pr\x00"+strconv.Itoa(n))
}

func names(slug, key string) (plain, hashed string) {
	if slug != "" && (slug[0] < '0' || slug[0] > '9') && len(slug) <= MaxNameLength {
		plain = slug
	}
	sum := sha256.Sum256([]byte(key))
	return plain, SuffixedName(slug, "b", hex.EncodeToString(sum[:])[:nameHashLen])
}
