// Command gitsync measures the branch reconciler (internal/gitsync)
// through a real `sandpit serve` against real bare repositories served by
// `git daemon` on loopback, for a repository of 500 branches beside one of
// 50 (the baseline) in the same run:
//
//   - passes: the first pass after `repo add` (creates a sandbox per
//     branch), idle passes (nothing changed), a pass after 50 branches
//     moved (50 updates), after 50 were deleted (50 deletions) and after
//     they were created again (50 creations); each timed from the trigger
//     (POST /api/v1/repos/{name}/sync, or the binding's creation) until
//     the binding's status shows the pass done, and by the server's own
//     clock (status.last_sync_at, the pass's start, to the same moment);
//   - the raw `git ls-remote --heads` of the same remotes (how much of a
//     pass is git), and the per-branch `git log` that a file:// binding
//     adds to every creation and move;
//   - trigger-to-Provisioning latency: a new branch is pushed, a pass is
//     triggered, alternately by a signed GitHub push webhook (when the
//     server has POST /hooks/github) and by POST
//     /api/v1/repos/{name}/sync, and the client polls until the branch's
//     sandbox exists and until it is Provisioning;
//   - a file:// binding of the largest repository (its own template), whose
//     passes also run `git log` per new commit: first, idle and move
//     passes.
//
// Every sandbox runs one tiny service (`exec sleep 100000`, no build): the
// point is the pass, not launches. It prints a Markdown table and writes it
// to bench/out/gitsync-<date>.md.
//
//	go run ./bench/gitsync [-sizes 50,500] [-idle 10] [-cycles 3] [-hooks 20]   (or bench/gitsync/run.sh)
//
// It must run as root (the server then runs services as the unprivileged
// user "sandpit").
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sandpit.dev/sandpit/bench/internal/harness"
	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/sandbox"
)

var (
	sizesFlag = flag.String("sizes", "50,500", "branch counts of the repositories, smallest first (the last is the one the latency is measured on)")
	nIdle     = flag.Int("idle", 10, "idle passes per repository")
	nCycles   = flag.Int("cycles", 3, "move / delete / re-create cycles per repository")
	nChanged  = flag.Int("changes", 50, "branches moved, deleted and re-created in each cycle")
	nHooks    = flag.Int("hooks", 20, "new branches whose trigger → Provisioning latency is measured")
	nLs       = flag.Int("ls", 20, "raw git ls-remote runs per remote")
	poll      = flag.Duration("poll", 2*time.Millisecond, "pause between polls of the API while timing")
	portRange = flag.String("port-range", "44000-44999", "ports the server hands to services")
	workers   = flag.Int("workers", 4, "the server's --workers (sandboxes launched or deleted at once)")
	keepDir   = flag.Bool("keep", false, "keep the work directory (server log, data dir, repositories)")
	outDir    = flag.String("out", "", "directory for the Markdown result (default <repo>/bench/out)")
	noOut     = flag.Bool("no-out", false, "do not write the Markdown result")
	verbose   = flag.Bool("v", false, "log every pass")
	fileBind  = flag.Bool("file", true, "at the end, bind the largest repository a second time by its file:// URL (its own template) and time that binding's first, idle and move passes (file:// bindings look up each new commit's author with git log)")
	quiet     = flag.Duration("quiet", 3*time.Second, "window, once a repository's sandboxes are all Ready, over which the server's CPU use is measured (nothing triggered)")
)

var serverPid int

var repoDir string

