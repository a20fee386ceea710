package proxy

import "strings"

type hostKind int

const (
	hostOK        hostKind = iota
	hostMissing            // no Host header at all
	hostForeign            // not under the proxy's domain
	hostMalformed          // under the domain but not "<endpoint>--<sandbox>"
)

// parseHost splits "<endpoint>--<sandbox>.<domain>[:port]". It runs on every
// request, so it slices the input instead of allocating, except to lower-case
// a host that arrives in upper case (hosts are case-insensitive).
func parseHost(host, domain string) (endpoint, sandboxName string, kind hostKind) {
	if host == "" {
		return "", "", hostMissing
	}
	if host[0] == '[' { // an IPv6 literal is never a sandbox host
		return "", "", hostForeign
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".") // "a--b.localhost." is the same host
	n := len(host) - len(domain)
	if n < 2 || host[n-1] != '.' || !strings.EqualFold(host[n:], domain) {
		return "", "", hostForeign
	}
	label := host[:n-1]
	if strings.IndexByte(label, '.') >= 0 {
		return "", "", hostMalformed
	}
	i := strings.Index(label, "--")
	if i <= 0 || i+2 >= len(label) {
		return "", "", hostMalformed
	}
	label = lower(label)
	return label[:i], label[i+2:], hostOK
}

func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// normalizeDomain makes a configured domain comparable with hosts.
func normalizeDomain(d string) string {
	d = strings.ToLower(strings.Trim(strings.TrimSpace(d), "."))
	if d == "" {
		return "localhost"
	}
	return d
}
