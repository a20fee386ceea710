package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sandpit.dev/sandpit/bench/internal/harness"
	"sandpit.dev/sandpit/internal/runtime/local"
	"sandpit.dev/sandpit/internal/runtime/local/proc"
)

// proxyClient sends every request on a new connection (no keep-alive), as a
// browser's first request to a sandbox would, and never through an HTTP
// proxy from the environment. It sends no Accept: text/html, so the proxy
// holds the request until the sandbox is ready instead of answering a
// browser's "waking up" page after a couple of seconds.
var proxyClient = &http.Client{
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	Timeout:   3 * time.Minute,
}

// httpResult is one timed request.
type httpResult struct {
	start, firstByte time.Time // just before the request was sent; first byte of the response
	status           int
	body             string
}

func (h httpResult) ttfb() time.Duration { return h.firstByte.Sub(h.start) }

// httpGet GETs url with the Host header host, timing it from just before
// the request is sent to the first byte of the response.
func httpGet(ctx context.Context, url, host string) (httpResult, error) {
	var h httpResult
	trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { h.firstByte = time.Now() }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, url, nil)
	if err != nil {
		return h, err
	}
	req.Host = host
	h.start = time.Now()
	resp, err := proxyClient.Do(req)
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if h.firstByte.IsZero() {
		h.firstByte = time.Now()
	}
	h.status, h.body = resp.StatusCode, string(b)
	return h, err
}

// memSample is what the processes of a set of sandboxes hold at one moment.
type memSample struct {
	sandboxes   int
	processes   int   // every process counted: marked ones and their descendants
	marked      int   // of which carry the runtime's marker environment
	rss, pss    int64 // bytes, summed over the processes
	pssOK       bool  // smaps_rollup was readable for every process
	listening   int   // listening TCP sockets the processes hold
	serverRSS   int64
	serverPSS   int64
	perUnitPSS  map[string]int64 // "unit (command)" -> summed PSS
	perUnitProc map[string]int
}

// sampleMemory finds every process of the sandboxes ids: those that carry
// the marker environment the local runtime gives what it starts (found
// with proc.Scan for the server's node), and their descendants, since a
// process may overwrite its environment (PostgreSQL's children reuse that
// memory for their process titles, so only the postmaster carries a
// readable marker). It sums their RSS and PSS, counts their listening
// sockets, and reads the server's own RSS and PSS.
func sampleMemory(dataDir string, serverPID int, ids map[string]bool) (memSample, error) {
	m := memSample{sandboxes: len(ids), perUnitPSS: map[string]int64{}, perUnitProc: map[string]int{}, pssOK: true}
	marked, err := proc.Scan(local.NodeID(dataDir))
	if err != nil {
		return m, err
	}
	byPID := map[int]proc.Process{}
	for _, p := range marked {
		if ids[p.Sandbox] {
			byPID[p.PID] = p
		}
	}
	parent, comm := processTable()
	listen, err := listeningInodes()
	if err != nil {
		return m, err
	}
	seenSock := map[string]bool{}
	for pid := range parent {
		// The nearest marked ancestor (or the process itself) says
		// which sandbox and unit it belongs to.
		owner, ok := proc.Process{}, false
		for q, depth := pid, 0; q > 1 && depth < 64; q, depth = parent[q], depth+1 {
			if p, found := byPID[q]; found {
				owner, ok = p, true
				break
			}
		}
		if !ok {
			continue
		}
		rss, err := statusKB(pid, "VmRSS")
		if err != nil {
			continue // exited meanwhile, or a kernel thread
		}
		m.processes++
		if _, isMarked := byPID[pid]; isMarked {
			m.marked++
		}
		unit := owner.Unit
		if owner.Role == proc.RoleShim {
			unit = "shim of " + owner.Unit
			if pid != owner.PID {
				unit = owner.Unit // a service below its shim
			}
		} else if owner.Role != proc.RoleService {
			unit = owner.Role + " " + owner.Unit
		}
		key := unit + " (" + comm[pid] + ")"
		m.perUnitProc[key]++
		m.rss += rss
		pss, err := rollupKB(pid, "Pss")
		if err != nil {
			m.pssOK = false
		} else {
			m.pss += pss
			m.perUnitPSS[key] += pss
		}
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		fds, _ := os.ReadDir(dir)
		for _, fd := range fds {
			l, err := os.Readlink(filepath.Join(dir, fd.Name()))
			if err != nil || !strings.HasPrefix(l, "socket:[") {
				continue
			}
			ino := strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")
			if listen[ino] && !seenSock[ino] {
				seenSock[ino] = true
				m.listening++
			}
		}
	}
	m.serverRSS, _ = statusKB(serverPID, "VmRSS")
	m.serverPSS, _ = rollupKB(serverPID, "Pss")
	return m, nil
}

// processTable reads every process's parent and command name from
// /proc/PID/stat.
func processTable() (parent map[int]int, comm map[int]string) {
	parent, comm = map[int]int{}, map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		f := strings.Fields(s[close+1:])
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		parent[pid], comm[pid] = ppid, s[open+1:close]
	}
	return parent, comm
}

// statusKB reads a "Key:   N kB" line of /proc/PID/status, in bytes.
func statusKB(pid int, key string) (int64, error) {
	return kbField(fmt.Sprintf("/proc/%d/status", pid), key)
}

// rollupKB reads a line of /proc/PID/smaps_rollup, in bytes.
func rollupKB(pid int, key string) (int64, error) {
	return kbField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), key)
}

func kbField(path, key string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			break
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, err
		}
		return n << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}

// listeningInodes returns the socket inodes of every listening TCP socket
// (IPv4 and IPv6) on the host.
func listeningInodes() (map[string]bool, error) {
	out := map[string]bool{}
	for _, path := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for i, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if i == 0 || len(f) < 10 {
				continue
			}
			if f[3] == "0A" { // TCP_LISTEN
				out[f[9]] = true
			}
		}
	}
	return out, nil
}

// cpuMeter tells the CPU this run used (the server and its children, this
// process and its children) from what the rest of the host used meanwhile.
type cpuMeter struct {
	start          time.Time
	host, srv, own int64
	serverPID      int
}

func newCPUMeter(serverPID int) *cpuMeter {
	return &cpuMeter{start: time.Now(), host: harness.HostBusyTicks(), srv: treeTicks(serverPID), own: treeTicks(os.Getpid()), serverPID: serverPID}
}

// read returns the cores used on average since the start by this run and by
// everything else.
func (m *cpuMeter) read() (ours, others float64) {
	wall := time.Since(m.start).Seconds()
	host := float64(harness.HostBusyTicks()-m.host) / harness.ClockTicks
	o := float64(treeTicks(m.serverPID)-m.srv+treeTicks(os.Getpid())-m.own) / harness.ClockTicks
	return o / wall, max(0, host-o) / wall
}

// treeTicks is the CPU time (in clock ticks) of pid and of its children
// that it has waited for (and theirs).
func treeTicks(pid int) int64 {
	own, children := harness.ProcTicks(pid)
	return own + children
}
