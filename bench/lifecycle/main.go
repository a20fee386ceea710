// Command lifecycle measures Sandpit's sandbox lifecycle on the guestbook
// example through a real `sandpit serve`, each beside its baseline from the
// same run:
//
//   - wake: a request to a suspended sandbox's endpoint, held by the proxy
//     until the sandbox is Ready again, from the request being sent to the
//     first byte of the answer (and the server's own status.resume.took_ms),
//     against creating the same template cold (create → Ready);
//   - pool claim: CreateSandbox claiming a ready sandbox of the template's
//     warm pool, until the client sees it Ready under its new name and
//     until the first byte of its page, and the pool's refill, against a
//     fresh create with no_pool; then the same from a pool whose sandboxes
//     are kept suspended (pool.suspend);
//   - memory: the processes of 20 running sandboxes against the same 20
//     suspended: RSS, PSS, processes and listening ports, and the server's
//     RSS.
//
// It prints a Markdown table and writes it to bench/out/lifecycle-<date>.md.
//
//	go run ./bench/lifecycle [-n 20] [-v]      (or bench/lifecycle/run.sh)
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
	"strings"
	"sync/atomic"
	"time"

	"sandpit.dev/sandpit/bench/internal/harness"
	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/runtime/local"
	"sandpit.dev/sandpit/internal/runtime/local/proc"
)

var (
	nWake     = flag.Int("n", 20, "wakes measured (each: suspend, wait for Suspended, then one request)")
	nCold     = flag.Int("cold", 5, "cold creates measured (baseline of the wakes), after one warm-up")
	nClaims   = flag.Int("claims", 10, "claims from a running warm pool (pool: {min: 1})")
	nFresh    = flag.Int("fresh", 5, "fresh creates with no_pool (baseline of the claims), alternating with the claims")
	nSClaims  = flag.Int("suspended-claims", 5, "claims from a suspended warm pool (pool: {min: 1, suspend: true}); 0 skips them")
	nMem      = flag.Int("mem", 20, "sandboxes in the memory comparison; 0 skips it")
	settle    = flag.Duration("settle", 300*time.Millisecond, "pause after a sandbox is seen Suspended before the request that wakes it")
	home      = flag.String("home", "/var/tmp/sandpit-bench-home", "HOME of the services and their builds (warm Go cache; shared with bench/launch)")
	portRange = flag.String("port-range", "43000-43999", "ports the server hands to services and databases")
	keepDir   = flag.Bool("keep", false, "keep the work directory (server log, data dir)")
	outDir    = flag.String("out", "", "directory for the Markdown result (default <repo>/bench/out)")
	noOut     = flag.Bool("no-out", false, "do not write the Markdown result")
	verbose   = flag.Bool("v", false, "log each wake's and claim's timeline (stages and events against the client's clock)")
)

const tmplName = "guestbook"

var (
	repoDir     string
	poolApplied atomic.Bool
)

// Lifecycle blocks the benchmark applies, in turn, as new versions of the
// guestbook template. Idle suspend is on (as a real template would have it)
// but far off: the benchmark suspends by API.
const (
	lifecycleNoPool        = "idle_suspend: 30m"
	lifecyclePool          = "idle_suspend: 30m, pool: {min: 1}"
	lifecycleSuspendedPool = "idle_suspend: 30m, pool: {min: 1, suspend: true}"
)

