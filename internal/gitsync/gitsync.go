package gitsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"sandpit.dev/sandpit/internal/github"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
	"sandpit.dev/sandpit/internal/template"
)

// DefaultEvery is how often a repository is listed when its binding names
// no period.
const DefaultEvery = time.Minute

// Config holds a Syncer's dependencies.
type Config struct {
	Store store.Store
	// Enqueue hands a sandbox whose spec changed to the reconciler.
	Enqueue func(id string)
	// Notify, if set, tells watchers (the API's streams) a sandbox changed.
	Notify func(id string)
	Logger *slog.Logger
	Now    func() time.Time
	// Every is the period of repositories whose binding names none
	// (default DefaultEvery).
	Every time.Duration
	// Tick is how often Run looks for repositories that are due (default
	// one second).
	Tick time.Duration
	// Timeout bounds one listing of a remote (default 30s).
	Timeout time.Duration
	// List lists a remote's branches (default LsRemote(Timeout)).
	List Lister
	// Workers bounds how many repositories are synced at once (default 4).
	Workers int
	// GitHub lists pull requests (when it has a token) and names
	// repositories; nil or without a token, pull requests come from
	// webhooks only (ObservePullRequest).
	GitHub *github.Client
}

// Syncer keeps each bound repository's branch sandboxes in step with its
// remote. Run drives it; Sync is one pass over one repository.
type Syncer struct {
	cfg  Config
	log  *slog.Logger
	kick chan struct{}

	mu      sync.Mutex
	next    map[string]time.Time // when each repository is next due
	wanted  map[string]bool      // asked for by Enqueue
	running map[string]bool
	hooked  map[string]map[int]github.PullRequest // by ObservePullRequest
}

