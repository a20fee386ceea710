package volume

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The tests use real filesystems: a loop-mounted btrfs image, a
// loop-mounted XFS image with reflink, and ext4 under /var/tmp.

const (
	testUID = 65534 // nobody: the data belongs to an unprivileged user
	testGID = 65534
)

var testTime = time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root (loop mounts, chown)")
	}
}

func requireCommands(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			skipOrFail(t, fmt.Sprintf("needs %s (scripts/test.sh installs it): %v", n, err))
		}
	}
}

// skipOrFail skips on a developer's machine but fails under CI, where
// scripts/test.sh has installed everything.
func skipOrFail(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// testDir makes a directory under /var/tmp (ext4 here, so no reflink) that
// is removed after the test, after any unmount cleanups registered later.
func testDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "sandpit-volume-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove test dir: %v", err)
		}
	})
	return dir
}

// mountsAt counts the mounts at dir.
func mountsAt(t *testing.T, dir string) int {
	t.Helper()
	mounts, err := readMounts()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range mounts {
		if m.point == dir {
			n++
		}
	}
	return n
}

// loopsBackedBy lists the loop devices whose backing file is image.
func loopsBackedBy(t *testing.T, image string) []string {
	t.Helper()
	files, err := filepath.Glob("/sys/block/loop*/loop/backing_file")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // detached meanwhile
		}
		if strings.TrimSuffix(strings.TrimSpace(string(data)), " (deleted)") == image {
			out = append(out, f)
		}
	}
	return out
}

// ensureUnmounted is a safety net for failed tests: whatever is still
// mounted at dir is unmounted and the loop devices of image detached.
func ensureUnmounted(t *testing.T, dir, image string) {
	t.Helper()
	t.Cleanup(func() {
		for mountsAt(t, dir) > 0 {
			if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
				t.Errorf("cleanup: umount %s: %v: %s", dir, err, out)
				_ = unix.Unmount(dir, unix.MNT_DETACH)
			}
		}
		for _, f := range loopsBackedBy(t, image) {
			dev := "/dev/" + strings.Split(f, "/")[3]
			if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
				t.Errorf("cleanup: losetup -d %s: %v: %s", dev, err, out)
			}
		}
	})
}

