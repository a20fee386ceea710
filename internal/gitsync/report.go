package gitsync

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"sandpit.dev/sandpit/internal/github"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
)

// ReporterConfig holds a Reporter's dependencies.
type ReporterConfig struct {
	// GitHub is the API client, with the server's token.
	GitHub *github.Client
	// Store gives the sandboxes' repository bindings.
	Store  store.Store
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the wait before retrying a failed
	// report (defaults 2s and 5m).
	MinBackoff, MaxBackoff time.Duration
}

// Reporter tells GitHub how a pull request's sandbox went: when it is
// Ready or Failed at the pull request's head commit, it puts one comment
// on the pull request (found again by a hidden marker and edited, so a
// pull request never gets more than one per sandbox) and sets a commit
// status (context "sandpit/<binding>") on the commit, both with the
// endpoint URLs. Observe takes changes from the reconciler and never
// blocks; Run reports them, once per (sandbox, phase, commit), retrying
// failures with backoff.
type Reporter struct {
	cfg  ReporterConfig
	log  *slog.Logger
	kick chan struct{}

	mu       sync.Mutex
	pending  map[string]*pendingReport // by sandbox ID
	reported map[string]string         // sandbox ID → key last reported
}

type pendingReport struct {
	sb       *sandbox.Sandbox
	key      string
	attempts int
	notAfter time.Time // not before this time (backoff)
}

// NewReporter returns a Reporter; Run starts it.
func NewReporter(cfg ReporterConfig) *Reporter {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 2 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Minute
	}
	return &Reporter{cfg: cfg, log: cfg.Logger.With("component", "github-report"), kick: make(chan struct{}, 1),
		pending: map[string]*pendingReport{}, reported: map[string]string{}}
}

// reportKey says what a report is about: the phase at the commit.
func reportKey(sb *sandbox.Sandbox) string {
	return string(sb.Status.Phase) + "@" + sb.Spec.Git.SHA
}

// Observe takes a sandbox the reconciler changed (the reconciler's
// OnChange). Pull request sandboxes whose status describes their spec and
// that are Ready or Failed at a commit not yet reported are queued.
func (r *Reporter) Observe(sb *sandbox.Sandbox, gone bool) {
	if sb == nil || sb.Spec.Git == nil || sb.Spec.Git.PR <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if gone {
		delete(r.pending, sb.ID)
		delete(r.reported, sb.ID)
		return
	}
	if sb.Spec.Deleting() || sb.Status.ObservedGeneration != sb.Generation ||
		(sb.Status.Phase != sandbox.PhaseReady && sb.Status.Phase != sandbox.PhaseFailed) {
		return
	}
	key := reportKey(sb)
	if r.reported[sb.ID] == key {
		return
	}
	if p := r.pending[sb.ID]; p != nil && p.key == key {
		p.sb = sb
		return
	}
	r.pending[sb.ID] = &pendingReport{sb: sb, key: key}
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run reports what Observe queued until ctx ends.
func (r *Reporter) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := r.round(ctx)
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		case <-timer.C:
		}
	}
}

// round makes the reports that are due and returns how long until the
// next one is.
func (r *Reporter) round(ctx context.Context) time.Duration {
	now := time.Now()
	r.mu.Lock()
	var due []*pendingReport
	for _, p := range r.pending {
		if !now.Before(p.notAfter) {
			due = append(due, p)
		}
	}
	r.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].sb.Name < due[j].sb.Name })
	for _, p := range due {
		if ctx.Err() != nil {
			break
		}
		err := r.report(ctx, p.sb)
		r.mu.Lock()
		cur := r.pending[p.sb.ID]
		switch {
		case err == nil:
			r.reported[p.sb.ID] = p.key
			if cur == p {
				delete(r.pending, p.sb.ID)
			}
		case cur == p:
			p.attempts++
			back := r.cfg.MinBackoff << min(p.attempts-1, 20)
			if back > r.cfg.MaxBackoff || back <= 0 {
				back = r.cfg.MaxBackoff
			}
			p.notAfter = time.Now().Add(back)
			r.log.Warn("report to GitHub failed; will retry", "sandbox", p.sb.Name, "pr", p.sb.Spec.Git.PR, "in", back, "err", err)
		}
		r.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	next := time.Hour
	for _, p := range r.pending {
		if d := time.Until(p.notAfter); d < next {
			next = max(d, 0)
		}
	}
	return next
}

