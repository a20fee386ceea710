package gitsync

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Branch is one branch of a remote and the commit it points at.
type Branch struct {
	Name string // without "refs/heads/"
	SHA  string
}

// Lister lists a remote's branches.
type Lister func(ctx context.Context, url string) ([]Branch, error)

// LsRemote lists the branches of the repository at url with `git
// ls-remote --heads`, giving up after timeout (0: 30s). It never prompts
// for credentials: a remote that wants some fails.
func LsRemote(timeout time.Duration) Lister {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	return func(ctx context.Context, url string) ([]Branch, error) {
		if strings.HasPrefix(url, "-") {
			return nil, fmt.Errorf("repository URL %q starts with '-'", url)
		}
		out, err := runGit(ctx, timeout, "", "ls-remote", "--heads", url)
		if err != nil {
			return nil, err
		}
		return parseLsRemote(out)
	}
}

// parseLsRemote reads "<sha>\trefs/heads/<name>" lines.
func parseLsRemote(out string) ([]Branch, error) {
	var bs []Branch
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		sha, ref, ok := strings.Cut(line, "\t")
		if !ok || !isSHA(sha) {
			return nil, fmt.Errorf("git ls-remote: unexpected line %q", line)
		}
		name, ok := strings.CutPrefix(ref, "refs/heads/")
		if !ok || name == "" {
			continue
		}
		bs = append(bs, Branch{Name: name, SHA: sha})
	}
	return bs, sc.Err()
}

func isSHA(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// localAuthors returns "Name <email>" of each commit in shas when url is
// a repository on this host (a path or file://), with one `git log` for
// all of them; for remote URLs (or when git fails) it returns what it has,
// possibly nothing: the author is informative only, and reading it there
// would mean fetching the commits.
func localAuthors(ctx context.Context, repoURL string, shas []string) map[string]string {
	out := map[string]string{}
	if len(shas) == 0 {
		return out
	}
	dir := repoURL
	if u, err := url.Parse(repoURL); err == nil && u.Scheme == "file" {
		dir = u.Path
	} else if !filepath.IsAbs(repoURL) {
		return out
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return out
	}
	args := append([]string{"log", "--no-walk=unsorted", "--format=%H %an <%ae>"}, shas...)
	text, err := runGit(ctx, 30*time.Second, dir, append(args, "--")...)
	if err != nil {
		return out
	}
	for _, line := range strings.Split(text, "\n") {
		if sha, author, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
			out[sha] = author
		}
	}
	return out
}

func runGit(ctx context.Context, timeout time.Duration, dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", append([]string{"-c", "safe.directory=*"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=/bin/true", "SSH_ASKPASS=/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		switch {
		case errors.Is(err, exec.ErrNotFound):
			msg = "git is not installed: apt-get install git"
		case ctx.Err() == context.DeadlineExceeded:
			msg = fmt.Sprintf("no answer within %s", timeout)
		}
		return "", fmt.Errorf("git %s: %v: %s", args[0], err, msg)
	}
	return string(out), nil
}
