package telemetry

import (
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the gateway's request metrics. Every series carries the route
// and its tier so a dashboard can show what the critical tier is getting.
type Metrics struct {
	Registry *prometheus.Registry
	Requests *prometheus.CounterVec   // route, tier, code
	Duration *prometheus.HistogramVec // route, tier
	InFlight *prometheus.GaugeVec     // tier
}

// latencyBuckets span what a card network tolerates (tens of ms) to what a
// stuck identity database produces (the 5 s lock wait and beyond).
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// NewMetrics creates and registers the gateway metrics on a new registry,
// together with the Go and process collectors.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rempart_requests_total",
			Help: "Requests answered by the gateway, by route, tier and status code.",
		}, []string{"route", "tier", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rempart_request_duration_seconds",
			Help:    "Time from receiving a request to the end of its response, by route and tier.",
			Buckets: latencyBuckets,
		}, []string{"route", "tier"}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rempart_requests_in_flight",
			Help: "Requests being served now, by tier.",
		}, []string{"tier"}),
	}
	reg.MustRegister(m.Requests, m.Duration, m.InFlight,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Register registers c on reg, or returns the collector already registered
// under the same description, so that several instances of a mechanism (a
// breaker per route, a replayer per upstream) share one series. A nil reg
// registers nothing.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if old, ok := are.ExistingCollector.(C); ok {
			return old, nil
		}
	}
	return c, err
}
