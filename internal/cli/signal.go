package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// SignalContext is cancelled by the first SIGINT or SIGTERM, so commands
// shut down gracefully (sandpit ci run deletes its sandbox); a second one
// exits at once with 130.
func SignalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ch
		cancel()
		<-ch
		fmt.Fprintln(os.Stderr, "forced exit")
		os.Exit(130)
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}
