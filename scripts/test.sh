#!/usr/bin/env bash
# Install what the tests need and run them all: vet, staticcheck, the unit
# and integration tests (real SQLite, real PostgreSQL, real processes), the
# end-to-end tests (a real sandpit server launching the example), the
# example app's own tests, and a short fuzz run of the template decoder.
#
#   ./scripts/test.sh
#
# FUZZTIME (default 20s) sets the fuzz run's length; SKIP_STATICCHECK=1 skips
# staticcheck (it is downloaded from the Go module proxy).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

install_test_deps
export CI=${CI:-true} # tests that need PostgreSQL fail rather than skip

echo "==> go vet" >&2
go vet ./...
if [ "${SKIP_STATICCHECK:-}" != 1 ]; then
	echo "==> staticcheck" >&2
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
fi
echo "==> go test (race detector on)" >&2
go test -race -count=1 -timeout 25m ./...
echo "==> example app tests" >&2
(cd examples/guestbook && go vet ./... && go test -count=1 ./...)
echo "==> fuzzing the template decoder for ${FUZZTIME:-20s}" >&2
go test -run='^$' -fuzz=FuzzParse -fuzztime="${FUZZTIME:-20s}" ./internal/template
echo "==> all tests passed" >&2