func mustOpen(t *testing.T, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slogTest(t)
	}
	s, err := Open(t.Context(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestBtrfsImage(t *testing.T) {
	requireRoot(t)
	requireCommands(t, "mkfs.btrfs", "mount")
	dir := testDir(t)
	root, image := filepath.Join(dir, "volumes"), filepath.Join(dir, "volumes.img")
	ensureUnmounted(t, root, image)
	opts := Options{Root: root, Image: image, ImageSize: 1 << 30}

	s := mustOpen(t, opts)
	if s.Method() != Btrfs {
		t.Fatalf("Method = %q, want btrfs (%s)", s.Method(), s.Describe())
	}
	want := "btrfs subvolume snapshots on " + root + " (loop-mounted image " + image + ", 1 GiB)"
	if got := s.Describe(); got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	if info, err := os.Stat(image); err != nil || info.Size() != 1<<30 {
		t.Fatalf("image: %v, %v", info, err)
	}

	exerciseStore(t, s)
	benchmarkClone(t, s, 200<<20)
	must(t, s.Delete(t.Context(), "bench"))
	must(t, s.Delete(t.Context(), "snapshots"))

	// A plain directory on btrfs (not made by Create) is cloned by copying
	// into a new subvolume, so clones of the clone are snapshots again.
	plain := filepath.Join(root, "plain", "src")
	must(t, os.MkdirAll(plain, 0o700))
	populate(t, plain)
	must(t, s.Clone(t.Context(), "plain/src", "plain/dst"))
	sameTree(t, plain, filepath.Join(root, "plain", "dst"))
	if info, err := os.Lstat(filepath.Join(root, "plain", "dst")); err != nil || !isSubvolumeRoot(info) {
		t.Errorf("clone of a plain directory on btrfs is not a subvolume: %v", err)
	}
	must(t, s.Delete(t.Context(), "plain"))

	// The data's owner may make subvolumes, read-only ones too, inside a
	// volume; deleting the volume deletes them.
	must(t, s.Create(t.Context(), "n/outer"))
	outer := filepath.Join(root, "n", "outer")
	must(t, createSubvolume(filepath.Join(outer, "inner")))
	must(t, snapshotSubvolume(filepath.Join(outer, "inner"), filepath.Join(outer, "inner-ro"), true))
	must(t, s.Delete(t.Context(), "n/outer"))
	if _, err := os.Lstat(outer); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("volume with nested subvolumes not deleted: %v", err)
	}
	must(t, s.Delete(t.Context(), "n"))

	// A store whose root is a directory on btrfs uses it directly and
	// mounts nothing, so its Unmount leaves the image alone.
	nested := mustOpen(t, Options{Root: filepath.Join(root, "nested")})
	if got, want := nested.Describe(), "btrfs subvolume snapshots on "+filepath.Join(root, "nested"); got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	must(t, nested.Unmount())
	if n := mountsAt(t, root); n != 1 {
		t.Fatalf("%d mounts at %s after a nested store's Unmount, want 1", n, root)
	}
	must(t, os.Remove(filepath.Join(root, "nested")))

	// A server restart re-adopts the mount instead of mounting again.
	must(t, s.Create(t.Context(), "persist/v"))
	s2 := mustOpen(t, opts)
	if s2.Method() != Btrfs || !strings.Contains(s2.Describe(), image) {
		t.Errorf("reopened: %s", s2.Describe())
	}
	if n := mountsAt(t, root); n != 1 {
		t.Errorf("%d mounts at %s after reopening, want 1", n, root)
	}

	// Busy: an open file keeps the filesystem mounted.
	f, err := os.Open(filepath.Join(root, "persist"))
	must(t, err)
	err = s2.Unmount()
	_ = f.Close()
	if err == nil || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("Unmount with an open file = %v, want a busy error", err)
	}
	if n := mountsAt(t, root); n != 1 {
		t.Fatalf("%d mounts at %s after a failed unmount, want 1", n, root)
	}
	must(t, s2.Unmount())
	must(t, s.Unmount()) // the other store's image is gone already: nil
	must(t, s2.Unmount())
	if n := mountsAt(t, root); n != 0 {
		t.Errorf("%d mounts at %s after Unmount", n, root)
	}
	if loops := loopsBackedBy(t, image); len(loops) != 0 {
		t.Errorf("loop devices still backed by the image after Unmount: %v", loops)
	}

	// The image, not created again, keeps the volumes.
	s3 := mustOpen(t, opts)
	if _, err := os.Stat(filepath.Join(root, "persist", "v")); err != nil {
		t.Errorf("volume lost across unmount and mount: %v", err)
	}
	if !strings.Contains(s3.why, "loop-mounted") || strings.Contains(s3.why, "created") {
		t.Errorf("reason after remount = %q", s3.why)
	}
	must(t, s3.Unmount())
	if n, loops := mountsAt(t, root), loopsBackedBy(t, image); n != 0 || len(loops) != 0 {
		t.Errorf("after Unmount: %d mounts, loop devices %v", n, loops)
	}
}

func TestBtrfsImageRefusesNonEmptyRoot(t *testing.T) {
	requireRoot(t)
	requireCommands(t, "mkfs.btrfs")
	dir := testDir(t)
	root, image := filepath.Join(dir, "volumes"), filepath.Join(dir, "volumes.img")
	ensureUnmounted(t, root, image)
	must(t, os.MkdirAll(filepath.Join(root, "deps"), 0o755))
	_, err := Open(t.Context(), Options{Root: root, Image: image, Logger: slogTest(t)})
	if err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Fatalf("Open over a non-empty root = %v, want a not-empty error", err)
	}
	if _, err := os.Stat(image); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("image created anyway: %v", err)
	}
}

