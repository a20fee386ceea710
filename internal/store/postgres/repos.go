package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
)

const repoColumns = `name, url, template, every_ns, created_by, created_at, status, github, webhook_secret, allow_fork_secrets`

// normRepoStatus keeps the status's times at the store's precision, so
// what a write returns equals what reads return.
func normRepoStatus(st sandbox.RepoStatus) sandbox.RepoStatus {
	st.LastSyncAt = normTimePtr(st.LastSyncAt)
	st.LastSuccessAt = normTimePtr(st.LastSuccessAt)
	return st
}

// CreateRepo implements store.Store.
func (s *Store) CreateRepo(ctx context.Context, r *sandbox.Repo) error {
	switch {
	case r.Name == "":
		return errors.New("create repository binding: name is empty")
	case r.URL == "":
		return fmt.Errorf("create repository binding %q: url is empty", r.Name)
	case r.Template == "":
		return fmt.Errorf("create repository binding %q: template is empty", r.Name)
	case r.Every < 0:
		return fmt.Errorf("create repository binding %q: period %s is negative", r.Name, r.Every)
	}
	c := *r
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now()
	} else {
		c.CreatedAt = normTime(c.CreatedAt)
	}
	c.Status = normRepoStatus(c.Status)
	st, err := json.Marshal(c.Status)
	if err != nil {
		return fmt.Errorf("create repository binding %q: %w", r.Name, err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO repos (`+repoColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		c.Name, c.URL, c.Template, int64(c.Every), c.CreatedBy, c.CreatedAt, string(st), c.GitHub, c.WebhookSecret, c.AllowForkSecrets)
	if _, ok := uniqueViolation(err); ok {
		return fmt.Errorf("create repository binding %q: the name is taken: %w", c.Name, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create repository binding %q: %w", c.Name, err)
	}
	*r = c
	return nil
}

// GetRepo implements store.Store.
func (s *Store) GetRepo(ctx context.Context, name string) (*sandbox.Repo, error) {
	r, err := scanRepo(s.pool.QueryRow(ctx, `SELECT `+repoColumns+` FROM repos WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get repository binding %q: %w", name, err)
	}
	return r, nil
}

// ListRepos implements store.Store.
func (s *Store) ListRepos(ctx context.Context) ([]*sandbox.Repo, error) {
	out, err := queryAll(ctx, s, scanRepo, `SELECT `+repoColumns+` FROM repos ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list repository bindings: %w", err)
	}
	return out, nil
}

// UpdateRepoStatus implements store.Store.
func (s *Store) UpdateRepoStatus(ctx context.Context, name string, st sandbox.RepoStatus) error {
	b, err := json.Marshal(normRepoStatus(st))
	if err != nil {
		return fmt.Errorf("update repository binding %q: %w", name, err)
	}
	if err := mustAffect(s.pool.Exec(ctx, `UPDATE repos SET status = $1 WHERE name = $2`, string(b), name)); err != nil {
		return fmt.Errorf("update repository binding %q: %w", name, err)
	}
	return nil
}

// DeleteRepo implements store.Store.
func (s *Store) DeleteRepo(ctx context.Context, name string) error {
	if err := mustAffect(s.pool.Exec(ctx, `DELETE FROM repos WHERE name = $1`, name)); err != nil {
		return fmt.Errorf("delete repository binding %q: %w", name, err)
	}
	return nil
}

func scanRepo(sc scanner) (*sandbox.Repo, error) {
	var r sandbox.Repo
	var every int64
	var status []byte
	if err := sc.Scan(&r.Name, &r.URL, &r.Template, &every, &r.CreatedBy, &r.CreatedAt, &status, &r.GitHub, &r.WebhookSecret, &r.AllowForkSecrets); err != nil {
		return nil, err
	}
	r.Every = sandbox.Duration(time.Duration(every))
	r.CreatedAt = r.CreatedAt.UTC()
	if err := json.Unmarshal(status, &r.Status); err != nil {
		return nil, fmt.Errorf("repository binding %q: status: %w", r.Name, err)
	}
	return &r, nil
}
