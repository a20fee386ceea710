#!/usr/bin/env bash
# The main job on a fresh machine: install what is needed, build sandpit,
# start the server, and launch the guestbook example as sandbox "demo",
# reachable at its own URL.
#
#   ./scripts/demo.sh            (re-running is safe: it reuses what runs)
#
# Environment: SANDPIT_DATA_DIR (default /var/lib/sandpit as root,
# ~/.local/share/sandpit otherwise), SANDPIT_LISTEN (127.0.0.1:7700),
# SANDPIT_PROXY_LISTEN (127.0.0.1:7701).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

install_runtime_deps

echo "==> building bin/sandpit" >&2
go build -o bin/sandpit ./cmd/sandpit
SP=$PWD/bin/sandpit

if [ "$(id -u)" -eq 0 ]; then
	export SANDPIT_DATA_DIR=${SANDPIT_DATA_DIR:-/var/lib/sandpit}
else
	export SANDPIT_DATA_DIR=${SANDPIT_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/sandpit}
fi
LISTEN=${SANDPIT_LISTEN:-127.0.0.1:7700}
PROXY=${SANDPIT_PROXY_LISTEN:-127.0.0.1:7701}
export SANDPIT_SERVER=http://$LISTEN
mkdir -p "$SANDPIT_DATA_DIR"

if curl -fsS "$SANDPIT_SERVER/healthz" >/dev/null 2>&1; then
	echo "==> a sandpit server already answers at $SANDPIT_SERVER; using it" >&2
else
	echo "==> starting sandpit serve (log: $SANDPIT_DATA_DIR/server.log)" >&2
	nohup "$SP" serve --data-dir "$SANDPIT_DATA_DIR" --listen "$LISTEN" --proxy-listen "$PROXY" \
		>>"$SANDPIT_DATA_DIR/server.log" 2>&1 &
	for _ in $(seq 1 100); do
		curl -fsS "$SANDPIT_SERVER/healthz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	curl -fsS "$SANDPIT_SERVER/healthz" >/dev/null || { tail -20 "$SANDPIT_DATA_DIR/server.log" >&2; exit 1; }
fi

"$SP" template apply -f examples/guestbook/sandpit.yaml
if "$SP" get demo >/dev/null 2>&1; then
	echo "==> sandbox demo exists; waiting for it" >&2
	phase=$("$SP" get demo -o json | sed -n 's/.*"phase": "\([A-Za-z]*\)".*/\1/p' | head -1)
	if [ "$phase" = Failed ]; then
		"$SP" delete demo --wait
		"$SP" create demo --template guestbook --wait
	fi
else
	echo "==> creating sandbox demo (the first build downloads and compiles Go modules: a minute or two)" >&2
	"$SP" create demo --template guestbook --wait
fi

port=${PROXY##*:}
url="http://app--demo.localhost:$port/"
echo "==> checking $url through the endpoint proxy" >&2
page=$(curl -fsS --retry 5 --retry-connrefused -H "Host: app--demo.localhost" "http://$PROXY/")
echo "$page" | grep -o 'Welcome to sandbox demo!' >/dev/null || { echo "unexpected page:" >&2; echo "$page" | head -40 >&2; exit 1; }
info=$(curl -fsS -H "Host: app--demo.localhost" "http://$PROXY/api/info")

cat <<MSG

Sandbox demo is Ready at $url
(*.localhost resolves to this machine in browsers; with curl:
 curl -H 'Host: app--demo.localhost' http://$PROXY/)

Its API says it reads its own PostgreSQL:
$info

Next:
  export SANDPIT_DATA_DIR=$SANDPIT_DATA_DIR
  bin/sandpit get demo
  bin/sandpit logs demo api -f
  bin/sandpit exec demo db -- psql -d guestbook -c 'select * from entries'
  bin/sandpit delete demo --wait
MSG
