// Command web is the guestbook's HTML front end. It reads config.json (which
// Sandpit renders from the template's files: section) and talks to the api
// service; it never touches the database.
//
// Environment: LISTEN (default 127.0.0.1:3000), API_URL (default: "api" in
// the config), CONFIG (default config.json), GIT_REF, GIT_SHA, LOG_LEVEL.
// Logs are JSON lines on stdout.
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"sandpit.dev/sandpit/examples/guestbook/internal/serve"
	"sandpit.dev/sandpit/examples/guestbook/internal/web"
)

func main() {
	log := serve.Logger(os.Stdout, "web")
	ctx, stop := serve.SignalContext(context.Background())
	err := run(ctx, log, os.Args[1:])
	stop()
	if err != nil {
		log.Error("exiting", "err", err.Error())
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, args []string) error {
	if len(args) > 0 {
		fmt.Fprintln(os.Stderr, "usage: web   (configured by the environment: LISTEN, API_URL, CONFIG, LOG_LEVEL)")
		os.Exit(2)
	}
	path := serve.Getenv("CONFIG", "config.json")
	cfg, err := web.LoadConfig(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		log.Warn("no config file: using the environment only", "path", path)
	case err != nil:
		return err
	}
	if cfg.Sandbox == "" {
		cfg.Sandbox = serve.Getenv("SANDBOX_NAME", "local")
	}
	apiURL := serve.Getenv("API_URL", cfg.API)
	if apiURL == "" {
		return errors.New(`no api URL: set API_URL or "api" in the config file`)
	}
	addr := serve.Getenv("LISTEN", "127.0.0.1:3000")
	log.Info("starting", "sandbox", cfg.Sandbox, "api", apiURL, "public_url", cfg.PublicURL, "config", path)
	return serve.Run(ctx, log, addr, web.Handler(web.Options{
		Config:     cfg,
		ConfigPath: path,
		API:        web.NewClient(apiURL),
		Log:        log,
		GitRef:     os.Getenv("GIT_REF"),
		GitSHA:     os.Getenv("GIT_SHA"),
	}))
}