func main() {
	flag.Parse()
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	if os.Geteuid() != 0 {
		log.Fatal("run as root: services run as the unprivileged user sandpit")
	}
	var sizes []int
	for _, s := range strings.Split(*sizesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < *nChanged {
			log.Fatalf("-sizes: %q is not a branch count of at least -changes (%d)", s, *nChanged)
		}
		sizes = append(sizes, n)
	}
	var err error
	repoDir, err = harness.RepoRoot()
	harness.Check(err)
	harness.HandleSignals(func(os.Signal) {
		log.Printf("interrupted: removing bindings, deleting sandboxes, stopping the server (Ctrl-C again to leave at once)")
	}, nil)

	work, err := os.MkdirTemp("/var/tmp", "sandpit-bench-gitsync-")
	harness.Check(err)
	harness.Check(os.Chmod(work, 0o755)) // the service user clones from here
	if !*keepDir {
		harness.AtExit(func() { _ = os.RemoveAll(work) })
	}
	gitBase := filepath.Join(work, "git")
	harness.Check(os.MkdirAll(gitBase, 0o755))
	port := startDaemon(gitBase)

	run := &runInfo{start: time.Now(), loadBefore: harness.LoadAvg(), machine: harness.Machine([]string{"git", "--version"})}
	srv, err := harness.Start(harness.Config{
		Repo: repoDir, Work: work,
		Args: []string{"--snapshot-store", "copy", "--port-range", *portRange, "--log-level", "info",
			"--workers", strconv.Itoa(*workers)},
		BeforeDelete: removeBindings,
	})
	harness.Check(err)
	log.Printf("server up (data %s, log %s); git daemon on port %d", srv.Data, srv.LogPath, port)
	ctx := context.Background()
	c := srv.Client
	run.webhook = hasWebhookRoute(ctx, srv)
	serverPid = srv.Pid()

	var repos []*sizeRun
	for _, n := range sizes {
		sr := &sizeRun{n: n, name: fmt.Sprintf("r%d", n)}
		sr.bare = newBareRepo(gitBase, sr.name, port)
		sr.branches = make([]string, n)
		for i := range sr.branches {
			sr.branches[i] = fmt.Sprintf("feature-%s-%04d", sr.name, i)
		}
		sr.bare.create(sr.branches)
		applyTemplate(ctx, c, sr.name, sr.bare.gitURL)
		measureSize(ctx, c, sr)
		repos = append(repos, sr)
		run.sizes = append(run.sizes, sr)
	}
	// The smaller repositories again, now that the larger one's sandboxes
	// exist too: a pass lists every sandbox of the server.
	total := countSandboxes(ctx, c)
	for _, sr := range repos[:len(repos)-1] {
		log.Printf("%s: %d idle passes with %d sandboxes on the server", sr.name, *nIdle, total)
		for range *nIdle {
			sr.idleCrowded = append(sr.idleCrowded, syncPass(ctx, c, sr.name, "idle (crowded)"))
		}
		sr.crowd = total
	}
	// Raw git: ls-remote over git:// and file://, and the per-branch git
	// log of a file:// binding.
	for _, sr := range repos {
		sr.lsGit = timeLsRemote(sr.bare.gitURL, *nLs)
		sr.lsFile = timeLsRemote(sr.bare.fileURL, *nLs)
		sr.lsGitV0 = timeLsRemote(sr.bare.gitURL, *nLs, "-c", "protocol.version=0")
		shas := make([]string, sr.n)
		for i := range shas {
			shas[i] = sr.bare.main
		}
		sr.authors = timeAuthors(sr.bare.dir, shas)
		log.Printf("%s: git ls-remote p50 %s (git://), %s (file://); %d × git log %s",
			sr.name, harness.FmtDur(harness.Pct(sr.lsGit, 50)), harness.FmtDur(harness.Pct(sr.lsFile, 50)), sr.n, harness.FmtDur(sr.authors))
	}
	// Trigger → Provisioning on the largest repository.
	last := repos[len(repos)-1]
	if *nHooks > 0 {
		run.hooks = measureLatency(ctx, srv, last, *nHooks, run.webhook)
		run.hookRepo = last
	}
	if *fileBind {
		run.file = measureFile(ctx, c, last)
	}

	run.loadAfter = harness.LoadAvg()
	run.end = time.Now()
	md := report(run)
	fmt.Print("\n" + md)
	if !*noOut {
		p, err := harness.WriteResult(*outDir, repoDir, "gitsync", run.start, md)
		harness.Check(err)
		log.Printf("wrote %s", p)
	}
	if *keepDir {
		log.Printf("kept %s", work)
	}
	harness.RunCleanup()
	if m := harness.MountsUnder(work); len(m) > 0 {
		log.Printf("LEFT MOUNTED: %v", m)
	}
}

