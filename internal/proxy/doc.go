// Package proxy is Sandpit's endpoint proxy: one listener that serves every
// sandbox's endpoints at "<endpoint>--<sandbox>.<domain>", routing each
// request by longest path prefix to the service behind the endpoint.
//
// It owns:
//   - the routing Table, which the server updates when a sandbox's status
//     changes and which the proxy reads lock-free on every request;
//   - forwarding: a fast path for plain GET/HEAD/OPTIONS requests on its own
//     upstream connection pool, and httputil.ReverseProxy for everything else
//     (request bodies, websockets and other upgrades); both strip hop-by-hop
//     and client-supplied X-Forwarded-* headers, set X-Forwarded-For, -Host
//     and -Proto, keep the public Host, forward the path unchanged and flush
//     streamed responses as they arrive;
//   - holding requests for a suspended sandbox while it wakes up: the first
//     one asks the server to wake it (Config.Wake; concurrent requests share
//     one call), and every request is held until the Table says the sandbox
//     is Ready, then routed like any other; or until it fails, is deleted,
//     or a bound passes (Config.WakeTimeout, or Config.BrowserWait for
//     browsers, which then get a "waking up" page that reloads itself);
//   - the pages it answers by itself (unknown host, sandbox, endpoint or
//     route; sandbox not ready, waking up or not woken; upstream down or
//     slow), as HTML for browsers and JSON for everything else;
//   - its metrics (sandpit_proxy_requests_total by code class and result,
//     sandpit_proxy_upstream_header_seconds,
//     sandpit_proxy_wake_wait_seconds) and an activity hook.
//
// It does not decide anything about sandboxes: whether and how to wake a
// suspended one, recording activity and enforcing access belong to the
// server, which wires them in through Config (Wake, OnRequest) and keeps the
// Table up to date. The server also owns the listener; NewServer gives it an
// http.Server with limits suited to a proxy.
//
// It imports only internal/sandbox from this module: it must not reach into
// the store or the runtimes, so that it stays a fast, self-contained piece
// that the server and bench/proxy embed the same way.
package proxy
