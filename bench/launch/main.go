// Command launch measures how long the guestbook example takes from
// `create` to Ready under Sandpit, split into the platform's own overhead
// and the external work it waits on (checkout, PostgreSQL start, the app's
// build, init, start and probes), beside a baseline that does the same work
// directly — the same commands, as the same user, with the same parallelism
// and the same warm build cache — in the same run. It prints a table.
//
//	go run ./bench/launch [-n 5]      (or bench/launch/run.sh)
//
// It must run as root (the server then runs services as the unprivileged
// user "sandpit", and the baseline does too).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"sandpit.dev/sandpit/bench/internal/harness"
	"sandpit.dev/sandpit/client"
)

var (
	n       = flag.Int("n", 5, "measured launches of each kind (after one warm-up)")
	home    = flag.String("home", "/var/tmp/sandpit-bench-home", "HOME shared by sandpit's services and the baseline (warm Go cache)")
	keepDir = flag.Bool("keep", false, "keep the work directory")
)

func main() {
	flag.Parse()
	log.SetFlags(0)
	if os.Geteuid() != 0 {
		log.Fatal("run as root: services and the baseline run as the unprivileged user sandpit")
	}
	repo, err := harness.RepoRoot()
	harness.Check(err)
	harness.HandleSignals(func(os.Signal) {
		log.Printf("interrupted: deleting sandboxes and stopping the server (Ctrl-C again to leave at once)")
	}, nil)
	work, err := os.MkdirTemp("/var/tmp", "sandpit-bench-launch-")
	harness.Check(err)
	harness.Check(os.Chmod(work, 0o755))
	harness.AtExit(func() {
		// The server keeps its snapshot store's btrfs image mounted.
		harness.UnmountUnder(work)
		if !*keepDir {
			_ = os.RemoveAll(work)
		}
	})
	defer harness.RunCleanup()

	srv, err := harness.Start(harness.Config{
		Repo: repo, Work: work, Output: os.Stderr,
		Args: []string{"--home-dir", *home, "--port-range", "40000-40999", "--log-level", "warn"},
	})
	harness.Check(err)
	ctx := context.Background()
	c := srv.Client
	_, err = c.ApplyTemplate(ctx, client.ApplyTemplateRequest{
		Filename: "sandpit.yaml", BaseDir: filepath.Join(repo, "examples/guestbook"),
		Source: string(must(os.ReadFile(filepath.Join(repo, "examples/guestbook/sandpit.yaml")))),
	})
	harness.Check(err)
	u, err := user.Lookup("sandpit")
	harness.Check(err)

	log.Printf("warming up (builds the example once as user sandpit; the first time on a machine this downloads and compiles its modules)")
	launchSandpit(ctx, c, "warmup")
	baseline(repo, work, u, -1)

	var sp []result
	var bl []time.Duration
	for i := 0; i < *n; i++ {
		// Alternate the two so drift in machine load hits both alike.
		sp = append(sp, launchSandpit(ctx, c, "bench-"+strconv.Itoa(i)))
		bl = append(bl, baseline(repo, work, u, i))
		log.Printf("run %d: sandpit %s (overhead %s), baseline %s", i+1, sp[i].total.Round(time.Millisecond), sp[i].overhead.Round(100*time.Microsecond), bl[i].Round(time.Millisecond))
	}
	report(sp, bl)
}

type result struct {
	total, external, checkout, overhead, client time.Duration
	stages                                      map[string]time.Duration
}

// launchSandpit creates a sandbox, waits for Ready, records its timing and
// deletes it.
func launchSandpit(ctx context.Context, c *client.Client, name string) result {
	start := time.Now()
	_, err := c.CreateSandbox(ctx, client.CreateSandboxRequest{Name: name, Template: "guestbook"})
	harness.Check(err)
	var ready *client.Sandbox
	err = c.Watch(ctx, name, 0, client.WatchHandler{Sandbox: func(sb *client.Sandbox) error {
		switch sb.Status.Phase {
		case client.PhaseReady:
			ready = sb
			return client.ErrStopWatch
		case client.PhaseFailed:
			return fmt.Errorf("sandbox %s failed: %s", name, sb.Status.Message)
		}
		return nil
	}})
	harness.Check(err)
	r := result{client: time.Since(start), stages: map[string]time.Duration{}}
	t := ready.Status.Timing
	r.total, r.external, r.checkout, r.overhead = ms(t.TotalMS), ms(t.ExternalMS), ms(t.CheckoutMS), ms(t.OverheadMS)
	for _, s := range ready.Status.Stages {
		if !strings.Contains(s.Name, "/") && s.FinishedAt != nil {
			r.stages[s.Name] = s.FinishedAt.Sub(s.StartedAt)
		}
	}
	_, err = c.DeleteSandbox(ctx, name)
	harness.Check(err)
	_, err = c.WaitFor(ctx, name, 50*time.Millisecond, func(sb *client.Sandbox) bool { return sb == nil })
	harness.Check(err)
	return r
}

