package identity

import (
	"context"
	"net/netip"
	"time"

	"github.com/rempart/rempart/internal/identity/users"
)

// UserDirectory is where passwords are checked and customers looked up. The
// embedded users.Memory implements it; only new logins call it.
type UserDirectory interface {
	// Authenticate returns the customer when the password matches, or an
	// error wrapping users.ErrNotFound or users.ErrBadPassword.
	Authenticate(ctx context.Context, id, password string) (users.User, error)
}

// SMSSender delivers a text message; the wiring connects it to the estate's
// SMS outbox.
type SMSSender interface {
	Send(ctx context.Context, phone, text string) error
}

// LoginObserver hears of every login attempt, for the scrubber's detection.
// route is "login-password" or "login-otp"; device tells whether the attempt
// carried a valid device cookie for the account.
type LoginObserver interface {
	ObserveLogin(route string, client netip.Addr, account string, ok, device bool)
}

// LoginLimiter paces login attempts before they cost a password hash, a
// code check or an SMS: the scrubber's credential-stuffing budgets, through
// an adapter in the wiring.
type LoginLimiter interface {
	// GateLogin decides on a password attempt for account from client;
	// device tells whether it carries the account's device cookie, and
	// solution is the browser's answer to an earlier challenge ("" if none).
	GateLogin(account string, client netip.Addr, device bool, solution string) LoginGate
	// AllowCode tells whether another SMS code may be checked for account.
	AllowCode(account string, device bool) (bool, time.Duration)
	// CodeFailed spends one wrong SMS code of account's.
	CodeFailed(account string, device bool)
	// AllowResend spends one resent SMS code of account's.
	AllowResend(account string) (bool, time.Duration)
}

// LoginGate is a LoginLimiter's decision on a password attempt.
type LoginGate struct {
	// Allowed: check the password now.
	Allowed bool
	// RetryAfter, when not allowed, is how long to wait first.
	RetryAfter time.Duration
	// Challenge, when set, is a proof of work of Bits leading zero bits of
	// SHA-256 (challenge + "." + counter) the login page solves and sends
	// back, in the "pow" field, with the next attempt.
	Challenge string
	Bits      int
}
