package main

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/rempart/rempart/internal/config"
	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/status"
	"github.com/rempart/rempart/internal/tier"
)

// The status page's synthetic checks: one cheap read per estate channel
// every 2 s (status.Options.ProbeEvery), so a quiet channel shows an outage
// without waiting for customers to meet it. A check changes nothing: reads
// go through the route's own chain (replay cache, breaker and fallback,
// admission, retries, upstream) as the demo customer alice; a payment
// channel, which has no read, is checked by a balance read on the same core
// with the channel's time-out, and its breaker. Checks pass neither the
// token check nor the scrubber (they are no client's), are admitted at the
// SHEDDABLE tier (shed before any customer), and are not counted as
// requests: they reach the page only as checks.

// probeCustomer is whose data the checks read: a demo customer every estate
// has, whatever its seed.
const probeCustomer, probeAccount = "alice", "A-alice"

// probeReads is the read each channel is checked with.
var probeReads = map[string]string{
	"accounts":         "/v1/customers/" + probeCustomer + "/accounts",
	"balance":          "/v1/accounts/" + probeAccount + "/balance",
	"transactions":     "/v1/accounts/" + probeAccount + "/transactions?limit=1",
	"documents":        "/v1/customers/" + probeCustomer + "/documents",
	"parcel":           "/v1/parcels/LP123456789FR",
	"card-authorize":   "/v1/accounts/" + probeAccount + "/balance",
	"atm-withdraw":     "/v1/accounts/" + probeAccount + "/balance",
	"instant-transfer": "/v1/accounts/" + probeAccount + "/balance",
}

// check is how one channel is checked.
type check struct {
	route   string
	tier    tier.Tier
	path    string
	h       http.Handler  // what the read goes through
	timeout time.Duration // for a payment channel's read on the core
	// fallback: the payment channel's fallback answers when its core does not.
	fallback bool
	breaker  func() string // the payment channel's breaker state
}

// addCheck records how route is checked, if it can be: guarded is the
// route's chain after the scrubber, up its upstream. Only channels of the
// in-process estate are checked, whose reads are known; 3-D Secure has no
// read to check it with.
func (s *stack) addCheck(r config.Route, t tier.Tier, guarded, up http.Handler) {
	path, ok := probeReads[r.Name]
	if !ok || !slices.ContainsFunc(s.cfg.Upstreams, func(u config.Upstream) bool {
		return u.Name == r.Upstream && u.URL == config.InProcess
	}) {
		return
	}
	if s.checks == nil {
		s.checks = map[string]check{}
	}
	c := check{route: r.Name, tier: t, path: path, h: guarded}
	if f := channelFallback(r.Name); f == "standin" || f == "outbox" {
		c.h, c.timeout, c.fallback = up, channelTimeout(r.Name), true
		c.breaker = func() string { return breakerSource{s}.BreakerState(r.Name) }
	}
	s.checks[r.Name] = c
}

// prober runs the checks for the status board.
type prober struct{ checks map[string]check }

var _ status.Prober = prober{}

func (p prober) Probe(ctx context.Context, channel string) (status.Outcome, bool) {
	c, ok := p.checks[channel]
	if !ok {
		return status.Outcome{}, false
	}
	if c.breaker != nil && c.breaker() == "open" {
		// Payments are answered by the fallback without trying the core.
		return status.Outcome{Status: http.StatusOK, Fallback: true}, true
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	ctx = request.With(ctx, &request.Info{ID: "status-check", Route: c.route, Tier: c.tier,
		Priority: tier.Sheddable, Session: true, Subject: probeCustomer})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.path, nil)
	if err != nil {
		return status.Outcome{}, false
	}
	w := &discard{header: http.Header{}}
	start := time.Now()
	c.h.ServeHTTP(w, req)
	if w.code == 0 {
		w.code = http.StatusOK
	}
	o := outcomeOf(w.code, w.header, time.Since(start))
	if c.fallback && (o.UpstreamFailure || ctx.Err() != nil) {
		// The core did not answer in the channel's time: its stand-in or
		// outbox would have.
		return status.Outcome{Status: http.StatusOK, Fallback: true, Latency: o.Latency}, true
	}
	return o, true
}

// discard is a ResponseWriter that keeps the status and headers of a
// check's answer and drops its body.
type discard struct {
	header http.Header
	code   int
}

func (d *discard) Header() http.Header { return d.header }
func (d *discard) WriteHeader(code int) {
	if d.code == 0 {
		d.code = code
	}
}
func (d *discard) Write(b []byte) (int, error) {
	if d.code == 0 {
		d.code = http.StatusOK
	}
	return len(b), nil
}