func main() {
	flag.Parse()
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	if os.Geteuid() != 0 {
		log.Fatal("run as root: services run as the unprivileged user sandpit")
	}
	var err error
	repoDir, err = harness.RepoRoot()
	harness.Check(err)
	harness.HandleSignals(func(os.Signal) {
		log.Printf("interrupted: deleting sandboxes and stopping the server (Ctrl-C again to leave at once)")
	}, nil)

	work, err := os.MkdirTemp("/var/tmp", "sandpit-bench-lifecycle-")
	harness.Check(err)
	harness.Check(os.Chmod(work, 0o755))
	if !*keepDir {
		harness.AtExit(func() { _ = os.RemoveAll(work) })
	}
	run := &runInfo{start: time.Now(), loadBefore: harness.LoadAvg(), machine: harness.Machine([]string{"/usr/lib/postgresql/15/bin/postgres", "--version"})}
	srv, err := startServer(repoDir, work)
	harness.Check(err)
	log.Printf("server up (data %s, log %s)", srv.Data, srv.LogPath)
	ctx := context.Background()
	c := srv.Client
	whole := newCPUMeter(srv.Pid())
	phase := func(name string, f func()) {
		m := newCPUMeter(srv.Pid())
		f()
		ours, others := m.read()
		run.phases = append(run.phases, phaseLoad{name, time.Since(m.start), ours, others})
	}

	_, err = applyTemplate(ctx, c, lifecycleNoPool)
	harness.Check(err)
	log.Printf("warm-up: one launch (builds the example as user sandpit; the first time on a machine this downloads and compiles its modules)")
	w := launch(ctx, srv, "warmup", true)
	log.Printf("warm-up: Ready in %s", harness.FmtDur(w.ready))
	deleteAndWait(ctx, c, "warmup")

	// Cold launches: the baseline of a wake.
	phase("cold creates", func() {
		for i := 0; i < *nCold; i++ {
			name := fmt.Sprintf("cold-%d", i)
			l := launch(ctx, srv, name, true)
			run.cold = append(run.cold, l)
			log.Printf("cold %d: Ready %s, first byte %s (server total %s)", i+1, harness.FmtDur(l.ready), harness.FmtDur(l.firstByte), harness.FmtDur(ms(l.sb.Status.Timing.TotalMS)))
			deleteAndWait(ctx, c, name)
		}
	})

	// Wakes of one sandbox, over and over.
	if *nWake > 0 {
		phase("wakes", func() { run.wakes = measureWakes(ctx, srv, "wakebench", *nWake) })
	}

	// Claims from a running warm pool, alternating with fresh creates.
	if *nClaims > 0 || *nFresh > 0 {
		phase("claims and fresh creates", func() { poolClaims(ctx, srv, run) })
	}

	// Claims from a suspended warm pool.
	if *nSClaims > 0 {
		phase("suspended-pool claims", func() { suspendedPoolClaims(ctx, srv, run) })
	}

	// Memory: the pool is turned off first so that only the 20 run.
	if poolApplied.Load() {
		_, err := applyTemplate(ctx, c, lifecycleNoPool)
		harness.Check(err)
		harness.Check(waitNoSandboxes(ctx, c))
	}
	if *nMem > 0 {
		phase("memory", func() { run.mem = measureMemory(ctx, srv, *nMem) })
	}
	run.ours, run.others = whole.read()

	run.loadAfter = harness.LoadAvg()
	run.end = time.Now()
	md := report(run)
	fmt.Print("\n" + md)
	if !*noOut {
		p, err := harness.WriteResult(*outDir, repoDir, "lifecycle", run.start, md)
		harness.Check(err)
		log.Printf("wrote %s", p)
	}
	if *keepDir {
		log.Printf("kept %s", work)
	}
	node := local.NodeID(srv.Data)
	harness.RunCleanup()
	verifyClean(node, work)
}

func poolClaims(ctx context.Context, srv *server, run *runInfo) {
	c := srv.Client
	v, err := applyTemplate(ctx, c, lifecyclePool)
	harness.Check(err)
	poolApplied.Store(true)
	log.Printf("template version %d: pool of 1 running sandbox; waiting for it", v)
	_, err = waitPool(ctx, c, v, client.PhaseReady, time.Time{})
	harness.Check(err)
	for i := 0; i < max(*nClaims, *nFresh); i++ {
		if i < *nClaims {
			cl := claim(ctx, srv, fmt.Sprintf("claim-%d", i), v, client.PhaseReady)
			run.claims = append(run.claims, cl)
		}
		if i < *nFresh {
			name := fmt.Sprintf("fresh-%d", i)
			l := launch(ctx, srv, name, true)
			run.fresh = append(run.fresh, l)
			log.Printf("fresh %d (no_pool): Ready %s, first byte %s", i+1, harness.FmtDur(l.ready), harness.FmtDur(l.firstByte))
			deleteAndWait(ctx, c, name)
		}
	}
}

