package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"sandpit.dev/sandpit/bench/internal/harness"
)

// pgBin is where PostgreSQL 15's programs are (Debian's layout).
const pgBin = "/usr/lib/postgresql/15/bin"

// runAs is the unprivileged user PostgreSQL runs as (it refuses root): the
// user sandpit serve runs sandboxes as.
var runAs struct {
	name     string
	uid, gid int
}

// ensureUser looks up (or creates, as the server would) the user "sandpit".
func ensureUser() error {
	u, err := user.Lookup("sandpit")
	if err != nil {
		out, cerr := exec.Command("useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", "sandpit").CombinedOutput()
		if cerr != nil {
			return fmt.Errorf("create user sandpit: %v: %s", cerr, out)
		}
		if u, err = user.Lookup("sandpit"); err != nil {
			return err
		}
	}
	runAs.name = u.Username
	runAs.uid, _ = strconv.Atoi(u.Uid)
	runAs.gid, _ = strconv.Atoi(u.Gid)
	return nil
}

func chownToUser(path string) error { return os.Chown(path, runAs.uid, runAs.gid) }

// userCmd runs a program as the unprivileged user, in its own process
// group (so that it and its children can be stopped together).
func userCmd(dir string, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=" + dir, "USER=" + runAs.name}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(runAs.uid), Gid: uint32(runAs.gid), Groups: []uint32{}},
		Setpgid:    true,
	}
	return cmd
}

// cluster is a throwaway PostgreSQL cluster in a directory of its own,
// listening on a free loopback port, with no Unix socket.
type cluster struct {
	dir      string // owned by the user; the data directory is dir/data
	port     int
	password string
	cmd      *exec.Cmd
	exited   chan struct{}
	stopOnce sync.Once
}

// sandboxSettings are the settings sandpit's local runtime starts every
// sandbox cluster with (internal/runtime/local/postgres.go): the baselines
// restore into the same kind of cluster a sandbox gets.
var sandboxSettings = []string{"shared_buffers=16MB", "max_connections=50", "logging_collector=off"}

// initCluster creates dir and runs initdb in it as the sandbox runtime
// does (superuser postgres, SCRAM password, UTF8, C.UTF-8).
func initCluster(dir string) (*cluster, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := chownToUser(dir); err != nil {
		return nil, err
	}
	var raw [12]byte
	_, _ = rand.Read(raw[:])
	c := &cluster{dir: dir, password: hex.EncodeToString(raw[:])}
	pwfile := filepath.Join(dir, ".pwfile")
	if err := os.WriteFile(pwfile, []byte(c.password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := chownToUser(pwfile); err != nil {
		return nil, err
	}
	defer os.Remove(pwfile)
	out, err := userCmd(dir, filepath.Join(pgBin, "initdb"), "--pgdata="+c.data(), "--username=postgres",
		"--auth=scram-sha-256", "--pwfile="+pwfile, "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("initdb in %s: %v: %s", dir, err, out)
	}
	return c, nil
}

func (c *cluster) data() string { return filepath.Join(c.dir, "data") }

// start starts postgres on a free loopback port with the given settings
// ("name=value"); it returns at once (see waitConnect). The cluster is
// stopped at exit if it is still running then.
func (c *cluster) start(settings []string) error {
	if harness.Interrupted() {
		return errors.New("interrupted")
	}
	c.port = harness.FreePort()
	args := []string{"-D", c.data(), "-p", strconv.Itoa(c.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="}
	for _, s := range settings {
		args = append(args, "-c", s)
	}
	logf, err := os.OpenFile(filepath.Join(c.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	c.cmd = userCmd(c.dir, filepath.Join(pgBin, "postgres"), args...)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		return err
	}
	c.exited = make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(c.exited) }()
	harness.AtExit(c.stop)
	return nil
}

// stop shuts postgres down (fast shutdown; SIGKILL to its process group
// after a minute) and waits for it to be gone.
func (c *cluster) stop() {
	c.stopOnce.Do(func() {
		if c.cmd == nil || c.cmd.Process == nil {
			return
		}
		_ = c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.exited:
		case <-time.After(time.Minute):
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			<-c.exited
		}
	})
}

// remove stops the cluster and deletes its directory.
func (c *cluster) remove() {
	c.stop()
	_ = os.RemoveAll(c.dir)
}

// dsn is a connection string for db as the superuser.
func (c *cluster) dsn(db string) string { return pgDSN(c.port, c.password, db) }

func pgDSN(port int, password, db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword("postgres", password),
		Host: "127.0.0.1:" + strconv.Itoa(port), Path: "/" + db, RawQuery: "sslmode=disable&connect_timeout=5"}
	return u.String()
}

// libpqEnv is the environment of pg_dump and pg_restore for this cluster.
func (c *cluster) libpqEnv() []string {
	return append(os.Environ(), "PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(c.port), "PGUSER=postgres", "PGPASSWORD="+c.password, "PGSSLMODE=disable")
}

// waitConnect connects to db, retrying every 5 ms until the cluster
// accepts connections (or exits, or the timeout passes).
func (c *cluster) waitConnect(ctx context.Context, db string, timeout time.Duration) (*pgx.Conn, error) {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := pgx.Connect(ctx, c.dsn(db))
		if err == nil {
			return conn, nil
		}
		select {
		case <-c.exited:
			return nil, fmt.Errorf("postgres in %s exited; see %s", c.dir, filepath.Join(c.dir, "postgres.log"))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("postgres in %s: no connection within %s: %w", c.dir, timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkOnce connects to dsn, runs the check query and compares its
// answer with the expected one.
func checkOnce(ctx context.Context, dsn string, ds *dataset) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var got string
	if err := conn.QueryRow(ctx, ds.CheckSQL).Scan(&got); err != nil {
		return err
	}
	if got != ds.Expected {
		return &wrongAnswer{got: got, want: ds.Expected}
	}
	return nil
}

type wrongAnswer struct{ got, want string }

func (w *wrongAnswer) Error() string {
	return fmt.Sprintf("check query answered %q, want %q", w.got, w.want)
}

// checkUntil retries checkOnce every 5 ms until it answers with the
// expected data. A wrong answer is retried too when retryWrong is set (a
// restore in place is not visible at once), and is an error otherwise.
func checkUntil(ctx context.Context, dsn string, ds *dataset, timeout time.Duration, retryWrong bool) error {
	deadline := time.Now().Add(timeout)
	for {
		err := checkOnce(ctx, dsn, ds)
		if err == nil {
			return nil
		}
		var wa *wrongAnswer
		if errors.As(err, &wa) && !retryWrong {
			return err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("no expected answer within %s: %w", timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pgVersion is "postgres (PostgreSQL) 15.x" without the prefix.
func pgVersion() string {
	out, err := exec.Command(filepath.Join(pgBin, "postgres"), "--version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "postgres (PostgreSQL) ")
}

// killLeftovers SIGKILLs any process whose command line names dir (the
// work directory): postgres clusters and sandbox supervisors this run
// started and that did not stop.
func killLeftovers(dir string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(b), dir+"/") {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		log.Printf("killed leftover process %d: %s", pid, strings.ReplaceAll(strings.TrimSpace(string(b)), "\x00", " "))
	}
}
