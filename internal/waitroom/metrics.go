package waitroom

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	admitted     prometheus.Counter
	issued       prometheus.Counter
	pending      prometheus.Counter
	gaveUp       prometheus.Counter
	rejectedBy   *prometheus.CounterVec
	rejectedFull prometheus.Counter
}

// newMetrics creates the room's metrics and registers them, labelled with the
// room's ID, on reg when it is not nil.
func newMetrics(r *Room, reg prometheus.Registerer) *metrics {
	m := &metrics{
		admitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rempart_waitroom_admitted_total",
			Help: "Requests let through to the backend, straight away or on a ticket (customers with a session, who bypass the room, are not counted).",
		}),
		issued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rempart_waitroom_issued_total",
			Help: "Places given in the line: newcomers held back who came back once, as told.",
		}),
		pending: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rempart_waitroom_pending_total",
			Help: "Newcomers held back and told to come back for a place; those who never do (pending minus issued, roughly) hold none.",
		}),
		gaveUp: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rempart_waitroom_given_up_total",
			Help: "Places given up: holders who stopped polling, passed over by the line without spending a call.",
		}),
		rejectedBy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rempart_waitroom_rejected_total",
			Help: "Presented tickets refused (the client goes to the back of the line) and newcomers turned away (reason full).",
		}, []string{"reason"}),
	}
	m.rejectedFull = m.rejectedBy.WithLabelValues("full")
	for _, err := range []error{errMalformed, errForged, errExpired, errOtherRoom, errOtherClient, errReplayed, errUnknown} {
		m.rejectedBy.WithLabelValues(err.Error())
	}
	if reg == nil {
		return m
	}
	reg = prometheus.WrapRegistererWith(prometheus.Labels{"room": r.opts.ID}, reg)
	reg.MustRegister(m.admitted, m.issued, m.pending, m.gaveUp, m.rejectedBy,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rempart_waitroom_waiting",
			Help: "Places in the line, not yet called.",
		}, func() float64 { return float64(r.Stats().Waiting) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rempart_waitroom_admit_rate",
			Help: "Measured admission rate, in logins per second.",
		}, func() float64 { return r.Stats().AdmitRate }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rempart_waitroom_in_flight",
			Help: "Calls let through to the backend and not yet answered; the room admits nobody while they are as many as its rate allows.",
		}, func() float64 { return float64(r.Stats().InFlight) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rempart_waitroom_oldest_wait_seconds",
			Help: "How long the head of the line has been waiting.",
		}, func() float64 { return r.Stats().OldestWait.Seconds() }),
	)
	return m
}

// rejected counts a refused ticket by why it was refused.
func (m *metrics) rejected(err error) {
	for _, e := range []error{errMalformed, errForged, errExpired, errOtherRoom, errOtherClient, errReplayed, errUnknown} {
		if errors.Is(err, e) {
			m.rejectedBy.WithLabelValues(e.Error()).Inc()
			return
		}
	}
}
