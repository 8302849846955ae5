// Package request carries what the gateway has learnt about one request — its
// route, tier, real client address, session and clearance — as plain values,
// so the protection mechanisms can act on them without importing the gateway
// or the identity provider.
package request

import (
	"context"
	"net/netip"
	"time"

	"github.com/rempart/rempart/internal/telemetry"
	"github.com/rempart/rempart/internal/tier"
)

// Info describes a request. The gateway creates it; mechanisms earlier in the
// chain fill in what they establish (the scrubber the real client address and
// clearance, the token verifier the session) for those later in the chain.
type Info struct {
	ID    string                 // request id, echoed as X-Request-Id
	Trace telemetry.TraceContext // this hop's trace context
	Route string                 // route name
	Tier  tier.Tier              // the route's tier
	// Priority is the tier the request is admitted at: its route's tier, or a
	// better one (IMPORTANT for a customer holding a session on a NORMAL
	// route), or a worse one (SHEDDABLE for new logins during a surge).
	Priority tier.Tier
	Client   netip.Addr // real client address (trusted proxies resolved)
	Session  bool       // carries a valid session or access token
	Subject  string     // the customer, when Session
	Cleared  bool       // holds a valid device clearance
	// Partner names the partner network the request authenticated as (a
	// client certificate of a partner CA, or a token of a partner's client);
	// "" for everyone else. The gateway sets it before any mechanism runs.
	Partner  string
	Deadline time.Time // the caller's deadline, zero when none was given
}

type ctxKey struct{}

// With returns a context carrying info.
func With(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, ctxKey{}, info)
}

// From returns the request's info, or nil outside the gateway.
func From(ctx context.Context) *Info {
	i, _ := ctx.Value(ctxKey{}).(*Info)
	return i
}

// Carrier is a context that carries its Info itself: for a caller that
// allocates the two in one piece, as the gateway does per request, where
// With costs an allocation of its own. From finds the Info of a Carrier
// parent, or any context derived from one, as it does With's. Everything
// else (Done, Err, Deadline, other values) is the embedded parent's, so the
// contexts derived from a Carrier cancel with the parent as they would.
type Carrier struct {
	context.Context
	Info Info
}

// Value returns the Carrier's Info for From, and asks the parent otherwise.
func (c *Carrier) Value(key any) any {
	if key == (ctxKey{}) {
		return &c.Info
	}
	return c.Context.Value(key)
}
