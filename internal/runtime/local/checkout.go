package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"sandpit.dev/sandpit/internal/runtime"
)

// checkoutResult is where a sandbox's source ended up.
type checkoutResult struct {
	root string // relative to the sandbox directory
	ref  string
	sha  string
}

// checkout gives the sandbox its own copy of the template's source: a clone
// at the ref for git sources and for local repositories when a ref is
// asked for, otherwise a copy of the local directory as it is (uncommitted
// changes included, which is what "run my working tree" wants). Sandboxes
// never share files.
func (r *Runtime) checkout(ctx context.Context, inst *runtime.Instance) (checkoutResult, error) {
	dir := r.SandboxDir(inst.ID)
	// A half-made checkout from an interrupted attempt is discarded.
	for _, d := range []string{"src", "repo"} {
		if err := os.RemoveAll(filepath.Join(dir, d)); err != nil {
			return checkoutResult{}, fmt.Errorf("remove old checkout: %w", err)
		}
	}
	src := inst.Template.Source
	ref := inst.Ref
	if ref == "" && src != nil {
		ref = src.Ref
	}
	var res checkoutResult
	var err error
	switch {
	case src == nil:
		res = checkoutResult{root: "src"}
		err = os.MkdirAll(filepath.Join(dir, "src"), 0o755)
	case src.Git != "":
		res, err = r.checkoutGit(ctx, inst.ID, src.Git, ref)
	default:
		path := src.Path
		if !filepath.IsAbs(path) {
			path = filepath.Join(inst.BaseDir, path)
		}
		res, err = r.checkoutPath(ctx, inst.ID, path, ref)
	}
	if err != nil {
		return checkoutResult{}, err
	}
	if err := chownTree(filepath.Join(dir, strings.SplitN(res.root, "/", 2)[0]), r.cfg.User.UID, r.cfg.User.GID, r.cfg.User.Switch); err != nil {
		return checkoutResult{}, fmt.Errorf("hand the checkout to user %s: %w", r.cfg.User.Name, err)
	}
	return res, nil
}

func (r *Runtime) checkoutGit(ctx context.Context, id, url, ref string) (checkoutResult, error) {
	sum := sha256.Sum256([]byte(url))
	mirror := filepath.Join(r.cfg.DataDir, "git", hex.EncodeToString(sum[:8])+".git")
	lock := r.gitLock(mirror)
	lock.Lock()
	_, statErr := os.Stat(filepath.Join(mirror, "HEAD"))
	var err error
	if statErr != nil {
		_ = os.RemoveAll(mirror)
		_, err = git(ctx, "", "clone", "--quiet", "--mirror", url, mirror)
		if err != nil {
			_ = os.RemoveAll(mirror)
			err = runtime.Permanent(fmt.Errorf("clone %s: %w", url, err))
		}
	} else {
		_, err = git(ctx, mirror, "fetch", "--quiet", "--prune", "origin")
		if err != nil {
			err = fmt.Errorf("fetch %s: %w", url, err)
		}
	}
	lock.Unlock()
	if err != nil {
		return checkoutResult{}, err
	}
	sha, err := resolveRef(ctx, mirror, ref, url)
	if err != nil {
		return checkoutResult{}, err
	}
	dst := filepath.Join(r.SandboxDir(id), "src")
	if _, err := git(ctx, "", "clone", "--quiet", "--shared", "--no-checkout", mirror, dst); err != nil {
		return checkoutResult{}, fmt.Errorf("clone into sandbox: %w", err)
	}
	if _, err := git(ctx, dst, "checkout", "--quiet", "--detach", sha); err != nil {
		return checkoutResult{}, fmt.Errorf("check out %s: %w", sha, err)
	}
	if ref == "" {
		ref = "HEAD"
	}
	return checkoutResult{root: "src", ref: ref, sha: sha}, nil
}

func (r *Runtime) checkoutPath(ctx context.Context, id, path, ref string) (checkoutResult, error) {
	st, err := os.Stat(path)
	if err != nil {
		return checkoutResult{}, runtime.Permanent(fmt.Errorf("source path %s: %w", path, err))
	}
	if !st.IsDir() {
		return checkoutResult{}, runtime.Permanent(fmt.Errorf("source path %s is not a directory", path))
	}
	top, _ := git(ctx, path, "rev-parse", "--show-toplevel")
	if ref == "" {
		dst := filepath.Join(r.SandboxDir(id), "src")
		if err := copyTree(ctx, path, dst); err != nil {
			return checkoutResult{}, fmt.Errorf("copy %s: %w", path, err)
		}
		res := checkoutResult{root: "src"}
		if top != "" {
			res.sha, _ = git(ctx, path, "rev-parse", "HEAD")
		}
		return res, nil
	}
	if top == "" {
		return checkoutResult{}, runtime.Permanent(fmt.Errorf("ref %q asked for, but source path %s is not in a git repository: drop the ref to use the directory as it is", ref, path))
	}
	rel, err := filepath.Rel(top, path)
	if err != nil {
		return checkoutResult{}, err
	}
	dst := filepath.Join(r.SandboxDir(id), "repo")
	if _, err := git(ctx, "", "clone", "--quiet", "--local", "--no-checkout", top, dst); err != nil {
		return checkoutResult{}, fmt.Errorf("clone %s: %w", top, err)
	}
	sha, err := resolveRef(ctx, dst, ref, top)
	if err != nil {
		return checkoutResult{}, err
	}
	if _, err := git(ctx, dst, "checkout", "--quiet", "--detach", sha); err != nil {
		return checkoutResult{}, fmt.Errorf("check out %s: %w", sha, err)
	}
	root := "repo"
	if rel != "." {
		root = filepath.Join("repo", rel)
	}
	return checkoutResult{root: root, ref: ref, sha: sha}, nil
}

