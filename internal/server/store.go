package server

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"sandpit.dev/sandpit/internal/store"
	"sandpit.dev/sandpit/internal/store/postgres"
	"sandpit.dev/sandpit/internal/store/sqlite"
)

// openStore opens the store Config.Store names: "" or "sqlite" is SQLite
// in <data-dir>/sandpit.db (the default), a postgres:// or postgresql:// URL
// is that PostgreSQL database, which several servers may share. The URL's
// password is never logged nor put in an error.
func openStore(ctx context.Context, spec, dataDir string, log *slog.Logger) (store.Store, error) {
	switch {
	case spec == "" || spec == "sqlite":
		st, err := sqlite.Open(ctx, filepath.Join(dataDir, "sandpit.db"), log)
		if err != nil {
			return nil, err
		}
		return st, nil
	case isPostgres(spec):
		log.Info("store is PostgreSQL", "database", postgres.Redact(spec))
		st, err := postgres.Open(ctx, spec, log)
		if err != nil {
			return nil, err
		}
		return st, nil
	default:
		return nil, fmt.Errorf("store %q: want sqlite (the default, <data-dir>/sandpit.db) or a PostgreSQL URL, e.g. --store postgres://sandpit@db.example.com:5432/sandpit", postgres.Redact(spec))
	}
}
