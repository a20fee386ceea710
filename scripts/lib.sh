# Shared by demo.sh and test.sh: install what Sandpit needs on Debian.
# shellcheck shell=bash

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
		echo "need root to run: $*" >&2; return 1
	fi
}

# apt_install PKG...: install the packages that are missing.
apt_install() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "==> installing ${missing[*]}" >&2
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# install_runtime_deps: git for checkouts, PostgreSQL 15 for the example's
# database, curl to look at the result, passwd for useradd, btrfs-progs for
# the snapshot store's btrfs image (constant-time database seeding).
install_runtime_deps() {
	command -v go >/dev/null || { echo "Go is required (https://go.dev/doc/install); it is not on PATH" >&2; return 1; }
	local pkgs=(git ca-certificates curl passwd btrfs-progs)
	[ -x /usr/lib/postgresql/15/bin/postgres ] || pkgs+=(postgresql-15)
	apt_install "${pkgs[@]}"
}

# install_test_deps: what the tests need beyond the runtime: xfsprogs to
# test the snapshot store's reflink method on a real XFS filesystem.
install_test_deps() {
	install_runtime_deps
	apt_install xfsprogs
}
