// Command proxy benchmarks Sandpit's endpoint proxy against nginx as a
// reverse proxy, on loopback, in one run:
//
//	go run ./bench/proxy            (or bench/proxy/run.sh, which installs wrk and nginx)
//
// It starts a tiny Go HTTP backend, nginx in front of it (1 worker and
// "auto"), and internal/proxy in front of it in a child process of its own,
// so that each proxy's CPU is separate and comparable. wrk loads each target
// in turn, alternating over several rounds to spread the machine's noise, and
// the table reports the median of the rounds. Nothing is hard-coded: every
// figure is measured in this run.
package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// benchHost is sent to every target, so that all of them parse the same
// request; only Sandpit routes on it.
const benchHost = "app--bench.localhost"

func main() {
	if role := os.Getenv(roleEnv); role != "" {
		if err := runRole(role); err != nil {
			fmt.Fprintf(os.Stderr, "bench child %s: %v\n", role, err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/proxy:", err)
		os.Exit(1)
	}
}

type options struct {
	duration    time.Duration
	warmup      time.Duration
	rounds      int
	threads     int
	connections int
	targets     []string
	wrk, nginx  string
	maxOther    float64
	retries     int
}

func run() error {
	var o options
	var targets string
	flag.DurationVar(&o.duration, "d", 10*time.Second, "duration of each measured wrk run")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "duration of the warm-up run of each target")
	flag.IntVar(&o.rounds, "rounds", 3, "measured runs per target, alternating targets")
	flag.IntVar(&o.threads, "t", 1, "wrk threads")
	flag.IntVar(&o.connections, "c", 32, "wrk connections")
	flag.StringVar(&targets, "targets", "direct,nginx-1,nginx-auto,sandpit",
		"comma-separated targets: direct, nginx-1, nginx-auto, sandpit, go-default (httputil.NewSingleHostReverseProxy); "+
			"append +NAME=VALUE to set a child's environment, e.g. sandpit+GOGC=400")
	flag.Float64Var(&o.maxOther, "max-other", 0.1, "repeat a run during which other processes used more than this many cores")
	flag.IntVar(&o.retries, "retries", 3, "how often to repeat a noisy run before keeping it anyway")
	flag.StringVar(&o.wrk, "wrk", "wrk", "wrk binary")
	flag.StringVar(&o.nginx, "nginx", "nginx", "nginx binary")
	flag.Parse()
	o.targets = strings.Split(targets, ",")

	for _, bin := range []*string{&o.wrk, &o.nginx} {
		p, err := exec.LookPath(*bin)
		if err != nil {
			return fmt.Errorf("%s not found: run bench/proxy/run.sh, or apt-get install -y wrk nginx", *bin)
		}
		*bin = p
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()

	backend, err := startChild(ctx, "backend", nil, "")
	if err != nil {
		return err
	}
	procs = append(procs, backend)

	var ts []*target
	for _, spec := range o.targets {
		name, env, _ := strings.Cut(strings.TrimSpace(spec), "+")
		var envs []string
		if env != "" {
			envs = strings.Split(env, "+")
		}
		t := &target{name: strings.TrimSpace(spec)}
		switch name {
		case "direct":
			t.addr, t.pids = backend.addr, []int{backend.cmd.Process.Pid}
		case "nginx-1", "nginx-auto":
			workers := strings.TrimPrefix(name, "nginx-")
			p, err := startNginx(ctx, o.nginx, workers, backend.addr)
			if err != nil {
				return err
			}
			procs = append(procs, p)
			t.addr, t.pids = p.addr, p.workers
		case "sandpit", "go-default":
			p, err := startChild(ctx, name, envs, backend.addr)
			if err != nil {
				return err
			}
			procs = append(procs, p)
			t.addr, t.pids = p.addr, []int{p.cmd.Process.Pid}
		default:
			return fmt.Errorf("unknown target %q", name)
		}
		if err := check(t.addr); err != nil {
			return fmt.Errorf("target %s does not answer as expected: %w", t.name, err)
		}
		ts = append(ts, t)
	}

	fmt.Fprintf(os.Stderr, "warming up %d targets for %s each\n", len(ts), o.warmup)
	for _, t := range ts {
		if _, err := runWrk(ctx, o, t, o.warmup); err != nil {
			return err
		}
	}
	for round := range o.rounds {
		// Rotate the order so no target is always first after a pause or
		// always last when the machine's neighbours wake up.
		for i := range ts {
			t := ts[(i+round)%len(ts)]
			served := t.pids
			if t.name != "direct" {
				served = append(slices.Clone(t.pids), backend.cmd.Process.Pid)
			}
			for attempt := 0; ; attempt++ {
				cpu0, busy0, all0 := cpuTime(t.pids), cpuTime(served), machineBusy()
				r, err := runWrk(ctx, o, t, o.duration)
				if err != nil {
					return err
				}
				cpu, busy, all := cpuTime(t.pids)-cpu0, cpuTime(served)-busy0, machineBusy()-all0
				r.cpuPerReq = cpu.Seconds() / float64(r.requests)
				// What the machine's other tenants used meanwhile: a
				// noisy run shows here, not as a mystery in the figures.
				r.otherLoad = max(0, (all-busy-r.wrkCPU).Seconds()/o.duration.Seconds())
				fmt.Fprintf(os.Stderr, "round %d/%d %-22s %9.0f req/s  p50 %-9s p99 %-9s cpu %5.1f µs/req (+backend %4.1f, wrk %4.1f)  other load %.2f cores\n",
					round+1, o.rounds, t.name, r.rps, fmtDur(r.p50), fmtDur(r.p99), r.cpuPerReq*1e6,
					(busy-cpu).Seconds()/float64(r.requests)*1e6, r.wrkCPU.Seconds()/float64(r.requests)*1e6, r.otherLoad)
				if r.otherLoad <= o.maxOther || attempt >= o.retries {
					t.runs = append(t.runs, r)
					break
				}
				t.discarded++
				fmt.Fprintf(os.Stderr, "  other processes used %.2f cores: discarding this run and repeating it\n", r.otherLoad)
			}
		}
	}
	report(os.Stdout, o, ts)
	return nil
}

type target struct {
	name string
	addr string
	pids []int // the processes doing the serving, for CPU accounting
	runs []wrkResult
	// discarded counts runs repeated because the machine was busy.
	discarded int
}

type wrkResult struct {
	rps       float64
	p50, p99  time.Duration
	requests  int64
	cpuPerReq float64 // seconds of the target's CPU per request
	wrkCPU    time.Duration
	otherLoad float64 // cores used by processes outside the benchmark
}

func median[T cmp.Ordered](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func (t *target) summary() (rps float64, minRPS, maxRPS float64, p50, p99 time.Duration, cpu, other float64) {
	var rs, cs, others []float64
	var p50s, p99s []time.Duration
	for _, r := range t.runs {
		rs = append(rs, r.rps)
		cs = append(cs, r.cpuPerReq)
		others = append(others, r.otherLoad)
		p50s = append(p50s, r.p50)
		p99s = append(p99s, r.p99)
	}
	return median(rs), slices.Min(rs), slices.Max(rs), median(p50s), median(p99s), median(cs), slices.Max(others)
}

func report(w io.Writer, o options, ts []*target) {
	fmt.Fprintf(w, "\nwrk -t%d -c%d -d%s --latency, %d rounds, median (requests/s range across rounds); %s\n%s\n\n",
		o.threads, o.connections, o.duration, o.rounds, time.Now().Format("2006-01-02"), machineInfo(o))
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| target\t requests/s\t range\t p50\t p99\t target's CPU per request\t other load (max)\t noisy runs repeated\t")
	fmt.Fprintln(tw, "|---\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t")
	best := map[string]float64{}
	noisy := false
	for _, t := range ts {
		rps, lo, hi, p50, p99, cpu, other := t.summary()
		best[t.name] = rps
		fmt.Fprintf(tw, "| %s\t %.0f\t %.0f–%.0f\t %s\t %s\t %.1f µs\t %.2f cores\t %d\t\n", t.name, rps, lo, hi, fmtDur(p50), fmtDur(p99), cpu*1e6, other, t.discarded)
		noisy = noisy || other > o.maxOther
	}
	tw.Flush()
	if noisy {
		fmt.Fprintln(w, "\nWARNING: other processes used the CPUs during some kept runs (other load above); the figures are noisier than usual.")
	}
	var nginxName string
	for _, t := range ts {
		if strings.HasPrefix(t.name, "nginx") && (nginxName == "" || best[t.name] > best[nginxName]) {
			nginxName = t.name
		}
	}
	if nginxName == "" {
		return
	}
	fmt.Fprintln(w)
	for _, t := range ts {
		if strings.HasPrefix(t.name, "sandpit") || t.name == "go-default" {
			fmt.Fprintf(w, "%s: %.0f%% of the faster nginx (%s)", t.name, 100*best[t.name]/best[nginxName], nginxName)
			for _, n := range ts {
				if strings.HasPrefix(n.name, "nginx") && n.name != nginxName {
					fmt.Fprintf(w, ", %.0f%% of %s", 100*best[t.name]/best[n.name], n.name)
				}
			}
			fmt.Fprintln(w)
		}
	}
}

func fmtDur(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}

var (
	reRPS      = regexp.MustCompile(`(?m)^Requests/sec:\s+([\d.]+)`)
	reReqs     = regexp.MustCompile(`(?m)^\s+(\d+) requests in`)
	reLat      = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$`)
	reNon2xx   = regexp.MustCompile(`(?m)Non-2xx or 3xx responses: (\d+)`)
	reSockErrs = regexp.MustCompile(`(?m)Socket errors: (.*)$`)
)

func runWrk(ctx context.Context, o options, t *target, d time.Duration) (wrkResult, error) {
	args := []string{
		"-t" + strconv.Itoa(o.threads), "-c" + strconv.Itoa(o.connections),
		"-d" + strconv.Itoa(int(d.Seconds())) + "s", "--latency",
		"-H", "Host: " + benchHost, "http://" + t.addr + "/",
	}
	cmd := exec.CommandContext(ctx, o.wrk, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	r, err := parseWrk(string(out))
	r.wrkCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return r, err
}

func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	if m := reNon2xx.FindStringSubmatch(out); m != nil {
		return r, fmt.Errorf("wrk saw %s non-2xx responses:\n%s", m[1], out)
	}
	if m := reSockErrs.FindStringSubmatch(out); m != nil {
		// Errors at the very end of a run (connections cut mid-request)
		// are normal for wrk; report them but keep the figures.
		fmt.Fprintf(os.Stderr, "  wrk socket errors: %s\n", m[1])
	}
	m := reRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk output:\n%s", out)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	if m := reReqs.FindStringSubmatch(out); m != nil {
		r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	for _, m := range reLat.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]float64{"us": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9}[m[3]]
		d := time.Duration(v * unit)
		if m[1] == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	if r.p50 == 0 || r.p99 == 0 || r.requests == 0 {
		return r, fmt.Errorf("incomplete wrk output:\n%s", out)
	}
	return r, nil
}

// check sends one request the way wrk will and expects the backend's answer.
func check(addr string) error {
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	req.Host = benchHost
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || string(body) != backendBody {
		return fmt.Errorf("got %s %q", res.Status, body)
	}
	return nil
}

// cpuTime is the user+system CPU the processes used so far.
func cpuTime(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses and
		// may contain spaces.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(utime+stime) * (time.Second / 100) // USER_HZ is 100 on Linux
	}
	return total
}

// machineInfo names what the figures depend on: CPUs, kernel, versions.
func machineInfo(o options) string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := "unknown kernel"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	version := func(bin string, args ...string) string {
		out, _ := exec.Command(bin, args...).CombinedOutput()
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		line, _, _ = strings.Cut(line, " Copyright")
		return strings.TrimSpace(line)
	}
	return fmt.Sprintf("%d CPUs (%s), %s, %s, %s, %s", runtime.NumCPU(), model, kernel, runtime.Version(),
		version(o.nginx, "-v"), version(o.wrk, "-v"))
}

// machineBusy is the user and system CPU time all processes used so far,
// from /proc/stat. Interrupt and softirq time are left out: loopback
// networking is accounted there, and it belongs to no process.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var busy int64
	for _, v := range f[1:min(4, len(f))] {
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * (time.Second / 100)
}

type proc struct {
	name    string
	cmd     *exec.Cmd
	addr    string
	workers []int
	dir     string
}

func (p *proc) stop() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
		}
	}
	if p.dir != "" {
		_ = os.RemoveAll(p.dir)
	}
}

// startChild runs this binary again in a child role and reads the address
// it listens on from its first line of output.
func startChild(ctx context.Context, role string, env []string, upstream string) (*proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), roleEnv+"="+role, upstreamEnv+"="+upstream)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	dieWithParent(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{name: role, cmd: cmd}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("child %s did not report its address: %v", role, err)
	}
	p.addr = strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	return p, nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

const nginxConf = `worker_processes {{workers}};
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path {{dir}}/tmp/body;
    proxy_temp_path {{dir}}/tmp/proxy;
    fastcgi_temp_path {{dir}}/tmp/fastcgi;
    uwsgi_temp_path {{dir}}/tmp/uwsgi;
    scgi_temp_path {{dir}}/tmp/scgi;
    upstream backend {
        server {{upstream}};
        keepalive 64;
    }
    server {
        listen {{addr}} reuseport;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            # The same work Sandpit does: keep-alive upstream, the client's
            # Host, and X-Forwarded-* set.
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
        }
    }
}
`

func startNginx(ctx context.Context, bin, workers, upstream string) (*proc, error) {
	dir, err := os.MkdirTemp("", "sandpit-bench-nginx-")
	if err != nil {
		return nil, err
	}
	// Workers drop to an unprivileged user when nginx runs as root.
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o777); err != nil {
		return nil, err
	}
	_ = os.Chmod(dir, 0o755)
	_ = os.Chmod(filepath.Join(dir, "tmp"), 0o777)
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := strings.NewReplacer("{{workers}}", workers, "{{dir}}", dir, "{{upstream}}", upstream, "{{addr}}", addr).Replace(nginxConf)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confPath, "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{name: "nginx-" + workers, cmd: cmd, addr: addr, dir: dir}
	if err := waitListening(ctx, addr); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		p.stop()
		return nil, fmt.Errorf("nginx: %v\n%s", err, log)
	}
	want := runtime.NumCPU()
	if workers != "auto" {
		want, _ = strconv.Atoi(workers)
	}
	p.workers = childrenOf(cmd.Process.Pid, want)
	if len(p.workers) == 0 {
		p.stop()
		return nil, errors.New("nginx: no worker processes found")
	}
	return p, nil
}

func waitListening(ctx context.Context, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("nothing listens on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// childrenOf lists the processes whose parent is pid (nginx's workers).
func childrenOf(pid, want int) []int {
	// Workers appear shortly after the master starts listening.
	var kids []int
	for range 100 {
		kids = kids[:0]
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			n, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n))
			if err != nil {
				continue
			}
			f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
			if len(f) > 1 && f[1] == strconv.Itoa(pid) {
				kids = append(kids, n)
			}
		}
		if len(kids) >= want {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return kids
}