// sizeRun is what one repository's measurements gave.
type sizeRun struct {
	n        int
	name     string // binding and template name, r<n>
	bare     *bareRepo
	branches []string

	first                           []passResult
	idle, moves, deletes, recreates []passResult
	idleCrowded                     []passResult
	crowd                           int // sandboxes on the server during idleCrowded
	settleFirst                     time.Duration
	quietCPU                        float64 // the server's cores, all Ready, nothing triggered
	lsGit, lsFile, lsGitV0          []time.Duration
	authors                         time.Duration // sr.n × git log
}

// passResult is one pass: from the trigger (client) and from its start
// (server's last_sync_at) until the client saw the status it wrote.
type passResult struct {
	client, server time.Duration
	status         sandbox.RepoStatus
}

// measureSize runs one repository's passes: first, idle, then cycles of
// move, delete and re-create.
func measureSize(ctx context.Context, c *client.Client, sr *sizeRun) {
	n := sr.n
	t0 := time.Now()
	p := timePass(ctx, c, sr.name, func() error {
		_, err := c.AddRepo(ctx, client.AddRepoRequest{Name: sr.name, URL: sr.bare.gitURL, Template: sr.name,
			Every: sandbox.Duration(time.Hour), WebhookSecret: webhookSecret}) // only the benchmark's triggers drive passes
		return err
	})
	checkStatus(p, n, "first")
	sr.first = append(sr.first, p)
	if got := len(repoSandboxes(ctx, c, sr.name)); got != n {
		harness.Fatalf("%s: %d sandboxes after the first pass; want %d", sr.name, got, n)
	}
	log.Printf("%s: first pass created %d sandboxes: %s (server %s); waiting for them to be Ready", sr.name, n, harness.FmtDur(p.client), harness.FmtDur(p.server))
	waitSettled(ctx, c, sr.name, n)
	sr.settleFirst = time.Since(t0)
	time.Sleep(*quiet / 2) // let the launches' last writes end before measuring the CPU
	log.Printf("%s: all %d Ready %s after the binding was added; measuring the server's CPU for %s", sr.name, n, harness.FmtDur(sr.settleFirst), *quiet)
	sr.quietCPU = cpuCores(serverPid, *quiet)
	log.Printf("%s: the server used %.2f cores with %d sandboxes Ready and nothing triggered", sr.name, sr.quietCPU, n)

	for range *nIdle {
		p := syncPass(ctx, c, sr.name, "idle")
		checkStatus(p, n, "idle")
		sr.idle = append(sr.idle, p)
	}
	log.Printf("%s: idle pass p50 %s (server %s)", sr.name, harness.FmtDur(harness.Pct(clientTimes(sr.idle), 50)), harness.FmtDur(harness.Pct(serverTimes(sr.idle), 50)))

	for cy := range *nCycles {
		// A different slice of branches each cycle, spread over the list.
		sel := pick(sr.branches, *nChanged, cy)
		settle()
		shas := sr.bare.move(sel, false)
		p := syncPass(ctx, c, sr.name, "move")
		sr.moves = append(sr.moves, p)
		moved := 0
		for _, sb := range repoSandboxes(ctx, c, sr.name) {
			if want, ok := shas[sb.Spec.Git.Branch]; ok && sb.Spec.Ref == want {
				moved++
			}
		}
		if moved != len(sel) {
			harness.Fatalf("%s: %d of %d moved sandboxes at their new commit after the pass", sr.name, moved, len(sel))
		}
		waitSettled(ctx, c, sr.name, n)

		settle()
		sr.bare.remove(sel)
		p = syncPass(ctx, c, sr.name, "delete")
		checkStatus(p, n-len(sel), "delete")
		deleting := 0
		for _, sb := range repoSandboxes(ctx, c, sr.name) {
			if sb.Spec.DeletionRequestedAt != nil {
				deleting++
			}
		}
		sr.deletes = append(sr.deletes, p)
		waitSettled(ctx, c, sr.name, n-len(sel))
		if deleting != len(sel) && *verbose {
			log.Printf("%s: %d deleting right after the pass (some already gone)", sr.name, deleting)
		}

		settle()
		sr.bare.create(sel)
		p = syncPass(ctx, c, sr.name, "re-create")
		checkStatus(p, n, "re-create")
		sr.recreates = append(sr.recreates, p)
		if got := len(repoSandboxes(ctx, c, sr.name)); got != n {
			harness.Fatalf("%s: %d sandboxes after re-creating %d branches; want %d", sr.name, got, len(sel), n)
		}
		waitSettled(ctx, c, sr.name, n)
		log.Printf("%s: cycle %d: move %s, delete %s, re-create %s (client)", sr.name, cy+1,
			harness.FmtDur(sr.moves[cy].client), harness.FmtDur(sr.deletes[cy].client), harness.FmtDur(sr.recreates[cy].client))
	}
}

