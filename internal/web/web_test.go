package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"sandpit.dev/sandpit/internal/auth"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
	"sandpit.dev/sandpit/internal/testenv"
)

const soloTemplate = `apiVersion: sandpit/v1
name: solo
services:
  main:
    run: exec sleep 1000
`

// browser is an HTTP client that keeps cookies and does not follow
// redirects, so tests see each one.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type resp struct {
	code int
	h    http.Header
	body string
}

func (b *browser) do(method, path string, body string, hdr map[string]string) resp {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	if method == "POST" && body != "" && !strings.HasPrefix(body, "{") {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	r, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer r.Body.Close()
	data, _ := io.ReadAll(r.Body)
	return resp{r.StatusCode, r.Header, string(data)}
}

var hiddenCSRF = regexp.MustCompile(`name="csrf" value="([^"]*)"`)
var metaCSRF = regexp.MustCompile(`<meta name="csrf-token" content="([^"]*)">`)

// signIn signs b in with token and returns the page's CSRF token.
func (b *browser) signIn(token string) string {
	b.t.Helper()
	page := b.do("GET", "/sign-in", "", nil)
	m := hiddenCSRF.FindStringSubmatch(page.body)
	if page.code != 200 || m == nil {
		b.t.Fatalf("sign-in page: %d\n%s", page.code, page.body)
	}
	r := b.do("POST", "/sign-in", url.Values{"csrf": {m[1]}, "token": {token}, "next": {"/usage"}}.Encode(), nil)
	if r.code != http.StatusSeeOther || r.h.Get("Location") != "/usage" {
		b.t.Fatalf("sign-in: %d %s\n%s", r.code, r.h.Get("Location"), r.body)
	}
	home := b.do("GET", "/", "", nil)
	mm := metaCSRF.FindStringSubmatch(home.body)
	if home.code != 200 || mm == nil || mm[1] == "" {
		b.t.Fatalf("console after sign-in: %d\n%s", home.code, home.body)
	}
	return mm[1]
}

var consolePages = []string{"/", "/sandboxes/demo", "/new", "/templates", "/templates/solo", "/snapshots", "/usage"}

func TestSignedOutBrowsersGoToSignIn(t *testing.T) {
	s := testenv.Start(t)
	b := newBrowser(t, s.URL)
	for _, p := range consolePages {
		r := b.do("GET", p, "", nil)
		if want := "/sign-in?next=" + url.QueryEscape(p); r.code != http.StatusSeeOther || r.h.Get("Location") != want {
			t.Errorf("GET %s signed out: %d to %q, want 303 to %q", p, r.code, r.h.Get("Location"), want)
		}
	}
	// API clients are not browsers: they get the API's answers.
	r := b.do("GET", "/", "", map[string]string{"Accept": "application/json"})
	if r.code != 200 || !strings.Contains(r.body, `"openapi"`) {
		t.Errorf("GET / as an API client: %d %s", r.code, r.body)
	}
	r = b.do("GET", "/api/v1/sandboxes", "", nil)
	if r.code != http.StatusUnauthorized {
		t.Errorf("API without token or session: %d", r.code)
	}
	// A launch link opened by a signed-out browser comes back after sign-in.
	r = b.do("GET", "/launch?template=solo&ref=main", "", nil)
	if r.code != http.StatusSeeOther || r.h.Get("Location") != "/sign-in?next="+url.QueryEscape("/launch?template=solo&ref=main") {
		t.Errorf("launch link signed out: %d %q", r.code, r.h.Get("Location"))
	}
}

func TestSignIn(t *testing.T) {
	s := testenv.Start(t)
	for _, tc := range []struct {
		name     string
		form     func(csrf string) url.Values
		dropForm bool // no sign-in cookie either (a form posted from another site)
		code     int
		says     string
	}{
		{"no csrf field", func(string) url.Values { return url.Values{"token": {testenv.Token}} }, false, 403, "came from another site"},
		{"wrong csrf", func(string) url.Values { return url.Values{"token": {testenv.Token}, "csrf": {"forged"}} }, false, 403, "came from another site"},
		{"cross-site post", func(c string) url.Values { return url.Values{"token": {testenv.Token}, "csrf": {c}} }, true, 403, "came from another site"},
		{"wrong token", func(c string) url.Values { return url.Values{"token": {"nope"}, "csrf": {c}} }, false, 401, "not valid"},
		{"empty token", func(c string) url.Values { return url.Values{"token": {""}, "csrf": {c}} }, false, 401, "not valid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t, s.URL)
			csrf := ""
			if !tc.dropForm {
				m := hiddenCSRF.FindStringSubmatch(b.do("GET", "/sign-in", "", nil).body)
				csrf = m[1]
			} else {
				csrf = auth.RandomToken()
			}
			r := b.do("POST", "/sign-in", tc.form(csrf).Encode(), nil)
			if r.code != tc.code || !strings.Contains(r.body, tc.says) {
				t.Errorf("got %d, want %d saying %q:\n%s", r.code, tc.code, tc.says, r.body)
			}
			if strings.Contains(r.h.Get("Set-Cookie"), auth.SessionCookie+"=") {
				t.Errorf("a session cookie was set: %s", r.h.Get("Set-Cookie"))
			}
			if r := b.do("GET", "/", "", nil); r.code != http.StatusSeeOther {
				t.Errorf("after a refused sign-in the console answers %d", r.code)
			}
		})
	}
	t.Run("next stays on this site", func(t *testing.T) {
		for next, want := range map[string]string{"//evil.example/x": "/", "https://evil.example": "/", "/\\evil.example": "/", "/sign-out": "/", "/templates?x=1": "/templates?x=1"} {
			b := newBrowser(t, s.URL)
			m := hiddenCSRF.FindStringSubmatch(b.do("GET", "/sign-in", "", nil).body)
			r := b.do("POST", "/sign-in", url.Values{"csrf": {m[1]}, "token": {testenv.Token}, "next": {next}}.Encode(), nil)
			if r.code != http.StatusSeeOther || r.h.Get("Location") != want {
				t.Errorf("next=%q: %d to %q, want %q", next, r.code, r.h.Get("Location"), want)
			}
		}
	})
}

