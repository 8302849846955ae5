package journal

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/telemetry"
)

// metrics are the replayer's series. Several replayers (one per upstream)
// share them through the registry.
type metrics struct {
	pending  *prometheus.GaugeVec   // kind
	replayed *prometheus.CounterVec // kind, outcome
	failures *prometheus.CounterVec // kind, code
	declined *prometheus.CounterVec // route
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rempart_journal_pending",
			Help: "Journal entries waiting to be replayed to the core, by kind (standin: stand-in decisions; outbox: accepted instant transfers).",
		}, []string{"kind"}),
		replayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rempart_journal_replayed_total",
			Help: "Journal entries delivered to the core and marked done, by kind and outcome (applied: 2xx; refused: the core answered 4xx).",
		}, []string{"kind", "outcome"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rempart_journal_replay_failures_total",
			Help: "Replays that did not get a final answer and stay pending, by kind and HTTP status (0: no answer).",
		}, []string{"kind", "code"}),
		declined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rempart_standin_declined_on_replay_total",
			Help: "Stand-in approvals the core declined when they were replayed (e.g. insufficient funds): money the bank advanced and did not get, by route.",
		}, []string{"route"}),
	}
	var err error
	if m.pending, err = telemetry.Register(reg, m.pending); err != nil {
		return nil, err
	}
	if m.replayed, err = telemetry.Register(reg, m.replayed); err != nil {
		return nil, err
	}
	if m.failures, err = telemetry.Register(reg, m.failures); err != nil {
		return nil, err
	}
	if m.declined, err = telemetry.Register(reg, m.declined); err != nil {
		return nil, err
	}
	return m, nil
}