func ms(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

// baseline does by hand what the template asks for: copy the source,
// initdb + start PostgreSQL + create the database while the two services
// build, then migrate, start api, wait for it, start web, wait for it.
func baseline(repo, work string, u *user.User, i int) time.Duration {
	dir := filepath.Join(work, "baseline-"+strconv.Itoa(i))
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cred := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, Setpgid: true}
	pgPort, apiPort, webPort := harness.FreePort(), harness.FreePort(), harness.FreePort()
	env := append(os.Environ(), "HOME="+*home, "USER=sandpit")
	procs := &procGroup{}
	harness.AtExit(procs.kill) // a fatal error ends the run before the defer runs
	defer func() {
		procs.kill()
		os.RemoveAll(dir)
	}()
	asUser := func(d string, extra []string, name string, args ...string) *exec.Cmd {
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env, cmd.SysProcAttr = d, append(append([]string(nil), env...), extra...), cred
		return cmd
	}
	start := time.Now()
	src := filepath.Join(dir, "src")
	harness.Check(os.MkdirAll(dir, 0o755))
	run("", "cp", "-a", filepath.Join(repo, "examples/guestbook"), src)
	run("", "chown", "-R", u.Uid+":"+u.Gid, dir)

	dbErr := make(chan error, 1)
	go func() {
		data := filepath.Join(dir, "pgdata")
		pw := filepath.Join(dir, "pw")
		_ = os.WriteFile(pw, []byte("secret\n"), 0o600)
		_ = os.Chown(pw, uid, gid)
		bin := "/usr/lib/postgresql/15/bin/"
		if out, err := asUser(dir, nil, bin+"initdb", "-D", data, "-U", "postgres", "--auth=scram-sha-256", "--pwfile="+pw, "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions").CombinedOutput(); err != nil {
			dbErr <- fmt.Errorf("initdb: %v: %s", err, out)
			return
		}
		pg := asUser(dir, nil, bin+"postgres", "-D", data, "-p", strconv.Itoa(pgPort), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "shared_buffers=16MB", "-c", "max_connections=50")
		if err := pg.Start(); err != nil {
			dbErr <- err
			return
		}
		procs.add(pg)
		pgEnv := []string{"PGPASSWORD=secret"}
		for {
			err := asUser(dir, pgEnv, bin+"psql", "-h", "127.0.0.1", "-p", strconv.Itoa(pgPort), "-U", "postgres", "-d", "postgres", "-Atqc", "CREATE DATABASE guestbook").Run()
			if err == nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		dbErr <- nil
	}()
	for _, b := range []string{"api", "web"} {
		if out, err := asUser(src, nil, "go", "build", "-o", "bin/"+b, "./cmd/"+b).CombinedOutput(); err != nil {
			harness.Fatalf("baseline build %s: %v\n%s", b, err, out)
		}
	}
	harness.Check(<-dbErr)
	dbURL := fmt.Sprintf("postgres://postgres:secret@127.0.0.1:%d/guestbook?sslmode=disable", pgPort)
	apiEnv := []string{"DATABASE_URL=" + dbURL, "LISTEN=127.0.0.1:" + strconv.Itoa(apiPort), "SANDBOX_NAME=baseline"}
	if out, err := asUser(src, apiEnv, "./bin/api", "migrate").CombinedOutput(); err != nil {
		harness.Fatalf("baseline migrate: %v\n%s", err, out)
	}
	api := asUser(src, apiEnv, "./bin/api")
	harness.Check(api.Start())
	procs.add(api)
	waitHTTP(apiPort)
	cfg := fmt.Sprintf(`{"sandbox": "baseline", "api": "http://127.0.0.1:%d", "public_url": "http://x"}`, apiPort)
	harness.Check(os.WriteFile(filepath.Join(src, "config.json"), []byte(cfg), 0o644))
	web := asUser(src, []string{"LISTEN=127.0.0.1:" + strconv.Itoa(webPort), "API_URL=http://127.0.0.1:" + strconv.Itoa(apiPort)}, "./bin/web")
	harness.Check(web.Start())
	procs.add(web)
	waitHTTP(webPort)
	return time.Since(start)
}

// procGroup is a baseline's processes, each the leader of its process
// group.
type procGroup struct {
	mu     sync.Mutex
	procs  []*exec.Cmd
	killed bool
}

// add adds a started process, or kills it at once if the group is killed
// already.
func (g *procGroup) add(p *exec.Cmd) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.procs = append(g.procs, p)
	if g.killed {
		g.killLocked()
	}
}

