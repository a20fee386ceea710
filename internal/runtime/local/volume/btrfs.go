package volume

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The btrfs ioctl ABI, from linux/btrfs.h. golang.org/x/sys/unix has the
// filesystem magic but none of the subvolume ioctls.
const (
	btrfsPathNameMax   = 4087
	btrfsSubvolNameMax = 4039

	// btrfsFirstFreeObjectID is the inode number of every subvolume's root
	// directory; no other directory on btrfs has it.
	btrfsFirstFreeObjectID = 256

	btrfsSubvolRdonly = 1 << 1

	// _IOW(0x94, nr, struct btrfs_ioctl_vol_args) and friends; both
	// argument structs are 4096 bytes (checked in the tests).
	btrfsIocSubvolCreate   = 0x5000940e // nr 14, btrfs_ioctl_vol_args
	btrfsIocSnapDestroy    = 0x5000940f // nr 15, btrfs_ioctl_vol_args
	btrfsIocSnapCreateV2   = 0x50009417 // nr 23, btrfs_ioctl_vol_args_v2
	btrfsIocSubvolGetflags = 0x80089419 // _IOR nr 25, __u64
	btrfsIocSubvolSetflags = 0x4008941a // _IOW nr 26, __u64
)

// btrfsVolArgs is struct btrfs_ioctl_vol_args.
type btrfsVolArgs struct {
	fd   int64
	name [btrfsPathNameMax + 1]byte
}

// btrfsVolArgsV2 is struct btrfs_ioctl_vol_args_v2 (the size/qgroup_inherit
// union as its unused[4] arm; the name arm of the second union).
type btrfsVolArgsV2 struct {
	fd      int64
	transid uint64
	flags   uint64
	unused  [4]uint64
	name    [btrfsSubvolNameMax + 1]byte
}

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}

// openDir opens a directory for use as an ioctl target.
func openDir(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// setName copies a single path component into an ioctl name field.
func setName(dst []byte, path string) error {
	name := filepath.Base(path)
	if len(name) >= len(dst) {
		return fmt.Errorf("name %q is too long for btrfs", name)
	}
	copy(dst, name)
	return nil
}

// createSubvolume makes an empty subvolume at path, whose parent exists.
func createSubvolume(path string) error {
	var args btrfsVolArgs
	if err := setName(args.name[:], path); err != nil {
		return fmt.Errorf("create btrfs subvolume %s: %w", path, err)
	}
	parent, err := openDir(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("create btrfs subvolume %s: %w", path, err)
	}
	defer unix.Close(parent)
	if err := ioctl(parent, btrfsIocSubvolCreate, unsafe.Pointer(&args)); err != nil {
		return fmt.Errorf("create btrfs subvolume %s: %w", path, err)
	}
	return nil
}

// snapshotSubvolume makes dst (whose parent exists) a snapshot of the
// subvolume src, read-only if readOnly.
func snapshotSubvolume(src, dst string, readOnly bool) error {
	var args btrfsVolArgsV2
	if err := setName(args.name[:], dst); err != nil {
		return fmt.Errorf("snapshot btrfs subvolume %s to %s: %w", src, dst, err)
	}
	if readOnly {
		args.flags = btrfsSubvolRdonly
	}
	srcFD, err := openDir(src)
	if err != nil {
		return fmt.Errorf("snapshot btrfs subvolume %s to %s: %w", src, dst, err)
	}
	defer unix.Close(srcFD)
	parent, err := openDir(filepath.Dir(dst))
	if err != nil {
		return fmt.Errorf("snapshot btrfs subvolume %s to %s: %w", src, dst, err)
	}
	defer unix.Close(parent)
	args.fd = int64(srcFD)
	if err := ioctl(parent, btrfsIocSnapCreateV2, unsafe.Pointer(&args)); err != nil {
		return fmt.Errorf("snapshot btrfs subvolume %s to %s: %w", src, dst, err)
	}
	return nil
}

// destroySubvolumeAt deletes the subvolume name in the directory dirFD
// (path is for messages) with everything in it, read-only or not. It works
// for root; other users need the user_subvol_rm_allowed mount option (the
// caller falls back otherwise). Space is reclaimed in the background by the
// btrfs cleaner.
func destroySubvolumeAt(dirFD int, name, path string) error {
	var args btrfsVolArgs
	if err := setName(args.name[:], name); err != nil {
		return fmt.Errorf("delete btrfs subvolume %s: %w", path, err)
	}
	if err := ioctl(dirFD, btrfsIocSnapDestroy, unsafe.Pointer(&args)); err != nil {
		return fmt.Errorf("delete btrfs subvolume %s: %w", path, err)
	}
	return nil
}

// setSubvolumeReadOnly sets or clears the read-only flag of the subvolume
// at path.
func setSubvolumeReadOnly(path string, readOnly bool) error {
	fd, err := openDir(path)
	if err != nil {
		return fmt.Errorf("make btrfs subvolume %s %s: %w", path, roWord(readOnly), err)
	}
	defer unix.Close(fd)
	return setSubvolumeReadOnlyFD(fd, path, readOnly)
}

// setSubvolumeReadOnlyFD is setSubvolumeReadOnly on an open subvolume root.
func setSubvolumeReadOnlyFD(fd int, path string, readOnly bool) error {
	var flags uint64
	if err := ioctl(fd, btrfsIocSubvolGetflags, unsafe.Pointer(&flags)); err != nil {
		return fmt.Errorf("make btrfs subvolume %s %s: get flags: %w", path, roWord(readOnly), err)
	}
	want := flags &^ btrfsSubvolRdonly
	if readOnly {
		want |= btrfsSubvolRdonly
	}
	if want == flags {
		return nil
	}
	if err := ioctl(fd, btrfsIocSubvolSetflags, unsafe.Pointer(&want)); err != nil {
		return fmt.Errorf("make btrfs subvolume %s %s: %w", path, roWord(readOnly), err)
	}
	return nil
}

func roWord(readOnly bool) string {
	if readOnly {
		return "read-only"
	}
	return "writable"
}

// isSubvolumeRoot reports whether info, from an Lstat on a btrfs
// filesystem, is the root directory of a subvolume.
func isSubvolumeRoot(info os.FileInfo) bool {
	if !info.IsDir() {
		return false
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	return ok && st.Ino == btrfsFirstFreeObjectID
}
