package status

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/tier"
)

// Clock tells the time; tests pass a fake that moves only when told to.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// BreakerSource reports the state of the circuit breaker in front of a
// channel's backend: "closed", "open" or "half-open" ("" when it has none).
// An open or half-open breaker makes the channel at least degraded even
// before traffic shows it, on a quiet channel for instance.
type BreakerSource interface {
	BreakerState(channel string) string
}

// ShedSource reports the share of a channel's requests admission control
// turned away recently, in [0, 1].
type ShedSource interface {
	ShedRatio(channel string) float64
}

// LineSource reports a waiting line in front of a channel: how many are
// waiting and the wait a newcomer is told.
type LineSource interface {
	Line(channel string) (waiting int, wait time.Duration)
}

// Options configure a Board. The zero value is usable: every zero field
// takes the default named in its comment.
type Options struct {
	// PageID, Name and URL identify the page in status.json. Defaults
	// "rempart", "rempart" and "".
	PageID, Name, URL string
	// Location is the time zone the page shows times in. Default
	// Europe/Paris (UTC if the system has no time zone database).
	Location *time.Location

	// Window is how far back the levels look. Default 30s.
	Window time.Duration
	// MinSamples is the fewest answers in the window on which the ratio
	// rules are believed: a quiet channel is not declared broken on two
	// failures. Default 10.
	MinSamples int
	// RaiseAfter is how long a channel must look worse before its level
	// worsens. Default 2s.
	RaiseAfter time.Duration
	// RecoverAfter is how long a channel must look better before its level
	// improves: a channel that flaps between up and down is shown down until
	// it has held. Default 30s.
	RecoverAfter time.Duration
	// SLO is the latency objective per tier: a channel is degraded when more
	// than 5 % of its answers (its p95) take longer. Defaults: critical and
	// important 1s, normal 2s, sheddable 5s; chosen as what a customer waits
	// at a till or in an app without thinking something is wrong, not
	// measured: tune them per deployment.
	SLO map[tier.Tier]time.Duration
	// Every is how often levels are re-evaluated and the pages re-rendered
	// by Run. Default 1s.
	Every time.Duration
	// MaxAge is how long clients and caches may keep a page. Default 5s.
	MaxAge time.Duration

	// Breakers, Shed and Line are optional extra signals.
	Breakers BreakerSource
	Shed     ShedSource
	Line     LineSource

	// Probe, when set, checks every channel each ProbeEvery the way a
	// request would (see Prober), so that an outage shows on a channel with
	// no traffic, within about 2 checks, RaiseAfter and one Every. Nil
	// judges channels on traffic alone.
	Probe Prober
	// ProbeEvery is how often each channel is checked, and how long one
	// check may take. Default 2s: an outage shows in under 10 s on a quiet
	// channel, for a dozen cheap reads every 2 s.
	ProbeEvery time.Duration

	// Clock tells the time. Default the wall clock.
	Clock Clock
	// Registerer receives rempart_status_level{channel,tier}. Nil leaves it
	// unregistered.
	Registerer prometheus.Registerer
}

var defaultSLO = map[tier.Tier]time.Duration{
	tier.Critical:  time.Second,
	tier.Important: time.Second,
	tier.Normal:    2 * time.Second,
	tier.Sheddable: 5 * time.Second,
}

func (o Options) withDefaults() Options {
	if o.PageID == "" {
		o.PageID = "rempart"
	}
	if o.Name == "" {
		o.Name = "rempart"
	}
	if o.Location == nil {
		loc, err := time.LoadLocation("Europe/Paris")
		if err != nil {
			loc = time.UTC
		}
		o.Location = loc
	}
	if o.Window < time.Second {
		o.Window = 30 * time.Second
	}
	if o.MinSamples <= 0 {
		o.MinSamples = 10
	}
	if o.RaiseAfter <= 0 {
		o.RaiseAfter = 2 * time.Second
	}
	if o.RecoverAfter <= 0 {
		o.RecoverAfter = 30 * time.Second
	}
	slo := make(map[tier.Tier]time.Duration, len(defaultSLO))
	for t, d := range defaultSLO {
		slo[t] = d
	}
	for t, d := range o.SLO {
		if d > 0 {
			slo[t] = d
		}
	}
	o.SLO = slo
	if o.Every <= 0 {
		o.Every = time.Second
	}
	if o.ProbeEvery <= 0 {
		o.ProbeEvery = 2 * time.Second
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 5 * time.Second
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	return o
}
