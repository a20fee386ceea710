package auth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// issue signs in on s and returns a request carrying the session cookie.
func issue(t *testing.T, s *Sessions) (*http.Request, Session) {
	t.Helper()
	rec := httptest.NewRecorder()
	sess := s.Issue(rec, httptest.NewRequest("POST", "/sign-in", nil), "admin")
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 || cookies[0].Name != SessionCookie {
		t.Fatalf("Issue set cookies %v", cookies)
	}
	c := cookies[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Lax, Path=/", c)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(c)
	return r, sess
}

func TestSessionRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	s := NewSessions("token-1", time.Hour, func() time.Time { return now })
	r, sess := issue(t, s)
	got, ok := s.Get(r)
	if !ok || got.ID != sess.ID || got.Subject != "admin" {
		t.Fatalf("Get = %+v, %v; want the issued session %+v", got, ok, sess)
	}
	if !s.CheckCSRF(sess, s.CSRF(sess)) {
		t.Error("the session's own CSRF token is refused")
	}
	other := Session{ID: "other"}
	if s.CheckCSRF(sess, s.CSRF(other)) || s.CheckCSRF(sess, "") {
		t.Error("another session's (or an empty) CSRF token is accepted")
	}
}

func TestSessionRefused(t *testing.T) {
	now := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s := NewSessions("token-1", time.Hour, clock)
	r, _ := issue(t, s)
	value := r.Header.Get("Cookie")[len(SessionCookie)+1:]
	payload, sig, _ := strings.Cut(value, ".")

	withCookie := func(v string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(&http.Cookie{Name: SessionCookie, Value: v})
		return r
	}
	for _, tc := range []struct {
		name string
		s    *Sessions
		r    *http.Request
	}{
		{"no cookie", s, httptest.NewRequest("GET", "/", nil)},
		{"no signature", s, withCookie(payload)},
		{"signature of something else", s, withCookie(payload + "x." + sig)},
		{"bad base64", s, withCookie("!!." + sig)},
		{"another server's token", NewSessions("token-2", time.Hour, clock), withCookie(value)},
		{"expired", NewSessions("token-1", time.Hour, func() time.Time { return now.Add(2 * time.Hour) }), withCookie(value)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if sess, ok := tc.s.Get(tc.r); ok {
				t.Errorf("accepted: %+v", sess)
			}
		})
	}
}

func TestRequestCSRF(t *testing.T) {
	r := httptest.NewRequest("POST", "/x", strings.NewReader("csrf=form-token"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if got := RequestCSRF(r); got != "form-token" {
		t.Errorf("form field: got %q", got)
	}
	r = httptest.NewRequest("POST", "/x", strings.NewReader(`{"csrf":"json"}`))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(CSRFHeader, "header-token")
	if got := RequestCSRF(r); got != "header-token" {
		t.Errorf("header: got %q", got)
	}
	r.Header.Del(CSRFHeader)
	if got := RequestCSRF(r); got != "" {
		t.Errorf("a JSON body is no CSRF token: got %q", got)
	}
	for m, want := range map[string]bool{"GET": true, "HEAD": true, "OPTIONS": true, "POST": false, "PUT": false, "DELETE": false, "PATCH": false} {
		if Safe(m) != want {
			t.Errorf("Safe(%s) = %v", m, !want)
		}
	}
}