// pick returns k of the branches, every len/k-th, shifted by cycle.
func pick(branches []string, k, cycle int) []string {
	step := len(branches) / k
	var out []string
	for i := 0; i < k; i++ {
		out = append(out, branches[(i*step+cycle)%len(branches)])
	}
	return out
}

func checkStatus(p passResult, matched int, what string) {
	if p.status.Error != "" || p.status.Matched != matched {
		harness.Fatalf("%s pass: status %+v; want %d matched and no error", what, p.status, matched)
	}
}

// syncPass triggers a pass with POST /api/v1/repos/{name}/sync and times
// it.
func syncPass(ctx context.Context, c *client.Client, name, what string) passResult {
	p := timePass(ctx, c, name, func() error { _, err := c.SyncRepo(ctx, name); return err })
	if *verbose {
		log.Printf("%s: %s pass: %s (server %s), %d branches, %d matched", name, what, harness.FmtDur(p.client), harness.FmtDur(p.server), p.status.Branches, p.status.Matched)
	}
	return p
}

// timePass runs trigger, then polls the binding until its status shows a
// pass that started after the previous one (gitsync writes the status at
// the end of a pass, with last_sync_at its start).
func timePass(ctx context.Context, c *client.Client, name string, trigger func() error) passResult {
	var prev time.Time
	if r, err := c.GetRepo(ctx, name); err == nil && r.Status.LastSyncAt != nil {
		prev = *r.Status.LastSyncAt
	}
	t0 := time.Now()
	harness.Check(trigger())
	deadline := t0.Add(5 * time.Minute)
	for {
		r, err := c.GetRepo(ctx, name)
		seen := time.Now()
		harness.Check(err)
		if at := r.Status.LastSyncAt; at != nil && at.After(prev) {
			return passResult{client: seen.Sub(t0), server: seen.Sub(*at), status: r.Status}
		}
		if seen.After(deadline) {
			harness.Fatalf("%s: no pass recorded within 5 min of the trigger", name)
		}
		time.Sleep(*poll)
	}
}

// repoSandboxes lists the binding's sandboxes.
func repoSandboxes(ctx context.Context, c *client.Client, repo string) []client.Sandbox {
	sbs, err := c.ListSandboxes(ctx, client.ListOptions{})
	harness.Check(err)
	var out []client.Sandbox
	for _, sb := range sbs {
		if sb.Spec.Git != nil && sb.Spec.Git.Repo == repo {
			out = append(out, sb)
		}
	}
	return out
}

func countSandboxes(ctx context.Context, c *client.Client) int {
	sbs, err := c.ListSandboxes(ctx, client.ListOptions{})
	harness.Check(err)
	return len(sbs)
}

