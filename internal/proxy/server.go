package proxy

import (
	"net/http"
	"time"
)

// NewServer returns an http.Server for h with limits suited to a proxy in
// front of long-lived streams: the header must arrive quickly (slowloris),
// but there is no read or write timeout on the whole request, because SSE
// and websockets legitimately stay open for hours.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}
