package breaker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/telemetry"
)

// metrics are the breaker package's series. Breakers of several upstreams
// and the stand-in share them through the registry.
type metrics struct {
	state     *prometheus.GaugeVec   // upstream
	calls     *prometheus.CounterVec // upstream, outcome
	fallbacks *prometheus.CounterVec // upstream, route, kind
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rempart_breaker_state",
			Help: "Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open.",
		}, []string{"upstream"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rempart_breaker_calls_total",
			Help: "Calls through a circuit breaker, by upstream and outcome (success, failure, slow, timeout, shed: turned away by admission for a saturated back end, deadline: the caller's own deadline could not be met, canceled: the client left, rejected: not sent because the breaker was open).",
		}, []string{"upstream", "outcome"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rempart_breaker_fallback_answers_total",
			Help: "Answers given by a fallback instead of the upstream, by upstream, route and kind (stale, degraded, standin, outbox, recall, refused).",
		}, []string{"upstream", "route", "kind"}),
	}
	var err error
	if m.state, err = telemetry.Register(reg, m.state); err != nil {
		return nil, err
	}
	if m.calls, err = telemetry.Register(reg, m.calls); err != nil {
		return nil, err
	}
	if m.fallbacks, err = telemetry.Register(reg, m.fallbacks); err != nil {
		return nil, err
	}
	return m, nil
}
