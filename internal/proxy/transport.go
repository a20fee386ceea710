package proxy

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// newTransport is the transport to upstreams. Every setting departs from
// http.DefaultTransport on purpose:
//   - no Proxy: HTTP_PROXY in the server's environment must not send
//     sandbox traffic elsewhere;
//   - no compression: the proxy passes bodies through, it must not ask
//     for gzip the client did not ask for and then inflate it;
//   - HTTP/1.1 only: upstreams are dev servers on plain HTTP;
//   - a large idle pool per host: under load, the default of 2 idle
//     connections per host turns most requests into a new dial;
//   - bigger buffers: fewer read syscalls for typical pages.
func newTransport(cfg Config) *http.Transport {
	d := &net.Dialer{Timeout: dialTimeout(cfg), KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     false,
		TLSNextProto:          map[string]func(string, *tls.Conn) http.RoundTripper{},
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: headerTimeout(cfg),
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		WriteBufferSize:       16 << 10,
		ReadBufferSize:        16 << 10,
	}
}

func dialTimeout(cfg Config) time.Duration {
	if cfg.DialTimeout > 0 {
		return cfg.DialTimeout
	}
	return 5 * time.Second
}

func headerTimeout(cfg Config) time.Duration {
	if cfg.ResponseHeaderTimeout > 0 {
		return cfg.ResponseHeaderTimeout
	}
	return 3 * time.Minute
}
