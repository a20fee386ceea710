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
# test the snapshot store's reflink method on a real XFS filesystem, a
# Kubernetes control plane for the kube runtime (install_kube_tools), and
# Chromium for the web console's end-to-end tests (internal/browsertest
# drives it headless; fonts-dejavu-core gives it a font to render text with,
# which the contrast and text-size checks and the screenshots rely on).
install_test_deps() {
	install_runtime_deps
	apt_install xfsprogs chromium fonts-dejavu-core
	install_kube_tools
}

# install_kube_tools: a real Kubernetes control plane for the kube runtime's
# tests and bench/kube: etcd from Debian, and kube-apiserver,
# kube-controller-manager, kube-scheduler and kubectl built from
# k8s.io/kubernetes at the version tools/kube pins (about 4-8 minutes cold
# on 2 cores, then cached), plus kwok to play the kubelet of a fake node.
# The binaries go to $SANDPIT_KUBE_BIN (default /var/tmp/sandpit-kube/<version>),
# which is checked first, so later runs take no time.
KUBE_VERSION=v1.31.4
KWOK_VERSION=v0.6.1
install_kube_tools() {
	apt_install etcd-server
	local bin=${SANDPIT_KUBE_BIN:-/var/tmp/sandpit-kube/$KUBE_VERSION}
	mkdir -p "$bin"
	local missing=()
	for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
		[ -x "$bin/$c" ] || missing+=("k8s.io/kubernetes/cmd/$c")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "==> building ${missing[*]##*/} $KUBE_VERSION into $bin (minutes the first time)" >&2
		(cd tools/kube && go build -o "$bin/" "${missing[@]}")
	fi
	if [ ! -x "$bin/kwok" ]; then
		echo "==> building kwok $KWOK_VERSION into $bin" >&2
		GOBIN=$bin go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
	fi
}
