// Command testsvc is a tiny configurable service that the runtime tests run
// as a real child process: an HTTP server with a health check whose answer
// can be delayed, endpoints that report its environment and identity, and
// flags that make it crash, ignore SIGTERM, leave grandchildren behind,
// flood its log or hold memory.
//
//	testsvc http  [flags]   serve HTTP on 127.0.0.1:$PORT (or -port)
//	testsvc run   [flags]   no server: print, maybe spawn, exit per flags
//	testsvc sleep [flags]   block until killed (the grandchild helper)
//
// Endpoints of `http`: /healthz (200, or 503 until -ready-after has
// passed), /env (JSON object of the environment), /whoami (the uid),
// /info (JSON: pid, uid, cwd, start time), /print?stream=stdout|stderr&text=T
// (prints T), /stream (server-sent events, one tick per -tick), /exit?code=N.
//
// Lines it prints on its own start with the mode and carry a wall-clock
// timestamp where tests compare order across processes ("ready at <ns>").
// It imports nothing from this module so tests can build it alone.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

type options struct {
	port       string
	readyAfter time.Duration
	exitCode   int
	exitAfter  time.Duration
	ignoreTerm bool
	child      bool
	daemon     bool
	pidFile    string
	logBytes   int
	stdout     multi
	stderr     multi
	tick       time.Duration
	allocMiB   int
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testsvc http|run|sleep [flags]")
		os.Exit(2)
	}
	mode := os.Args[1]
	fs := flag.NewFlagSet("testsvc "+mode, flag.ExitOnError)
	var o options
	fs.StringVar(&o.port, "port", os.Getenv("PORT"), "port to listen on (default $PORT)")
	fs.DurationVar(&o.readyAfter, "ready-after", 0, "answer /healthz with 503 until this long after start")
	fs.IntVar(&o.exitCode, "exit", -1, "exit with this code (at once, or after -exit-after)")
	fs.DurationVar(&o.exitAfter, "exit-after", 0, "exit this long after start (code from -exit, default 0)")
	fs.BoolVar(&o.ignoreTerm, "ignore-term", false, "ignore SIGTERM (so only SIGKILL stops it)")
	fs.BoolVar(&o.child, "child", false, "spawn a long-running grandchild in its own process group")
	fs.BoolVar(&o.daemon, "daemon", false, "spawn a long-running grandchild that calls setsid (daemonises)")
	fs.StringVar(&o.pidFile, "pidfile", "", "append the pids of spawned grandchildren to this file")
	fs.IntVar(&o.logBytes, "log-bytes", 0, "write this many bytes of log output to stdout at start")
	fs.Var(&o.stdout, "stdout", "print this line to stdout at start (repeatable)")
	fs.Var(&o.stderr, "stderr", "print this line to stderr at start (repeatable)")
	fs.DurationVar(&o.tick, "tick", 100*time.Millisecond, "interval of /stream ticks")
	fs.IntVar(&o.allocMiB, "alloc-mb", 0, "allocate and touch this many MiB at start, and hold them")
	_ = fs.Parse(os.Args[2:])

	start := time.Now()
	if o.ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	fmt.Printf("%s start at %d pid %d\n", mode, start.UnixNano(), os.Getpid())
	for _, l := range o.stdout {
		fmt.Println(l)
	}
	for _, l := range o.stderr {
		fmt.Fprintln(os.Stderr, l)
	}
	if o.logBytes > 0 {
		writeLog(o.logBytes)
	}
	if o.allocMiB > 0 {
		held = allocate(o.allocMiB)
		fmt.Printf("%s allocated %d MiB\n", mode, len(held)>>20)
	}
	if o.child {
		spawn(o, false)
	}
	if o.daemon {
		spawn(o, true)
	}
	if o.exitCode >= 0 && o.exitAfter == 0 {
		fmt.Printf("%s exiting with code %d\n", mode, o.exitCode)
		os.Exit(o.exitCode)
	}
	if o.exitAfter > 0 {
		code := max(o.exitCode, 0)
		time.AfterFunc(o.exitAfter, func() {
			fmt.Printf("%s exiting with code %d\n", mode, code)
			os.Exit(code)
		})
	}
	switch mode {
	case "http":
		serve(o, start)
	case "run":
		if o.exitAfter > 0 {
			select {}
		}
	case "sleep":
		select {}
	default:
		fmt.Fprintf(os.Stderr, "unknown mode %q: use http, run or sleep\n", mode)
		os.Exit(2)
	}
}