func TestSignedInPages(t *testing.T) {
	s := testenv.Start(t)
	s.Apply(t, soloTemplate)
	b := newBrowser(t, s.URL)
	csrf := b.signIn(testenv.Token)
	for _, p := range consolePages {
		r := b.do("GET", p, "", nil)
		if r.code != 200 || !strings.Contains(r.h.Get("Content-Type"), "text/html") {
			t.Errorf("GET %s: %d %s", p, r.code, r.h.Get("Content-Type"))
			continue
		}
		for _, h := range []string{"Content-Security-Policy", "X-Frame-Options"} {
			if r.h.Get(h) == "" {
				t.Errorf("GET %s: no %s header", p, h)
			}
		}
		if !strings.Contains(r.body, `<meta name="csrf-token" content="`+csrf+`">`) || !strings.Contains(r.body, `<html lang="en">`) {
			t.Errorf("GET %s: page lacks its CSRF token or lang", p)
		}
		// Every form control the server renders has a label.
		for _, id := range regexp.MustCompile(`<(?:input|select|textarea) id="([^"]+)"`).FindAllStringSubmatch(r.body, -1) {
			if !strings.Contains(r.body, `for="`+id[1]+`"`) {
				t.Errorf("GET %s: control #%s has no <label for>", p, id[1])
			}
		}
	}
	// The script and stylesheet the pages load are served.
	for path, ctype := range map[string]string{"/static/app.js": "javascript", "/static/app.css": "text/css", "/static/favicon.svg": "image/svg+xml"} {
		r := b.do("GET", path, "", nil)
		if r.code != 200 || !strings.Contains(r.h.Get("Content-Type"), ctype) {
			t.Errorf("GET %s: %d %s", path, r.code, r.h.Get("Content-Type"))
		}
	}
	if r := b.do("GET", "/static/nope.js", "", nil); r.code != 404 {
		t.Errorf("GET a missing asset: %d", r.code)
	}

	// A launch link in a signed-in browser fills the create page in; it
	// creates nothing by being followed.
	r := b.do("GET", "/launch?template=solo&ref=main&set.services.main.env.A=1", "", nil)
	if r.code != http.StatusSeeOther || r.h.Get("Location") != "/new?template=solo&ref=main&set.services.main.env.A=1" {
		t.Fatalf("launch link signed in: %d %q", r.code, r.h.Get("Location"))
	}
	page := b.do("GET", r.h.Get("Location"), "", nil).body
	wantName := sandbox.LaunchName("solo", "main", map[string]string{"services.main.env.A": "1"})
	for _, want := range []string{`data-value="solo"`, `id="c-ref" name="ref" value="main"`, "services.main.env.A=1</textarea>", `data-default="` + wantName + `"`} {
		if !strings.Contains(page, want) {
			t.Errorf("create page from a launch link lacks %q", want)
		}
	}
	if got := b.do("GET", "/new/name?template=solo&ref=main&set.services.main.env.A=1", "", nil).body; !strings.Contains(got, `"name":"`+wantName+`"`) {
		t.Errorf("/new/name = %s, want %s", got, wantName)
	}
	if sbs, _ := s.Store.ListSandboxes(t.Context(), store.ListOptions{}); len(sbs) != 0 {
		t.Errorf("following a launch link created %d sandboxes", len(sbs))
	}
}