// waitSettled waits until the binding has exactly n sandboxes, each Ready
// at its current generation, none being deleted.
func waitSettled(ctx context.Context, c *client.Client, repo string, n int) {
	deadline := time.Now().Add(15 * time.Minute)
	for {
		sbs := repoSandboxes(ctx, c, repo)
		ready := 0
		for _, sb := range sbs {
			if sb.Status.Phase == client.PhaseFailed {
				harness.Fatalf("sandbox %s failed: %s", sb.Name, sb.Status.Message)
			}
			if sb.Status.Phase == client.PhaseReady && sb.Status.ObservedGeneration == sb.Generation && !sb.Spec.Deleting() {
				ready++
			}
		}
		if len(sbs) == n && ready == n {
			return
		}
		if time.Now().After(deadline) {
			harness.Fatalf("%s: %d sandboxes, %d Ready after 15 min; want %d", repo, len(sbs), ready, n)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// applyTemplate applies template name: source the repository, one tiny
// service, every branch but main.
func applyTemplate(ctx context.Context, c *client.Client, name, url string) {
	src := fmt.Sprintf(`apiVersion: sandpit/v1
name: %s
source: {git: %q}
services:
  app: {run: exec sleep 100000}
git: {branches: ["*", "!main"]}
`, name, url)
	_, err := c.ApplyTemplate(ctx, client.ApplyTemplateRequest{Filename: name + ".yaml", BaseDir: os.TempDir(), Source: src})
	if err != nil {
		harness.Fatalf("apply template %s: %v", name, err)
	}
}

// removeBindings removes every repository binding with its sandboxes
// before the harness deletes what is left (a binding would make them
// again), and waits until they are gone: a thousand sandboxes take longer
// than the harness's five minutes to stop.
func removeBindings(ctx context.Context, c *client.Client) {
	l, err := c.ListRepos(ctx)
	if err != nil {
		log.Printf("clean-up: list repository bindings: %v", err)
		return
	}
	for _, r := range l.Items {
		if _, err := c.RemoveRepo(ctx, r.Name, true); err != nil {
			log.Printf("clean-up: remove binding %s: %v", r.Name, err)
		}
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Minute)
	defer cancel()
	for last := time.Now(); ; time.Sleep(time.Second) {
		sbs, err := c.ListSandboxes(wctx, client.ListOptions{})
		if err != nil || len(sbs) == 0 {
			return
		}
		if time.Since(last) > 30*time.Second {
			log.Printf("clean-up: %d sandboxes still being deleted", len(sbs))
			last = time.Now()
		}
	}
}

// cpuCores is the CPU (user+system, all threads) process pid used over the
// next d, in cores.
func cpuCores(pid int, d time.Duration) float64 {
	ticks := func() float64 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from 3 (state) on
		if len(f) < 13 {
			return 0
		}
		u, _ := strconv.ParseFloat(f[11], 64) // utime, field 14
		k, _ := strconv.ParseFloat(f[12], 64) // stime, field 15
		return u + k
	}
	t0, c0 := time.Now(), ticks()
	time.Sleep(d)
	return (ticks() - c0) / 100 / time.Since(t0).Seconds() // USER_HZ is 100 on Linux
}

// fileRun is the file:// binding of a repository already bound by git://.
type fileRun struct {
	n, crowd           int
	first, idle, moves []passResult
}

// measureFile binds sr's repository again by its file:// URL, with a
// template of its own (a template's source must be the binding's URL), and
// times that binding's first pass, idle passes and passes after -changes
// branches moved. The git:// binding is not synced meanwhile.
func measureFile(ctx context.Context, c *client.Client, sr *sizeRun) *fileRun {
	name := sr.name + "-file"
	applyTemplate(ctx, c, name, sr.bare.fileURL)
	fr := &fileRun{n: sr.n}
	p := timePass(ctx, c, name, func() error {
		_, err := c.AddRepo(ctx, client.AddRepoRequest{Name: name, URL: sr.bare.fileURL, Template: name, Every: sandbox.Duration(time.Hour), WebhookSecret: webhookSecret})
		return err
	})
	checkStatus(p, sr.n, "first (file://)")
	fr.first = append(fr.first, p)
	log.Printf("%s: first pass created %d sandboxes: %s (server %s); waiting for them to be Ready", name, sr.n, harness.FmtDur(p.client), harness.FmtDur(p.server))
	waitSettled(ctx, c, name, sr.n)
	fr.crowd = countSandboxes(ctx, c)
	time.Sleep(*quiet)
	for range *nIdle {
		fr.idle = append(fr.idle, syncPass(ctx, c, name, "idle"))
	}
	for cy := range *nCycles {
		sel := pick(sr.branches, *nChanged, cy+*nCycles) // not the slices measureSize moved
		settle()
		sr.bare.move(sel, false)
		fr.moves = append(fr.moves, syncPass(ctx, c, name, "move"))
		waitSettled(ctx, c, name, sr.n)
	}
	log.Printf("%s: idle pass p50 %s, move pass p50 %s", name, harness.FmtDur(harness.Pct(clientTimes(fr.idle), 50)), harness.FmtDur(harness.Pct(clientTimes(fr.moves), 50)))
	return fr
}

// settle pauses a third of -quiet before a timed pass, so that the
// relaunches and deletions of the step before have ended.
func settle() { time.Sleep(*quiet / 3) }