// held keeps -alloc-mb's memory reachable for the process's whole life.
var held []byte

// allocate returns n MiB with every page written, so they are resident
// (and count against a memory limit), not merely reserved.
func allocate(n int) []byte {
	b := make([]byte, n<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	return b
}

// writeLog writes n bytes as lines of 99 characters and a newline.
func writeLog(n int) {
	line := []byte(strings.Repeat("x", 99) + "\n")
	for n > 0 {
		k := min(n, len(line))
		b := line[len(line)-k:]
		_, _ = os.Stdout.Write(b)
		n -= k
	}
}

// spawn starts `testsvc sleep` as a grandchild: in a new process group, or
// in a new session (setsid) when daemon is set, which is how daemons escape
// their parent's process group.
func spawn(o options, daemon bool) {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "spawn:", err)
		os.Exit(1)
	}
	args := []string{"sleep"}
	if o.ignoreTerm {
		args = append(args, "-ignore-term")
	}
	cmd := exec.Command(exe, args...)
	// Like a careless daemon, it keeps our output open.
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if daemon {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "spawn:", err)
		os.Exit(1)
	}
	kind := "child"
	if daemon {
		kind = "daemon"
	}
	fmt.Printf("spawned %s %d\n", kind, cmd.Process.Pid)
	if o.pidFile != "" {
		f, err := os.OpenFile(o.pidFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err == nil {
			fmt.Fprintln(f, cmd.Process.Pid)
			f.Close()
		}
	}
	// Not waited for: it must outlive us if nobody kills it.
	_ = cmd.Process.Release()
}

func serve(o options, start time.Time) {
	if o.port == "" {
		fmt.Fprintln(os.Stderr, "testsvc http: no port: set $PORT or -port")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", o.port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	var healthy atomic.Bool
	markReady := func() {
		// Printed before the flag flips, so a service started after this
		// one is ready prints a later time.
		fmt.Printf("http ready at %d\n", time.Now().UnixNano())
		healthy.Store(true)
	}
	if o.readyAfter > 0 {
		time.AfterFunc(o.readyAfter, markReady)
	} else {
		markReady()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			http.Error(w, "not ready yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		writeJSON(w, env)
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, os.Getuid())
	})
	mux.HandleFunc("/info", func(w http.ResponseWriter, r *http.Request) {
		cwd, _ := os.Getwd()
		writeJSON(w, map[string]any{"pid": os.Getpid(), "uid": os.Getuid(), "cwd": cwd, "start": start.UnixNano()})
	})
	mux.HandleFunc("/print", func(w http.ResponseWriter, r *http.Request) {
		text := r.URL.Query().Get("text")
		switch r.URL.Query().Get("stream") {
		case "stderr":
			fmt.Fprintln(os.Stderr, text)
		default:
			fmt.Println(text)
		}
		fmt.Fprintln(w, "printed")
	})
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		fmt.Fprintln(w, "exiting")
		w.(http.Flusher).Flush()
		fmt.Printf("http exiting with code %d\n", code)
		os.Exit(code)
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		t := time.NewTicker(o.tick)
		defer t.Stop()
		for i := 0; ; i++ {
			fmt.Fprintf(w, "data: tick %d\n\n", i)
			fl.Flush()
			select {
			case <-r.Context().Done():
				return
			case <-t.C:
			}
		}
	})
	fmt.Printf("http listening on %s\n", ln.Addr())
	if err := http.Serve(ln, mux); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
