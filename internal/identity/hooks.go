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

// LoginLimiter may refuse a password attempt before it costs a hash, e.g.
// the per-account throttle that a device cookie lets the owner bypass. A
// refusal carries how long to wait.
type LoginLimiter interface {
	AllowLogin(account string, client netip.Addr, hasDeviceCookie bool) (bool, time.Duration)
}
