package gitsync_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// remote is a real bare repository and a working clone that pushes to it.
type remote struct {
	t    testing.TB
	Bare string // the bare repository's directory
	work string
	n    int
}

// newRemote makes a bare repository with one commit on main, in a
// directory the service user can read (not t.TempDir, whose parents are
// 0700): sandboxes clone it.
func newRemote(t testing.TB) *remote {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "sandpit-gitsync-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := &remote{t: t, Bare: filepath.Join(dir, "app.git"), work: filepath.Join(dir, "work")}
	r.git("", "init", "-q", "--bare", r.Bare)
	r.git("", "init", "-q", r.work)
	r.git(r.work, "remote", "add", "origin", r.Bare)
	r.Commit("main")
	return r
}

func (r *remote) git(dir string, args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=Ada Lovelace", "-c", "user.email=ada@example.com",
		"-c", "init.defaultBranch=main", "-c", "safe.directory=*"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// URL is the bare repository as a file:// URL.
func (r *remote) URL() string { return "file://" + r.Bare }

// Commit adds a commit on branch (made from main's head when new) and
// pushes it; it returns the commit's SHA.
func (r *remote) Commit(branch string) string {
	r.t.Helper()
	r.n++
	if r.n == 1 {
		r.git(r.work, "checkout", "-q", "-b", branch)
	} else if r.git(r.work, "branch", "--list", branch) == "" {
		r.git(r.work, "checkout", "-q", "-b", branch, "main")
	} else {
		r.git(r.work, "checkout", "-q", branch)
	}
	if err := os.WriteFile(filepath.Join(r.work, "v.txt"), []byte(strconv.Itoa(r.n)), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.git(r.work, "add", ".")
	r.git(r.work, "commit", "-qm", fmt.Sprintf("commit %d on %s", r.n, branch))
	r.git(r.work, "push", "-q", "origin", branch)
	return r.git(r.work, "rev-parse", "HEAD")
}

// Delete deletes branch on the remote.
func (r *remote) Delete(branch string) {
	r.t.Helper()
	r.git(r.work, "push", "-q", "origin", "--delete", branch)
}

// Branches creates n branches fmt.Sprintf(format, i) for i in [0, n) at
// main's head in the bare repository directly, in one command.
func (r *remote) Branches(format string, n int) {
	r.t.Helper()
	sha := r.git(r.Bare, "rev-parse", "main")
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "create refs/heads/%s %s\n", fmt.Sprintf(format, i), sha)
	}
	cmd := exec.Command("git", "-c", "safe.directory=*", "update-ref", "--stdin")
	cmd.Dir = r.Bare
	cmd.Stdin = strings.NewReader(in.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		r.t.Fatalf("git update-ref: %v\n%s", err, out)
	}
}

// Daemon serves the bare repository's directory with `git daemon` on a
// free loopback port and returns the repository's git:// URL.
func (r *remote) Daemon() string {
	r.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	base := filepath.Dir(r.Bare)
	cmd := exec.Command("git", "daemon", "--export-all", "--reuseaddr", "--base-path="+base,
		"--listen=127.0.0.1", "--port="+strconv.Itoa(port), base)
	// Its own process group, so that the upload-pack children it forks
	// go with it; its log goes to a file, not to the test's output.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, err := os.Create(filepath.Join(base, "daemon.log"))
	if err != nil {
		r.t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start git daemon: %v", err)
	}
	r.t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("git daemon does not listen on port %d: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Sprintf("git://127.0.0.1:%d/%s", port, filepath.Base(r.Bare))
}