// New returns a Syncer; Run starts it.
func New(cfg Config) *Syncer {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Every <= 0 {
		cfg.Every = DefaultEvery
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.List == nil {
		cfg.List = LsRemote(cfg.Timeout)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Enqueue == nil {
		cfg.Enqueue = func(string) {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Syncer{
		cfg: cfg, log: cfg.Logger.With("component", "gitsync"), kick: make(chan struct{}, 1),
		next: map[string]time.Time{}, wanted: map[string]bool{}, running: map[string]bool{},
		hooked: map[string]map[int]github.PullRequest{},
	}
}

// Enqueue asks for a pass over the named repository as soon as possible
// (a webhook said it changed, or its binding was just added). Passes over
// one repository never overlap; an Enqueue during a pass makes another.
func (s *Syncer) Enqueue(repo string) {
	s.mu.Lock()
	s.wanted[repo] = true
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run syncs every repository when due until ctx ends, then waits for the
// passes under way (they see ctx's cancellation).
func (s *Syncer) Run(ctx context.Context) error {
	tick := time.NewTicker(s.cfg.Tick)
	defer tick.Stop()
	sem := make(chan struct{}, s.cfg.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		for _, name := range s.due(ctx) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				if _, err := s.Sync(ctx, name); err != nil && ctx.Err() == nil {
					s.log.Warn("repository sync failed; will retry", "repo", name, "err", err)
				}
				s.mu.Lock()
				delete(s.running, name)
				again := s.wanted[name]
				s.mu.Unlock()
				if again {
					select {
					case s.kick <- struct{}{}:
					default:
					}
				}
			}()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-s.kick:
		}
	}
}

// due returns the repositories to sync now and marks them running.
func (s *Syncer) due(ctx context.Context) []string {
	repos, err := s.cfg.Store.ListRepos(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("list repository bindings", "err", err)
		}
		return nil
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	known := map[string]bool{}
	for _, r := range repos {
		known[r.Name] = true
		next, seen := s.next[r.Name]
		if s.running[r.Name] || (seen && !s.wanted[r.Name] && now.Before(next)) {
			continue
		}
		every := r.Every.D()
		if every <= 0 {
			every = s.cfg.Every
		}
		s.next[r.Name] = now.Add(every)
		delete(s.wanted, r.Name)
		s.running[r.Name] = true
		out = append(out, r.Name)
	}
	for name := range s.next {
		if !known[name] {
			delete(s.next, name)
		}
	}
	for name := range s.wanted {
		if !known[name] {
			delete(s.wanted, name)
		}
	}
	return out
}

// Result is what one pass did.
type Result struct {
	// Branches counts the remote's branches, Matched those that get a
	// sandbox.
	Branches, Matched int
	// Created, Updated and Deleted name the sandboxes the pass created,
	// moved to a new commit (or template version), and asked to delete.
	Created, Updated, Deleted []string
	// PullRequests counts the open pull requests with a sandbox.
	PullRequests int
}

// Sync is one level-based pass over the named repository binding: list the
// remote, then create, update and request deletion of its sandboxes so
// that there is one per matching branch at the branch's head commit and
// the template's latest version. When the remote cannot be listed (or the
// template cannot be read) nothing changes but the binding's status.
func (s *Syncer) Sync(ctx context.Context, name string) (Result, error) {
	repo, err := s.cfg.Store.GetRepo(ctx, name)
	if err != nil {
		return Result{}, err
	}
	started := s.cfg.Now().UTC()
	st := repo.Status
	st.LastSyncAt = &started
	res, err := s.sync(ctx, repo)
	if err != nil {
		if ctx.Err() != nil {
			return res, err // stopping: the next server's pass reports
		}
		st.Error = err.Error()
	} else {
		st.Error, st.LastSuccessAt = "", &started
		st.Branches, st.Matched, st.PullRequests = res.Branches, res.Matched, res.PullRequests
	}
	if uerr := s.cfg.Store.UpdateRepoStatus(context.WithoutCancel(ctx), repo.Name, st); uerr != nil && !errors.Is(uerr, store.ErrNotFound) {
		s.log.Warn("record repository status", "repo", repo.Name, "err", uerr)
	}
	if err == nil && (len(res.Created)+len(res.Updated)+len(res.Deleted) > 0) {
		s.log.Info("repository synced", "repo", repo.Name, "branches", res.Branches, "matched", res.Matched,
			"created", len(res.Created), "updated", len(res.Updated), "deleted", len(res.Deleted))
	}
	return res, err
}

func (s *Syncer) sync(ctx context.Context, repo *sandbox.Repo) (Result, error) {
	branches, err := s.cfg.List(ctx, repo.URL)
	if err != nil {
		return Result{}, fmt.Errorf("list branches of %s: %w", repo.URL, err)
	}
	res := Result{Branches: len(branches)}
	tv, err := s.cfg.Store.GetTemplate(ctx, repo.Template, 0)
	if err != nil {
		return res, fmt.Errorf("template %s: %w", repo.Template, err)
	}
	t, err := template.Parse(tv.Filename, tv.Source)
	if err != nil {
		return res, fmt.Errorf("template %s version %d does not parse: %w", tv.Name, tv.Version, err)
	}
	match := t.Branches()
	prs, prErr := s.listPullRequests(ctx, repo)
	sbs, err := s.cfg.Store.ListSandboxes(ctx, store.ListOptions{})
	if err != nil {
		return res, err
	}
	taken := map[string]bool{}
	mine := map[string][]*sandbox.Sandbox{} // by branch, oldest first
	for _, sb := range sbs {
		taken[sb.Name] = true
		if g := sb.Spec.Git; g != nil && g.Repo == repo.Name && g.PR == 0 {
			mine[g.Branch] = append(mine[g.Branch], sb)
		}
	}
	remote := map[string]string{}
	for _, b := range branches {
		remote[b.Name] = b.SHA
	}
	// Deletions first, so that a pass that fails halfway (the store
	// refused a write) has at least stopped what should not run.
	for _, br := range sortedKeys(mine) {
		reason := ""
		if _, ok := remote[br]; !ok {
			reason = sandbox.DeletedBranchGone
		} else if !match.Match(br) {
			reason = sandbox.DeletedBranchUnmatched
		}
		for i, sb := range mine[br] {
			r := reason
			if r == "" && i > 0 && !sb.Spec.Deleting() {
				r = "another sandbox serves the branch" // only after a lost race; keep the oldest
			}
			if r == "" || sb.Spec.Deleting() {
				continue
			}
			if err := s.requestDeletion(ctx, sb, r); err != nil {
				return res, err
			}
			res.Deleted = append(res.Deleted, sb.Name)
		}
	}
	sort.Slice(branches, func(i, j int) bool { return branches[i].Name < branches[j].Name })
	// Authors of the commits this pass records, in one git call rather
	// than one per sandbox (a first pass over hundreds of branches).
	var want []string
	for _, b := range branches {
		if !match.Match(b.Name) {
			continue
		}
		known := false
		for _, sb := range mine[b.Name] {
			known = known || (!sb.Spec.Deleting() && sb.Spec.Git.SHA == b.SHA)
		}
		if !known {
			want = append(want, b.SHA)
		}
	}
	authors := localAuthors(ctx, repo.URL, want)
	for _, b := range branches {
		if !match.Match(b.Name) {
			continue
		}
		res.Matched++
		var live *sandbox.Sandbox
		deleting := false
		for _, sb := range mine[b.Name] {
			if sb.Spec.Deleting() {
				deleting = true
			} else if live == nil {
				live = sb
			}
		}
		switch {
		case live != nil:
			if live.Spec.Ref == b.SHA && live.Spec.TemplateVersion == tv.Version && live.Spec.Git.SHA == b.SHA {
				continue
			}
			updated, err := s.update(ctx, repo, live, b, tv.Version, authors[b.SHA])
			if err != nil {
				return res, err
			}
			if updated {
				res.Updated = append(res.Updated, live.Name)
			}
		case deleting:
			// The old one (deleted by hand, say) goes first; the next
			// pass makes a new one, under the same name.
		default:
			sb, err := s.create(ctx, repo, b, tv, taken, authors[b.SHA])
			if err != nil {
				return res, err
			}
			if sb != nil {
				taken[sb.Name] = true
				res.Created = append(res.Created, sb.Name)
			}
		}
	}
	if prErr != nil {
		// Branches are done; pull request sandboxes stay as they are
		// until the API answers again.
		return res, prErr
	}
	return res, s.syncPullRequests(ctx, repo, t, tv, prs, sbs, taken, &res)
}

func (s *Syncer) create(ctx context.Context, repo *sandbox.Repo, b Branch, tv store.TemplateVersion, taken map[string]bool, author string) (*sandbox.Sandbox, error) {
	plain, hashed := sandbox.BranchNames(repo.Name, b.Name)
	var candidates []string
	if plain != "" && !taken[plain] {
		candidates = append(candidates, plain)
	}
	candidates = append(candidates, hashed)
	for _, name := range candidates {
		sb := &sandbox.Sandbox{
			ID:   sandbox.NewID(),
			Name: name,
			Spec: sandbox.Spec{
				Template: tv.Name, TemplateVersion: tv.Version, Ref: b.SHA, CreatedBy: sandbox.RepoOwner(repo.Name),
				Git: &sandbox.GitSource{Repo: repo.Name, Branch: b.Name, SHA: b.SHA, Author: author},
			},
			CreatedAt: s.cfg.Now().UTC(),
		}
		err := s.cfg.Store.CreateSandbox(ctx, sb)
		if errors.Is(err, store.ErrConflict) {
			continue // taken since the listing (a user's sandbox, say)
		}
		if err != nil {
			return nil, fmt.Errorf("create sandbox for branch %s: %w", b.Name, err)
		}
		s.event(ctx, sb, sandbox.ReasonCreated, fmt.Sprintf("created for branch %s of repository %s at %s (template %s version %d)",
			b.Name, repo.Name, short(b.SHA), tv.Name, tv.Version))
		s.log.Info("branch sandbox created", "repo", repo.Name, "branch", b.Name, "sandbox", sb.Name, "sha", b.SHA)
		s.cfg.Enqueue(sb.ID)
		s.notify(sb.ID)
		return sb, nil
	}
	s.log.Warn("no free name for a branch's sandbox; will retry", "repo", repo.Name, "branch", b.Name, "names", candidates)
	return nil, nil
}

// update moves a sandbox to its branch's head commit and the template's
// latest version. The change of Spec.Ref makes the reconciler relaunch it
// in place, reusing what the runtime keyed by commit.
func (s *Syncer) update(ctx context.Context, repo *sandbox.Repo, sb *sandbox.Sandbox, b Branch, version int, author string) (bool, error) {
	from := sb.Spec.Ref
	cur, err := s.cfg.Store.UpdateSpec(ctx, sb.ID, func(sp *sandbox.Spec) error {
		if sp.Deleting() || sp.Git == nil || sp.Git.Repo != repo.Name || sp.Git.Branch != b.Name {
			return errSkip
		}
		if sp.Git.SHA != b.SHA {
			g := *sp.Git
			g.SHA, g.Author = b.SHA, author
			sp.Git = &g
		}
		sp.Ref, sp.TemplateVersion = b.SHA, version
		return nil
	})
	switch {
	case errors.Is(err, errSkip), errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("update sandbox %s to %s: %w", sb.Name, short(b.SHA), err)
	}
	msg := fmt.Sprintf("branch %s moved from %s to %s; relaunching", b.Name, short(from), short(b.SHA))
	if from == b.SHA {
		msg = fmt.Sprintf("template %s version %d is the latest; relaunching", cur.Spec.Template, version)
	}
	s.event(ctx, cur, ReasonBranchMoved, msg)
	s.log.Info("branch sandbox updated", "repo", repo.Name, "branch", b.Name, "sandbox", sb.Name, "sha", b.SHA, "template_version", version)
	s.cfg.Enqueue(sb.ID)
	s.notify(sb.ID)
	return true, nil
}

// ReasonBranchMoved is the event reason of a sandbox moved to a new
// commit (or template version).
const ReasonBranchMoved = "BranchMoved"

var errSkip = errors.New("skip")

func (s *Syncer) requestDeletion(ctx context.Context, sb *sandbox.Sandbox, reason string) error {
	now := s.cfg.Now().UTC()
	cur, err := s.cfg.Store.UpdateSpec(ctx, sb.ID, func(sp *sandbox.Spec) error {
		if sp.Deleting() {
			return errSkip
		}
		sp.DeletionRequestedAt, sp.DeletionReason = &now, reason
		return nil
	})
	switch {
	case errors.Is(err, errSkip), errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("request deletion of %s (%s): %w", sb.Name, reason, err)
	}
	s.event(ctx, cur, sandbox.ReasonDeleting, "deleting: "+reason)
	s.log.Info("branch sandbox deletion requested", "repo", sb.Spec.Git.Repo, "branch", sb.Spec.Git.Branch, "sandbox", sb.Name, "reason", reason)
	s.cfg.Enqueue(sb.ID)
	s.notify(sb.ID)
	return nil
}

func (s *Syncer) event(ctx context.Context, sb *sandbox.Sandbox, reason, msg string) {
	_, _ = s.cfg.Store.AppendEvent(ctx, sandbox.Event{SandboxID: sb.ID, Type: sandbox.EventNormal, Reason: reason, Message: msg})
}

func (s *Syncer) notify(id string) {
	if s.cfg.Notify != nil {
		s.cfg.Notify(id)
	}
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