// TestSessionCallsTheAPI: the console's script reaches the API with the
// session cookie; a state change needs the page's CSRF token, so a form
// on another site that makes the browser post cannot change anything.
func TestSessionCallsTheAPI(t *testing.T) {
	s := testenv.Start(t)
	b := newBrowser(t, s.URL)
	csrf := b.signIn(testenv.Token)
	body := `{"filename":"solo.yaml","source":` + jsonString(soloTemplate) + `}`
	for _, tc := range []struct {
		name string
		hdr  map[string]string
	}{
		{"no token", nil},
		{"wrong token", map[string]string{auth.CSRFHeader: "forged"}},
		{"another session's token", map[string]string{auth.CSRFHeader: newBrowser(t, s.URL).signIn(testenv.Token)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.do("POST", "/api/v1/templates", body, tc.hdr)
			if r.code != http.StatusForbidden || !strings.Contains(r.body, `"csrf"`) {
				t.Errorf("POST without the CSRF token: %d %s", r.code, r.body)
			}
			if tvs, _ := s.Store.ListTemplates(t.Context()); len(tvs) != 0 {
				t.Errorf("the refused request stored %d templates", len(tvs))
			}
		})
	}
	if r := b.do("GET", "/api/v1/templates", "", nil); r.code != 200 {
		t.Errorf("GET with the session: %d %s", r.code, r.body)
	}
	if r := b.do("POST", "/api/v1/templates", body, map[string]string{auth.CSRFHeader: csrf, "Content-Type": "application/json"}); r.code != http.StatusCreated {
		t.Errorf("POST with the CSRF token: %d %s", r.code, r.body)
	}

	// Sign-out needs the token too, then ends the session.
	if r := b.do("POST", "/sign-out", "csrf=forged", nil); r.code != http.StatusForbidden {
		t.Errorf("sign-out without the CSRF token: %d", r.code)
	}
	if r := b.do("GET", "/api/v1/templates", "", nil); r.code != 200 {
		t.Errorf("a refused sign-out ended the session: %d", r.code)
	}
	if r := b.do("POST", "/sign-out", "csrf="+url.QueryEscape(csrf), nil); r.code != http.StatusSeeOther || r.h.Get("Location") != "/sign-in" {
		t.Errorf("sign-out: %d %q", r.code, r.h.Get("Location"))
	}
	if r := b.do("GET", "/api/v1/templates", "", nil); r.code != http.StatusUnauthorized {
		t.Errorf("API after sign-out: %d", r.code)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
