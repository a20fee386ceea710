package proxy

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// result is what became of a request; it is the "result" label of
// sandpit_proxy_requests_total.
type result uint8

const (
	resultProxied result = iota
	resultUnknownHost
	resultUnknownSandbox
	resultUnknownEndpoint
	resultNotReady
	resultNoRoute
	resultUpstreamError
	// The client went away before the upstream answered; nginx calls this
	// 499. It is not the upstream's fault, so it is not an upstream_error.
	resultClientClosed
	// Held while a suspended sandbox woke up, then forwarded.
	resultWoken
	// Held for Config.BrowserWait, then answered with the "waking up"
	// page that reloads itself.
	resultWaking
	// Held for Config.WakeTimeout without the sandbox becoming ready.
	resultWakeTimeout
	// Config.Wake refused to wake the sandbox.
	resultWakeRefused
	numResults
)

var resultNames = [numResults]string{
	"proxied", "unknown_host", "unknown_sandbox", "unknown_endpoint",
	"not_ready", "no_route", "upstream_error", "client_closed",
	"woken", "waking", "wake_timeout", "wake_refused",
}

var codeClasses = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

type metrics struct {
	requests *prometheus.CounterVec
	// counters caches the children of requests: CounterVec.WithLabelValues
	// hashes the labels and takes a lock, too much to do on every request.
	counters [numResults][len(codeClasses)]counterSlot
	// latency is the time until the response header is sent, for requests
	// that reached an upstream. The header, not the whole response, because
	// streams and websockets can stay open for hours. For a request held
	// while its sandbox woke up it starts at the release, so that it keeps
	// measuring the upstream; wakeWait has the time held.
	latency prometheus.Histogram
	// wakeWait is how long requests to a suspended sandbox were held
	// before it was ready to serve them.
	wakeWait prometheus.Histogram
}

type counterSlot struct {
	once sync.Once
	c    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sandpit_proxy_requests_total",
			Help: "Requests the endpoint proxy answered, by status code class and by what became of them.",
		}, []string{"code", "result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sandpit_proxy_upstream_header_seconds",
			Help:    "Time from a request's arrival (for a request held while its sandbox woke up, from its release) to its response header being sent, for requests forwarded to a sandbox.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		wakeWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sandpit_proxy_wake_wait_seconds",
			Help:    "Time requests to a suspended sandbox were held until it was ready, for requests then forwarded to it.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 120},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.wakeWait)
	}
	return m
}

func (m *metrics) count(res result, status int) {
	class := status / 100
	if class < 1 || class > 5 {
		class = 0
	}
	s := &m.counters[res][class]
	s.once.Do(func() { s.c = m.requests.WithLabelValues(codeClasses[class], resultNames[res]) })
	s.c.Inc()
}
