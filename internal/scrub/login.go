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
	if r, err := s.limiter.Allow(ctx, "lf:u:"+acct, s.opts.Login.Account, 1); err == nil && !r.Allowed {
		// The budget was spent already: this was a stepped attempt, and
		// the next one costs more work.
		s.limiter.Allow(ctx, "lf:s:"+acct, s.opts.Login.Stepped, 1)
	}
	if client.IsValid() {
		s.limiter.Allow(ctx, "lf:a:"+limitAddr(client).String(), s.opts.Login.Address, 1)
	}
}

// LoginVerdict is the scrubber's answer before a password check.
type LoginVerdict struct {
	// Allowed: check the password now.
	Allowed bool
	// Stepped: allowed on a solved challenge, the account's unknown-device
	// budget being spent.
	Stepped bool
	// RetryAfter, when not allowed, is how long the browser waits first.
	RetryAfter time.Duration
	// Challenge, when set, is a proof of work of Bits leading zero bits the
	// browser solves and sends back with its next attempt (pow.Solve's
	// format); it is bound to the account and the browser's network.
	Challenge string
	Bits      int
}

// GateLogin tells the identity provider whether to check a password for
// account from client now, before it spends a password hash on it.
//
//   - A login with a valid device cookie is judged only against the
//     account's device budget, which only its own device holders can spend,
//     so an attack on the account never locks its owner's device out.
//   - A login without one is refused while the address has spent its
//     unknown-device budget (one address failing across many accounts).
//   - Once the account's unknown-device budget is spent, an attempt needs a
//     solved challenge (solution) bound to this account and network, whose
//     difficulty grows with every further failure, and a turn of its
//     network; without one it gets a challenge, not a refusal.
func (s *Scrubber) GateLogin(account string, client netip.Addr, device bool, solution string) LoginVerdict {
	ctx, cancel := context.WithTimeout(context.Background(), loginTimeout)
	defer cancel()
	acct := accountKey(account)
	if device {
		ok, wait := s.peekLogin(ctx, "lf:d:"+acct, s.opts.Login.Device, "throttled_device")
		return LoginVerdict{Allowed: ok, RetryAfter: wait}
	}
	if client.IsValid() {
		if ok, wait := s.peekLogin(ctx, "lf:a:"+limitAddr(client).String(), s.opts.Login.Address, "throttled_address"); !ok {
			return LoginVerdict{RetryAfter: wait}
		}
	}
	if r, err := s.limiter.Allow(ctx, "lf:u:"+acct, s.opts.Login.Account, 0); err != nil || r.Allowed {
		return LoginVerdict{Allowed: true}
	}
	now := s.clock.Now()
	prefix := clientPrefix(client)
	domain := loginDomain(acct)
	bits := s.stepBits(ctx, acct)
	fresh := func() LoginVerdict {
		c := s.issueBound(prefix, bits, now, domain)
		return LoginVerdict{Challenge: c.String(), Bits: bits}
	}
	turn := "lf:t:" + acct + ":" + prefix.String()
	if r, err := s.limiter.Allow(ctx, turn, s.opts.Login.Turn, 0); err == nil && !r.Allowed {
		s.metrics.logins.WithLabelValues("throttled_turn").Inc()
		v := fresh()
		v.RetryAfter = max(r.RetryAfter, time.Second)
		return v
	}
	if solution == "" {
		s.metrics.logins.WithLabelValues("challenged_account").Inc()
		return fresh()
	}
	if _, err := s.verifyBound(solution, prefix, now, domain); err != nil {
		s.metrics.logins.WithLabelValues("bad_solution").Inc()
		return fresh()
	}
	if _, ok := s.spend(ctx, "", turn, "login-turn", s.opts.Login.Turn); !ok {
		// Another attempt of this network took the turn meanwhile.
		v := fresh()
		v.RetryAfter = time.Second
		return v
	}
	s.metrics.logins.WithLabelValues("stepped").Inc()
	return LoginVerdict{Allowed: true, Stepped: true}
}

// loginDomain is what a stepped login's challenge is signed with: the kind
// and the account.
func loginDomain(acct string) []byte { return []byte(macLogin + acct + "\x00") }

// stepBits is the difficulty of the account's next stepped attempt: one bit
// more per failure since its unknown-device budget ran out.
func (s *Scrubber) stepBits(ctx context.Context, acct string) int {
	l := s.opts.Login
	used := 0
	if r, err := s.limiter.Allow(ctx, "lf:s:"+acct, l.Stepped, 0); err == nil {
		// A peek reports what would remain after one more failure.
		used = l.Stepped.Burst - 1 - r.Remaining
		if !r.Allowed {
			used = l.Stepped.Burst
		}
	}
	return min(l.StepBits+max(used, 0), l.StepMaxBits)
}

// AllowLogin is GateLogin without a solution: whether the password may be
// checked right now.
func (s *Scrubber) AllowLogin(account string, client netip.Addr, hasDeviceCookie bool) (ok bool, retryAfter time.Duration) {
	v := s.GateLogin(account, client, hasDeviceCookie, "")
	if !v.Allowed && v.RetryAfter == 0 {
		// A challenge: solving it is the soonest way in.
		v.RetryAfter = time.Second
	}
	return v.Allowed, v.RetryAfter
}

// AllowCode tells whether the account may have another SMS login code
// checked: false once it took its day's wrong codes (for device holders,
// their own day's).
func (s *Scrubber) AllowCode(account string, device bool) (bool, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), loginTimeout)
	defer cancel()
	key, l := s.codeBudget(account, device)
	return s.peekLogin(ctx, key, l, "throttled_code")
}

// CodeFailed spends one wrong SMS code from the account's day.
func (s *Scrubber) CodeFailed(account string, device bool) {
	ctx, cancel := context.WithTimeout(context.Background(), loginTimeout)
	defer cancel()
	key, l := s.codeBudget(account, device)
	s.limiter.Allow(ctx, key, l, 1)
}

func (s *Scrubber) codeBudget(account string, device bool) (string, ratelimit.Limit) {
	if device {
		return "lf:od:" + accountKey(account), s.opts.Login.DeviceCodes
	}
	return "lf:o:" + accountKey(account), s.opts.Login.Codes
}

// AllowResend spends one of the account's resent login codes of the day.
func (s *Scrubber) AllowResend(account string) (bool, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), loginTimeout)
	defer cancel()
	d, ok := s.spend(ctx, "lf:r:", accountKey(account), "login-resend", s.opts.Login.Resends)
	if !ok {
		s.metrics.logins.WithLabelValues("throttled_resend").Inc()
		return false, max(d.result.RetryAfter, time.Second)
	}
	return true, 0
}

func (s *Scrubber) peekLogin(ctx context.Context, key string, l ratelimit.Limit, outcome string) (bool, time.Duration) {
	r, err := s.limiter.Allow(ctx, key, l, 0)
	if err != nil || r.Allowed {
		return true, 0
	}
	s.metrics.logins.WithLabelValues(outcome).Inc()
	return false, max(r.RetryAfter, time.Second)
}
