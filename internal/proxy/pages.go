package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"sandpit.dev/sandpit/internal/sandbox"
)

// The constructors of the proxy's own answers. Every page says what was
// asked, what exists instead, and the command that shows more.

func (p *Proxy) hostError(r *http.Request, kind hostKind) *pageError {
	form := "<endpoint>--<sandbox>." + p.domain
	switch kind {
	case hostMissing:
		return &pageError{
			status: http.StatusBadRequest, result: resultUnknownHost, code: "bad_host",
			title:   "Missing Host header",
			message: "The request has no Host header, so the proxy cannot tell which sandbox it is for. Endpoints are served at " + form + ".",
			hintPre: "Run ", hintCmd: "sandpit list", hintPost: " to see your sandboxes and their endpoint URLs.",
		}
	case hostMalformed:
		return &pageError{
			status: http.StatusBadRequest, result: resultUnknownHost, code: "bad_host",
			title:   "Not an endpoint address",
			message: fmt.Sprintf("%q is not of the form %s, for example app--my-branch.%s.", hostname(r.Host), form, p.domain),
			hintPre: "Run ", hintCmd: "sandpit list", hintPost: " to see your sandboxes and their endpoint URLs.",
		}
	default:
		return &pageError{
			status: http.StatusNotFound, result: resultUnknownHost, code: "unknown_host",
			title:   "Not an endpoint address",
			message: fmt.Sprintf("%q is not served by this proxy: endpoints are served at %s, for example app--my-branch.%s.", hostname(r.Host), form, p.domain),
			hintPre: "Run ", hintCmd: "sandpit list", hintPost: " to see your sandboxes and their endpoint URLs.",
		}
	}
}

func (p *Proxy) unknownSandbox(r *http.Request, name string) *pageError {
	return &pageError{
		status: http.StatusNotFound, result: resultUnknownSandbox, code: "unknown_sandbox",
		title:   "Unknown sandbox",
		message: fmt.Sprintf("There is no sandbox named %q.", name),
		hintPre: "Run ", hintCmd: "sandpit list", hintPost: " to see the sandboxes that exist.",
	}
}

func notReady(e *entry) *pageError {
	pe := &pageError{
		status: http.StatusServiceUnavailable, result: resultNotReady, code: "not_ready",
		retryAfter: 10,
	}
	phase := e.target.Phase
	switch phase {
	case sandbox.PhasePending, sandbox.PhaseProvisioning:
		pe.title = fmt.Sprintf("Sandbox %q is starting", e.name)
		pe.retryAfter, pe.refresh = 2, true
		pe.hintPre, pe.hintCmd, pe.hintPost = "Run ", "sandpit logs "+e.name, " to follow its progress."
	case sandbox.PhaseFailed:
		pe.title = fmt.Sprintf("Sandbox %q failed", e.name)
		pe.hintPre, pe.hintCmd, pe.hintPost = "Run ", "sandpit logs "+e.name, " to see why."
	case sandbox.PhaseSuspended:
		pe.title = fmt.Sprintf("Sandbox %q is suspended", e.name)
		pe.hintPre, pe.hintCmd, pe.hintPost = "Run ", "sandpit list", " to see its state."
	case sandbox.PhaseDeleting:
		pe.title = fmt.Sprintf("Sandbox %q is being deleted", e.name)
		pe.hintPre, pe.hintCmd, pe.hintPost = "Run ", "sandpit list", " to see the sandboxes that exist."
	default:
		pe.title = fmt.Sprintf("Sandbox %q is not ready", e.name)
		pe.hintPre, pe.hintCmd, pe.hintPost = "Run ", "sandpit list", " to see its state."
	}
	phaseName := string(phase)
	if phaseName == "" {
		phaseName = "unknown"
	}
	pe.message = "Its phase is " + phaseName
	if msg := strings.TrimSpace(e.target.Message); msg != "" {
		pe.message += ": " + strings.TrimSuffix(msg, ".") + "."
	} else {
		pe.message += "."
	}
	return pe
}

// wakingUp is the page a browser gets while its sandbox wakes up: it
// reloads itself every second, and the reload is served by the sandbox as
// soon as it is ready.
func wakingUp(e *entry) *pageError {
	return &pageError{
		status: http.StatusServiceUnavailable, result: resultWaking, code: "waking",
		title:   fmt.Sprintf("Sandbox %q is waking up", e.name),
		message: "It was suspended and is starting again" + statusSuffix(e),
		hintPre: "Run ", hintCmd: "sandpit logs " + e.name, hintPost: " to follow its progress.",
		retryAfter: 1, refresh: true,
	}
}

// wakeTimedOut answers a request that was held for bound without its
// sandbox becoming ready.
func wakeTimedOut(e *entry, bound time.Duration) *pageError {
	return &pageError{
		status: http.StatusServiceUnavailable, result: resultWakeTimeout, code: "waking_timeout",
		title: fmt.Sprintf("Sandbox %q is still waking up", e.name),
		message: fmt.Sprintf("It was suspended and is starting again, but it was not ready within %s%s",
			seconds(bound), statusSuffix(e)),
		hintPre: "Retry in a moment, or run ", hintCmd: "sandpit logs " + e.name, hintPost: " to see what it is doing.",
		retryAfter: 5,
	}
}