// kill SIGKILLs the process groups and waits for their leaders.
func (g *procGroup) kill() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.killed = true
	g.killLocked()
}

func (g *procGroup) killLocked() {
	for _, p := range g.procs {
		_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
		_ = p.Wait()
	}
	g.procs = nil
}

func waitHTTP(port int) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	harness.Fatalf("port %d never became healthy", port)
}

func report(sp []result, bl []time.Duration) {
	med := func(get func(result) time.Duration) time.Duration {
		var v []time.Duration
		for _, r := range sp {
			v = append(v, get(r))
		}
		return median(v)
	}
	maxOf := func(get func(result) time.Duration) time.Duration {
		var m time.Duration
		for _, r := range sp {
			m = max(m, get(r))
		}
		return m
	}
	fmt.Printf("\nguestbook example, create → Ready, %d launches each (median; max in brackets)\n\n", len(sp))
	fmt.Printf("| %-44s | %12s | %12s |\n", "measure", "median", "max")
	fmt.Printf("|%s|%s|%s|\n", strings.Repeat("-", 46), strings.Repeat("-", 14), strings.Repeat("-", 14))
	row := func(name string, m, x time.Duration) {
		fmt.Printf("| %-44s | %12s | %12s |\n", name, fmtDur(m), fmtDur(x))
	}
	row("sandpit: total (server: accepted → Ready)", med(func(r result) time.Duration { return r.total }), maxOf(func(r result) time.Duration { return r.total }))
	row("sandpit: client-observed (POST → Ready seen)", med(func(r result) time.Duration { return r.client }), maxOf(func(r result) time.Duration { return r.client }))
	row("sandpit: external work (union of spans)", med(func(r result) time.Duration { return r.external }), maxOf(func(r result) time.Duration { return r.external }))
	row("  of which checkout (copy of the source)", med(func(r result) time.Duration { return r.checkout }), maxOf(func(r result) time.Duration { return r.checkout }))
	row("sandpit: platform overhead (total - external)", med(func(r result) time.Duration { return r.overhead }), maxOf(func(r result) time.Duration { return r.overhead }))
	var blMax time.Duration
	for _, b := range bl {
		blMax = max(blMax, b)
	}
	row("baseline: same steps run directly", median(bl), blMax)
	fmt.Println()
	fmt.Printf("| %-44s | %12s |\n", "sandpit stage (median)", "duration")
	fmt.Printf("|%s|%s|\n", strings.Repeat("-", 46), strings.Repeat("-", 14))
	for _, st := range []string{"checkout", "build", "dependencies", "init", "start", "ready"} {
		fmt.Printf("| %-44s | %12s |\n", st, fmtDur(med(func(r result) time.Duration { return r.stages[st] })))
	}
	o := med(func(r result) time.Duration { return r.overhead })
	verdict := "meets"
	if o >= 100*time.Millisecond {
		verdict = "MISSES"
	}
	fmt.Printf("\nplatform overhead %s per sandbox: %s the 100 ms target\n", fmtDur(o), verdict)
}

func median(v []time.Duration) time.Duration {
	if len(v) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func fmtDur(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func run(dir, name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		harness.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func must[T any](v T, err error) T {
	harness.Check(err)
	return v
}
