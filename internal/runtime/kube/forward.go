package kube

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"

	"k8s.io/client-go/rest"
)

// Forwarder lets the endpoint proxy reach in-cluster Services when the
// server runs outside the cluster: each (namespace, service, port) gets a
// loopback listener that passes HTTP requests to the API server's service
// proxy (/api/v1/namespaces/NS/services/SVC:PORT/proxy/), authenticated as
// the server. The proxy then treats it like any other upstream address.
type Forwarder struct {
	cfg *rest.Config
	log *slog.Logger

	mu      sync.Mutex
	targets map[string]*fwdTarget // "ns/svc/port"
	rt      http.RoundTripper
	rtErr   error
	once    sync.Once
}

type fwdTarget struct {
	ns   string
	addr string
	srv  *http.Server
}

// NewForwarder makes a forwarder for the cluster cfg reaches.
func NewForwarder(cfg *rest.Config, log *slog.Logger) *Forwarder {
	return &Forwarder{cfg: cfg, log: log, targets: map[string]*fwdTarget{}}
}

// Upstream returns the loopback address that reaches port (a port name) of
// service svc in namespace ns, starting its listener on first use.
func (f *Forwarder) Upstream(ns, svc, port string) (string, error) {
	f.once.Do(func() { f.rt, f.rtErr = rest.TransportFor(f.cfg) })
	if f.rtErr != nil {
		return "", f.rtErr
	}
	key := ns + "/" + svc + "/" + port
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.targets[key]; ok {
		return t.addr, nil
	}
	base, err := url.Parse(strings.TrimRight(f.cfg.Host, "/"))
	if err != nil {
		return "", fmt.Errorf("API server URL %q: %w", f.cfg.Host, err)
	}
	prefix := fmt.Sprintf("/api/v1/namespaces/%s/services/%s:%s/proxy", ns, svc, port)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = base.Scheme, base.Host
			pr.Out.URL.Path = prefix + pr.In.URL.Path
			pr.Out.URL.RawPath = ""
			pr.Out.Host = base.Host
			pr.SetXForwarded()
		},
		Transport: f.rt,
		ErrorLog:  slog.NewLogLogger(f.log.Handler(), slog.LevelWarn),
	}
	t := &fwdTarget{ns: ns, addr: l.Addr().String(), srv: &http.Server{Handler: rp}}
	go func() { _ = t.srv.Serve(l) }()
	f.targets[key] = t
	return t.addr, nil
}

// Forget closes the listeners of namespace ns.
func (f *Forwarder) Forget(ns string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, t := range f.targets {
		if t.ns == ns {
			_ = t.srv.Close()
			delete(f.targets, k)
		}
	}
}

// Close closes every listener.
func (f *Forwarder) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, t := range f.targets {
		_ = t.srv.Close()
		delete(f.targets, k)
	}
}
