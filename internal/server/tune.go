package server

import (
	"os"
	"runtime/debug"
)

// GCPercent is the server's garbage collector target unless GOGC says
// otherwise. The endpoint proxy allocates a little per request and the
// server's live heap is small, so collecting less often buys proxy
// throughput cheaply: measured in bench/proxy, GOGC=400 cut the proxy's CPU
// per request from 28 to 24 µs (docs/BENCHMARKS.md).
const GCPercent = 400

// MemoryLimit is a soft ceiling (unless GOMEMLIMIT is set) that makes the
// collector work harder before a raised GOGC could let the heap balloon.
const MemoryLimit = 1 << 30

// TuneRuntime applies GCPercent and MemoryLimit where the environment does
// not set them. `sandpit serve` calls it at start, and the proxy benchmark
// calls it in its proxy process so it measures the proxy as served.
func TuneRuntime() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(MemoryLimit)
	}
}