func suspendedPoolClaims(ctx context.Context, srv *server, run *runInfo) {
	c := srv.Client
	v, err := applyTemplate(ctx, c, lifecycleSuspendedPool)
	harness.Check(err)
	poolApplied.Store(true)
	log.Printf("template version %d: pool of 1 suspended sandbox; waiting for it", v)
	_, err = waitPool(ctx, c, v, client.PhaseSuspended, time.Time{})
	harness.Check(err)
	for i := 0; i < *nSClaims; i++ {
		run.sclaims = append(run.sclaims, claim(ctx, srv, fmt.Sprintf("sclaim-%d", i), v, client.PhaseSuspended))
	}
}

// runInfo is everything one run measured.
type runInfo struct {
	start, end            time.Time
	loadBefore, loadAfter string
	machine               string
	cold, fresh           []launchResult
	wakes                 []wakeResult
	claims, sclaims       []claimResult
	mem                   *memResult
	ours, others          float64 // cores used on average: by this run, by the rest of the host
	phases                []phaseLoad
}

// phaseLoad is the CPU one phase of the run used, and the rest of the host
// meanwhile.
type phaseLoad struct {
	name         string
	took         time.Duration
	ours, others float64
}

// launchResult is one CreateSandbox, timed by the client from just before
// the request.
type launchResult struct {
	name      string
	answered  time.Duration // POST answered
	ready     time.Duration // Ready seen at the requested generation
	firstByte time.Duration // first byte of GET / through the proxy, sent once Ready was seen
	status    int
	nameOK    bool // the page names the sandbox
	claimed   bool
	t0        time.Time
	sb        *client.Sandbox // as seen Ready
}

// launch creates a sandbox of the template, waits until the client sees it
// Ready at the generation it asked for (a claimed sandbox is Ready under
// its pool name at first, then relaunches under the new one), then GETs its
// page through the endpoint proxy.
func launch(ctx context.Context, srv *server, name string, noPool bool) launchResult {
	c := srv.Client
	r := launchResult{name: name, t0: time.Now()}
	sb, err := c.CreateSandbox(ctx, client.CreateSandboxRequest{Name: name, Template: tmplName, NoPool: noPool})
	harness.Check(err)
	r.answered = time.Since(r.t0)
	r.claimed = sb.Spec.ClaimedAt != nil
	r.sb, err = waitFor(ctx, c, name, readyNow)
	harness.Check(err)
	r.ready = time.Since(r.t0)
	h, err := srv.proxyGet(ctx, name)
	harness.Check(err)
	r.firstByte = h.firstByte.Sub(r.t0)
	r.status, r.nameOK = h.status, strings.Contains(h.body, name)
	if r.status != 200 || !r.nameOK {
		log.Printf("WARNING: %s: GET / through the proxy answered %d (page names the sandbox: %v): %.200s", name, h.status, r.nameOK, h.body)
	}
	return r
}

// readyNow: Ready (or Failed) at the sandbox's current generation.
func readyNow(sb *client.Sandbox) (bool, error) {
	if sb.Status.ObservedGeneration != sb.Generation {
		return false, nil
	}
	switch sb.Status.Phase {
	case client.PhaseReady:
		return true, nil
	case client.PhaseFailed:
		return false, fmt.Errorf("sandbox %s failed: %s", sb.Name, sb.Status.Message)
	}
	return false, nil
}

