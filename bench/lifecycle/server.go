package main

import (
	"context"
	"log"

	"sandpit.dev/sandpit/bench/internal/harness"
	"sandpit.dev/sandpit/client"
)

// server is a real `sandpit serve` started from a freshly built binary.
type server struct{ *harness.Server }

// startServer builds ./cmd/sandpit into work and starts it on free loopback
// ports with its data dir in work, as bench/launch does. Snapshots and
// databases are kept with plain copies (--snapshot-store copy), so the
// server loop-mounts nothing. At exit it turns the warm pool off, deletes
// every sandbox and waits until they are gone (stopping the server alone
// would leave their processes running), then stops the server with
// SIGTERM.
func startServer(repo, work string) (*server, error) {
	s, err := harness.Start(harness.Config{
		Repo: repo, Work: work,
		Args: []string{"--home-dir", *home, "--port-range", *portRange, "--snapshot-store", "copy", "--log-level", "info"},
		// Without a pool first, deleting a pool sandbox would make the
		// server create another.
		BeforeDelete: func(ctx context.Context, c *client.Client) {
			if poolApplied.Load() {
				if _, err := applyTemplate(ctx, c, lifecycleNoPool); err != nil {
					log.Printf("clean-up: turn the pool off: %v", err)
				}
			}
		},
	})
	if err != nil {
		return nil, err
	}
	return &server{s}, nil
}

// proxyGet sends GET / for endpoint app of sandbox name through the
// server's endpoint proxy on a new connection.
func (s *server) proxyGet(ctx context.Context, name string) (httpResult, error) {
	return httpGet(ctx, "http://"+s.ProxyAddr+"/", "app--"+name+".localhost")
}
