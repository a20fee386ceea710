#!/usr/bin/env bash
# Launch benchmark: installs what it needs, then prints the table.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
install_runtime_deps
exec go run ./bench/launch "$@"
