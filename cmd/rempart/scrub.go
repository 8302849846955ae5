package main

import (
	"fmt"
	"net/http"

	"github.com/rempart/rempart/internal/identity"
	"github.com/rempart/rempart/internal/scrub"
	"github.com/rempart/rempart/internal/scrub/clock"
	"github.com/rempart/rempart/internal/scrub/ratelimit"
)

// buildScrubber makes the scrubber that stands in front of every route. It
// is built before the identity provider, which reports logins to it; the
// device-cookie hook reaches the provider once it exists.
func (s *stack) buildScrubber() error {
	cfg := s.cfg.Scrub
	opts := scrub.Options{
		// Parsed once, with the partners' trust (buildTrust runs first).
		TrustedProxies:   s.trust.proxies,
		LoginRoutes:      []string{identity.RouteLoginPassword, identity.RouteLoginOTP},
		LoginStartRoutes: []string{routeAuthorize, routeLoginPage, routeCallback, routeToken},
		InsecureCookies:  true, // the default listener is plain HTTP on loopback
		// A device cookie counts only for a login to its own account.
		Device: func(r *http.Request) string {
			if s.identity == nil {
				return ""
			}
			acct, _ := s.identity.DeviceCookieAccount(r)
			return acct
		},
		LoginAccount: func(route string, r *http.Request) string {
			if s.identity == nil {
				return ""
			}
			return s.identity.LoginAccount(route, r)
		},
		Logger:     s.log.With("component", "scrub"),
		Registerer: s.metrics.Registry,
		Detection:  scrub.Detection{WarmUp: cfg.WarmUp},
	}
	if cfg.RedisURL != "" {
		rc, err := newRedis(cfg.RedisURL, scrubRedisTimeout)
		if err != nil {
			return fmt.Errorf("scrub.redis_url: %w", err)
		}
		s.closers = append(s.closers, rc.Close)
		local := ratelimit.NewLocal(clock.System{}, ratelimit.LocalOptions{})
		opts.Limiter = ratelimit.NewShared(ratelimit.NewRedis(rc, "rempart:scrub:"), local, clock.System{}, ratelimit.SharedOptions{})
	}
	var err error
	if s.scrubber, err = scrub.New(opts); err != nil {
		return err
	}
	s.ops.Handle("/ops/scrub/", s.scrubber.OpsHandler())
	return nil
}
