package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Cookie names. The session cookie is HttpOnly: scripts never see it, and
// they prove they run on the console's own pages with the CSRF token
// instead, which the page carries.
const (
	SessionCookie = "sandpit_session"
	// SignInCookie carries the sign-in form's CSRF token before there is a
	// session (a double-submit cookie: a cross-site form cannot read it,
	// so cannot echo it).
	SignInCookie = "sandpit_signin"
	// CSRFHeader is where scripts send the CSRF token; forms send it as the
	// CSRFField field.
	CSRFHeader = "X-CSRF-Token"
	CSRFField  = "csrf"
)

// DefaultTTL is how long a session lasts.
const DefaultTTL = 12 * time.Hour

// Session is one signed-in browser.
type Session struct {
	ID      string    `json:"id"`
	Subject string    `json:"sub"`
	Expires time.Time `json:"exp"`
}

// Sessions issues and checks session cookies.
type Sessions struct {
	key []byte
	now func() time.Time
	ttl time.Duration
}

// NewSessions returns sessions signed under a key derived from secret (the
// server's admin token), expiring after ttl (DefaultTTL when zero).
func NewSessions(secret string, ttl time.Duration, now func() time.Time) *Sessions {
	if now == nil {
		now = time.Now
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("sandpit console sessions v1"))
	return &Sessions{key: m.Sum(nil), now: now, ttl: ttl}
}

func (s *Sessions) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, s.key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// Issue starts a session for subject and sets its cookie on w.
func (s *Sessions) Issue(w http.ResponseWriter, r *http.Request, subject string) Session {
	sess := Session{ID: RandomToken(), Subject: subject, Expires: s.now().Add(s.ttl).Truncate(time.Second)}
	body, _ := json.Marshal(sess)
	payload := base64.RawURLEncoding.EncodeToString(body)
	value := payload + "." + base64.RawURLEncoding.EncodeToString(s.mac("session", payload))
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: value, Path: "/", Expires: sess.Expires,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil,
	})
	return sess
}

// Get returns the request's session when its cookie is present, signed by
// this server and not expired.
func (s *Sessions) Get(r *http.Request) (Session, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return Session{}, false
	}
	payload, sig, ok := strings.Cut(c.Value, ".")
	if !ok {
		return Session{}, false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac("session", payload)) {
		return Session{}, false
	}
	body, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return Session{}, false
	}
	var sess Session
	if json.Unmarshal(body, &sess) != nil || sess.ID == "" || !s.now().Before(sess.Expires) {
		return Session{}, false
	}
	return sess, true
}

// Clear removes the session cookie (sign-out).
func (s *Sessions) Clear(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil})
}

// CSRF is the token that state-changing requests of sess must carry.
func (s *Sessions) CSRF(sess Session) string {
	return base64.RawURLEncoding.EncodeToString(s.mac("csrf", sess.ID))
}

// CheckCSRF reports whether token is sess's CSRF token.
func (s *Sessions) CheckCSRF(sess Session, token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.CSRF(sess))) == 1
}

// RequestCSRF returns the CSRF token a request carries: the header for
// scripts, else the form field.
func RequestCSRF(r *http.Request) string {
	if v := r.Header.Get(CSRFHeader); v != "" {
		return v
	}
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return r.PostFormValue(CSRFField)
	}
	return ""
}

// Safe reports whether method changes nothing (and needs no CSRF token).
func Safe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

// RandomToken returns 32 random bytes in hex.
func RandomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}
