#!/usr/bin/env bash
# Kubernetes runtime benchmark (1000 sandboxes created and deleted through
# the kube runtime against kubectl apply per sandbox): builds the control
# plane if it is missing, then prints the table (and writes it to
# bench/out/kube-<date>.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
install_kube_tools
exec go run ./bench/kube "$@"
