package kube

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"sandpit.dev/sandpit/internal/runtime"
)

// source is the directory kubernetes.* paths resolve against, at the
// sandbox's ref, and the commit it holds ("" when the source is no git
// repository).
type source struct {
	Dir, Ref, SHA string
}

// checkout finds the source: for a path source the directory itself (or,
// when a ref is asked for and the directory is a git repository, that
// ref's tree exported into the work dir); for a git source a clone of the
// ref. Only manifests, charts and kustomizations are read from it: the
// images themselves come from the team's registry.
func (r *Runtime) checkout(ctx context.Context, inst *runtime.Instance) (source, error) {
	t := inst.Template
	ref := inst.Ref
	if ref == "" && t.Source != nil {
		ref = t.Source.Ref
	}
	work := filepath.Join(r.cfg.WorkDir, inst.ID)
	switch {
	case t.Source == nil:
		return source{Dir: inst.BaseDir}, nil
	case t.Source.Path != "":
		dir := t.Source.Path
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(inst.BaseDir, dir)
		}
		if _, err := os.Stat(dir); err != nil {
			return source{}, runtime.Permanent(fmt.Errorf("source.path %s: %w", dir, err))
		}
		if _, err := git(ctx, dir, "rev-parse", "--git-dir"); err != nil {
			return source{Dir: dir, Ref: ref}, nil // not a repository: used as it is
		}
		if ref == "" {
			sha, _ := git(ctx, dir, "rev-parse", "HEAD")
			return source{Dir: dir, SHA: sha}, nil
		}
		return r.export(ctx, dir, ref, work)
	default:
		repo := filepath.Join(work, "repo")
		if _, err := os.Stat(filepath.Join(repo, "HEAD")); err != nil {
			if err := os.MkdirAll(work, 0o755); err != nil {
				return source{}, err
			}
			if _, err := git(ctx, "", "clone", "--quiet", "--bare", t.Source.Git, repo); err != nil {
				return source{}, fmt.Errorf("clone %s: %w", t.Source.Git, err)
			}
		} else if _, err := git(ctx, repo, "fetch", "--quiet", "--force", "origin", "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"); err != nil {
			return source{}, fmt.Errorf("fetch %s: %w", t.Source.Git, err)
		}
		if ref == "" {
			ref = "HEAD"
		}
		return r.export(ctx, repo, ref, work)
	}
}

// export writes ref's tree into work/src, replacing what was there.
func (r *Runtime) export(ctx context.Context, repo, ref, work string) (source, error) {
	sha, err := git(ctx, repo, "rev-parse", "--verify", "--quiet", ref+"^{commit}")
	if err != nil {
		return source{}, runtime.Permanent(fmt.Errorf("ref %q not found in %s: name a branch, tag or commit that exists", ref, repo))
	}
	dst := filepath.Join(work, "src")
	tmp := dst + ".new"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return source{}, err
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", `git -C "$1" archive --format=tar "$2" | tar -x -C "$3"`, "sh", repo, sha, tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		return source{}, fmt.Errorf("export %s at %s: %v: %s", repo, ref, err, bytes.TrimSpace(out))
	}
	_ = os.RemoveAll(dst)
	if err := os.Rename(tmp, dst); err != nil {
		return source{}, err
	}
	return source{Dir: dst, Ref: ref, SHA: sha}, nil
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	if dir != "" {
		args = append([]string{"-C", dir}, args...)
	}
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = strings.TrimSpace(string(ee.Stderr))
		}
		return "", fmt.Errorf("git %s: %v %s", strings.Join(args, " "), err, msg)
	}
	return strings.TrimSpace(string(out)), nil
}
