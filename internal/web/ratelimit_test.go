package web_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/auth"
	"sandpit.dev/sandpit/internal/ratelimit"
	"sandpit.dev/sandpit/internal/web"
)

// TestSignInRateLimited checks that the console's sign-in counts wrong
// tokens per client address: after 10 in a minute the address gets a 429
// sign-in page with Retry-After, even with the right token, while another
// address still signs in.
func TestSignInRateLimited(t *testing.T) {
	const token = "admin-token-admin-token"
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	h := web.New(web.Config{API: http.NotFoundHandler(), Sessions: auth.NewSessions(token, 0, nil),
		CheckToken: func(tok string) (string, bool) { return "admin", tok == token },
		Limiter:    ratelimit.New(10, time.Minute, func() time.Time { return now })})
	signIn := func(remote, tok string) *httptest.ResponseRecorder {
		t.Helper()
		page := httptest.NewRecorder()
		h.ServeHTTP(page, httptest.NewRequest("GET", "/sign-in", nil))
		m := hiddenCSRF.FindStringSubmatch(page.Body.String())
		if m == nil {
			t.Fatalf("sign-in page without a CSRF field: %s", page.Body)
		}
		r := httptest.NewRequest("POST", "/sign-in", strings.NewReader(url.Values{"csrf": {m[1]}, "token": {tok}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.AddCookie(&http.Cookie{Name: auth.SignInCookie, Value: m[1]})
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for i := 1; i <= 10; i++ {
		if w := signIn("192.0.2.66:1000", "wrong"); w.Code != http.StatusUnauthorized {
			t.Fatalf("wrong token #%d: %d, want 401", i, w.Code)
		}
	}
	w := signIn("192.0.2.66:1001", token)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "Too many wrong tokens") {
		t.Errorf("11th attempt: %d, Retry-After %q, want 429 with Retry-After and a message:\n%s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if w := signIn("198.51.100.7:1000", token); w.Code != http.StatusSeeOther {
		t.Errorf("right token from another address: %d, want 303", w.Code)
	}
}
