package ratelimit

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Defaults of New for zero arguments: 10 failures per address per minute.
const (
	DefaultFailures = 10
	DefaultWindow   = time.Minute
)

// maxKeys bounds the memory the limiter holds: beyond it, full (idle)
// buckets are swept, and if that frees nothing the oldest-refilled half
// goes, so an attacker spraying addresses cannot grow it without bound.
const maxKeys = 100_000

// Limiter counts failures per key in token buckets of Failures tokens that
// refill Failures per Window: a key that failed Failures times within a
// Window is blocked until a token comes back. Successes cost nothing. It is
// safe for concurrent use; the zero value is not usable, use New.
type Limiter struct {
	burst  float64
	window time.Duration
	now    func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was computed
}

// New returns a Limiter allowing failures failures per key per window.
// Zero values take the defaults (10 per minute); now nil is time.Now.
func New(failures int, window time.Duration, now func() time.Time) *Limiter {
	if failures <= 0 {
		failures = DefaultFailures
	}
	if window <= 0 {
		window = DefaultWindow
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{burst: float64(failures), window: window, now: now, buckets: map[string]*bucket{}}
}

// refill brings b up to date at t; it needs l.mu.
func (l *Limiter) refill(b *bucket, t time.Time) {
	if el := t.Sub(b.at); el > 0 {
		b.tokens = math.Min(l.burst, b.tokens+l.burst*float64(el)/float64(l.window))
		b.at = t
	}
}

// Blocked reports whether key has used up its failures, and if so how long
// until it may try again (at least one second, rounded up to seconds, for
// Retry-After). Call it before checking the credential, so a blocked
// client learns nothing more.
func (l *Limiter) Blocked(key string) (retryAfter time.Duration, blocked bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		return 0, false
	}
	l.refill(b, l.now())
	if b.tokens >= 1 {
		return 0, false
	}
	wait := time.Duration((1 - b.tokens) * float64(l.window) / l.burst)
	secs := time.Duration(math.Ceil(wait.Seconds())) * time.Second
	return max(secs, time.Second), true
}

// Fail records a failed attempt by key.
func (l *Limiter) Fail(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.now()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxKeys {
			l.sweep(t)
		}
		b = &bucket{tokens: l.burst, at: t}
		l.buckets[key] = b
	}
	l.refill(b, t)
	b.tokens = math.Max(0, b.tokens-1)
}

// sweep drops buckets that refilled completely (they block nothing), and
// if none did, every other bucket; it needs l.mu.
func (l *Limiter) sweep(t time.Time) {
	for k, b := range l.buckets {
		l.refill(b, t)
		if b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) < maxKeys {
		return
	}
	i := 0
	for k := range l.buckets {
		if i%2 == 0 {
			delete(l.buckets, k)
		}
		i++
	}
}

// Len is how many keys the limiter holds (for tests).
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// Key is the client address of r: the IP of the connection's RemoteAddr,
// an IPv6 one reduced to its /64. Headers such as X-Forwarded-For are
// ignored on purpose: a client sets them to what it likes.
func Key(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.WithZone("").Prefix(64)
		return p.String()
	}
	return ip.String()
}

// RetryAfter sets the Retry-After header for a wait d (whole seconds).
func RetryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
}