// Pending counts the reports not yet made (for tests).
func (r *Reporter) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

func (r *Reporter) report(ctx context.Context, sb *sandbox.Sandbox) error {
	repo, err := r.cfg.Store.GetRepo(ctx, sb.Spec.Git.Repo)
	if err != nil {
		return fmt.Errorf("repository binding %s: %w", sb.Spec.Git.Repo, err)
	}
	name := GitHubName(repo, r.cfg.GitHub.BaseURL())
	if name == "" {
		r.log.Debug("not a GitHub repository; nothing to report", "sandbox", sb.Name, "repo", repo.Name)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := r.cfg.GitHub.UpsertComment(ctx, name, sb.Spec.Git.PR, CommentMarker(sb.Name), CommentBody(sb)); err != nil {
		return err
	}
	st := github.Status{State: "success", Context: "sandpit/" + repo.Name}
	if sb.Status.Phase == sandbox.PhaseFailed {
		st.State = "failure"
		st.Description = "sandbox " + sb.Name + " failed"
		if m := firstLine(sb.Status.Message); m != "" {
			st.Description += ": " + m
		}
	} else {
		st.Description = "sandbox " + sb.Name + " is ready"
	}
	if len(sb.Status.Endpoints) > 0 {
		st.TargetURL = sb.Status.Endpoints[0].URL
	}
	if err := r.cfg.GitHub.SetStatus(ctx, name, sb.Spec.Git.SHA, st); err != nil {
		return err
	}
	r.log.Info("reported to GitHub", "sandbox", sb.Name, "repository", name, "pr", sb.Spec.Git.PR, "phase", sb.Status.Phase, "sha", sb.Spec.Git.SHA)
	return nil
}

// CommentMarker is the hidden text that finds a sandbox's comment again.
func CommentMarker(sandboxName string) string { return "<!-- sandpit:" + sandboxName + " -->" }

// CommentBody is the pull request comment about sb.
func CommentBody(sb *sandbox.Sandbox) string {
	var b strings.Builder
	b.WriteString(CommentMarker(sb.Name) + "\n")
	g := sb.Spec.Git
	switch sb.Status.Phase {
	case sandbox.PhaseReady:
		fmt.Fprintf(&b, "**Sandpit**: sandbox `%s` is **Ready** at %s (template %s).\n", sb.Name, short(g.SHA), sb.Spec.Template)
	default:
		fmt.Fprintf(&b, "**Sandpit**: sandbox `%s` **Failed** at %s (template %s).\n", sb.Name, short(g.SHA), sb.Spec.Template)
		if m := strings.TrimSpace(sb.Status.Message); m != "" {
			fmt.Fprintf(&b, "\n```\n%s\n```\n", strings.ReplaceAll(m, "```", "'''"))
		}
		fmt.Fprintf(&b, "\nLogs: `sandpit logs %s`; a shell: `sandpit exec %s SERVICE -- sh`.\n", sb.Name, sb.Name)
	}
	if len(sb.Status.Endpoints) > 0 {
		b.WriteString("\n| Endpoint | URL |\n|---|---|\n")
		for _, ep := range sb.Status.Endpoints {
			fmt.Fprintf(&b, "| %s | %s |\n", ep.Name, ep.URL)
		}
	}
	if g.Fork {
		b.WriteString("\nThis pull request comes from a fork: its sandbox gets no secrets unless the binding allows it.\n")
	}
	return b.String()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