func TestReflinkXFS(t *testing.T) {
	requireRoot(t)
	requireCommands(t, "mkfs.xfs", "mount")
	dir := testDir(t)
	image, mnt := filepath.Join(dir, "xfs.img"), filepath.Join(dir, "xfs")
	must(t, os.Mkdir(mnt, 0o755))
	f, err := os.Create(image)
	must(t, err)
	must(t, f.Truncate(320<<20)) // mkfs.xfs wants at least 300 MiB
	must(t, f.Close())
	if out, err := exec.Command("mkfs.xfs", "-q", "-m", "reflink=1", image).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs: %v: %s", err, out)
	}
	ensureUnmounted(t, mnt, image)
	if out, err := exec.Command("mount", "-o", "loop", image, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}

	root := filepath.Join(mnt, "volumes")
	s := mustOpen(t, Options{Root: root})
	if s.Method() != Reflink {
		t.Fatalf("Method = %q, want reflink (%s)", s.Method(), s.Describe())
	}
	if got, want := s.Describe(), "reflink copies on "+root+" (xfs)"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	exerciseStore(t, s)

	// The clone shares the snapshot's extents rather than copying them.
	clone := benchmarkClone(t, s, 100<<20)
	if !allShared(t, filepath.Join(clone, "big")) {
		t.Errorf("clone's extents are not shared with the snapshot")
	}
	must(t, s.Delete(t.Context(), "bench"))
	must(t, s.Delete(t.Context(), "snapshots"))
	must(t, s.Unmount()) // mounted nothing: nil
}

func TestCopyExt4(t *testing.T) {
	requireRoot(t)
	root := filepath.Join(testDir(t), "volumes")
	s := mustOpen(t, Options{Root: root})
	if s.Method() != Copy {
		t.Fatalf("Method = %q, want copy (%s)", s.Method(), s.Describe())
	}
	want := "plain copies in " + root + ": ext4 has no reflink and no btrfs image is configured; put the data dir on btrfs or XFS for constant-time restores"
	if got := s.Describe(); got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	exerciseStore(t, s)
	benchmarkClone(t, s, 20<<20)
	must(t, s.Unmount())

	// Symlinks in a volume are copied and deleted, never followed.
	outside := filepath.Join(filepath.Dir(root), "outside")
	must(t, os.Mkdir(outside, 0o755))
	must(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("x"), 0o600))
	must(t, s.Create(t.Context(), "evil"))
	must(t, os.Symlink(outside, filepath.Join(root, "evil", "link")))
	must(t, s.Clone(t.Context(), "evil", "evil-clone"))
	if target, err := os.Readlink(filepath.Join(root, "evil-clone", "link")); err != nil || target != outside {
		t.Errorf("cloned symlink: %q, %v", target, err)
	}
	must(t, s.Delete(t.Context(), "evil"))
	must(t, s.Delete(t.Context(), "evil-clone"))
	if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
		t.Errorf("Delete followed a symlink out of the volume: %v", err)
	}
}

