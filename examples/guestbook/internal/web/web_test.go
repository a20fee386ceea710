package web_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sandpit.dev/sandpit/examples/guestbook/internal/api"
	"sandpit.dev/sandpit/examples/guestbook/internal/pgtest"
	"sandpit.dev/sandpit/examples/guestbook/internal/store"
	"sandpit.dev/sandpit/examples/guestbook/internal/web"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// stack is a real api over a real database, and the web front end in front
// of it, both on httptest servers.
type stack struct {
	web, api string
	db       string
}

func newStack(t *testing.T, pg *pgtest.Server, sandbox string) stack {
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
	apiSrv := httptest.NewServer(api.Handler(st, sandbox, quiet))
	t.Cleanup(apiSrv.Close)

	// The config file as Sandpit would render it from the template.
	cfgPath := filepath.Join(t.TempDir(), "config.json")
	cfgJSON := `{"sandbox": "` + sandbox + `", "api": "` + apiSrv.URL + `", "public_url": "http://app--` + sandbox + `.localhost:7701"}`
	if err := os.WriteFile(cfgPath, []byte(cfgJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := web.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	webSrv := httptest.NewServer(web.Handler(web.Options{
		Config: cfg, ConfigPath: cfgPath, API: web.NewClient(cfg.API), Log: quiet,
		GitRef: "main", GitSHA: "0123456789abcdef0123",
	}))
	t.Cleanup(webSrv.Close)
	return stack{web: webSrv.URL, api: apiSrv.URL, db: db}
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func post(t *testing.T, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := noRedirect.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func mustContain(t *testing.T, page string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(page, w) {
			t.Errorf("page does not contain %q", w)
		}
	}
	if t.Failed() {
		t.Logf("page:\n%s", page)
	}
}

func TestWeb(t *testing.T) {
	pg := pgtest.Start(t)

	t.Run("page shows the sandbox, the database's facts and the seeded entries", func(t *testing.T) {
		s := newStack(t, pg, "pr-42")
		status, page := get(t, s.web+"/")
		if status != 200 {
			t.Fatalf("GET / = %d\n%s", status, page)
		}
		mustContain(t, page,
			"<title>Guestbook · pr-42</title>",          // from config.json
			`<code id="database">`+s.db+`</code>`,       // current_database(), via the api
			`id="server-version" title="PostgreSQL 15.`, // version(), via the api
			`<dd id="entry-count">2</dd>`,
			"Welcome to sandbox pr-42!", // the seed migrate wrote
			"http://app--pr-42.localhost:7701",
			"main @ 0123456789ab",
			`<form method="post" action="/entries">`,
		)
		// Newest first: the welcome precedes the older seed.
		if i, j := strings.Index(page, "Welcome to sandbox"), strings.Index(page, "the template&#39;s init step"); i < 0 || j < 0 || i > j {
			t.Errorf("entries not newest first (welcome at %d, init-step seed at %d)", i, j)
		}
	})

	t.Run("the form posts through the api and redirects back", func(t *testing.T) {
		s := newStack(t, pg, "demo")
		resp, body := post(t, s.web+"/entries", url.Values{
			"author":  {"Margaret"},
			"message": {"Hello <script>alert(1)</script> from a form"},
		})
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("POST /entries = %d\n%s", resp.StatusCode, body)
		}
		loc := resp.Header.Get("Location")
		if !regexp.MustCompile(`^/#entry-\d+$`).MatchString(loc) {
			t.Fatalf("Location = %q, want /#entry-<id>", loc)
		}
		id := strings.TrimPrefix(loc, "/#")

		_, page := get(t, s.web+loc)
		mustContain(t, page,
			`id="`+id+`"`,
			"<strong class=\"author\">Margaret</strong>",
			"Hello &lt;script&gt;alert(1)&lt;/script&gt; from a form",
			`<dd id="entry-count">3</dd>`,
		)
		if strings.Contains(page, "<script>alert(1)") {
			t.Error("the message was not HTML-escaped")
		}
		// And it really is in the database, seen through the api.
		_, entries := get(t, s.api+"/api/entries?limit=1")
		if !strings.Contains(entries, `"author": "Margaret"`) {
			t.Errorf("api's newest entry is not the posted one: %s", entries)
		}
	})

	t.Run("a refused entry re-renders the form with the api's reason", func(t *testing.T) {
		s := newStack(t, pg, "demo")
		resp, page := post(t, s.web+"/entries", url.Values{"author": {"Ada"}, "message": {"   "}})
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("POST /entries with an empty message = %d, want 400", resp.StatusCode)
		}
		mustContain(t, page, "Not saved:</strong> message is required", `value="Ada"`, "Welcome to sandbox demo!")
		if _, info := get(t, s.api+"/api/info"); !strings.Contains(info, `"entries": 2`) {
			t.Errorf("a refused entry was stored: %s", info)
		}
	})

	t.Run("an oversized form is refused", func(t *testing.T) {
		s := newStack(t, pg, "demo")
		resp, _ := post(t, s.web+"/entries", url.Values{"author": {"Ada"}, "message": {strings.Repeat("x", web.MaxForm)}})
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("POST /entries with %d bytes = %d, want 413", web.MaxForm, resp.StatusCode)
		}
	})

	t.Run("healthz, 404 and 405", func(t *testing.T) {
		s := newStack(t, pg, "demo")
		if status, body := get(t, s.web+"/healthz"); status != 200 || strings.TrimSpace(body) != "ok" {
			t.Errorf("GET /healthz = %d %q", status, body)
		}
		if status, _ := get(t, s.web+"/nope"); status != 404 {
			t.Errorf("GET /nope = %d, want 404", status)
		}
		if status, _ := get(t, s.web+"/entries"); status != 405 {
			t.Errorf("GET /entries = %d, want 405", status)
		}
	})
}

func TestPageWhenTheAPIIsDown(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	h := web.Handler(web.Options{Config: web.Config{Sandbox: "lonely"}, API: web.NewClient(deadURL), Log: quiet})
	srv := httptest.NewServer(h)
	defer srv.Close()

	status, page := get(t, srv.URL+"/")
	if status != http.StatusBadGateway {
		t.Fatalf("GET / with the api down = %d, want 502", status)
	}
	mustContain(t, page, "<title>Guestbook · lonely</title>", "The api service did not answer.", "connection refused")

	resp, page := post(t, srv.URL+"/entries", url.Values{"author": {"Ada"}, "message": {"hi"}})
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("POST /entries with the api down = %d, want 502", resp.StatusCode)
	}
	mustContain(t, page, "the api service failed", `value="Ada"`, ">hi</textarea>")
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "config.json")
	os.WriteFile(p, []byte(`{"sandbox":"s1","api":"http://127.0.0.1:1","public_url":"http://app--s1.localhost:7701","extra":1}`), 0o644)
	c, err := web.LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c != (web.Config{Sandbox: "s1", API: "http://127.0.0.1:1", PublicURL: "http://app--s1.localhost:7701"}) {
		t.Fatalf("config = %+v", c)
	}
	os.WriteFile(p, []byte(`{"sandbox":`), 0o644)
	if _, err := web.LoadConfig(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("broken config: err = %v, want one naming the file", err)
	}
	if _, err := web.LoadConfig(filepath.Join(dir, "missing.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing config: err = %v, want not-exist", err)
	}
}
