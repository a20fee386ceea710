package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"sandpit.dev/sandpit/client"
)

// Config says how to start a server.
type Config struct {
	// Repo is the module's root: ./cmd/sandpit is built from there.
	Repo string
	// Work is the run's work directory: the binary, the data dir (data)
	// and the server's log (server.log) go there.
	Work string
	// Args are the serve flags after --data-dir, --listen and
	// --proxy-listen, which Start sets (port range, log level, …).
	Args []string
	// Output, if not nil, gets the server's output instead of server.log.
	Output io.Writer
	// BeforeDelete, if not nil, is run first by Stop, before every
	// sandbox is deleted (a benchmark turns its warm pools off there:
	// deleting a pool's sandbox would make the server create another).
	BeforeDelete func(ctx context.Context, c *client.Client)
}

// Server is a real `sandpit serve` started from a freshly built binary.
type Server struct {
	Client    *client.Client // as admin
	Data      string         // its --data-dir
	API       string         // its --listen, host:port
	ProxyAddr string         // its --proxy-listen, host:port
	LogPath   string         // its output, unless Config.Output was set

	cmd          *exec.Cmd
	beforeDelete func(ctx context.Context, c *client.Client)
	exited       chan struct{} // closed once the process has exited
	stopOnce     sync.Once
}

// Start builds ./cmd/sandpit into cfg.Work and starts it on free loopback
// ports with its data dir in cfg.Work, in a process group of its own (so
// that Ctrl-C reaches the benchmark, not it: Stop stops it in order). It
// registers Stop with AtExit and returns once the server answers with a
// client connected as admin.
func Start(cfg Config) (*Server, error) {
	bin := filepath.Join(cfg.Work, "sandpit")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sandpit")
	build.Dir = cfg.Repo
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/sandpit (the module may be mid-edit; retry later): %v\n%s", err, out)
	}
	s := &Server{
		Data:         filepath.Join(cfg.Work, "data"),
		API:          "127.0.0.1:" + strconv.Itoa(FreePort()),
		ProxyAddr:    "127.0.0.1:" + strconv.Itoa(FreePort()),
		beforeDelete: cfg.BeforeDelete,
		exited:       make(chan struct{}),
	}
	args := append([]string{"serve", "--data-dir", s.Data, "--listen", s.API, "--proxy-listen", s.ProxyAddr}, cfg.Args...)
	s.cmd = exec.Command(bin, args...)
	var logf *os.File
	if cfg.Output != nil {
		s.cmd.Stdout, s.cmd.Stderr = cfg.Output, cfg.Output
	} else {
		s.LogPath = filepath.Join(cfg.Work, "server.log")
		var err error
		if logf, err = os.Create(s.LogPath); err != nil {
			return nil, err
		}
		s.cmd.Stdout, s.cmd.Stderr = logf, logf
	}
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	closeLog := func() {
		if logf != nil {
			logf.Close()
		}
	}
	if Interrupted() {
		closeLog()
		return nil, errors.New("interrupted")
	}
	if err := s.cmd.Start(); err != nil {
		closeLog()
		return nil, err
	}
	go func() { _ = s.cmd.Wait(); closeLog(); close(s.exited) }()
	AtExit(s.Stop)
	see := "see its output above"
	if s.LogPath != "" {
		see = "see " + s.LogPath
	}
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + s.API + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("sandpit serve exited; %s", see)
		default:
		}
		if i > 1000 {
			return nil, fmt.Errorf("sandpit serve did not answer within 10 s; %s", see)
		}
		time.Sleep(10 * time.Millisecond)
	}
	tok, err := os.ReadFile(filepath.Join(s.Data, "admin.token"))
	if err != nil {
		return nil, err
	}
	if s.Client, err = client.New("http://"+s.API, strings.TrimSpace(string(tok))); err != nil {
		return nil, err
	}
	return s, nil
}

// Pid is the server's process ID.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Stop, once, deletes every sandbox and waits until they are gone
// (stopping the server alone would leave their processes running), deletes
// every snapshot, then stops the server with SIGTERM and waits for it to
// exit (SIGKILL after a minute). It does nothing if the server has exited.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		select {
		case <-s.exited:
			return
		default:
		}
		if s.Client != nil { // nil if Start failed before connecting
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			if s.beforeDelete != nil {
				s.beforeDelete(ctx, s.Client)
			}
			s.deleteAll(ctx)
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

// deleteAll deletes every sandbox, asking again every 500 ms until none is
// left (a pool may still be making one), then every snapshot.
func (s *Server) deleteAll(ctx context.Context) {
	c := s.Client
	for round := 0; ; round++ {
		sbs, err := c.ListSandboxes(ctx, client.ListOptions{})
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
				_, _ = c.DeleteSandbox(ctx, sb.Name)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	if l, err := c.ListSnapshots(ctx); err == nil {
		for _, sn := range l.Items {
			_ = c.DeleteSnapshot(ctx, sn.Name, true)
		}
	}
}
