package volume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Volumes hold data of an unprivileged user who may run arbitrary code and
// change the tree while the server, as root, copies or deletes it. So both
// walks go through directory file descriptors and never follow a symlink
// (openat with O_NOFOLLOW, fstatat with AT_SYMLINK_NOFOLLOW, unlinkat): a
// directory swapped for a symlink to /etc mid-walk cannot make the server
// copy or delete files outside the volume. Attributes are taken from the
// file actually opened (fstat), not from an earlier lstat.

// copier copies a directory tree, cloning file data with FICLONE when
// reflink is set and copying it otherwise. The destination is a new
// directory only root can enter until the copy is complete, so it is
// written by path.
type copier struct {
	reflink    bool
	log        *slog.Logger
	euid, egid int
	fellBack   bool // a FICLONE failure was logged
}

// copyTree copies the directory at src into the existing directory dst.
func (c *copier) copyTree(ctx context.Context, src, dst string) error {
	fd, err := unix.Open(src, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: src, Err: err}
	}
	dir := os.NewFile(uintptr(fd), src)
	defer dir.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: src, Err: err}
	}
	return c.copyDir(ctx, dir, dst, &st)
}

// copyDir copies the contents of the open directory src into the existing
// directory dst, then gives dst the attributes in st (src's), last, so
// that writing the children does not change its mtime and a read-only mode
// does not stop them being written.
func (c *copier) copyDir(ctx context.Context, src *os.File, dst string, st *unix.Stat_t) error {
	entries, err := src.ReadDir(-1)
	if err != nil {
		return err
	}
	dirFD := int(src.Fd())
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := e.Name()
		sp, dp := filepath.Join(src.Name(), name), filepath.Join(dst, name)
		var est unix.Stat_t
		if err := unix.Fstatat(dirFD, name, &est, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "lstat", Path: sp, Err: err}
		}
		switch est.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			err = c.copySubdir(ctx, dirFD, name, sp, dp)
		case unix.S_IFREG:
			err = c.copyFile(dirFD, name, sp, dp)
		case unix.S_IFLNK:
			err = c.copySymlink(dirFD, name, sp, dp, &est)
		case unix.S_IFSOCK:
			// Only meaningful to the process listening on it.
			c.log.Debug("not copying a socket", "path", sp)
		default:
			return fmt.Errorf("copy %s: unsupported file type %#o (a volume may hold only directories, regular files and symlinks)", sp, est.Mode&unix.S_IFMT)
		}
		if err != nil {
			return err
		}
	}
	return c.setAttrs(dst, st, false)
}

func (c *copier) copySubdir(ctx context.Context, dirFD int, name, sp, dp string) error {
	fd, err := unix.Openat(dirFD, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: sp, Err: err}
	}
	sub := os.NewFile(uintptr(fd), sp)
	defer sub.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: sp, Err: err}
	}
	if err := os.Mkdir(dp, 0o700); err != nil {
		return err
	}
	return c.copyDir(ctx, sub, dp, &st)
}

func (c *copier) copyFile(dirFD int, name, sp, dp string) error {
	// O_NONBLOCK: should the file have been swapped for a FIFO, opening it
	// must not hang; fstat then rejects it.
	fd, err := unix.Openat(dirFD, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: sp, Err: err}
	}
	in := os.NewFile(uintptr(fd), sp)
	defer in.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: sp, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("copy %s: it stopped being a regular file during the copy", sp)
	}
	out, err := os.OpenFile(dp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	cloned := false
	if c.reflink {
		err := unix.IoctlFileClone(int(out.Fd()), fd)
		switch {
		case err == nil:
			cloned = true
		case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EXDEV), errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOTTY):
			// This file cannot be cloned (another filesystem mounted
			// inside the volume, say): copy it instead.
			if !c.fellBack {
				c.fellBack = true
				c.log.Debug("reflink failed, copying instead", "path", sp, "err", err)
			}
		default:
			_ = out.Close()
			return fmt.Errorf("clone %s to %s: FICLONE: %w", sp, dp, err)
		}
	}
	if !cloned {
		if _, err := io.Copy(out, in); err != nil {
			_ = out.Close()
			return fmt.Errorf("copy %s to %s: %w", sp, dp, err)
		}
	}
	if err := out.Close(); err != nil {
		return err
	}
	return c.setAttrs(dp, &st, false)
}