// waitFor follows a sandbox's state (server-sent events, no polling) until
// cond holds.
func waitFor(ctx context.Context, c *client.Client, name string, cond func(*client.Sandbox) (bool, error)) (*client.Sandbox, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var got *client.Sandbox
	err := c.Watch(ctx, name, 1<<62, client.WatchHandler{
		Sandbox: func(sb *client.Sandbox) error {
			ok, err := cond(sb)
			if err != nil {
				return err
			}
			if ok {
				got = sb
				return client.ErrStopWatch
			}
			return nil
		},
		Deleted: func() error { return fmt.Errorf("sandbox %s was deleted while waiting for it", name) },
	})
	if err != nil {
		return nil, fmt.Errorf("wait for %s: %w", name, err)
	}
	if got == nil {
		return nil, fmt.Errorf("wait for %s: the watch ended", name)
	}
	return got, nil
}

func deleteAndWait(ctx context.Context, c *client.Client, name string) {
	_, err := c.DeleteSandbox(ctx, name)
	if client.IsNotFound(err) {
		return
	}
	harness.Check(err)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	_, err = c.WaitFor(ctx, name, 50*time.Millisecond, func(sb *client.Sandbox) bool { return sb == nil })
	harness.Check(err)
}

// waitNoSandboxes waits until the server holds no sandbox at all (the
// pool's have been deleted).
func waitNoSandboxes(ctx context.Context, c *client.Client) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		sbs, err := c.ListSandboxes(ctx, client.ListOptions{})
		if err != nil {
			return err
		}
		if len(sbs) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d sandboxes left (first %s, %s)", len(sbs), sbs[0].Name, sbs[0].Status.Phase)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// applyTemplate applies examples/guestbook/sandpit.yaml with its lifecycle
// section replaced by `lifecycle: {<block>}`, from the example's directory
// (its source path is relative to the file), and returns the version.
func applyTemplate(ctx context.Context, c *client.Client, block string) (int, error) {
	dir := filepath.Join(repoDir, "examples", "guestbook")
	src, err := os.ReadFile(filepath.Join(dir, "sandpit.yaml"))
	if err != nil {
		return 0, err
	}
	res, err := c.ApplyTemplate(ctx, client.ApplyTemplateRequest{
		Filename: "sandpit.yaml", BaseDir: dir, Source: withLifecycle(string(src), "lifecycle: {"+block+"}"),
	})
	if err != nil {
		return 0, fmt.Errorf("apply the guestbook template with lifecycle {%s}: %w", block, err)
	}
	return res.Template.Version, nil
}

// withLifecycle removes a top-level lifecycle section from the YAML (the
// key's line and the indented or blank lines under it) and appends section.
func withLifecycle(src, section string) string {
	var out []string
	skipping := false
	for _, line := range strings.Split(src, "\n") {
		if skipping {
			if line == "" || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
				continue
			}
			skipping = false
		}
		if strings.HasPrefix(line, "lifecycle:") {
			skipping = true
			continue
		}
		out = append(out, line)
	}
	s := strings.TrimRight(strings.Join(out, "\n"), "\n")
	return s + "\n\n# Added by bench/lifecycle.\n" + section + "\n"
}

// verifyClean reports anything the run left: processes carrying the
// server's marker, mounts under the work directory.
func verifyClean(node, work string) {
	left, err := proc.Scan(node)
	if err != nil {
		log.Printf("check for processes left: %v", err)
	}
	for _, p := range left {
		log.Printf("LEFT BEHIND: pid %d (sandbox %s, %s %s)", p.PID, p.Sandbox, p.Role, p.Unit)
	}
	mounts := harness.MountsUnder(work)
	for _, m := range mounts {
		log.Printf("LEFT MOUNTED: %s", m)
	}
	if len(left) == 0 && len(mounts) == 0 {
		log.Printf("clean: no process of this run's server is left, nothing is mounted under %s", work)
	}
}

func ms(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