// resolveRef finds the commit a ref names in repo: a branch (local, or as
// the clone's origin/<branch>), a tag or a commit; HEAD when ref is empty.
func resolveRef(ctx context.Context, repo, ref, from string) (string, error) {
	if ref == "" {
		ref = "HEAD"
	}
	for _, cand := range []string{ref, "origin/" + ref} {
		if sha, err := git(ctx, repo, "rev-parse", "--verify", "--quiet", cand+"^{commit}"); err == nil && sha != "" {
			return sha, nil
		}
	}
	branches, _ := git(ctx, repo, "for-each-ref", "--count=10", "--format=%(refname:lstrip=-1)", "refs/heads", "refs/remotes")
	hint := ""
	if b := strings.Fields(branches); len(b) > 0 {
		hint = "; branches include: " + strings.Join(b, ", ")
	}
	return "", runtime.Permanent(fmt.Errorf("ref %q not found in %s%s", ref, from, hint))
}

// git runs git as the server (reading, perhaps, a repository owned by
// another user, hence safe.directory) and returns its trimmed stdout.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", append([]string{"-c", "safe.directory=*", "-c", "advice.detachedHead=false"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if errors.Is(err, exec.ErrNotFound) {
			msg = "git is not installed: apt-get install git"
		}
		return "", fmt.Errorf("git %s: %v: %s", args[0], err, msg)
	}
	return strings.TrimSpace(string(out)), nil
}

// copyTree copies a directory, skipping .git directories, keeping modes
// and symlinks. Special files (sockets, devices) are skipped.
func copyTree(ctx context.Context, src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() && d.Name() == ".git" && rel != "." {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch mode := info.Mode(); {
		case mode.IsDir():
			return os.MkdirAll(target, mode.Perm()|0o700)
		case mode&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case mode.IsRegular():
			return copyFile(path, target, mode.Perm())
		}
		return nil
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// chownTree hands a tree to uid:gid (no-op unless switching users).
func chownTree(root string, uid, gid int, doit bool) error {
	if !doit {
		return nil
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

// renderFiles writes a service's files into its workdir (only when their
// content changed, so a rebuild is not triggered by a rewrite).
func (r *Runtime) renderFiles(workdir string, files []renderedFile) error {
	for _, f := range files {
		target := filepath.Join(workdir, f.path)
		if !strings.HasPrefix(target, filepath.Clean(workdir)+string(filepath.Separator)) {
			return runtime.Permanent(fmt.Errorf("file %q would be written outside the workdir", f.path))
		}
		if old, err := os.ReadFile(target); err == nil && string(old) == f.content {
			if st, err := os.Stat(target); err == nil && st.Mode().Perm() == f.mode {
				continue
			}
		}
		if err := r.mkdirOwned(workdir, filepath.Dir(target)); err != nil {
			return err
		}
		tmp := target + ".sandpit-tmp"
		if err := os.WriteFile(tmp, []byte(f.content), f.mode); err != nil {
			return fmt.Errorf("render %s: %w", f.path, err)
		}
		if err := os.Chmod(tmp, f.mode); err != nil {
			return err
		}
		if err := r.cfg.User.Chown(tmp); err != nil {
			return err
		}
		if err := os.Rename(tmp, target); err != nil {
			return fmt.Errorf("render %s: %w", f.path, err)
		}
	}
	return nil
}

// mkdirOwned creates dir and its missing parents below root, handing
// each one it creates to the service user, so a service can write next to
// its rendered files (a plain MkdirAll as root left them root-owned).
func (r *Runtime) mkdirOwned(root, dir string) error {
	var missing []string
	for d := dir; d != root && len(d) > len(root); d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		missing = append(missing, d)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range missing {
		if err := r.cfg.User.Chown(d); err != nil {
			return err
		}
	}
	return nil
}

type renderedFile struct {
	path    string
	content string
	mode    fs.FileMode
}
