package gitsync

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"sandpit.dev/sandpit/internal/github"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
	"sandpit.dev/sandpit/internal/template"
)

// ReasonPRMoved is the event reason of a pull request sandbox moved to the
// pull request's new head commit.
const ReasonPRMoved = "PullRequestMoved"

// GitHubName is the binding's repository on GitHub, "OWNER/NAME": its
// override, else parsed from its URL when that is a github.com URL or one
// on the host of apiURL; "" when neither says.
func GitHubName(r *sandbox.Repo, apiURL string) string {
	if r.GitHub != "" {
		return r.GitHub
	}
	return github.RepoName(r.URL, apiURL)
}

// ObservePullRequest hands a pull request's state from a webhook delivery
// to the next pass over the binding (and asks for that pass). The pass
// acts on it only when it cannot list pull requests through the GitHub
// API (no token): then webhooks are the only source of pull requests.
func (s *Syncer) ObservePullRequest(repo string, pr github.PullRequest) {
	s.mu.Lock()
	if s.hooked[repo] == nil {
		s.hooked[repo] = map[int]github.PullRequest{}
	}
	s.hooked[repo][pr.Number] = pr
	s.mu.Unlock()
	s.Enqueue(repo)
}

// takeHooked returns and forgets the pull requests webhooks reported for
// repo since the last pass.
func (s *Syncer) takeHooked(repo string) []github.PullRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.hooked[repo]
	delete(s.hooked, repo)
	out := make([]github.PullRequest, 0, len(m))
	for _, pr := range m {
		out = append(out, pr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out
}

// pullRequests is what a pass knows of a binding's pull requests: the
// complete list of open ones (from the API), or a few pull requests'
// states (from webhooks), which say nothing of the others.
type pullRequests struct {
	prs      []github.PullRequest
	complete bool
}

// listPullRequests lists the open pull requests through the API when the
// server has a token and the binding names a GitHub repository; else it
// takes what webhooks reported.
func (s *Syncer) listPullRequests(ctx context.Context, repo *sandbox.Repo) (pullRequests, error) {
	gh := s.cfg.GitHub
	hooked := s.takeHooked(repo.Name)
	name := ""
	if gh != nil {
		name = GitHubName(repo, gh.BaseURL())
	}
	if !gh.HasToken() || name == "" {
		return pullRequests{prs: hooked}, nil
	}
	prs, err := gh.OpenPullRequests(ctx, name)
	if err != nil {
		// Keep the webhooks' news for the next pass.
		for _, pr := range hooked {
			s.mu.Lock()
			if s.hooked[repo.Name] == nil {
				s.hooked[repo.Name] = map[int]github.PullRequest{}
			}
			if _, newer := s.hooked[repo.Name][pr.Number]; !newer {
				s.hooked[repo.Name][pr.Number] = pr
			}
			s.mu.Unlock()
		}
		return pullRequests{}, fmt.Errorf("list pull requests of %s: %w", name, err)
	}
	return pullRequests{prs: prs, complete: true}, nil
}

// syncPullRequests makes the binding's pull request sandboxes agree with
// what the pass knows: one per open pull request carrying one of the
// template's git.pull_requests.labels, at its head commit. Without a
// pull_requests section (or with no labels) no pull request gets one.
func (s *Syncer) syncPullRequests(ctx context.Context, repo *sandbox.Repo, t *template.Template, tv store.TemplateVersion,
	known pullRequests, sbs []*sandbox.Sandbox, taken map[string]bool, res *Result) error {
	var labels []string
	if t.Git != nil && t.Git.PullRequests != nil {
		labels = t.Git.PullRequests.Labels
	}
	mine := map[int][]*sandbox.Sandbox{}
	for _, sb := range sbs {
		if g := sb.Spec.Git; g != nil && g.Repo == repo.Name && g.PR > 0 {
			mine[g.PR] = append(mine[g.PR], sb)
		}
	}
	seen := map[int]github.PullRequest{}
	for _, pr := range known.prs {
		seen[pr.Number] = pr
	}
	want := func(pr github.PullRequest) bool {
		return pr.State == "open" && len(labels) > 0 && pr.HasLabel(labels) && pr.Head.SHA != ""
	}
	alive := map[int]bool{} // pull requests with a sandbox after the pass
	nums := make([]int, 0, len(mine))
	for n := range mine {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	for _, n := range nums {
		pr, ok := seen[n]
		reason := ""
		switch {
		case ok && pr.State != "open":
			reason = sandbox.DeletedPRClosed
		case ok && !want(pr):
			reason = sandbox.DeletedPRUnlabeled
		case !ok && known.complete:
			reason = sandbox.DeletedPRClosed
		case !ok && len(labels) == 0:
			reason = sandbox.DeletedPRUnlabeled // the template stopped asking for any
		}
		for i, sb := range mine[n] {
			r := reason
			if r == "" && i > 0 && !sb.Spec.Deleting() {
				r = "another sandbox serves the pull request"
			}
			if r == "" && !sb.Spec.Deleting() {
				alive[n] = true
			}
			if r == "" || sb.Spec.Deleting() {
				continue
			}
			if err := s.requestDeletion(ctx, sb, r); err != nil {
				return err
			}
			res.Deleted = append(res.Deleted, sb.Name)
		}
	}
	for _, pr := range known.prs {
		if !want(pr) {
			continue
		}
		var live *sandbox.Sandbox
		deleting := false
		for _, sb := range mine[pr.Number] {
			if sb.Spec.Deleting() {
				deleting = true
			} else if live == nil {
				live = sb
			}
		}
		switch {
		case live != nil:
			alive[pr.Number] = true
			g := live.Spec.Git
			if live.Spec.Ref == pr.Head.SHA && live.Spec.TemplateVersion == tv.Version && g.SHA == pr.Head.SHA && g.Branch == pr.Head.Ref {
				continue
			}
			ok, err := s.updatePR(ctx, repo, live, pr, tv.Version)
			if err != nil {
				return err
			}
			if ok {
				res.Updated = append(res.Updated, live.Name)
			}
		case deleting:
		default:
			sb, err := s.createPR(ctx, repo, pr, tv, taken)
			if err != nil {
				return err
			}
			if sb != nil {
				alive[pr.Number] = true
				taken[sb.Name] = true
				res.Created = append(res.Created, sb.Name)
			}
		}
	}
	res.PullRequests = len(alive)
	return nil
}

func prSource(repo *sandbox.Repo, pr github.PullRequest) *sandbox.GitSource {
	return &sandbox.GitSource{Repo: repo.Name, Branch: pr.Head.Ref, PR: pr.Number, SHA: pr.Head.SHA, Author: pr.User.Login, Fork: pr.Fork()}
}

func (s *Syncer) createPR(ctx context.Context, repo *sandbox.Repo, pr github.PullRequest, tv store.TemplateVersion, taken map[string]bool) (*sandbox.Sandbox, error) {
	plain, hashed := sandbox.PRNames(repo.Name, pr.Number)
	var candidates []string
	if !taken[plain] {
		candidates = append(candidates, plain)
	}
	candidates = append(candidates, hashed)
	for _, name := range candidates {
		sb := &sandbox.Sandbox{
			ID:   sandbox.NewID(),
			Name: name,
			Spec: sandbox.Spec{
				Template: tv.Name, TemplateVersion: tv.Version, Ref: pr.Head.SHA, CreatedBy: sandbox.RepoOwner(repo.Name),
				Git: prSource(repo, pr),
			},
			CreatedAt: s.cfg.Now().UTC(),
		}
		err := s.cfg.Store.CreateSandbox(ctx, sb)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("create sandbox for pull request #%d: %w", pr.Number, err)
		}
		fork := ""
		if sb.Spec.Git.Fork {
			fork = " from a fork (no secrets)"
			if repo.AllowForkSecrets {
				fork = " from a fork (secrets allowed by the binding)"
			}
		}
		s.event(ctx, sb, sandbox.ReasonCreated, fmt.Sprintf("created for pull request #%d (%s by %s%s) of repository %s at %s (template %s version %d)",
			pr.Number, pr.Head.Ref, pr.User.Login, fork, repo.Name, short(pr.Head.SHA), tv.Name, tv.Version))
		s.log.Info("pull request sandbox created", "repo", repo.Name, "pr", pr.Number, "sandbox", sb.Name, "sha", pr.Head.SHA, "fork", sb.Spec.Git.Fork)
		s.cfg.Enqueue(sb.ID)
		s.notify(sb.ID)
		return sb, nil
	}
	s.log.Warn("no free name for a pull request's sandbox; will retry", "repo", repo.Name, "pr", pr.Number, "names", candidates)
	return nil, nil
}

func (s *Syncer) updatePR(ctx context.Context, repo *sandbox.Repo, sb *sandbox.Sandbox, pr github.PullRequest, version int) (bool, error) {
	from := sb.Spec.Ref
	cur, err := s.cfg.Store.UpdateSpec(ctx, sb.ID, func(sp *sandbox.Spec) error {
		if sp.Deleting() || sp.Git == nil || sp.Git.Repo != repo.Name || sp.Git.PR != pr.Number {
			return errSkip
		}
		sp.Git = prSource(repo, pr)
		sp.Ref, sp.TemplateVersion = pr.Head.SHA, version
		return nil
	})
	switch {
	case errors.Is(err, errSkip), errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("update sandbox %s to %s: %w", sb.Name, short(pr.Head.SHA), err)
	}
	msg := fmt.Sprintf("pull request #%d moved from %s to %s; relaunching", pr.Number, short(from), short(pr.Head.SHA))
	if from == pr.Head.SHA {
		msg = fmt.Sprintf("template %s version %d is the latest; relaunching", cur.Spec.Template, version)
	}
	s.event(ctx, cur, ReasonPRMoved, msg)
	s.log.Info("pull request sandbox updated", "repo", repo.Name, "pr", pr.Number, "sandbox", sb.Name, "sha", pr.Head.SHA)
	s.cfg.Enqueue(sb.ID)
	s.notify(sb.ID)
	return true, nil
}
