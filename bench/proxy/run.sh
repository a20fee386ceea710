#!/usr/bin/env bash
# Runs the endpoint proxy benchmark, installing wrk and nginx first when they
# are missing (Debian/Ubuntu; needs root or sudo). Extra arguments go to the
# benchmark, e.g.: bench/proxy/run.sh -rounds 5 -d 15s
set -euo pipefail
cd "$(dirname "$0")/../.."

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	echo "installing ${missing[*]}" >&2
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
	# The Debian package starts a system nginx on port 80; the benchmark
	# runs its own, so stop that one if it was just started.
	if [[ " ${missing[*]} " == *" nginx "* ]] && command -v systemctl >/dev/null; then
		$sudo systemctl stop nginx 2>/dev/null || true
	fi
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
exec go run ./bench/proxy -nginx "$nginx_bin" "$@"