// TestOpenChoice covers the choices and errors that need no image to be
// mounted, with the root and mkfs.btrfs checks faked where needed.
func TestOpenChoice(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name      string
		want      Method
		image     bool
		notRoot   bool
		noMkfs    bool
		method    Method // when Open succeeds
		describe  string // suffix after "plain copies in ROOT: "
		errSubstr string // when Open fails
	}{
		{name: "copy requested", want: Copy, image: true, method: Copy, describe: "the copy method was requested"},
		{name: "not root", image: true, notRoot: true, method: Copy,
			describe: "ext4 has no reflink and sandpit is not root, so it cannot mount a btrfs image; run as root or put the data dir on btrfs or XFS for constant-time restores"},
		{name: "no mkfs.btrfs", image: true, noMkfs: true, method: Copy,
			describe: "ext4 has no reflink and mkfs.btrfs is not installed, so sandpit cannot create a btrfs image; install btrfs-progs, or put the data dir on btrfs or XFS, for constant-time restores"},
		{name: "btrfs without image", want: Btrfs, errSubstr: "btrfs was requested, but ROOT is on ext4 and no btrfs image is configured; put the data dir on btrfs"},
		{name: "btrfs not root", want: Btrfs, image: true, notRoot: true, errSubstr: "btrfs was requested, but ROOT is on ext4 and sandpit is not root, so it cannot mount a btrfs image; run as root"},
		{name: "reflink on ext4", want: Reflink, errSubstr: "reflink was requested, but ROOT (ext4) cannot clone files: FICLONE: operation not supported; put the data dir on XFS"},
		{name: "unknown method", want: "zfs", errSubstr: `unknown method "zfs"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := testDir(t)
			root, image := filepath.Join(dir, "volumes"), ""
			if tt.image {
				image = filepath.Join(dir, "volumes.img")
			}
			if tt.notRoot {
				geteuid = func() int { return 1000 }
				t.Cleanup(func() { geteuid = os.Geteuid })
			}
			if tt.noMkfs {
				lookPath = func(string) (string, error) { return "", exec.ErrNotFound }
				t.Cleanup(func() { lookPath = exec.LookPath })
			}
			s, err := Open(t.Context(), Options{Root: root, Image: image, Want: tt.want, Logger: slogTest(t)})
			if tt.errSubstr != "" {
				want := strings.ReplaceAll(tt.errSubstr, "ROOT", root)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("Open = %v, want an error containing %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Method() != tt.method {
				t.Errorf("Method = %q, want %q", s.Method(), tt.method)
			}
			if got, want := s.Describe(), "plain copies in "+root+": "+tt.describe; got != want {
				t.Errorf("Describe = %q\nwant       %q", got, want)
			}
			if image != "" {
				if _, err := os.Stat(image); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("image created: %v", err)
				}
			}
		})
	}
}

func TestOpenValidates(t *testing.T) {
	for _, opts := range []Options{
		{},
		{Root: "relative/volumes"},
		{Root: "/var/tmp/x", ImageSize: -1},
		{Root: "/var/tmp/x", Image: "/var/tmp/x/volumes.img"},
	} {
		if _, err := Open(t.Context(), opts); err == nil {
			t.Errorf("Open(%+v) succeeded", opts)
		}
	}
}

func TestPath(t *testing.T) {
	s := &Store{root: "/data/volumes"}
	tests := []struct {
		rel, want string // want "" means rejected
	}{
		{"snapshots/snap-1", "/data/volumes/snapshots/snap-1"},
		{"deps/sb-1/db", "/data/volumes/deps/sb-1/db"},
		{"x", "/data/volumes/x"},
		{"", ""},
		{"/abs", ""},
		{"../x", ""},
		{"..", ""},
		{".", ""},
		{"a/../../b", ""},
		{"a/../b", ""},
		{"a//b", ""},
		{"a/./b", ""},
		{"a/", ""},
		{".clone-123", ""},
		{"deps/.hidden", ""},
		{"a\x00b", ""},
	}
	for _, tt := range tests {
		got, err := s.Path(tt.rel)
		if tt.want == "" {
			if err == nil {
				t.Errorf("Path(%q) = %q, want an error", tt.rel, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Path(%q) = %q, %v, want %q", tt.rel, got, err, tt.want)
		}
	}
}

func TestHelpers(t *testing.T) {
	for in, want := range map[string]string{
		`/var/tmp/a\040b`: "/var/tmp/a b",
		`/plain`:          "/plain",
		`/x\134y`:         `/x\y`,
		`/short\04`:       `/short\04`,
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
	mounts := []mount{{point: "/", fsType: "ext4"}, {point: "/var", fsType: "xfs"}, {point: "/var/lib/v", fsType: "btrfs"}}
	for dir, want := range map[string]string{"/var/tmp": "xfs", "/varx": "ext4", "/var/lib/v": "btrfs", "/var/lib/v/a": "btrfs"} {
		if got := fsTypeOf(mounts, dir); got != want {
			t.Errorf("fsTypeOf(%q) = %q, want %q", dir, got, want)
		}
	}
	for n, want := range map[int64]string{40 << 30: "40 GiB", 3 << 29: "1.5 GiB", 300 << 20: "300 MiB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
	size, err := imageSizeFor("/var/tmp/x.img", 0)
	if err != nil || size < gib || size%gib != 0 {
		t.Errorf("imageSizeFor = %d, %v; want a whole number of GiB, at least 1", size, err)
	}
}

// TestBtrfsABI checks the hand-written ioctl definitions against the
// _IOW/_IOR encoding and the kernel's struct sizes.
func TestBtrfsABI(t *testing.T) {
	iow := func(nr, size uintptr) uintptr { return 1<<30 | size<<16 | 0x94<<8 | nr }
	ior := func(nr, size uintptr) uintptr { return 2<<30 | size<<16 | 0x94<<8 | nr }
	if n := unsafe.Sizeof(btrfsVolArgs{}); n != 4096 {
		t.Errorf("sizeof btrfs_ioctl_vol_args = %d", n)
	}
	if n := unsafe.Sizeof(btrfsVolArgsV2{}); n != 4096 {
		t.Errorf("sizeof btrfs_ioctl_vol_args_v2 = %d", n)
	}
	for _, c := range []struct{ got, want uintptr }{
		{btrfsIocSubvolCreate, iow(14, unsafe.Sizeof(btrfsVolArgs{}))},
		{btrfsIocSnapDestroy, iow(15, unsafe.Sizeof(btrfsVolArgs{}))},
		{btrfsIocSnapCreateV2, iow(23, unsafe.Sizeof(btrfsVolArgsV2{}))},
		{btrfsIocSubvolGetflags, ior(25, 8)},
		{btrfsIocSubvolSetflags, iow(26, 8)},
	} {
		if c.got != c.want {
			t.Errorf("ioctl number %#x, want %#x", c.got, c.want)
		}
	}
}

// exerciseStore runs the life of a snapshot on s: a volume with
// PostgreSQL-like contents is frozen into a snapshot, cloned twice (at the
// same time), the clones are written to and compared, and everything is
// deleted again.
func exerciseStore(t *testing.T, s *Store) {
	t.Helper()
	ctx := t.Context()
	path := func(rel string) string {
		t.Helper()
		p, err := s.Path(rel)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	must(t, s.Create(ctx, "work/v1"))
	v1 := path("work/v1")
	if info, err := os.Stat(v1); err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("created volume: %v, %v; want mode 0700", info, err)
	}
	if err := s.Create(ctx, "work/v1"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create of an existing volume = %v, want ErrExist", err)
	}
	populate(t, v1)

	must(t, s.Freeze(ctx, "work/v1", "snapshots/x"))
	snap := path("snapshots/x")
	if _, err := os.Lstat(v1); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("frozen volume still at its old name: %v", err)
	}
	if s.Method() == Btrfs {
		err := os.WriteFile(filepath.Join(snap, "new"), nil, 0o600)
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("writing into a frozen btrfs snapshot = %v, want EROFS", err)
		}
	}

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, dst := range []string{"deps/sb-1/db", "deps/sb-2/db"} {
		wg.Go(func() { errs[i] = s.Clone(ctx, "snapshots/x", dst) })
	}
	wg.Wait()
	must(t, errors.Join(errs...))
	c1, c2 := path("deps/sb-1/db"), path("deps/sb-2/db")
	sameTree(t, snap, c1)
	sameTree(t, snap, c2)
	if s.Method() == Btrfs {
		info, err := os.Lstat(c1)
		must(t, err)
		if !isSubvolumeRoot(info) {
			t.Errorf("btrfs clone %s is not a subvolume", c1)
		}
	}

	// Writes in one clone are seen neither in the other nor in the
	// snapshot; and the clone is writable.
	must(t, os.WriteFile(filepath.Join(c1, "PG_VERSION"), []byte("changed\n"), 0o600))
	must(t, os.WriteFile(filepath.Join(c1, "base", "new"), []byte("new"), 0o600))
	for _, dir := range []string{snap, c2} {
		if data, err := os.ReadFile(filepath.Join(dir, "PG_VERSION")); err != nil || string(data) != "16\n" {
			t.Errorf("%s/PG_VERSION = %q, %v after writing the clone's", dir, data, err)
		}
		if _, err := os.Lstat(filepath.Join(dir, "base", "new")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s/base/new: %v, want it missing", dir, err)
		}
	}

	// A clone of a writable volume, not a snapshot.
	must(t, s.Clone(ctx, "deps/sb-1/db", "deps/sb-3/db"))
	if data, _ := os.ReadFile(filepath.Join(path("deps/sb-3/db"), "PG_VERSION")); string(data) != "changed\n" {
		t.Errorf("clone of a writable volume has PG_VERSION %q", data)
	}

	// Lists and sizes.
	if got, err := s.List(ctx, "deps"); err != nil || !slices.Equal(got, []string{"sb-1", "sb-2", "sb-3"}) {
		t.Errorf("List(deps) = %q, %v", got, err)
	}
	if got, err := s.List(ctx, "missing"); err != nil || got == nil || len(got) != 0 {
		t.Errorf("List(missing) = %#v, %v; want an empty non-nil slice", got, err)
	}
	if got, err := s.List(ctx, ""); err != nil || !slices.Equal(got, []string{"deps", "snapshots", "work"}) {
		t.Errorf("List(\"\") = %q, %v", got, err)
	}
	if got, err := s.Size(ctx, "snapshots/x"); err != nil || got != int64(len("16\n")+len(relData)) {
		t.Errorf("Size = %d, %v; want %d", got, err, len("16\n")+len(relData))
	}

	// Failures leave things as they were.
	if err := s.Clone(ctx, "snapshots/x", "deps/sb-1/db"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Clone onto an existing volume = %v, want ErrExist", err)
	}
	if data, _ := os.ReadFile(filepath.Join(c1, "PG_VERSION")); string(data) != "changed\n" {
		t.Errorf("failed Clone changed the existing destination: PG_VERSION %q", data)
	}
	if err := s.Clone(ctx, "snapshots/missing", "deps/sb-9/db"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Clone of a missing volume = %v, want ErrNotExist", err)
	}
	if _, err := os.Lstat(path("deps/sb-9/db")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("failed Clone left its destination: %v", err)
	}
	if err := s.Clone(ctx, "snapshots/x", "snapshots/x/inner"); err == nil {
		t.Errorf("Clone into itself succeeded")
	}
	if err := s.Freeze(ctx, "deps/sb-2/db", "snapshots/x"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Freeze onto an existing snapshot = %v, want ErrExist", err)
	}
	if _, err := os.Lstat(c2); err != nil {
		t.Errorf("failed Freeze moved its source: %v", err)
	}

	// Delete everything: a clone, the read-only snapshot, and a plain
	// directory holding two volumes.
	for _, rel := range []string{"deps/sb-1/db", "snapshots/x", "deps", "snapshots", "work", "snapshots/x"} {
		if err := s.Delete(ctx, rel); err != nil {
			t.Errorf("Delete(%s): %v", rel, err)
		}
	}
	entries, err := os.ReadDir(s.Root())
	if err != nil || len(entries) != 0 {
		t.Errorf("after deleting everything, root holds %v (%v)", entries, err)
	}
}

const relData = "some table data"

// populate fills dir like a tiny PostgreSQL data directory owned by an
// unprivileged user: files 0600, directories 0700, a symlink, old mtimes.
func populate(t *testing.T, dir string) {
	t.Helper()
	must(t, os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("16\n"), 0o600))
	must(t, os.Mkdir(filepath.Join(dir, "base"), 0o700))
	must(t, os.WriteFile(filepath.Join(dir, "base", "16384"), []byte(relData), 0o640))
	must(t, os.Symlink("base", filepath.Join(dir, "pg_tblspc_link")))
	ts := []unix.Timespec{unix.NsecToTimespec(testTime.UnixNano()), unix.NsecToTimespec(testTime.UnixNano())}
	for _, rel := range []string{"PG_VERSION", "base/16384", "pg_tblspc_link", "base", "."} {
		p := filepath.Join(dir, rel)
		must(t, os.Lchown(p, testUID, testGID))
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// sameTree checks that b has a's entries with the same type, mode, owner,
// mtime, contents and symlink targets, and that files keep testTime.
func sameTree(t *testing.T, a, b string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(a, func(pa string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		n++
		rel, _ := filepath.Rel(a, pa)
		pb := filepath.Join(b, rel)
		ia, err := os.Lstat(pa)
		if err != nil {
			return err
		}
		ib, err := os.Lstat(pb)
		if err != nil {
			return err
		}
		sa, sb := statOf(ia), statOf(ib)
		if ia.Mode() != ib.Mode() || sa.Uid != sb.Uid || sa.Gid != sb.Gid || !ia.ModTime().Equal(ib.ModTime()) {
			t.Errorf("%s: %v %d:%d %v, clone has %v %d:%d %v", rel, ia.Mode(), sa.Uid, sa.Gid, ia.ModTime(), ib.Mode(), sb.Uid, sb.Gid, ib.ModTime())
		}
		if sb.Uid != testUID || sb.Gid != testGID {
			t.Errorf("%s: owner %d:%d, want %d:%d", rel, sb.Uid, sb.Gid, testUID, testGID)
		}
		if rel != "." && !ib.IsDir() && !ib.ModTime().Equal(testTime) {
			t.Errorf("%s: mtime %v, want %v", rel, ib.ModTime(), testTime)
		}
		switch {
		case ia.Mode()&fs.ModeSymlink != 0:
			ta, _ := os.Readlink(pa)
			tb, _ := os.Readlink(pb)
			if ta != tb {
				t.Errorf("%s: symlink to %q, clone's to %q", rel, ta, tb)
			}
		case ia.Mode().IsRegular():
			da, _ := os.ReadFile(pa)
			db, _ := os.ReadFile(pb)
			if !bytes.Equal(da, db) {
				t.Errorf("%s: contents differ", rel)
			}
		}
		return nil
	})
	must(t, err)
	if n != 5 {
		t.Errorf("walked %d entries of %s, want 5", n, a)
	}
	wantModes := map[string]fs.FileMode{".": fs.ModeDir | 0o700, "PG_VERSION": 0o600, "base": fs.ModeDir | 0o700, "base/16384": 0o640}
	for rel, want := range wantModes {
		if info, err := os.Lstat(filepath.Join(b, rel)); err != nil || info.Mode() != want {
			t.Errorf("%s in clone: %v, %v; want mode %v", rel, info, err, want)
		}
	}
}

// benchmarkClone freezes a volume holding one file of size bytes and logs
// how long freezing and cloning it take (no timed assertions: machines
// differ). It returns the clone's path.
func benchmarkClone(t *testing.T, s *Store, size int) string {
	t.Helper()
	ctx := t.Context()
	must(t, s.Create(ctx, "bench/src"))
	src, _ := s.Path("bench/src")
	f, err := os.Create(filepath.Join(src, "big"))
	must(t, err)
	buf := bytes.Repeat([]byte("sandpit!"), 1<<17) // 1 MiB, not zeros
	for written := 0; written < size; written += len(buf) {
		_, err := f.Write(buf[:min(len(buf), size-written)])
		must(t, err)
	}
	must(t, f.Close())

	start := time.Now()
	must(t, s.Freeze(ctx, "bench/src", "snapshots/bench"))
	freeze := time.Since(start)
	var clones []time.Duration
	for _, dst := range []string{"bench/clone", "bench/clone2"} {
		start = time.Now()
		must(t, s.Clone(ctx, "snapshots/bench", dst))
		clones = append(clones, time.Since(start).Round(time.Microsecond))
	}
	t.Logf("%s: freeze of a volume with a %d MB file took %v; two clones of it took %v", s.Method(), size>>20, freeze.Round(time.Microsecond), clones)
	dst, _ := s.Path("bench/clone")
	return dst
}

// allShared reports whether every extent of the file at path is shared
// with another file (FIEMAP_EXTENT_SHARED), as a reflink copy's are.
func allShared(t *testing.T, path string) bool {
	t.Helper()
	const (
		fsIocFiemap        = 0xc020660b // _IOWR('f', 11, struct fiemap)
		fiemapFlagSync     = 0x1
		fiemapExtentShared = 0x2000
		fiemapExtentLast   = 0x1
		maxExtents         = 64
	)
	type extent struct {
		logical, physical, length uint64
		_                         [2]uint64
		flags                     uint32
		_                         [3]uint32
	}
	type fiemap struct {
		start, length                          uint64
		flags, mappedExtents, extentCount, res uint32
		extents                                [maxExtents]extent
	}
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	m := fiemap{length: ^uint64(0), flags: fiemapFlagSync, extentCount: maxExtents}
	must(t, ioctl(int(f.Fd()), fsIocFiemap, unsafe.Pointer(&m)))
	if m.mappedExtents == 0 {
		return false
	}
	for _, e := range m.extents[:m.mappedExtents] {
		if e.flags&fiemapExtentShared == 0 {
			return false
		}
	}
	return true
}

func statOf(info os.FileInfo) *syscall.Stat_t {
	return info.Sys().(*syscall.Stat_t)
}

func slogTest(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
