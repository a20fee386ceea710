package volume

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Method is how a Store makes copy-on-write copies.
type Method string

// Methods, best first.
const (
	Btrfs   Method = "btrfs"   // subvolumes and subvolume snapshots
	Reflink Method = "reflink" // per-file FICLONE copies (XFS with reflink=1, btrfs)
	Copy    Method = "copy"    // plain recursive copy, the last resort
)

// Options configure Open.
type Options struct {
	// Root is the absolute directory volumes live under (created 0755 if
	// missing). The server passes <data-dir>/volumes.
	Root string
	// Image is the path of a btrfs image file to create (sparse) and
	// loop-mount at Root when Root's filesystem is not btrfs and the process
	// runs as root. Empty disables the image.
	Image string
	// ImageSize is the size of a new image in bytes; 0 means 80% of the
	// free space of the filesystem holding the image, rounded down to a
	// GiB, at least 1 GiB (an error, saying how much is free, if even that
	// is not available).
	ImageSize int64
	// Want forces a method; "" picks the best available. Forcing one that
	// is impossible here is an error saying why and what to do.
	Want Method
	// Logger receives one Info line from Open and Debug lines after; nil
	// discards.
	Logger *slog.Logger
}

// Store is a directory of volumes. Its methods are safe for concurrent use
// on different volumes.
type Store struct {
	root      string // clean, absolute, as given
	method    Method
	onBtrfs   bool   // Root's filesystem is btrfs, so subvolumes may exist
	fsType    string // of the filesystem under Root before any image mount
	why       string // why method was picked, for Describe
	image     string // the loop-mounted image, or ""
	realImage string // image with symlinks resolved, as the kernel reports it
	imageSize int64
	log       *slog.Logger

	mu      sync.Mutex
	mounted bool // this Store mounted the image at Root, or found it there
}

// Test hooks.
var (
	geteuid  = os.Geteuid
	lookPath = exec.LookPath
)

