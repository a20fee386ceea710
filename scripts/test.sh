#!/usr/bin/env bash
# Install what the tests need and run them all: vet, staticcheck, the unit
# and integration tests (real SQLite, real PostgreSQL, real processes), the
# end-to-end tests (a real sandpit server launching the example), the
# example app's own tests, and short fuzz runs of the template decoder,
# webhook payload parsing and API request decoding.
#
#   ./scripts/test.sh
#
# FUZZTIME (default 20s) sets the fuzz runs' total length; SKIP_STATICCHECK=1 skips
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
# FUZZTIME is the whole fuzz run: half for the template decoder, a quarter
# each for webhook payloads and API requests (a FUZZTIME not in whole
# seconds, such as 1m or 1000x, is given to each).
fuzztime=${FUZZTIME:-20s}
parse_time=$fuzztime other_time=$fuzztime
if [[ $fuzztime =~ ^([0-9]+)s$ ]]; then
	parse_time=$(((BASH_REMATCH[1] + 1) / 2))s
	other_time=$(((BASH_REMATCH[1] + 3) / 4))s
fi
echo "==> fuzzing the template decoder for $parse_time" >&2
go test -run='^$' -fuzz=FuzzParse -fuzztime="$parse_time" ./internal/template
echo "==> fuzzing webhook payload parsing for $other_time" >&2
go test -run='^$' -fuzz=FuzzWebhook -fuzztime="$other_time" ./internal/github
echo "==> fuzzing API request decoding for $other_time" >&2
go test -run='^$' -fuzz=FuzzDecodeRequest -fuzztime="$other_time" ./internal/api
echo "==> all tests passed" >&2
