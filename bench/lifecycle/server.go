package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"sandpit.dev/sandpit/client"
)

// server is a real `sandpit serve` started from a freshly built binary.
type server struct {
	cmd       *exec.Cmd
	c         *client.Client
	data      string // its --data-dir
	proxyAddr string // its --proxy-listen
	logPath   string
	exited    chan struct{}
	stopOnce  sync.Once
}

// startServer builds ./cmd/sandpit into work and starts it on free loopback
// ports with its data dir in work, as bench/launch does. Snapshots and
// databases are kept with plain copies (--snapshot-store copy), so the
// server loop-mounts nothing.
func startServer(repo, work string) (*server, error) {
	bin := filepath.Join(work, "sandpit")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sandpit")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/sandpit (the module may be mid-edit; retry later): %v\n%s", err, out)
	}
	data := filepath.Join(work, "data")
	api := "127.0.0.1:" + strconv.Itoa(freePort())
	s := &server{data: data, proxyAddr: "127.0.0.1:" + strconv.Itoa(freePort()), exited: make(chan struct{}),
		logPath: filepath.Join(work, "server.log")}
	args := []string{"serve", "--data-dir", data, "--listen", api, "--proxy-listen", s.proxyAddr,
		"--home-dir", *home, "--port-range", *portRange, "--snapshot-store", "copy", "--log-level", "info"}
	s.cmd = exec.Command(bin, args...)
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C reaches us, not it: we stop it in order
	if interrupted.Load() {
		return nil, errors.New("interrupted")
	}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = s.cmd.Wait(); logf.Close(); close(s.exited) }()
	atExit(s.shutdown)
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + api + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("sandpit serve exited; see %s", s.logPath)
		default:
		}
		if i > 1000 {
			return nil, fmt.Errorf("sandpit serve did not answer within 10 s; see %s", s.logPath)
		}
		time.Sleep(10 * time.Millisecond)
	}
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		return nil, err
	}
	if s.c, err = client.New("http://"+api, strings.TrimSpace(string(tok))); err != nil {
		return nil, err
	}
	return s, nil
}

// shutdown turns the warm pool off, deletes every sandbox and waits until
// they are gone (stopping the server alone would leave their processes
// running), then stops the server with SIGTERM.
func (s *server) shutdown() {
	s.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		select {
		case <-s.exited:
			return
		default:
		}
		// Without a pool first, deleting a pool sandbox would make the
		// server create another.
		if poolApplied.Load() {
			if _, err := applyTemplate(ctx, s.c, lifecycleNoPool); err != nil {
				log.Printf("clean-up: turn the pool off: %v", err)
			}
		}
		for round := 0; ; round++ {
			sbs, err := s.c.ListSandboxes(ctx, client.ListOptions{})
			if err != nil {
				log.Printf("clean-up: list sandboxes: %v", err)
				break
			}
			if len(sbs) == 0 {
				break
			}
			if round > 600 {
				log.Printf("clean-up: %d sandboxes still there after 5 min", len(sbs))
				break
			}
			for _, sb := range sbs {
				if sb.Spec.DeletionRequestedAt == nil {
					_, _ = s.c.DeleteSandbox(ctx, sb.Name)
				}
			}
			time.Sleep(500 * time.Millisecond)
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(60 * time.Second):
			log.Printf("clean-up: the server did not stop within 60 s of SIGTERM; killing it")
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
}

// proxyGet sends GET / for endpoint app of sandbox name through the
// server's endpoint proxy on a new connection.
func (s *server) proxyGet(ctx context.Context, name string) (httpResult, error) {
	return httpGet(ctx, "http://"+s.proxyAddr+"/", "app--"+name+".localhost")
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Clean-up: the server registers how to stop it; runCleanup runs that once,
// on exit, on a fatal error and on Ctrl-C.
var cleanup struct {
	sync.Mutex
	fns []func()
}

func atExit(f func()) {
	cleanup.Lock()
	defer cleanup.Unlock()
	cleanup.fns = append(cleanup.fns, f)
}

func runCleanup() {
	cleanup.Lock() // held throughout: a second caller waits until it is done
	defer cleanup.Unlock()
	for i := len(cleanup.fns) - 1; i >= 0; i-- {
		cleanup.fns[i]()
	}
	cleanup.fns = nil
}

// interrupted is set on Ctrl-C: errors caused by the clean-up itself are
// not worth reporting then.
var interrupted atomic.Bool

func fatalf(format string, args ...any) {
	if !interrupted.Load() {
		log.Printf(format, args...)
	}
	runCleanup()
	os.Exit(1)
}

func check(err error) {
	if err != nil {
		fatalf("%v", err)
	}
}
