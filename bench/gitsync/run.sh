#!/usr/bin/env bash
# Git sync benchmark (branch reconciler passes over 50 and 500 branches,
# trigger → Provisioning): installs what it needs, then prints the table (and
# writes it to bench/out/gitsync-<date>.md). Run as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
install_runtime_deps
exec go run ./bench/gitsync "$@"
