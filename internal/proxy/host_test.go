package proxy

import "testing"

func TestParseHost(t *testing.T) {
	tests := []struct {
		host, domain string
		ep, sb       string
		kind         hostKind
	}{
		{"app--shop.localhost", "localhost", "app", "shop", hostOK},
		{"app--shop.localhost:8080", "localhost", "app", "shop", hostOK},
		{"app--shop.localhost.", "localhost", "app", "shop", hostOK},
		{"App--Shop.LocalHost:8080", "localhost", "app", "shop", hostOK},
		{"api--pr-123.preview.example.com", "preview.example.com", "api", "pr-123", hostOK},
		{"web--my-branch-2.localhost", "localhost", "web", "my-branch-2", hostOK},
		// The first "--" splits: names cannot contain one.
		{"a--b--c.localhost", "localhost", "a", "b--c", hostOK},

		{"", "localhost", "", "", hostMissing},
		{"localhost", "localhost", "", "", hostForeign},
		{"localhost:8080", "localhost", "", "", hostForeign},
		{".localhost", "localhost", "", "", hostForeign},
		{"app--shop.example.com", "localhost", "", "", hostForeign},
		{"app--shopxlocalhost", "localhost", "", "", hostForeign},
		{"app--shop.notlocalhost", "localhost", "", "", hostForeign},
		{"127.0.0.1:8080", "localhost", "", "", hostForeign},
		{"[::1]:8080", "localhost", "", "", hostForeign},

		{"shop.localhost", "localhost", "", "", hostMalformed},
		{"--shop.localhost", "localhost", "", "", hostMalformed},
		{"app--.localhost", "localhost", "", "", hostMalformed},
		{"x.app--shop.localhost", "localhost", "", "", hostMalformed},
		{"app-shop.localhost", "localhost", "", "", hostMalformed},
	}
	for _, tt := range tests {
		ep, sb, kind := parseHost(tt.host, tt.domain)
		if ep != tt.ep || sb != tt.sb || kind != tt.kind {
			t.Errorf("parseHost(%q, %q) = %q, %q, %v; want %q, %q, %v", tt.host, tt.domain, ep, sb, kind, tt.ep, tt.sb, tt.kind)
		}
	}
}

func TestNormalizeDomain(t *testing.T) {
	for in, want := range map[string]string{"": "localhost", " .Example.COM. ": "example.com", "localhost": "localhost"} {
		if got := normalizeDomain(in); got != want {
			t.Errorf("normalizeDomain(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseHostAllocs(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() { parseHost("app--shop.localhost:8080", "localhost") })
	if allocs != 0 {
		t.Errorf("parseHost allocates %v times per call, want 0", allocs)
	}
}
