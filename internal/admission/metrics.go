package admission

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/tier"
)

// waitBuckets run from a dispatch that only took the lock (under 100µs) to
// MaxWait's default (500ms) and beyond.
var waitBuckets = []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}

// metrics are one controller's Prometheus series. Counters and the histogram
// are resolved per tier and reason up front, so the hot path never looks a
// label up; gauges are read from the controller when scraped, so they cost
// nothing between scrapes.
type metrics struct {
	admitted [numTiers]prometheus.Counter
	shed     [numTiers][numReasons]prometheus.Counter
	wait     [numTiers]prometheus.Observer
}

func newMetrics(c *Controller, reg prometheus.Registerer) (*metrics, error) {
	// The upstream is a constant label so that the controllers of several
	// upstreams register side by side on one registry.
	up := prometheus.Labels{"upstream": c.opts.Name}
	admitted := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "rempart_admission_admitted_total",
		Help:        "Requests let through to the upstream, by tier.",
		ConstLabels: up,
	}, []string{"tier"})
	shed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "rempart_admission_shed_total",
		Help:        "Requests answered 503 without reaching the upstream, by tier and reason.",
		ConstLabels: up,
	}, []string{"tier", "reason"})
	wait := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:        "rempart_admission_queue_wait_seconds",
		Help:        "Time admitted requests waited for a slot, by tier (zero when a slot was free).",
		ConstLabels: up,
		Buckets:     waitBuckets,
	}, []string{"tier"})

	m := &metrics{}
	for _, t := range tier.All {
		m.admitted[t] = admitted.WithLabelValues(t.String())
		m.wait[t] = wait.WithLabelValues(t.String())
		for r := range numReasons {
			m.shed[t][r] = shed.WithLabelValues(t.String(), r.label())
		}
	}
	if reg == nil {
		return m, nil
	}
	for _, col := range []prometheus.Collector{admitted, shed, wait, newGauges(c, up)} {
		if err := reg.Register(col); err != nil {
			if are := (prometheus.AlreadyRegisteredError{}); errors.As(err, &are) {
				return nil, fmt.Errorf("register metrics of upstream %q: another controller has that name: %w", c.opts.Name, err)
			}
			return nil, fmt.Errorf("register metrics of upstream %q: %w", c.opts.Name, err)
		}
	}
	return m, nil
}

var _ prometheus.Collector = (*gauges)(nil)

// gauges reads the controller's state at scrape time.
type gauges struct {
	c                                 *Controller
	queued, inFlight, limit, reserved *prometheus.Desc
}

func newGauges(c *Controller, up prometheus.Labels) *gauges {
	return &gauges{
		c:        c,
		queued:   prometheus.NewDesc("rempart_admission_queued", "Requests waiting for a slot, by tier.", []string{"tier"}, up),
		inFlight: prometheus.NewDesc("rempart_admission_in_flight", "Admitted requests not yet answered by the upstream, by tier.", []string{"tier"}, up),
		limit:    prometheus.NewDesc("rempart_admission_limit", "Concurrency limit learnt for the upstream.", nil, up),
		reserved: prometheus.NewDesc("rempart_admission_critical_reserved", "Slots of the limit that only CRITICAL requests may use.", nil, up),
	}
}

func (g *gauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.queued
	ch <- g.inFlight
	ch <- g.limit
	ch <- g.reserved
}

func (g *gauges) Collect(ch chan<- prometheus.Metric) {
	s := g.c.Stats()
	ch <- prometheus.MustNewConstMetric(g.limit, prometheus.GaugeValue, float64(s.Limit))
	ch <- prometheus.MustNewConstMetric(g.reserved, prometheus.GaugeValue, float64(s.Reserved))
	for _, ts := range s.Tiers {
		ch <- prometheus.MustNewConstMetric(g.queued, prometheus.GaugeValue, float64(ts.Queued), ts.Tier.String())
		ch <- prometheus.MustNewConstMetric(g.inFlight, prometheus.GaugeValue, float64(ts.InFlight), ts.Tier.String())
	}
}