// Open prepares the store at opts.Root and picks its method: Btrfs when Root
// is on btrfs; else, when an image is configured, the process is root and
// the image exists or mkfs.btrfs can make it, Btrfs on the image
// loop-mounted at Root (re-adopting a mount left by an earlier server);
// else Reflink when Root's filesystem can clone files; else Copy.
func Open(ctx context.Context, opts Options) (*Store, error) {
	start := time.Now()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Root == "" {
		return nil, errors.New("open volume store: no root directory given")
	}
	if !filepath.IsAbs(opts.Root) {
		return nil, fmt.Errorf("open volume store: root %q is not an absolute path", opts.Root)
	}
	root := filepath.Clean(opts.Root)
	switch opts.Want {
	case "", Btrfs, Reflink, Copy:
	default:
		return nil, fmt.Errorf("open volume store at %s: unknown method %q; use %q, %q, %q, or nothing to pick the best available", root, opts.Want, Btrfs, Reflink, Copy)
	}
	if opts.ImageSize < 0 {
		return nil, fmt.Errorf("open volume store at %s: negative image size %d", root, opts.ImageSize)
	}
	image := ""
	if opts.Image != "" {
		var err error
		if image, err = filepath.Abs(opts.Image); err != nil {
			return nil, fmt.Errorf("open volume store at %s: image path %q: %w", root, opts.Image, err)
		}
		if image == root || strings.HasPrefix(image, root+"/") {
			return nil, fmt.Errorf("open volume store at %s: the image %s must not be inside the root it is mounted at; put it next to it", root, image)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open volume store at %s: %w", root, err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("open volume store: %w", err)
	}

	s := &Store{root: root, log: log}
	realRoot := resolve(root)
	mounts, err := readMounts()
	if err != nil {
		return nil, fmt.Errorf("open volume store at %s: %w", root, err)
	}
	s.fsType = fsTypeOf(mounts, realRoot)
	if s.onBtrfs, err = isBtrfs(root); err != nil {
		return nil, fmt.Errorf("open volume store: %w", err)
	}
	if image != "" {
		// A server restart: the image is still mounted from last time.
		realImage := resolve(image)
		if m, ok := topMountAt(mounts, realRoot); ok && loopBackingFile(m.source) == realImage {
			s.image, s.realImage, s.mounted = image, realImage, true
			s.imageSize = fileSize(image)
		}
	}
	if err := s.choose(ctx, opts.Want, image, opts.ImageSize, mounts, realRoot); err != nil {
		return nil, err
	}
	log.Info("volume store ready", "method", s.method, "root", root, "reason", s.why, "took", time.Since(start).Round(time.Millisecond))
	return s, nil
}

// choose sets s.method and s.why, mounting the image if that is the way.
func (s *Store) choose(ctx context.Context, want Method, image string, imageSize int64, mounts []mount, realRoot string) error {
	if s.onBtrfs && (want == "" || want == Btrfs) {
		s.method = Btrfs
		s.why = s.root + " is on btrfs"
		if s.mounted {
			s.why = "the btrfs image " + image + " is already mounted at " + s.root
		}
		return nil
	}
	if want == Copy {
		s.method, s.why = Copy, "the copy method was requested"
		return nil
	}

	// noBtrfs says why the image cannot be used, and advice what to do.
	var noBtrfs, advice string
	if !s.onBtrfs && want != Reflink {
		_, statErr := os.Stat(image)
		switch {
		case image == "":
			noBtrfs = "no btrfs image is configured"
			advice = "put the data dir on btrfs or XFS for constant-time restores"
		case geteuid() != 0:
			noBtrfs = "sandpit is not root, so it cannot mount a btrfs image"
			advice = "run as root or put the data dir on btrfs or XFS for constant-time restores"
		case statErr != nil && !isNotExist(statErr):
			return fmt.Errorf("open volume store at %s: btrfs image: %w", s.root, statErr)
		case statErr != nil && !hasCommand("mkfs.btrfs"):
			noBtrfs = "mkfs.btrfs is not installed, so sandpit cannot create a btrfs image"
			advice = "install btrfs-progs, or put the data dir on btrfs or XFS, for constant-time restores"
		default:
			created, err := s.setUpImage(ctx, image, imageSize, mounts, realRoot)
			if err != nil {
				return fmt.Errorf("open volume store: %w", err)
			}
			s.method = Btrfs
			s.why = s.root + " is on " + s.fsType + ", so sandpit loop-mounted the btrfs image " + image + " there"
			if created {
				s.why = s.root + " is on " + s.fsType + ", so sandpit created the btrfs image " + image + " and loop-mounted it there"
			}
			return nil
		}
		if want == Btrfs {
			return fmt.Errorf("open volume store at %s: btrfs was requested, but %s is on %s and %s; %s", s.root, s.root, s.fsType, noBtrfs, advice)
		}
	}

	probeErr := probeReflink(s.root)
	if probeErr == nil {
		s.method, s.why = Reflink, s.fsType+" supports reflinks"
		return nil
	}
	if want == Reflink {
		return fmt.Errorf("open volume store at %s: reflink was requested, but %s (%s) cannot clone files: %w; put the data dir on XFS formatted with reflink=1 or on btrfs, or let sandpit pick the method", s.root, s.root, s.fsType, probeErr)
	}
	s.method = Copy
	if noBtrfs == "" { // not reached today: every such path returned above
		s.why = fmt.Sprintf("%s cannot clone files here (%v)", s.fsType, probeErr)
		return nil
	}
	s.why = s.fsType + " has no reflink and " + noBtrfs + "; " + advice
	return nil
}

// setUpImage creates the image if it is missing and mounts it at Root. It
// reports whether it created the image.
func (s *Store) setUpImage(ctx context.Context, image string, size int64, mounts []mount, realRoot string) (created bool, err error) {
	for _, m := range imageMounts(mounts, resolve(image)) {
		if m.point != realRoot {
			return false, fmt.Errorf("btrfs image %s is already mounted at %s, not at %s; unmount it there (umount %s) or use that directory as the volume root", image, m.point, s.root, m.point)
		}
	}
	if err := checkEmpty(s.root, image); err != nil {
		return false, err
	}
	if _, err := os.Stat(image); isNotExist(err) {
		size, err := imageSizeFor(image, size)
		if err != nil {
			return false, err
		}
		if err := createImage(ctx, s.log, image, size); err != nil {
			return false, err
		}
		created = true
	}
	if err := mountImage(ctx, image, s.root); err != nil {
		return created, err
	}
	s.image, s.realImage, s.mounted = image, resolve(image), true
	s.imageSize = fileSize(image)
	ok, err := isBtrfs(s.root)
	if err == nil && !ok {
		err = fmt.Errorf("%s is not btrfs after mounting %s on it", s.root, image)
	}
	if err != nil {
		_ = s.Unmount()
		return created, err
	}
	s.onBtrfs = true
	return created, nil
}

// Method returns the method the store uses.
func (s *Store) Method() Method { return s.method }

// Root returns the directory volumes live under.
func (s *Store) Root() string { return s.root }

// Describe is one line for the server's start-up log and the API, saying
// how volumes are copied and, when that is slow, why and what to do.
func (s *Store) Describe() string {
	switch s.method {
	case Btrfs:
		if s.image != "" {
			return fmt.Sprintf("btrfs subvolume snapshots on %s (loop-mounted image %s, %s)", s.root, s.image, formatSize(s.imageSize))
		}
		return "btrfs subvolume snapshots on " + s.root
	case Reflink:
		return fmt.Sprintf("reflink copies on %s (%s)", s.root, s.fsType)
	default:
		return fmt.Sprintf("plain copies in %s: %s", s.root, s.why)
	}
}

// Path returns the absolute path of a volume named by a slash-separated
// relative name like "snapshots/snap-1". Names that are empty, absolute,
// not clean ("a//b", "a/./b", "a/"), contain "..", or have a component
// starting with "." (reserved for the store's temporary files) are
// rejected.
func (s *Store) Path(rel string) (string, error) {
	if rel == "" {
		return "", errors.New("volume name is empty")
	}
	if strings.HasPrefix(rel, "/") {
		return "", fmt.Errorf("volume name %q is absolute; use a path relative to the volume root", rel)
	}
	if strings.IndexByte(rel, 0) >= 0 {
		return "", fmt.Errorf("volume name %q contains a NUL byte", rel)
	}
	for _, c := range strings.Split(rel, "/") {
		switch {
		case c == "..":
			return "", fmt.Errorf("volume name %q contains \"..\"", rel)
		case c == "" || c == ".":
			return "", fmt.Errorf("volume name %q is not clean (empty or \".\" component)", rel)
		case strings.HasPrefix(c, "."):
			return "", fmt.Errorf("volume name %q has a component starting with \".\", which is reserved", rel)
		}
	}
	p := filepath.Join(s.root, filepath.FromSlash(rel))
	if !strings.HasPrefix(p, s.root+"/") { // cannot happen after the checks above
		return "", fmt.Errorf("volume name %q escapes the volume root %s", rel, s.root)
	}
	return p, nil
}

// Create makes an empty writable volume (a btrfs subvolume with Btrfs, a
// plain directory otherwise), mode 0700, owned by the caller. Parent
// directories are created 0755. It fails if rel exists.
func (s *Store) Create(ctx context.Context, rel string) error {
	p, err := s.Path(rel)
	if err != nil {
		return fmt.Errorf("create volume: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("create volume %s: %w", rel, err)
	}
	if err := mkParent(p); err != nil {
		return fmt.Errorf("create volume %s: %w", rel, err)
	}
	if s.method == Btrfs {
		err = createSubvolume(p)
	} else {
		err = os.Mkdir(p, 0o700)
	}
	if err != nil {
		return fmt.Errorf("create volume %s: %w", rel, err)
	}
	// Not subject to the umask, and a new subvolume's root is 0755.
	if err := os.Chmod(p, 0o700); err != nil {
		_ = s.removeTree(context.WithoutCancel(ctx), p)
		return fmt.Errorf("create volume %s: %w", rel, err)
	}
	return nil
}

// Clone makes dst a writable copy-on-write copy of src, a volume or a
// frozen snapshot: a writable btrfs snapshot with Btrfs when src is a
// subvolume (reflink copies into a new subvolume when it is a plain
// directory), per-file FICLONE with Reflink, a plain copy with Copy. Owner,
// group, mode, times and symlinks are preserved. dst must not exist; on any
// error nothing is left at dst. Parent directories of dst are created 0755.
func (s *Store) Clone(ctx context.Context, src, dst string) error {
	sp, err := s.Path(src)
	if err != nil {
		return fmt.Errorf("clone volume: source: %w", err)
	}
	dp, err := s.Path(dst)
	if err != nil {
		return fmt.Errorf("clone volume %s: destination: %w", src, err)
	}
	if sp == dp || strings.HasPrefix(dp, sp+"/") || strings.HasPrefix(sp, dp+"/") {
		return fmt.Errorf("clone volume %s to %s: one contains the other", src, dst)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("clone volume %s to %s: %w", src, dst, err)
	}
	info, err := os.Lstat(sp)
	if err != nil {
		return fmt.Errorf("clone volume %s to %s: source: %w", src, dst, err)
	}
	if !info.IsDir() {
		return fmt.Errorf("clone volume %s to %s: source %s is not a directory", src, dst, sp)
	}
	if _, err := os.Lstat(dp); err == nil {
		return fmt.Errorf("clone volume %s to %s: destination %s: %w", src, dst, dp, fs.ErrExist)
	}
	if err := mkParent(dp); err != nil {
		return fmt.Errorf("clone volume %s to %s: %w", src, dst, err)
	}
	start := time.Now()
	how := "snapshot"
	if s.method == Btrfs && isSubvolumeRoot(info) {
		err = snapshotSubvolume(sp, dp, false)
	} else {
		how = "copy"
		err = s.copyVolume(ctx, sp, dp)
	}
	if err != nil {
		return fmt.Errorf("clone volume %s to %s: %w", src, dst, err)
	}
	s.log.Debug("cloned volume", "src", src, "dst", dst, "how", how, "took", time.Since(start))
	return nil
}

// copyVolume copies the tree at sp to dp under a temporary name, then
// renames it into place, so a failure leaves nothing at dp.
func (s *Store) copyVolume(ctx context.Context, sp, dp string) error {
	tmp := filepath.Join(filepath.Dir(dp), ".clone-"+randomHex())
	var err error
	if s.method == Btrfs {
		// A subvolume, so that later clones of dst are snapshots.
		err = createSubvolume(tmp)
	} else {
		err = os.Mkdir(tmp, 0o700)
	}
	if err != nil {
		return err
	}
	c := &copier{reflink: s.method != Copy, log: s.log, euid: os.Geteuid(), egid: os.Getegid()}
	err = c.copyTree(ctx, sp, tmp)
	if err == nil {
		err = renameNoReplace(tmp, dp)
	}
	if err != nil {
		if rmErr := s.removeTree(context.WithoutCancel(ctx), tmp); rmErr != nil {
			s.log.Warn("could not remove a failed clone", "path", tmp, "err", rmErr)
		}
		return err
	}
	return nil
}

// Freeze atomically moves the writable volume src to dst (which must not
// exist) and, with Btrfs, sets the subvolume's read-only flag. With Btrfs
// and Reflink it first writes out the filesystem's dirty data (syncfs), so
// that clones of dst are fast from the first. With Copy it is just the
// rename.
func (s *Store) Freeze(ctx context.Context, src, dst string) error {
	sp, err := s.Path(src)
	if err != nil {
		return fmt.Errorf("freeze volume: source: %w", err)
	}
	dp, err := s.Path(dst)
	if err != nil {
		return fmt.Errorf("freeze volume %s: destination: %w", src, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("freeze volume %s as %s: %w", src, dst, err)
	}
	info, err := os.Lstat(sp)
	if err != nil {
		return fmt.Errorf("freeze volume %s as %s: source: %w", src, dst, err)
	}
	if !info.IsDir() {
		return fmt.Errorf("freeze volume %s as %s: source %s is not a directory", src, dst, sp)
	}
	subvolume := s.method == Btrfs && isSubvolumeRoot(info)
	if subvolume || s.method == Reflink {
		// A btrfs snapshot, and FICLONE on XFS, first write out the
		// source's dirty data, so without this the first restore of a
		// freshly written snapshot would pay for that (0.6 s for a 240 MB
		// data directory here) instead of taking constant time.
		if err := syncFS(sp); err != nil {
			return fmt.Errorf("freeze volume %s as %s: %w", src, dst, err)
		}
	}
	if err := mkParent(dp); err != nil {
		return fmt.Errorf("freeze volume %s as %s: %w", src, dst, err)
	}
	if err := renameNoReplace(sp, dp); err != nil {
		return fmt.Errorf("freeze volume %s as %s: %w", src, dst, err)
	}
	if subvolume {
		if err := setSubvolumeReadOnly(dp, true); err != nil {
			if backErr := renameNoReplace(dp, sp); backErr != nil {
				s.log.Warn("could not move a volume back after failing to freeze it", "from", dp, "to", sp, "err", backErr)
			}
			return fmt.Errorf("freeze volume %s as %s: %w", src, dst, err)
		}
	}
	return nil
}

// Delete removes a volume, read-only or not, or a plain directory of
// volumes. A missing volume is not an error.
func (s *Store) Delete(ctx context.Context, rel string) error {
	p, err := s.Path(rel)
	if err != nil {
		return fmt.Errorf("delete volume: %w", err)
	}
	if err := s.removeTree(ctx, p); err != nil {
		return fmt.Errorf("delete volume %s: %w", rel, err)
	}
	return nil
}

// List returns the sorted names of the entries directly under dirRel ("" is
// the root), or an empty slice if it does not exist. Temporary entries of
// clones in progress are left out.
func (s *Store) List(ctx context.Context, dirRel string) ([]string, error) {
	dir := s.root
	if dirRel != "" {
		var err error
		if dir, err = s.Path(dirRel); err != nil {
			return nil, fmt.Errorf("list volumes: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list volumes in %s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if isNotExist(err) {
		return []string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries { // ReadDir sorts by name
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Size returns the apparent size in bytes of all regular files in the
// volume (what a plain copy would write, not what it uses on disk).
func (s *Store) Size(ctx context.Context, rel string) (int64, error) {
	p, err := s.Path(rel)
	if err != nil {
		return 0, fmt.Errorf("size of volume: %w", err)
	}
	var total int64
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("size of volume %s: %w", rel, err)
	}
	return total, nil
}

// Unmount unmounts the image if this store mounted it or found it mounted
// at Root, and waits for its loop device to be released. The server does
// not call it on shutdown: sandboxes' PostgreSQL processes keep running
// across server restarts and use the volumes. A store that mounted nothing,
// or whose image is no longer mounted, returns nil.
func (s *Store) Unmount() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.mounted {
		return nil
	}
	if err := unmount(resolve(s.root), s.realImage); err != nil {
		return err
	}
	s.mounted = false
	s.log.Debug("unmounted volume image", "image", s.image, "root", s.root)
	return nil
}

// isBtrfs reports whether dir is on btrfs.
func isBtrfs(dir string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	return st.Type == unix.BTRFS_SUPER_MAGIC, nil
}

// probeReflink reports (as nil) whether files in dir can be cloned with
// FICLONE, by trying it on two temporary files.
func probeReflink(dir string) error {
	src, err := os.CreateTemp(dir, ".reflink-probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(src.Name())
	defer src.Close()
	dst, err := os.CreateTemp(dir, ".reflink-probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(dst.Name())
	defer dst.Close()
	// A whole block: XFS clones only block-aligned ranges (or to EOF).
	if _, err := src.Write(make([]byte, 4096)); err != nil {
		return err
	}
	if err := unix.IoctlFileClone(int(dst.Fd()), int(src.Fd())); err != nil {
		return fmt.Errorf("FICLONE: %w", err)
	}
	return nil
}

// syncFS writes out the dirty data of the filesystem holding path.
func syncFS(path string) error {
	fd, err := openDir(path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return &os.PathError{Op: "syncfs", Path: path, Err: err}
	}
	return nil
}

// hasCommand reports whether name is on PATH.
func hasCommand(name string) bool {
	_, err := lookPath(name)
	return err == nil
}

// mkParent creates the parent directories of p, 0755.
func mkParent(p string) error {
	return os.MkdirAll(filepath.Dir(p), 0o755)
}

// renameNoReplace renames old to new, failing with EEXIST if new exists
// (plain rename(2) would silently replace an empty directory).
func renameNoReplace(old, new string) error {
	if err := unix.Renameat2(unix.AT_FDCWD, old, unix.AT_FDCWD, new, unix.RENAME_NOREPLACE); err != nil {
		return &os.LinkError{Op: "rename", Old: old, New: new, Err: err}
	}
	return nil
}

func fileSize(path string) int64 {
	info, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return info.Size()
}

func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
