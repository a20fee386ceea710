package reconcile

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
)

type metrics struct {
	stageDuration *prometheus.HistogramVec
	launch        *prometheus.HistogramVec
	reconciles    *prometheus.CounterVec
	lifecycle     *prometheus.CounterVec
}

var stageBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

func newMetrics(reg prometheus.Registerer, st store.Store) *metrics {
	m := &metrics{
		stageDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sandpit_stage_duration_seconds",
			Help:    "Duration of sandbox launch and teardown stages.",
			Buckets: stageBuckets,
		}, []string{"stage", "result"}),
		launch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sandpit_launch_seconds",
			Help:    "Create-to-Ready time of sandboxes, split into total, external work (git, dependencies, build, start, probes) and the platform's own overhead; \"resume\" is the wake time of suspended ones.",
			Buckets: stageBuckets,
		}, []string{"part"}),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sandpit_reconciles_total",
			Help: "Reconcile passes by result.",
		}, []string{"result"}),
		lifecycle: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sandpit_lifecycle_actions_total",
			Help: "Lifecycle actions taken: suspend, resume, delete (TTL, keep_failed, retention), pool_create.",
		}, []string{"action"}),
	}
	if reg != nil {
		reg.MustRegister(m.stageDuration, m.launch, m.reconciles, m.lifecycle, &phaseCollector{st: st})
	}
	return m
}

// phaseCollector counts sandboxes by phase from the store at scrape time,
// so the gauge is right even after a restart or an out-of-band change.
type phaseCollector struct{ st store.Store }

var phaseDesc = prometheus.NewDesc("sandpit_sandboxes", "Sandboxes by phase.", []string{"phase"}, nil)

func (c *phaseCollector) Describe(ch chan<- *prometheus.Desc) { ch <- phaseDesc }

func (c *phaseCollector) Collect(ch chan<- prometheus.Metric) {
	sbs, err := c.st.ListSandboxes(context.Background(), store.ListOptions{})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(phaseDesc, err)
		return
	}
	counts := map[sandbox.Phase]int{}
	for _, sb := range sbs {
		counts[sb.Status.Phase]++
	}
	for _, p := range sandbox.Phases {
		ch <- prometheus.MustNewConstMetric(phaseDesc, prometheus.GaugeValue, float64(counts[p]), string(p))
	}
}
