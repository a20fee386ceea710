package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"sandpit.dev/sandpit/internal/runtime/local/volume"
)

// OpenVolumes opens the copy-on-write store that holds dependencies' data
// and snapshots under dataDir/volumes. want is "btrfs", "reflink", "copy",
// or "" / "auto" for the best the host allows: a btrfs data dir; else, as
// root, a btrfs image file (dataDir/volumes.img, sparse, imageSize bytes or
// 80% of the free space) loop-mounted there; else reflink copies; else
// plain copies.
func OpenVolumes(ctx context.Context, dataDir, want string, imageSize int64, log *slog.Logger) (*volume.Store, error) {
	opts := volume.Options{Root: filepath.Join(dataDir, "volumes"), ImageSize: imageSize, Logger: log}
	switch want {
	case "", "auto":
	case string(volume.Btrfs), string(volume.Reflink), string(volume.Copy):
		opts.Want = volume.Method(want)
	default:
		return nil, fmt.Errorf("--snapshot-store %q: use auto, btrfs, reflink or copy", want)
	}
	if os.Geteuid() == 0 {
		opts.Image = filepath.Join(dataDir, "volumes.img")
	}
	v, err := volume.Open(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	return v, nil
}
