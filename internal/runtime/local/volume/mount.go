package volume

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const gib = 1 << 30

// mount is one line of /proc/self/mountinfo.
type mount struct {
	point  string // mount point
	fsType string
	source string // e.g. /dev/loop3
}

// readMounts parses /proc/self/mountinfo, in mount order (a later mount on
// the same point hides the earlier ones).
func readMounts() ([]mount, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	var mounts []mount
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// id parent major:minor root point options [optional...] - fstype source superoptions
		f := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 || sep+2 >= len(f) {
			continue
		}
		mounts = append(mounts, mount{
			point:  unescapeMount(f[4]),
			fsType: f[sep+1],
			source: unescapeMount(f[sep+2]),
		})
	}
	return mounts, nil
}

// unescapeMount undoes the octal escapes (\040 for space and so on) the
// kernel uses in the mount table.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if o := s[i+1 : i+4]; isOctal(o) {
				b.WriteByte((o[0]-'0')<<6 | (o[1]-'0')<<3 | (o[2] - '0'))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return true
}

// topMountAt returns the visible mount whose mount point is exactly dir.
func topMountAt(mounts []mount, dir string) (mount, bool) {
	for i := len(mounts) - 1; i >= 0; i-- {
		if mounts[i].point == dir {
			return mounts[i], true
		}
	}
	return mount{}, false
}

// fsTypeOf returns the type of the filesystem holding dir ("ext4"), or
// "an unknown filesystem".
func fsTypeOf(mounts []mount, dir string) string {
	best, bestLen := "", -1
	for _, m := range mounts {
		p := m.point
		if (dir == p || p == "/" || strings.HasPrefix(dir, p+"/")) && len(p) >= bestLen {
			best, bestLen = m.fsType, len(p)
		}
	}
	if best == "" {
		return "an unknown filesystem"
	}
	return best
}

// loopBackingFile returns the file behind a loop device such as
// /dev/loop3, or "" if dev is not an attached loop device.
func loopBackingFile(dev string) string {
	name := filepath.Base(dev)
	if !strings.HasPrefix(dev, "/dev/loop") || !strings.HasPrefix(name, "loop") {
		return ""
	}
	data, err := os.ReadFile(filepath.Join("/sys/block", name, "loop", "backing_file"))
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(strings.TrimSpace(string(data)), " (deleted)")
}

// resolve returns path with symlinks resolved as far as it exists, since
// the kernel reports resolved paths in the mount table and in
// backing_file.
func resolve(path string) string {
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r
	}
	return path
}

// imageMounts returns the mounts of image (a resolved path) through a loop
// device.
func imageMounts(mounts []mount, image string) []mount {
	var out []mount
	for _, m := range mounts {
		if b := loopBackingFile(m.source); b != "" && b == image {
			out = append(out, m)
		}
	}
	return out
}

// imageSizeFor picks the size of a new image: the requested one, or 80% of
// the free space where the image goes, rounded down to a GiB, at least
// 1 GiB.
func imageSizeFor(image string, want int64) (int64, error) {
	if want > 0 {
		return want, nil
	}
	dir := filepath.Dir(image)
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("size btrfs image %s: free space of %s: %w", image, dir, err)
	}
	free := int64(st.Bavail) * st.Bsize
	if free < gib {
		return 0, fmt.Errorf("size btrfs image %s: only %s is free on the filesystem holding %s, and the image needs at least 1 GiB; free some space or set an explicit image size", image, formatSize(free), dir)
	}
	size := free / 10 * 8 / gib * gib
	return max(size, gib), nil
}

// createImage makes a sparse file of size bytes at image and formats it as
// btrfs. On failure nothing is left at image.
func createImage(ctx context.Context, log *slog.Logger, image string, size int64) (err error) {
	if err := os.MkdirAll(filepath.Dir(image), 0o755); err != nil {
		return fmt.Errorf("create btrfs image %s: %w", image, err)
	}
	f, err := os.OpenFile(image, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create btrfs image %s: %w", image, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(image)
		}
	}()
	if err := f.Truncate(size); err != nil {
		_ = f.Close()
		return fmt.Errorf("create btrfs image %s (%s): %w", image, formatSize(size), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create btrfs image %s: %w", image, err)
	}
	start := time.Now()
	// No -f: the file is new, so there is no old filesystem to override.
	out, err := exec.CommandContext(ctx, "mkfs.btrfs", "-q", image).CombinedOutput()
	if err != nil {
		return fmt.Errorf("format btrfs image %s: mkfs.btrfs: %w: %s", image, err, strings.TrimSpace(string(out)))
	}
	log.Debug("created btrfs image", "image", image, "size", size, "took", time.Since(start))
	return nil
}

// mountImage loop-mounts image at root.
func mountImage(ctx context.Context, image, root string) error {
	// discard=async punches holes in the sparse image when files are
	// deleted, so deleted snapshots give their space back to the host.
	cmd := exec.CommandContext(ctx, "mount", "-t", "btrfs", "-o", "loop,noatime,discard=async", image, root)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("mount btrfs image %s at %s: %w: %s", image, root, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// checkEmpty fails unless dir is an empty directory, so an image is never
// mounted over volumes that would then be hidden.
func checkEmpty(dir, image string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("mount btrfs image %s at %s: %w", image, dir, err)
	}
	if len(entries) == 0 {
		return nil
	}
	return fmt.Errorf("mount btrfs image %s at %s: %s is not empty (it holds %q and %d more entries) and is not that image, so mounting would hide its contents; move them away or empty it, or configure no image to keep using it as it is",
		image, dir, dir, entries[0].Name(), len(entries)-1)
}

// unmount unmounts the image at root and waits for the kernel to release
// the loop device behind it (mount -o loop sets autoclear, which detaches
// the device when the filesystem lets go of it).
func unmount(root, image string) error {
	mounts, err := readMounts()
	if err != nil {
		return fmt.Errorf("unmount volume image at %s: %w", root, err)
	}
	m, ok := topMountAt(mounts, root)
	if !ok || loopBackingFile(m.source) != image {
		return nil // already unmounted, by another Store on the same image say
	}
	if err := unix.Unmount(root, 0); err != nil {
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("unmount volume image %s at %s: it is busy: a process (a sandbox's PostgreSQL, or a shell whose working directory is inside) still uses it; stop the sandboxes using volumes and retry", image, root)
		}
		return fmt.Errorf("unmount volume image %s at %s: %w", image, root, err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for loopBackingFile(m.source) == image {
		if time.Now().After(deadline) {
			// Autoclear did not happen (the loop device was set up without
			// it, or the filesystem is still mounted in another mount
			// namespace); try an explicit detach.
			out, err := exec.Command("losetup", "-d", m.source).CombinedOutput()
			if err != nil {
				return fmt.Errorf("unmounted volume image %s from %s, but its loop device %s is still attached (is the image mounted in another mount namespace?): losetup -d: %w: %s", image, root, m.source, err, strings.TrimSpace(string(out)))
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// isNotExist is errors.Is(err, fs.ErrNotExist), shortened.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// formatSize renders bytes as "40 GiB", "1.5 GiB" or "300 MiB".
func formatSize(n int64) string {
	switch {
	case n >= gib && n%gib == 0:
		return fmt.Sprintf("%d GiB", n/gib)
	case n >= gib:
		return fmt.Sprintf("%.1f GiB", float64(n)/gib)
	default:
		return fmt.Sprintf("%d MiB", n>>20)
	}
}
