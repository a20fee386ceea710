package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/api"
	"sandpit.dev/sandpit/internal/ratelimit"
	"sandpit.dev/sandpit/internal/store/sqlite"
)

// TestWrongTokensRateLimited checks the API's limit on wrong bearer
// tokens: from one address the first 10 in a minute get 401, the 11th a
// 429 with Retry-After before the token is even looked at (the right
// token from that address too), while the right token from another
// address still works; X-Forwarded-For does not get an address a fresh
// limit; and a minute later the address may try again.
func TestWrongTokensRateLimited(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sandpit.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	const token = "admin-token-admin-token"
	h := api.New(api.Config{Store: st, Token: token,
		AuthLimiter: ratelimit.New(10, time.Minute, func() time.Time { return now })})
	get := func(remote, tok, xff string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/api/v1/templates", nil)
		r.RemoteAddr = remote
		r.Header.Set("Authorization", "Bearer "+tok)
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	const attacker = "192.0.2.66:40000"
	for i := 1; i <= 10; i++ {
		if w := get(attacker, "wrong-token-"+time.Duration(i).String(), ""); w.Code != http.StatusUnauthorized {
			t.Fatalf("wrong token #%d: %d, want 401: %s", i, w.Code, w.Body)
		}
	}
	w := get(attacker, "wrong-token-11", "")
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("11th wrong token: %d, want 429: %s", w.Code, w.Body)
	}
	if ra := w.Header().Get("Retry-After"); ra != "6" {
		t.Errorf("Retry-After = %q, want 6 (seconds until one more try)", ra)
	}
	var body client.ErrorBody
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == nil || body.Error.Code != "rate_limited" {
		t.Errorf("429 body = %s, want a rate_limited error", w.Body)
	}
	if w := get(attacker, token, ""); w.Code != http.StatusTooManyRequests {
		t.Errorf("right token from the blocked address: %d, want 429 (checked before the token)", w.Code)
	}
	if w := get("192.0.2.66:40001", "wrong", "203.0.113.1"); w.Code != http.StatusTooManyRequests {
		t.Errorf("blocked address with a forged X-Forwarded-For: %d, want 429", w.Code)
	}
	if w := get("198.51.100.7:1234", token, ""); w.Code != http.StatusOK {
		t.Errorf("right token from another address: %d, want 200: %s", w.Code, w.Body)
	}
	now = now.Add(time.Minute)
	if w := get(attacker, token, ""); w.Code != http.StatusOK {
		t.Errorf("right token from the address a minute later: %d, want 200: %s", w.Code, w.Body)
	}
}
