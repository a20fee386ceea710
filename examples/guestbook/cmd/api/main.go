// Command api is the guestbook's JSON API over PostgreSQL.
//
//	api            serve HTTP on $LISTEN (default 127.0.0.1:8080)
//	api migrate    create or update the schema, seed an empty table, exit
//
// Environment: DATABASE_URL (required), LISTEN, SANDBOX_NAME, LOG_LEVEL.
// Logs are JSON lines on stdout.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"sandpit.dev/sandpit/examples/guestbook/internal/api"
	"sandpit.dev/sandpit/examples/guestbook/internal/serve"
	"sandpit.dev/sandpit/examples/guestbook/internal/store"
)

const usage = `usage: api [serve|migrate]

  serve     serve the HTTP JSON API on $LISTEN (the default)
  migrate   create or update the schema and seed an empty table, then exit

environment:
  DATABASE_URL  postgres://user:password@host:port/database (required)
  LISTEN        host:port to listen on (default 127.0.0.1:8080)
  SANDBOX_NAME  the sandbox's name, reported by /api/info and used in the seed
  LOG_LEVEL     debug, info, warn or error (default info)
`

func main() {
	log := serve.Logger(os.Stdout, "api")
	ctx, stop := serve.SignalContext(context.Background())
	err := run(ctx, log, os.Args[1:], os.Stderr)
	stop()
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "api: %s\n\n%s", ue.msg, usage)
		os.Exit(2)
	case err != nil:
		log.Error("exiting", "err", err.Error())
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(ctx context.Context, log *slog.Logger, args []string, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	if len(args) > 1 {
		return usageError{fmt.Sprintf("%s takes no arguments", cmd)}
	}
	switch cmd {
	case "serve", "migrate":
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stderr, usage)
		return nil
	default:
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}

	dbURL := os.Getenv("DATABASE_URL")
	if dbURL == "" {
		return errors.New("DATABASE_URL is not set: set it to postgres://user:password@host:port/database")
	}
	sandbox := os.Getenv("SANDBOX_NAME")
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer st.Close()

	if cmd == "migrate" {
		if err := st.WaitReady(ctx, log, 30*time.Second); err != nil {
			return err
		}
		res, err := st.Migrate(ctx, sandbox)
		if err != nil {
			return err
		}
		log.Info("migrated", "applied", res.Applied, "schema_version", res.Version, "seeded", res.Seeded, "sandbox", sandbox)
		return nil
	}

	addr := serve.Getenv("LISTEN", "127.0.0.1:8080")
	log.Info("starting", "sandbox", sandbox)
	return serve.Run(ctx, log, addr, api.Handler(st, sandbox, log))
}
