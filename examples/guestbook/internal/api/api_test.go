package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"sandpit.dev/sandpit/examples/guestbook/internal/api"
	"sandpit.dev/sandpit/examples/guestbook/internal/guestbook"
	"sandpit.dev/sandpit/examples/guestbook/internal/pgtest"
	"sandpit.dev/sandpit/examples/guestbook/internal/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newAPI serves the API over a fresh, migrated database and returns its
// URL and the database's name.
func newAPI(t *testing.T, pg *pgtest.Server, sandbox string) (string, string) {
	t.Helper()
	db := pg.CreateDatabase(t)
	st, err := store.Open(context.Background(), pg.URL(db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if _, err := st.Migrate(context.Background(), sandbox); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler(st, sandbox, quiet))
	t.Cleanup(srv.Close)
	return srv.URL, db
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, url, contentType, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v
}

func TestAPI(t *testing.T) {
	pg := pgtest.Start(t)

	t.Run("healthz answers 200 when the database does", func(t *testing.T) {
		url, _ := newAPI(t, pg, "demo")
		r := do(t, "GET", url+"/healthz", "", "")
		if r.status != 200 {
			t.Fatalf("GET /healthz = %d %s", r.status, r.body)
		}
	})

	t.Run("list, create, list again", func(t *testing.T) {
		url, _ := newAPI(t, pg, "demo")

		r := do(t, "GET", url+"/api/entries", "", "")
		if r.status != 200 {
			t.Fatalf("GET /api/entries = %d %s", r.status, r.body)
		}
		seeded := decode[[]guestbook.Entry](t, r)
		if len(seeded) != 2 || seeded[0].Message != "Welcome to sandbox demo!" {
			t.Fatalf("seeded entries = %+v", seeded)
		}

		before := time.Now().Add(-time.Minute)
		r = do(t, "POST", url+"/api/entries", "application/json; charset=utf-8",
			`{"author": "  Grace ", "message": "Hello <b>from</b> the test\r\nsecond line"}`)
		if r.status != 201 {
			t.Fatalf("POST /api/entries = %d %s", r.status, r.body)
		}
		e := decode[guestbook.Entry](t, r)
		if e.ID == 0 || e.Author != "Grace" || e.Message != "Hello <b>from</b> the test\nsecond line" || e.CreatedAt.Before(before) {
			t.Fatalf("created = %+v", e)
		}
		var raw map[string]any
		_ = json.Unmarshal(r.body, &raw)
		for _, k := range []string{"id", "author", "message", "created_at"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("entry JSON has no %q: %s", k, r.body)
			}
		}

		list := decode[[]guestbook.Entry](t, do(t, "GET", url+"/api/entries", "", ""))
		if len(list) != 3 || list[0].ID != e.ID {
			t.Fatalf("after create, entries = %+v; want 3 with the new one first", list)
		}
		list = decode[[]guestbook.Entry](t, do(t, "GET", url+"/api/entries?limit=1", "", ""))
		if len(list) != 1 || list[0].ID != e.ID {
			t.Fatalf("limit=1: %+v", list)
		}
	})

	t.Run("info reports the sandbox and the database's own facts", func(t *testing.T) {
		url, db := newAPI(t, pg, "pr-7")
		r := do(t, "GET", url+"/api/info", "", "")
		if r.status != 200 {
			t.Fatalf("GET /api/info = %d %s", r.status, r.body)
		}
		i := decode[guestbook.Info](t, r)
		if i.Sandbox != "pr-7" || i.Database != db || !strings.HasPrefix(i.ServerVersion, "PostgreSQL ") || i.Entries != 2 {
			t.Fatalf("info = %+v, want sandbox pr-7, database %s, a PostgreSQL version, 2 entries", i, db)
		}
		do(t, "POST", url+"/api/entries", "application/json", `{"author":"a","message":"b"}`)
		if i := decode[guestbook.Info](t, do(t, "GET", url+"/api/info", "", "")); i.Entries != 3 {
			t.Fatalf("entries after one create = %d, want 3", i.Entries)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		url, _ := newAPI(t, pg, "demo")
		cases := []struct {
			name, method, path, ct, body string
			status                       int
			says                         string
		}{
			{"empty author", "POST", "/api/entries", "application/json", `{"author":" ","message":"hi"}`, 400, "author is required"},
			{"missing message", "POST", "/api/entries", "application/json", `{"author":"Ada"}`, 400, "message is required"},
			{"message too long", "POST", "/api/entries", "application/json", `{"author":"Ada","message":"` + strings.Repeat("x", guestbook.MaxMessage+1) + `"}`, 400, "too long"},
			{"unknown field", "POST", "/api/entries", "application/json", `{"author":"Ada","message":"hi","admin":true}`, 400, "unknown field"},
			{"not JSON", "POST", "/api/entries", "application/json", `author=Ada`, 400, "JSON object"},
			{"two objects", "POST", "/api/entries", "application/json", `{"author":"a","message":"b"}{"author":"c","message":"d"}`, 400, "unexpected data"},
			{"wrong content type", "POST", "/api/entries", "application/x-www-form-urlencoded", `author=Ada&message=hi`, 415, "application/json"},
			{"too large", "POST", "/api/entries", "application/json", `{"author":"Ada","message":"` + strings.Repeat("x", api.MaxBody) + `"}`, 413, "larger than"},
			{"bad limit", "GET", "/api/entries?limit=0", "", "", 400, "limit"},
			{"huge limit", "GET", "/api/entries?limit=100000", "", "", 400, "limit"},
			{"wrong method", "DELETE", "/api/entries", "", "", 405, ""},
			{"unknown path", "GET", "/api/nope", "", "", 404, "no such endpoint"},
		}
		for _, c := range cases {
			r := do(t, c.method, url+c.path, c.ct, c.body)
			if r.status != c.status || !strings.Contains(string(r.body), c.says) {
				t.Errorf("%s: %s %s = %d %s; want %d saying %q", c.name, c.method, c.path, r.status, r.body, c.status, c.says)
			}
		}
		// None of them stored anything.
		if i := decode[guestbook.Info](t, do(t, "GET", url+"/api/info", "", "")); i.Entries != 2 {
			t.Fatalf("bad requests changed the entry count to %d", i.Entries)
		}
	})

	t.Run("healthz answers 503 when the database does not", func(t *testing.T) {
		st, err := store.Open(context.Background(), pg.URL(pg.CreateDatabase(t)))
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(api.Handler(st, "demo", quiet))
		defer srv.Close()
		if r := do(t, "GET", srv.URL+"/healthz", "", ""); r.status != 200 {
			t.Fatalf("healthz before close = %d", r.status)
		}
		st.Close()
		r := do(t, "GET", srv.URL+"/healthz", "", "")
		if r.status != 503 || !strings.Contains(string(r.body), "database unavailable") {
			t.Fatalf("healthz with the pool closed = %d %s, want 503", r.status, r.body)
		}
		if r := do(t, "GET", srv.URL+"/api/entries", "", ""); r.status != 500 || strings.Contains(string(r.body), "closed pool") {
			t.Fatalf("entries with the pool closed = %d %s, want a 500 that does not leak the cause", r.status, r.body)
		}
	})
}