func (c *copier) copySymlink(dirFD int, name, sp, dp string, st *unix.Stat_t) error {
	target, err := readlinkat(dirFD, name)
	if err != nil {
		return &os.PathError{Op: "readlink", Path: sp, Err: err}
	}
	if err := os.Symlink(target, dp); err != nil {
		return err
	}
	return c.setAttrs(dp, st, true)
}

func readlinkat(dirFD int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirFD, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// setAttrs gives path the owner, group, mode and times in st, without
// following a symlink. Ownership comes first because chown clears the
// set-user-ID and set-group-ID bits.
func (c *copier) setAttrs(path string, st *unix.Stat_t, symlink bool) error {
	// A file we create is ours already; only root may give it away.
	if c.euid == 0 || int(st.Uid) != c.euid || int(st.Gid) != c.egid {
		if err := os.Lchown(path, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	if !symlink {
		if err := unix.Fchmodat(unix.AT_FDCWD, path, st.Mode&0o7777, 0); err != nil {
			return &os.PathError{Op: "chmod", Path: path, Err: err}
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: path, Err: err}
	}
	return nil
}

// removeTree deletes p and everything below it, destroying btrfs
// subvolumes (read-only ones too) as it finds them. A missing p is not an
// error.
func (s *Store) removeTree(ctx context.Context, p string) error {
	parent, err := openDir(filepath.Dir(p))
	if isNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	return s.removeAt(ctx, parent, filepath.Base(p), p)
}

// removeAt deletes the entry name in the directory dirFD (path is for
// messages), recursively.
func (s *Store) removeAt(ctx context.Context, dirFD int, name, path string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dirFD, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unlinkAt(dirFD, name, path, 0)
	}
	if s.onBtrfs && st.Ino == btrfsFirstFreeObjectID {
		err := destroySubvolumeAt(dirFD, name, path)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		// EPERM or EACCES: not root, and the filesystem is not mounted
		// with user_subvol_rm_allowed. ENOTEMPTY: it holds nested
		// subvolumes. Either way, empty it and rmdir it, which btrfs allows
		// for an empty subvolume; its owner may clear the read-only flag.
		if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.ENOTEMPTY) {
			return err
		}
	}
	// Root ignores permissions; anyone else needs read, write and search
	// permission on a directory to empty it. (Not root, the server has no
	// more rights than the data's owner, so following a symlink here
	// would give nothing away.)
	if os.Geteuid() != 0 && st.Mode&0o700 != 0o700 {
		if err := unix.Fchmodat(dirFD, name, st.Mode&0o7777|0o700, 0); err != nil {
			return &os.PathError{Op: "chmod", Path: path, Err: err}
		}
	}
	fd, err := unix.Openat(dirFD, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	dir := os.NewFile(uintptr(fd), path)
	defer dir.Close()
	if s.onBtrfs && st.Ino == btrfsFirstFreeObjectID {
		if err := setSubvolumeReadOnlyFD(fd, path, false); err != nil {
			s.log.Debug("could not make a subvolume writable to delete it", "path", path, "err", err)
		}
	}
	entries, err := dir.ReadDir(-1)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := s.removeAt(ctx, fd, e.Name(), filepath.Join(path, e.Name())); err != nil {
			return err
		}
	}
	return unlinkAt(dirFD, name, path, unix.AT_REMOVEDIR)
}

func unlinkAt(dirFD int, name, path string, flags int) error {
	if err := unix.Unlinkat(dirFD, name, flags); err != nil && err != unix.ENOENT {
		return &os.PathError{Op: "remove", Path: path, Err: err}
	}
	return nil
}
