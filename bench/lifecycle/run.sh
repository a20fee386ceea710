#!/usr/bin/env bash
# Lifecycle benchmark (wake, pool claim, memory): installs what it needs,
# then prints the table (and writes it to bench/out/lifecycle-<date>.md).
# Run as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
install_runtime_deps
exec go run ./bench/lifecycle "$@"
