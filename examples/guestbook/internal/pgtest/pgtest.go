// Package pgtest starts a throwaway PostgreSQL cluster for tests: initdb in
// t.TempDir(), then postgres on a free loopback port, stopped and removed
// when the test ends. PostgreSQL refuses to run as root, so under root the
// cluster runs as an unprivileged system user (sgtest, created with useradd
// when missing).
//
// The binaries come from $PG_BIN when set, else the newest
// /usr/lib/postgresql/<version>/bin, else $PATH. Without them the test is
// skipped, unless CI is set, in which case it fails.
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
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// User is the unprivileged account the cluster runs as under root.
const User = "sgtest"

// Server is a running throwaway cluster. The superuser is "postgres" with
// trust authentication on 127.0.0.1 only.
type Server struct {
	Port int
	dir  string
	seq  atomic.Int64
}

// Start starts a cluster and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := findBin(t)
	dir := t.TempDir()
	cred := credential(t, dir)

	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"),
		"-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}

	// The free port can be taken between choosing and binding: retry.
	var lastErr error
	for range 3 {
		port := freePort(t)
		s, err := start(t, bin, dir, data, port, cred)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("pgtest: %v", lastErr)
	return nil
}

func start(t testing.TB, bin, dir, data string, port int, cred *syscall.Credential) (*Server, error) {
	logPath := filepath.Join(dir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	if cred != nil {
		if err := os.Chown(logPath, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"),
		"-D", data,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=", // no socket: tests use TCP only
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=50",
	)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		// SIGINT is PostgreSQL's "fast shutdown".
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}

	s := &Server{Port: port, dir: dir}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.URL("postgres"))
		if err == nil {
			conn.Close(ctx)
			cancel()
			break
		}
		cancel()
		select {
		case werr := <-exited:
			exited <- werr
			return nil, fmt.Errorf("postgres exited (%v) on port %d:\n%s", werr, port, tail(logPath))
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("postgres not ready after 30s: %v\n%s", err, tail(logPath))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("pgtest: postgres log:\n%s", tail(logPath))
		}
	})
	return s, nil
}

// URL is the connection URL of database db, in the form Sandpit gives a
// service as ${dependencies.<name>.url}.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// CreateDatabase creates a new, empty database and returns its name.
// Names are unique within the server: guestbook_1, guestbook_2, ...
func (s *Server) CreateDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("guestbook_%d", s.seq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	return name
}

func findBin(t testing.TB) string {
	t.Helper()
	has := func(dir string) bool {
		for _, b := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if dir := os.Getenv("PG_BIN"); dir != "" {
		if !has(dir) {
			t.Fatalf("pgtest: PG_BIN=%s has no initdb and postgres", dir)
		}
		return dir
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if has(d) {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && has(filepath.Dir(p)) {
		return filepath.Dir(p)
	}
	msg := "pgtest: PostgreSQL server binaries (initdb, postgres) not found in $PG_BIN, /usr/lib/postgresql/*/bin or $PATH; install them (Debian: apt-get install postgresql-15)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " — CI is set, so this is a failure, not a skip")
	}
	t.Skip(msg)
	return ""
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// credential returns nil when not root. Under root it makes sure User
// exists, gives it dir and lets it reach dir through dir's ancestors.
func credential(t testing.TB, dir string) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(User)
	if err != nil {
		var unknown user.UnknownUserError
		if !errors.As(err, &unknown) {
			t.Fatalf("pgtest: look up user %s: %v", User, err)
		}
		out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", User).CombinedOutput()
		if err != nil && !strings.Contains(string(out), "already exists") {
			t.Fatalf("pgtest: running as root, and PostgreSQL refuses root; creating the unprivileged user %s failed: %v\n%s", User, err, out)
		}
		if u, err = user.Lookup(User); err != nil {
			t.Fatalf("pgtest: look up user %s: %v", User, err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatalf("pgtest: chown %s: %v", dir, err)
	}
	// t.TempDir's parent is private (0700): add search permission for
	// others to each ancestor that lacks it, so the user can reach dir.
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, fi.Mode().Perm()|0o001); err != nil {
				t.Fatalf("pgtest: make %s traversable: %v", p, err)
			}
		}
		if p == filepath.Dir(p) {
			break
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pgtest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
