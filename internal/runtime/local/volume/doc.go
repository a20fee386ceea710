// Package volume owns the copy-on-write store that dependency data
// directories (a sandbox's PostgreSQL data directory, say) and their named
// snapshots live in, so that seeding a dependency from a snapshot takes
// constant time instead of a copy proportional to the data.
//
// A Store is a directory (Root, normally <data-dir>/volumes) holding volumes
// addressed by slash-separated relative names such as "snapshots/snap-1" or
// "deps/sb-1/db". Open picks the best mechanism the host offers, once, and
// every operation then uses it:
//
//   - Btrfs: volumes are btrfs subvolumes, clones are writable subvolume
//     snapshots and frozen snapshots carry the read-only subvolume flag.
//     Clone time does not depend on the size of the data (1-2 ms for an
//     initdb'd data directory with a 200 MB table, on an idle disk).
//     When Root is not on btrfs and the server runs as root, Open creates a
//     sparse btrfs image file and loop-mounts it at Root (mount -o
//     loop,noatime,discard=async, so freed space goes back to the host
//     file). The mount deliberately outlives the server: sandboxes'
//     PostgreSQL processes keep running across server restarts, so the
//     server never unmounts it on shutdown and a restarted server re-adopts
//     the existing mount. Only tests and uninstall call Unmount.
//   - Reflink: volumes are plain directories; clones copy the tree and share
//     file data with FICLONE (XFS with reflink=1, btrfs). Time grows with the
//     number of files, not their size (about 50 ms for 1,000 files).
//   - Copy: plain recursive copies, the last resort; time grows with size
//     (0.2 to 1 s for an initdb'd data directory with a 200 MB table).
//
// Both btrfs snapshots and FICLONE first write out the source's dirty data,
// so Freeze does that (syncfs) for Btrfs and Reflink: the cost lands on
// taking a snapshot, and the first restore from it is as fast as the rest.
//
// Subvolume create, snapshot, delete and the read-only flag use btrfs ioctls
// directly (BTRFS_IOC_SUBVOL_CREATE, BTRFS_IOC_SNAP_CREATE_V2,
// BTRFS_IOC_SNAP_DESTROY, BTRFS_IOC_SUBVOL_GETFLAGS/SETFLAGS), defined in
// btrfs.go because golang.org/x/sys/unix lacks them: they avoid a fork and
// exec of the btrfs CLI per operation, which matters for restore latency.
// The btrfs CLI is not used at all. Making and mounting the image shells out
// to mkfs.btrfs and mount(8) (loop-device setup is not worth reimplementing
// for a once-per-host operation); unmounting uses umount(2).
//
// Copies (Reflink, Copy, and Btrfs clones of a source that is a plain
// directory) preserve owner, group, mode, access and modification times and
// symlinks, which is all a PostgreSQL data directory holds. They do not
// preserve hard links (each link becomes its own file), extended attributes
// or ACLs; sockets are skipped and other special files are an error. A copy
// is built under a hidden temporary name and renamed into place, so a
// failed or interrupted clone never leaves a partial volume at its
// destination. Name components starting with "." are therefore reserved and
// List hides them.
//
// Volume contents belong to an unprivileged user who may change them while
// the server, as root, copies or deletes them; those walks go through
// directory file descriptors and never follow symlinks, so they cannot be
// steered outside the volume.
//
// Methods are safe for concurrent use on different volumes. The package is
// Linux-specific and imports nothing from this module.
package volume
