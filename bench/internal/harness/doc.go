// Package harness is what the benchmarks under bench/ that drive a real
// `sandpit serve` share, so that each keeps only what it measures:
//
//   - the server: Start builds ./cmd/sandpit into the run's work
//     directory and starts it on free loopback ports, with the serve flags
//     the benchmark passes (port range, log level, snapshot store, …),
//     waits until /healthz answers and connects a client with the admin
//     token; Stop deletes every sandbox and snapshot, then stops it with
//     SIGTERM and waits for it to exit;
//   - the clean-up registry: AtExit registers how to undo what was
//     started (the server registers Stop itself), RunCleanup runs that
//     once, newest first, at the end, and Fatalf, Check and the handler
//     HandleSignals installs run it on a fatal error and on Ctrl-C;
//   - small host helpers: FreePort, RepoRoot, MountsUnder, UnmountUnder
//     and WriteResult (the Markdown result in bench/out).
//
// It is for benchmarks, not tests: a fatal error logs, cleans up and exits
// the process.
package harness
