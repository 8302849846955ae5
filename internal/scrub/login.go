package scrub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"strings"
	"time"

	"github.com/rempart/rempart/internal/scrub/ratelimit"
)

// loginTimeout bounds a shared-limiter call made on behalf of the identity
// provider, which holds a login open meanwhile.
const loginTimeout = 100 * time.Millisecond

// accountKey normalises an account name for limit keys and bounds its size:
// it comes from the request, so its length is the attacker's choice.
func accountKey(account string) string {
	a := strings.ToLower(strings.TrimSpace(account))
	if len(a) > 128 {
		sum := sha256.Sum256([]byte(a))
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	return a
}

// ObserveLogin records the outcome of one password check, for the route's
// detection (login failure ratio) and for the credential-stuffing budgets:
// a failure spends one from the account's budget — the device budget when
// the login came with a valid device cookie, the unknown-device budget
// otherwise — and, for unknown devices, one from the address's budget. The
// identity provider calls it after checking a password, not for logins it
// refused before checking (AllowLogin said no, or proof-of-work was missing),
// and not for its own failures (a database time-out is not a wrong password).
func (s *Scrubber) ObserveLogin(route string, client netip.Addr, account string, ok bool, device bool) {
	now := s.clock.Now()
	s.route(route).observeLogin(now, ok, s)
	if ok {
		s.metrics.logins.WithLabelValues("success").Inc()
		s.seen.add(client, now)
		return
	}
	s.metrics.logins.WithLabelValues("failure").Inc()
	ctx, cancel := context.WithTimeout(context.Background(), loginTimeout)
	defer cancel()
	acct := accountKey(account)
	if device {
		s.limiter.Allow(ctx, "lf:d:"+acct, s.opts.Login.Device, 1)
		return
	}
	s.limiter.Allow(ctx, "lf:u:"+acct, s.opts.Login.Account, 1)
	if client.IsValid() {
		s.limiter.Allow(ctx, "lf:a:"+limitAddr(client).String(), s.opts.Login.Address, 1)
	}
}

// AllowLogin tells the identity provider whether to check a password for
// account from client now, before it spends a password hash on it. A login
// with a valid device cookie is judged only against the account's device
// budget, which only its own device holders can spend, so an attack on the
// account never locks its owner out; a login without one is slowed once the
// account's or the address's unknown-device budget of failures is spent.
// retryAfter says when to try again.
func (s *Scrubber) AllowLogin(account string, client netip.Addr, hasDeviceCookie bool) (ok bool, retryAfter time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), loginTimeout)
	defer cancel()
	acct := accountKey(account)
	if hasDeviceCookie {
		return s.peekLogin(ctx, "lf:d:"+acct, s.opts.Login.Device, "throttled_device")
	}
	ok, retryAfter = s.peekLogin(ctx, "lf:u:"+acct, s.opts.Login.Account, "throttled_account")
	if ok && client.IsValid() {
		ok, retryAfter = s.peekLogin(ctx, "lf:a:"+limitAddr(client).String(), s.opts.Login.Address, "throttled_address")
	}
	return ok, retryAfter
}

func (s *Scrubber) peekLogin(ctx context.Context, key string, l ratelimit.Limit, outcome string) (bool, time.Duration) {
	r, err := s.limiter.Allow(ctx, key, l, 0)
	if err != nil || r.Allowed {
		return true, 0
	}
	s.metrics.logins.WithLabelValues(outcome).Inc()
	return false, max(r.RetryAfter, time.Second)
}
