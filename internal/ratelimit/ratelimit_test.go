package ratelimit

import (
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// TestLimiter drives one key through failures and the passing of time
// with an injected clock: N failures are allowed, the next is blocked
// with a Retry-After until a token refills, and other keys are unaffected.
func TestLimiter(t *testing.T) {
	type step struct {
		advance  time.Duration
		fails    int    // failures recorded by "a" after advancing
		key      string // key to ask about (default "a")
		blocked  bool
		retryMin time.Duration
		retryMax time.Duration
	}
	tests := []struct {
		name  string
		n     int
		win   time.Duration
		steps []step
	}{
		{"unknown key is not blocked", 10, time.Minute, []step{{blocked: false}}},
		{"n-1 failures allowed", 10, time.Minute, []step{{fails: 9, blocked: false}}},
		{"n failures block for window/n", 10, time.Minute, []step{
			{fails: 10, blocked: true, retryMin: 6 * time.Second, retryMax: 6 * time.Second},
		}},
		{"one token back after window/n", 10, time.Minute, []step{
			{fails: 10, blocked: true},
			{advance: 5 * time.Second, blocked: true, retryMin: time.Second, retryMax: time.Second},
			{advance: time.Second, blocked: false},
			{fails: 1, blocked: true},
		}},
		{"full refill after a window", 10, time.Minute, []step{
			{fails: 10, blocked: true},
			{advance: time.Minute, blocked: false},
			{fails: 9, blocked: false},
			{fails: 1, blocked: true},
		}},
		{"failures beyond the bucket do not extend past a window", 3, time.Minute, []step{
			{fails: 50, blocked: true, retryMin: 20 * time.Second, retryMax: 20 * time.Second},
		}},
		{"other keys unaffected", 2, time.Minute, []step{
			{fails: 5, blocked: true},
			{key: "b", blocked: false},
		}},
		{"defaults are 10 a minute", 0, 0, []step{
			{fails: 9, blocked: false},
			{fails: 1, blocked: true, retryMin: 6 * time.Second, retryMax: 6 * time.Second},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
			l := New(tt.n, tt.win, c.now)
			for i, s := range tt.steps {
				c.t = c.t.Add(s.advance)
				for range s.fails {
					l.Fail("a")
				}
				key := s.key
				if key == "" {
					key = "a"
				}
				retry, blocked := l.Blocked(key)
				if blocked != s.blocked {
					t.Fatalf("step %d: blocked = %v, want %v", i, blocked, s.blocked)
				}
				if blocked && retry < time.Second {
					t.Errorf("step %d: retry after %v, want at least 1s", i, retry)
				}
				if s.retryMin != 0 && (retry < s.retryMin || retry > s.retryMax) {
					t.Errorf("step %d: retry after %v, want %v..%v", i, retry, s.retryMin, s.retryMax)
				}
			}
		})
	}
}

// TestLimiterBoundedMemory checks that spraying addresses cannot grow the
// limiter beyond maxKeys.
func TestLimiterBoundedMemory(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	l := New(10, time.Minute, c.now)
	for i := range maxKeys + 10 {
		l.Fail(strconv.Itoa(i))
	}
	if n := l.Len(); n > maxKeys {
		t.Fatalf("%d keys held, want at most %d", n, maxKeys)
	}
}

// TestKey checks that the key is the connection's address, never a
// forwarded header, and that IPv6 addresses count per /64.
func TestKey(t *testing.T) {
	tests := []struct {
		remote string
		xff    string
		want   string
	}{
		{"192.0.2.7:5555", "", "192.0.2.7"},
		{"192.0.2.7:5555", "203.0.113.9", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", "", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:443", "", "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.7]:1", "", "192.0.2.7"},
		{"not-an-address", "", "not-an-address"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.remote
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
			r.Header.Set("X-Real-IP", tt.xff)
		}
		if got := Key(r); got != tt.want {
			t.Errorf("Key(%q, xff %q) = %q, want %q", tt.remote, tt.xff, got, tt.want)
		}
	}
}