// wakeRefused shows why Config.Wake did not wake a sandbox; the error is
// the server's and says what to do.
func wakeRefused(e *entry, err error) *pageError {
	msg := strings.TrimSuffix(strings.TrimSpace(err.Error()), ".")
	if msg == "" {
		msg = "no reason given"
	}
	// Go errors start in lower case; the page shows a sentence.
	if r, n := utf8.DecodeRuneInString(msg); r != utf8.RuneError {
		msg = string(unicode.ToUpper(r)) + msg[n:]
	}
	msg += "."
	return &pageError{
		status: http.StatusServiceUnavailable, result: resultWakeRefused, code: "wake_refused",
		title:   fmt.Sprintf("Sandbox %q is suspended and could not be woken", e.name),
		message: msg,
		hintPre: "Run ", hintCmd: "sandpit list", hintPost: " to see your sandboxes and their state.",
	}
}

// seconds writes a whole number of seconds as "60s" rather than "1m0s".
func seconds(d time.Duration) string {
	if d >= time.Second && d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}

// statusSuffix ends a sentence with the sandbox's status message, if any.
func statusSuffix(e *entry) string {
	if msg := strings.TrimSpace(e.target.Message); msg != "" {
		return " (" + strings.TrimSuffix(msg, ".") + ")."
	}
	return "."
}

func (p *Proxy) unknownEndpoint(r *http.Request, e *entry, name string) *pageError {
	pe := &pageError{
		status: http.StatusNotFound, result: resultUnknownEndpoint, code: "unknown_endpoint",
		title:   "Unknown endpoint",
		message: fmt.Sprintf("Sandbox %q has no endpoint named %q.", e.name, name),
	}
	if len(e.endpoints) == 0 {
		pe.message += " It has no endpoints."
		pe.hintPre, pe.hintCmd, pe.hintPost = "Declare them in the template's ", "endpoints:", " section."
		return pe
	}
	pe.itemsTitle = "Its endpoints are:"
	pe.hintPre, pe.hintCmd, pe.hintPost = "Run ", "sandpit list", " to see the endpoint URLs of every sandbox."
	scheme, port := "http", ""
	if r.TLS != nil {
		scheme = "https"
	}
	if i := strings.LastIndexByte(r.Host, ':'); i >= 0 && !strings.HasSuffix(r.Host, "]") {
		port = r.Host[i:]
	}
	for _, ep := range e.endpoints {
		host := ep.name + "--" + e.name + "." + p.domain + port
		pe.items = append(pe.items, pageItem{Text: host, Href: scheme + "://" + host + "/"})
	}
	return pe
}

func noRoute(e *entry, ep *endpoint, path string) *pageError {
	pe := &pageError{
		status: http.StatusNotFound, result: resultNoRoute, code: "no_route",
		title:   "No route for this path",
		message: fmt.Sprintf("Endpoint %q of sandbox %q has no route for %s.", ep.name, e.name, path),
		hintPre: "Routes are declared in the template's ", hintCmd: "endpoints:", hintPost: " section.",
	}
	if len(ep.routes) == 0 {
		pe.message += " It has no routes."
		return pe
	}
	pe.itemsTitle = "Its routes are:"
	for _, rt := range ep.declared {
		pe.items = append(pe.items, pageItem{Text: rt.desc})
	}
	return pe
}

func noAddress(e *entry, ep *endpoint, rt *route) *pageError {
	return upstreamPage(e.name, rt, http.StatusBadGateway, "has no address yet")
}

func upstreamDown(s *reqState, err error, timeout time.Duration) *pageError {
	why, isTimeout := describeUpstreamErr(err)
	if isTimeout {
		return upstreamPage(s.sandbox, s.route, http.StatusGatewayTimeout, "sent no response within "+timeout.String())
	}
	return upstreamPage(s.sandbox, s.route, http.StatusBadGateway, "is not reachable: "+why)
}

// upstreamPage says that a route's service failed; what completes the
// sentence "Service "api" (port "http") of sandbox "shop" ...".
func upstreamPage(sandboxName string, rt *route, status int, what string) *pageError {
	pe := &pageError{
		status: status, result: resultUpstreamError, code: "upstream_unavailable",
		title:   "Service not reachable",
		message: fmt.Sprintf("Service %q (port %q) of sandbox %q %s.", rt.service, rt.port, sandboxName, what),
		hintPre: "Run ", hintCmd: "sandpit logs " + sandboxName + " " + rt.service, hintPost: " to see whether it crashed or is still starting.",
	}
	if status == http.StatusGatewayTimeout {
		pe.code, pe.title = "upstream_timeout", "Service did not answer in time"
		pe.hintPost = " to see what it is doing."
	}
	return pe
}

// hostname is the host without its port, for messages.
func hostname(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		return host[:i]
	}
	return host
}
