package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sandpit.dev/sandpit/client"
)

// startServer runs Run with cfg (a temp data dir, loopback listeners and
// copied snapshots filled in) until the test ends, and returns its Info.
func startServer(t *testing.T, cfg Config) Info {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	// As root, services run as another user, who must be able to reach
	// the data dir.
	if err := os.Chmod(filepath.Dir(cfg.DataDir), 0o711); err != nil {
		t.Fatal(err)
	}
	cfg.Listen, cfg.ProxyListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.SnapshotStore = "copy"
	cfg.ShimCommand = []string{"false"} // no sandbox is launched here
	started := make(chan Info, 1)
	cfg.Started = func(i Info) { started <- i }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() { runErr = Run(ctx, cfg); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if runErr != nil {
			t.Errorf("Run: %v", runErr)
		}
	})
	select {
	case i := <-started:
		return i
	case <-done:
		t.Fatal("Run ended before it started serving")
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start in 30s")
	}
	return Info{}
}

// TestSlowlorisDisconnected checks both real listeners against a client
// that sends its request header one byte a second: the server closes the
// connection once ReadHeaderTimeout passes, instead of holding it open as
// long as the client keeps trickling.
func TestSlowlorisDisconnected(t *testing.T) {
	const timeout = 2 * time.Second
	info := startServer(t, Config{ReadHeaderTimeout: timeout})
	for name, addr := range map[string]string{"api": strings.TrimPrefix(info.APIURL, "http://"), "proxy": info.ProxyAddr} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			header := "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 100)
			var werr error
			for i := 0; i < len(header) && werr == nil; i++ {
				_, werr = c.Write([]byte{header[i]})
				if werr == nil {
					// A closed connection shows as a read that ends.
					_ = c.SetReadDeadline(time.Now().Add(time.Second))
					if _, err := c.Read(make([]byte, 512)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
						werr = err
					}
				}
			}
			took := time.Since(start)
			if werr == nil {
				t.Fatalf("the connection stayed open for the whole %d-byte header (%v)", len(header), took)
			}
			if took < timeout-500*time.Millisecond || took > timeout+3*time.Second {
				t.Errorf("disconnected after %v, want about %v (ReadHeaderTimeout)", took, timeout)
			}
		})
	}
}

// TestHugeHeaderRefused checks that a request with 1 MiB of headers gets
// 431 from both listeners rather than being buffered.
func TestHugeHeaderRefused(t *testing.T) {
	info := startServer(t, Config{})
	for name, addr := range map[string]string{"api": strings.TrimPrefix(info.APIURL, "http://"), "proxy": info.ProxyAddr} {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			go func() {
				// The server may answer and close before all of it is sent.
				w := bufio.NewWriter(c)
				fmt.Fprintf(w, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
				for i := range 1024 {
					fmt.Fprintf(w, "X-Big-%d: %s\r\n", i, strings.Repeat("b", 1000))
				}
				w.WriteString("\r\n")
				_ = w.Flush()
			}()
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("1 MiB of headers: %d, want 431", resp.StatusCode)
			}
		})
	}
}

// TestSelfSignedTLS checks --tls-self-signed end to end: the API and the
// proxy serve HTTPS with a certificate made in the data dir (key 0600)
// that a client trusting that file accepts for 127.0.0.1 and for endpoint
// hosts under the domain, and a restart reuses the same certificate.
func TestSelfSignedTLS(t *testing.T) {
	dir := t.TempDir()
	info := startServer(t, Config{DataDir: dir, TLSSelfSigned: true, Domain: "sandpit.test"})
	if !strings.HasPrefix(info.APIURL, "https://") || info.CAFile != SelfSignedCert(info.DataDir) {
		t.Fatalf("Info = %+v, want an https API URL and the certificate as CAFile", info)
	}
	st, err := os.Stat(SelfSignedKey(info.DataDir))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", st.Mode().Perm())
	}
	pemBytes, err := os.ReadFile(info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("the certificate file holds no PEM certificate")
	}
	proxyPort := info.ProxyAddr[strings.LastIndexByte(info.ProxyAddr, ':'):]
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		// Endpoint hosts resolve to the proxy's loopback address.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if strings.HasSuffix(addr, ".sandpit.test"+proxyPort) {
				addr = info.ProxyAddr
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2: true,
	}}
	resp, err := c.Get(info.APIURL + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz over TLS: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Errorf("GET /healthz: %d (TLS %v): %s", resp.StatusCode, resp.TLS != nil, body)
	}
	// An unknown sandbox's endpoint host: the proxy's own 404 page, over
	// TLS with the wildcard name, on HTTP/1.1.
	resp, err = c.Get("https://web--nosuch.sandpit.test" + proxyPort + "/")
	if err != nil {
		t.Fatalf("GET an endpoint host over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || resp.ProtoMajor != 1 {
		t.Errorf("proxy over TLS: %d %s, want 404 on HTTP/1.1", resp.StatusCode, resp.Proto)
	}
	// A client that does not trust the certificate is refused.
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get(info.APIURL + "/healthz"); err == nil {
		t.Error("a client without the certificate was served")
	}
	// The CLI's client trusts it through SANDPIT_CA_FILE (TrustCAFile).
	cl, err := client.New(info.APIURL, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Health(t.Context()); err == nil {
		t.Error("the API client trusted the certificate without being told to")
	}
	if err := cl.TrustCAFile(info.CAFile); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Health(t.Context()); err != nil {
		t.Errorf("API client trusting the CA file: %v", err)
	}
}

// TestSelfSignedReused checks that the certificate is made once and reused,
// and made again for another domain.
func TestSelfSignedReused(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	cert, key := SelfSignedCert(dir), SelfSignedKey(dir)
	if err := ensureSelfSigned(cert, key, "localhost", now); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(cert)
	if err := ensureSelfSigned(cert, key, "localhost", now.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(cert); string(again) != string(first) {
		t.Error("a second start made a new certificate")
	}
	if err := ensureSelfSigned(cert, key, "sandpit.example", now); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(cert); string(again) == string(first) {
		t.Error("a new domain kept the old certificate")
	}
	if err := ensureSelfSigned(cert, key, "sandpit.example", now.Add(350*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := tlsConfig("a.crt", "", false, dir, "localhost"); err == nil {
		t.Error("--tls-cert without --tls-key accepted")
	}
	if _, err := tlsConfig(cert, key, true, dir, "localhost"); err == nil {
		t.Error("--tls-cert with --tls-self-signed accepted")
	}
}
