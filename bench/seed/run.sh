#!/usr/bin/env bash
# Seeding benchmark: installs what it needs, then prints the table (and
# writes it to bench/out/seed-<date>.md). Run as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
install_runtime_deps
# procps: pgrep for the final check; btrfs-progs: the server keeps snapshots
# on a btrfs image when the data dir is not on btrfs or XFS.
apt_install procps btrfs-progs
exec go run ./bench/seed "$@"
