package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	// DefaultBin is where Debian's postgresql-15 puts the server binaries;
	// $PG_BIN overrides it.
	DefaultBin = "/usr/lib/postgresql/15/bin"
	// User is the unprivileged user the cluster runs as when the tests run
	// as root.
	User = "sandpit"
	// dirPrefix names the clusters' directories in /var/tmp.
	dirPrefix = "sandpit-pgtest-"
)

// Bin is the directory the server binaries are taken from.
func Bin() string {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d
	}
	return DefaultBin
}

// Missing says what this machine lacks to run a cluster (the binaries, or,
// under root, the user to run it as), or "" when nothing is missing.
func Missing() string {
	_, msg := credential()
	return msg
}

// Require skips t when a cluster cannot run here, or fails it under
// CI=true.
func Require(t testing.TB) {
	t.Helper()
	if msg := Missing(); msg != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (CI=true: this is a failure, not a skip)", msg)
		}
		t.Skip(msg)
	}
}

// credential returns who postgres runs as (nil: this process's user), or
// why it cannot run.
func credential() (*syscall.Credential, string) {
	bin := Bin()
	for _, b := range []string{"initdb", "postgres"} {
		if fi, err := os.Stat(filepath.Join(bin, b)); err != nil || fi.IsDir() {
			return nil, fmt.Sprintf("PostgreSQL 15 server binaries not found in %s (no %s): install postgresql-15, or set PG_BIN to a directory with initdb and postgres", bin, b)
		}
	}
	if os.Geteuid() != 0 {
		return nil, ""
	}
	u, err := user.Lookup(User)
	if err != nil {
		return nil, fmt.Sprintf("running as root, and PostgreSQL refuses root, but the unprivileged user %s to run it as is missing (%v): create it with useradd --system %s", User, err, User)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, ""
}

// Cluster is a running PostgreSQL server.
type Cluster struct {
	// Port is the loopback port it listens on.
	Port int
	// Dir holds the data directory (Dir/data) and the log
	// (Dir/postgres.log); Stop removes it.
	Dir string

	admin    *pgxpool.Pool // on the postgres database, for CREATE DATABASE
	seq      atomic.Int64
	server   func() // stops postgres
	stopOnce sync.Once
}

// Start starts a cluster. The caller stops it with Stop.
func Start() (c *Cluster, err error) {
	cred, msg := credential()
	if msg != "" {
		return nil, errors.New("pgtest: " + msg)
	}
	removeStaleClusters()
	dir, err := os.MkdirTemp("/var/tmp", dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	c = &Cluster{Dir: dir}
	defer func() {
		if err != nil {
			c.Stop()
			err = fmt.Errorf("pgtest: %w", err)
		}
	}()
	// The cluster's user must reach and write its directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(Bin(), "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	// The free port can be taken between choosing and binding: retry.
	for range 3 {
		if err = c.startPostgres(data, cred); err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c.admin, err = pgxpool.New(ctx, c.URL("postgres")); err != nil {
		return nil, err
	}
	return c, nil
}

// URL is the connection URL of database db. The superuser postgres has
// trust authentication on 127.0.0.1.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// CreateDatabase creates a database with a fresh name (t_1, t_2, ...) and
// returns its URL; options are added to CREATE DATABASE (e.g. "TEMPLATE
// template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'").
func (c *Cluster) CreateDatabase(ctx context.Context, options string) (string, error) {
	name := fmt.Sprintf("t_%d", c.seq.Add(1))
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if options != "" {
		sql += " " + options
	}
	if _, err := c.admin.Exec(ctx, sql); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return c.URL(name), nil
}

// NewDatabase creates an empty database for t and returns its URL. It is
// left in place: the cluster goes away as a whole.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, err := c.CreateDatabase(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Logs returns the end of the server's log, for failure messages.
func (c *Cluster) Logs() string { return tail(filepath.Join(c.Dir, "postgres.log")) }

// Stop stops the server and removes its directory. It may be called more
// than once.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		if c.admin != nil {
			c.admin.Close()
		}
		if c.server != nil {
			c.server()
		}
		if err := os.RemoveAll(c.Dir); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: remove the cluster's directory: %v\n", err)
		}
	})
}

// startPostgres starts postgres on a free port and waits until it accepts
// connections. Its log goes to Dir/postgres.log and is shown when it fails.
func (c *Cluster) startPostgres(data string, cred *syscall.Credential) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	logPath := filepath.Join(c.Dir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own copy
	cmd := exec.Command(filepath.Join(Bin(), "postgres"),
		"-D", data,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+data,
		// A throwaway cluster: durability buys nothing.
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		// Parallel tests each open a pool; some open several.
		"-c", "max_connections=300",
	)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// SIGQUIT is PostgreSQL's immediate shutdown: the postmaster takes its
	// backends down with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	exited, err := startPinned(cmd)
	if err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}

	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			conn.Close(ctx)
			cancel()
			c.Port, c.server = port, stop
			return nil
		}
		cancel()
		select {
		case werr := <-exited:
			return fmt.Errorf("postgres exited (%v) on port %d:\n%s", werr, port, tail(logPath))
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("postgres not ready after 30s: %v\n%s", err, tail(logPath))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startPinned starts cmd from a goroutine locked to its OS thread, which
// then waits for it (the returned channel gets Wait's result). The kernel
// sends Pdeathsig when the *thread* that started the child exits: this one
// lives exactly as long as the child, or until the test binary exits, so
// postgres neither dies early (a Go thread ending under it) nor outlives a
// killed test binary.
func startPinned(cmd *exec.Cmd) (<-chan error, error) {
	started := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return exited, nil
}

var shared struct {
	once sync.Once
	mu   sync.Mutex
	c    *Cluster
	err  error
}

// Get returns the test binary's shared cluster, starting it on first use;
// it skips or fails t as Require does when a cluster cannot run here. Tests
// that use it take databases of their own (NewDatabase). Call Main from
// TestMain so that the cluster is stopped at the end.
func Get(t testing.TB) *Cluster {
	t.Helper()
	Require(t)
	shared.once.Do(func() {
		c, err := Start()
		shared.mu.Lock()
		shared.c, shared.err = c, err
		shared.mu.Unlock()
	})
	if shared.err != nil {
		t.Fatalf("start the test PostgreSQL cluster: %v", shared.err)
	}
	return shared.c
}

// Main calls run (a testing.M's Run, or a function that calls it, such as
// another package's Main) and then stops the shared cluster, if one
// started, and returns run's exit code:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m.Run)) }
func Main(run func() int) int {
	code := run()
	shared.mu.Lock()
	c := shared.c
	shared.mu.Unlock()
	if c != nil {
		c.Stop()
	}
	return code
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// removeStaleClusters removes the directories of test runs that were killed
// before their cleanup ran (their postgres died with them: Pdeathsig), once
// they are an hour old, so that /var/tmp does not collect them.
func removeStaleClusters() {
	dirs, _ := filepath.Glob(filepath.Join("/var/tmp", dirPrefix+"*"))
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < time.Hour || postmasterAlive(d) {
			continue
		}
		_ = os.RemoveAll(d)
	}
}

// postmasterAlive reports whether the cluster in dir still has a running
// postmaster (its pid file names a live process).
func postmasterAlive(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return false
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
