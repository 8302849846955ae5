package scrub

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/scrub/ratelimit"
)

// What the middleware did with a request.
const (
	decPassed = iota
	decPartner
	decAllowed
	decBlocked
	decLimited
	decChallenged
	decSolved
	decSurgeCapped
	numDecisions
)

func decisionName(d int) string {
	return [...]string{"passed", "partner", "allowlisted", "blocked", "limited", "challenged", "solved", "surge_capped"}[d]
}

type metrics struct {
	decisions    *prometheus.CounterVec
	transitions  *prometheus.CounterVec
	badSolutions *prometheus.CounterVec
	logins       *prometheus.CounterVec
}

type routeMetrics struct {
	decisions    [numDecisions]prometheus.Counter
	badSolutions prometheus.Counter
	transitionsV *prometheus.CounterVec
	route        string
}

func (m *routeMetrics) transitions(from, to State) {
	m.transitionsV.WithLabelValues(m.route, from.String(), to.String()).Inc()
}

func newMetrics(s *Scrubber, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rempart_scrub_decisions_total",
			Help: "Requests by route and what the scrubber did: passed, partner, allowlisted, blocked, limited, challenged, solved, surge_capped (an unclassified surge of unknown clients over the route's cap).",
		}, []string{"route", "decision"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rempart_scrub_transitions_total",
			Help: "Changes of a route's effective state.",
		}, []string{"route", "from", "to"}),
		badSolutions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rempart_scrub_bad_solutions_total",
			Help: "Proof-of-work solutions refused (malformed, expired, wrong network, forged, short of work, replayed).",
		}, []string{"route"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rempart_scrub_logins_total",
			Help: "Login outcomes seen by the credential-stuffing defence: success, failure, throttled_account (refused, before stepped logins), throttled_address, throttled_device, challenged_account (a stepped login's challenge issued), stepped (a solved one let through), bad_solution, throttled_turn, throttled_code, throttled_resend.",
		}, []string{"outcome"}),
	}
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{m.decisions, m.transitions, m.badSolutions, m.logins, newStateCollector(s)}
	if sh, ok := s.limiter.(*ratelimit.Shared); ok {
		cs = append(cs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rempart_scrub_shared_limiter_up",
				Help: "1 while the shared (Redis) rate limiter answers, 0 while limits are local."},
				func() float64 {
					if sh.Healthy() {
						return 1
					}
					return 0
				}),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rempart_scrub_shared_limiter_cache_hits_total",
				Help: "Requests refused from the local over-limit cache without a Redis round trip."},
				func() float64 { return float64(sh.Stats().CacheHits) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rempart_scrub_shared_limiter_errors_total",
				Help: "Redis calls that failed or timed out."},
				func() float64 { return float64(sh.Stats().RemoteErrors) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rempart_scrub_shared_limiter_local_decisions_total",
				Help: "Rate-limit decisions taken locally while Redis was unreachable."},
				func() float64 { return float64(sh.Stats().LocalDecisions) }),
		)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("scrub: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) forRoute(name string) routeMetrics {
	rm := routeMetrics{badSolutions: m.badSolutions.WithLabelValues(name), transitionsV: m.transitions, route: name}
	for d := range numDecisions {
		rm.decisions[d] = m.decisions.WithLabelValues(name, decisionName(d))
	}
	return rm
}

// stateCollector reports each route's state, signals and difficulty at
// scrape time, re-evaluating first so a quiet route does not show a stale
// attack.
type stateCollector struct {
	s                                           *Scrubber
	stateDesc, manualDesc, signalDesc, bitsDesc *prometheus.Desc
}

func newStateCollector(s *Scrubber) *stateCollector {
	return &stateCollector{s: s,
		stateDesc: prometheus.NewDesc("rempart_scrub_state",
			"1 for the route's effective state (normal, flash_crowd, attack), 0 for the others.",
			[]string{"route", "state"}, nil),
		manualDesc: prometheus.NewDesc("rempart_scrub_manual_mode",
			"1 while the route's state is forced by hand through the ops API.", []string{"route"}, nil),
		signalDesc: prometheus.NewDesc("rempart_scrub_signal",
			"Detection signals over the last second: rate, baseline, known_share, session_share, new_address_share, login_attempts, login_fail_ratio, address_entropy, top_prefix_share, top_fingerprint_share.",
			[]string{"route", "signal"}, nil),
		bitsDesc: prometheus.NewDesc("rempart_scrub_difficulty_bits",
			"Proof-of-work difficulty a challenge on the route asks for now.", []string{"route"}, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.stateDesc
	ch <- c.manualDesc
	ch <- c.signalDesc
	ch <- c.bitsDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	for _, rs := range c.s.States() {
		for st := Normal; st <= Attack; st++ {
			v := 0.0
			if rs.State == st {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.stateDesc, prometheus.GaugeValue, v, rs.Route, st.String())
		}
		manual := 0.0
		if rs.Mode != ModeAuto {
			manual = 1
		}
		ch <- prometheus.MustNewConstMetric(c.manualDesc, prometheus.GaugeValue, manual, rs.Route)
		sig := rs.Evidence.Signals
		for _, kv := range []struct {
			name string
			v    float64
		}{
			{"rate", sig.Rate}, {"baseline", sig.Baseline}, {"known_share", sig.KnownShare},
			{"session_share", sig.SessionShare}, {"new_address_share", sig.NewAddressShare},
			{"login_attempts", sig.LoginAttempts}, {"login_fail_ratio", sig.LoginFailRatio},
			{"address_entropy", sig.AddressEntropy}, {"top_prefix_share", sig.TopPrefixShare},
			{"top_fingerprint_share", sig.TopFingerprintShare},
		} {
			ch <- prometheus.MustNewConstMetric(c.signalDesc, prometheus.GaugeValue, kv.v, rs.Route, kv.name)
		}
		ch <- prometheus.MustNewConstMetric(c.bitsDesc, prometheus.GaugeValue, float64(rs.DifficultyBits), rs.Route)
	}
}
