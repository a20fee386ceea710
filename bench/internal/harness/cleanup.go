package harness

import (
	"log"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
)

// cleanup holds what AtExit registered: servers, clusters, work
// directories.
var cleanup struct {
	sync.Mutex
	fns []func()
}

// AtExit registers f to be run by RunCleanup.
func AtExit(f func()) {
	cleanup.Lock()
	defer cleanup.Unlock()
	cleanup.fns = append(cleanup.fns, f)
}

// RunCleanup runs what AtExit registered, newest first, once: at the end
// of a run, on a fatal error and on Ctrl-C. A second caller waits until the
// first is done.
func RunCleanup() {
	cleanup.Lock() // held throughout
	defer cleanup.Unlock()
	for i := len(cleanup.fns) - 1; i >= 0; i-- {
		cleanup.fns[i]()
	}
	cleanup.fns = nil
}

// interrupted is set on Ctrl-C: errors caused by the clean-up itself are
// not worth reporting then, and nothing new should be started.
var interrupted atomic.Bool

// Interrupt marks the run interrupted.
func Interrupt() { interrupted.Store(true) }

// Interrupted reports whether the run was interrupted.
func Interrupted() bool { return interrupted.Load() }

// Fatalf logs (unless the run was interrupted), runs the clean-up and
// exits with status 1.
func Fatalf(format string, args ...any) {
	if !Interrupted() {
		log.Printf(format, args...)
	}
	RunCleanup()
	os.Exit(1)
}

// Check is Fatalf for a non-nil err.
func Check(err error) {
	if err != nil {
		Fatalf("%v", err)
	}
}

// HandleSignals makes SIGINT and SIGTERM end the run in order: the first
// marks it interrupted, calls notice (which logs what happens now), runs
// the clean-up, then after (if not nil), and exits with status 130. A
// second signal meanwhile exits at once.
func HandleSignals(notice func(os.Signal), after func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		Interrupt()
		notice(s)
		go func() { <-sigs; os.Exit(130) }()
		RunCleanup()
		if after != nil {
			after()
		}
		os.Exit(130)
	}()
}
