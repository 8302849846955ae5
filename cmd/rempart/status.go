package main

import (
	"context"
	"net/http"
	"time"

	"github.com/rempart/rempart/internal/breaker"
	"github.com/rempart/rempart/internal/gateway"
	"github.com/rempart/rempart/internal/identity"
	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/status"
	"github.com/rempart/rempart/internal/tier"
	"github.com/rempart/rempart/internal/waitroom"
)

// loginChannel is the status page's line for new logins: every step of the
// login flow reports to it.
const loginChannel = "login"

// statusChannel maps a route to the status page channel it reports to.
func statusChannel(route string) string {
	switch route {
	case "login", "oidc-authorize", identity.RouteLoginPassword, identity.RouteLoginOTP:
		return loginChannel
	}
	return route
}

// buildBoard makes the public status page from the routes being served.
func (s *stack) buildBoard() error {
	served := map[string]bool{}
	for _, r := range s.routes {
		served[statusChannel(r.Name)] = true
	}
	var channels []status.Channel
	for _, c := range status.DefaultChannels() {
		if served[c.Name] {
			switch channelFallback(c.Name) {
			case "stale":
				c.Fallback = status.StaleRead
			case "standin":
				c.Fallback = status.StandIn
			case "outbox":
				c.Fallback = status.Outbox
			}
			channels = append(channels, c)
		}
	}
	if served[loginChannel] {
		channels = append(channels, status.Channel{Name: loginChannel, Tier: tier.Sheddable,
			TitleFR: "Connexion à l'espace client", TitleEN: "Customer login", Fallback: status.NoFallback})
	}
	opts := status.Options{Name: "rempart", URL: "http://" + s.cfg.Listen, Registerer: s.metrics.Registry,
		Breakers: breakerSource{s}, Probe: prober{s.checks}}
	if s.room != nil {
		opts.Line = lineSource{s.room}
	}
	var err error
	if s.board, err = status.New(channels, opts); err != nil {
		return err
	}
	s.background = append(s.background, func(ctx context.Context) { s.board.Run(ctx) })
	return nil
}

// breakerSource tells the board each channel's upstream breaker state.
type breakerSource struct{ s *stack }

func (b breakerSource) BreakerState(channel string) string {
	if channel == loginChannel && b.s.identity != nil {
		// New logins hang on the user directory: while its breaker is
		// not closed only devices with a backup snapshot get in, and the
		// page says logins are degraded even when none are being tried.
		return b.s.identity.DirectoryBreakerState()
	}
	up := b.s.routeUpstream[channel]
	if g, ok := b.s.guards[up]; ok {
		br, ok := g.breakers[channel]
		if !ok {
			return ""
		}
		switch br.State() {
		case breaker.Open:
			return "open"
		case breaker.HalfOpen:
			return "half-open"
		}
		return "closed"
	}
	return ""
}

// lineSource reports the waiting room's line on the login channel.
type lineSource struct{ room *waitroom.Room }

func (l lineSource) Line(channel string) (int, time.Duration) {
	if channel != loginChannel {
		return 0, 0
	}
	st := l.room.Stats()
	return st.Waiting, st.Wait
}

// boardObserver feeds the board from the gateway's view of every answer.
type boardObserver struct{ b *status.Board }

var _ gateway.Observer = boardObserver{}

func (o boardObserver) ObserveRequest(info *request.Info, code int, h http.Header, elapsed time.Duration) {
	if waitroom.TurnedAway(h) {
		return // customers waiting their turn are not failures
	}
	o.b.Observe(statusChannel(info.Route), outcomeOf(code, h, elapsed))
}

// outcomeOf reads what became of a request from its answer: the status, and
// the headers the fallbacks mark their answers with.
func outcomeOf(code int, h http.Header, elapsed time.Duration) status.Outcome {
	out := status.Outcome{Status: code, Latency: elapsed}
	switch {
	case h.Get(breaker.HeaderStandIn) != "", h.Get(breaker.HeaderOutbox) != "":
		out.Fallback = true
	case h.Get(breaker.HeaderStale) != "":
		out.Fallback = true
		if t, err := time.Parse(time.RFC3339, h.Get(breaker.HeaderAsOf)); err == nil {
			out.AsOf = t
		}
	case code == http.StatusTooManyRequests, code == http.StatusServiceUnavailable && h.Get("Retry-After") != "":
		out.Shed = true
	case code >= 500:
		out.UpstreamFailure = true
	}
	return out
}
