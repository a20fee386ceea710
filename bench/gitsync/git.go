package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sandpit.dev/sandpit/bench/internal/harness"
)

// bareRepo is a real bare repository under the git daemon's base path.
type bareRepo struct {
	dir     string // .../git/<name>.git
	gitURL  string // git://127.0.0.1:PORT/<name>.git
	fileURL string // file://<dir>
	main    string // main's commit
	moves   int    // commits made by move, for distinct messages
}

// git runs git in dir (the bare repository when dir is "") with stdin and
// returns its trimmed output; a failure is fatal.
func git(dir, stdin string, args ...string) string {
	cmd := exec.Command("git", append([]string{"-c", "safe.directory=*", "-c", "user.name=Ada Lovelace",
		"-c", "user.email=ada@example.com", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = dir
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		harness.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// newBareRepo makes base/<name>.git with one commit on main (a README).
func newBareRepo(base, name string, port int) *bareRepo {
	dir := filepath.Join(base, name+".git")
	git("", "", "init", "-q", "--bare", dir)
	blob := git(dir, "hello from "+name+"\n", "hash-object", "-w", "--stdin")
	tree := git(dir, "100644 blob "+blob+"\tREADME\n", "mktree")
	commit := git(dir, "", "commit-tree", tree, "-m", "initial")
	git(dir, "", "update-ref", "refs/heads/main", commit)
	git(dir, "", "symbolic-ref", "HEAD", "refs/heads/main")
	return &bareRepo{
		dir:     dir,
		gitURL:  fmt.Sprintf("git://127.0.0.1:%d/%s.git", port, name),
		fileURL: "file://" + dir,
		main:    commit,
	}
}

// create makes the branches at main's commit, in one update-ref.
func (r *bareRepo) create(branches []string) {
	var in strings.Builder
	for _, b := range branches {
		fmt.Fprintf(&in, "create refs/heads/%s %s\n", b, r.main)
	}
	git(r.dir, in.String(), "update-ref", "--stdin")
}

// remove deletes the branches, in one update-ref.
func (r *bareRepo) remove(branches []string) {
	var in strings.Builder
	for _, b := range branches {
		fmt.Fprintf(&in, "delete refs/heads/%s\n", b)
	}
	git(r.dir, in.String(), "update-ref", "--stdin")
}

// move adds a new commit on top of each branch (a distinct commit per
// branch, as pushes would make), in one git fast-import; a branch that does
// not exist yet is made from main. It returns each branch's new commit.
func (r *bareRepo) move(branches []string, fresh bool) map[string]string {
	var in strings.Builder
	for i, b := range branches {
		r.moves++
		from := "refs/heads/" + b + "^0"
		if fresh {
			from = r.main
		}
		msg := fmt.Sprintf("move %d of %s", r.moves, b)
		content := strconv.Itoa(r.moves) + "\n"
		fmt.Fprintf(&in, "commit refs/heads/%s\nmark :%d\ncommitter Ada Lovelace <ada@example.com> %d +0000\ndata %d\n%s\nfrom %s\nM 644 inline v.txt\ndata %d\n%s\n",
			b, i+1, 1_700_000_000+r.moves, len(msg), msg, from, len(content), content)
	}
	for i := range branches {
		fmt.Fprintf(&in, "get-mark :%d\n", i+1)
	}
	cmd := exec.Command("git", "-c", "safe.directory=*", "fast-import", "--quiet", "--force", "--cat-blob-fd=1")
	cmd.Dir = r.dir
	cmd.Stdin = strings.NewReader(in.String())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		harness.Fatalf("git fast-import: %v\n%s", err, stderr.String())
	}
	shas := strings.Fields(string(out))
	if len(shas) != len(branches) {
		harness.Fatalf("git fast-import gave %d commits for %d branches: %q", len(shas), len(branches), out)
	}
	m := make(map[string]string, len(branches))
	for i, b := range branches {
		m[b] = shas[i]
	}
	return m
}

// startDaemon serves base with `git daemon` on a free loopback port, in a
// process group of its own (its upload-pack children go with it), and
// registers killing it with harness.AtExit.
func startDaemon(base string) int {
	port := harness.FreePort()
	logf, err := os.Create(filepath.Join(filepath.Dir(base), "git-daemon.log"))
	harness.Check(err)
	cmd := exec.Command("git", "daemon", "--export-all", "--reuseaddr", "--base-path="+base,
		"--listen=127.0.0.1", "--port="+strconv.Itoa(port), base)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = logf, logf
	harness.Check(cmd.Start())
	logf.Close()
	harness.AtExit(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
			return port
		}
		if time.Now().After(deadline) {
			harness.Fatalf("git daemon does not listen on port %d: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// timeLsRemote runs `git ls-remote --heads url` as gitsync does, n times,
// and returns each run's wall time.
// Extra git options (say -c protocol.version=0) go before ls-remote.
func timeLsRemote(url string, n int, opts ...string) []time.Duration {
	var out []time.Duration
	for range n {
		t0 := time.Now()
		cmd := exec.Command("git", append(append([]string{"-c", "safe.directory=*"}, opts...), "ls-remote", "--heads", url)...)
		cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
		if o, err := cmd.CombinedOutput(); err != nil {
			harness.Fatalf("git ls-remote %s: %v\n%s", url, err, o)
		}
		out = append(out, time.Since(t0))
	}
	return out
}

// timeAuthors runs, for each of the shas, the `git log -1` that gitsync
// runs per created or moved sandbox when the binding's URL is a local path
// or file:// (localAuthor), and returns the total wall time.
func timeAuthors(dir string, shas []string) time.Duration {
	t0 := time.Now()
	for _, sha := range shas {
		cmd := exec.Command("git", "-c", "safe.directory=*", "log", "-1", "--format=%an <%ae>", sha, "--")
		cmd.Dir = dir
		if o, err := cmd.CombinedOutput(); err != nil {
			harness.Fatalf("git log %s: %v\n%s", sha, err, o)
		}
	}
	return time.Since(t0)
}
