package ratelimit

import (
	"context"
	"errors"
	"math"
	"time"
)

// Limit is a GCRA limit: Burst events at once, refilled at Rate per second.
// The zero Limit is disabled and allows everything.
type Limit struct {
	// Rate is the sustained number of events per second.
	Rate float64 `json:"rate"`
	// Burst is how many events may arrive at once after a quiet spell.
	Burst int `json:"burst"`
}

// Enabled reports whether l limits anything.
func (l Limit) Enabled() bool { return l.Rate > 0 && l.Burst > 0 }

// Scale multiplies rate and burst by f, keeping at least a burst of one.
func (l Limit) Scale(f float64) Limit {
	if !l.Enabled() {
		return l
	}
	b := int(math.Round(float64(l.Burst) * f))
	return Limit{Rate: l.Rate * f, Burst: max(b, 1)}
}

// Emission is the time one event costs: 1/Rate.
func (l Limit) Emission() time.Duration {
	return time.Duration(float64(time.Second) / l.Rate)
}

// Window is how long an empty bucket takes to refill its burst; with Burst it
// is the quota and window of an IETF RateLimit-Policy.
func (l Limit) Window() time.Duration {
	return time.Duration(float64(l.Burst) * float64(time.Second) / l.Rate)
}

// Result is a Limiter's decision.
type Result struct {
	// Allowed reports whether the events were spent.
	Allowed bool
	// Remaining is how many more events would be allowed right now.
	Remaining int
	// RetryAfter, when !Allowed, is how long to wait before the same request
	// could be allowed. It is negative when the request can never be allowed
	// (more events than the burst).
	RetryAfter time.Duration
	// ResetAfter is how long until the bucket is full again.
	ResetAfter time.Duration
}

// Limiter spends events of a key under a limit. Implementations are safe for
// concurrent use.
type Limiter interface {
	// Allow spends n events of key under l if they fit. With n == 0 it
	// spends nothing and reports whether one more event would fit (a peek).
	Allow(ctx context.Context, key string, l Limit, n int) (Result, error)
}

// ErrInvalidLimit is returned for a disabled limit or a negative n.
var ErrInvalidLimit = errors.New("invalid limit")

// gcra is the generic cell rate algorithm on nanosecond instants: tat is the
// theoretical arrival time stored for the key (0 when absent). It returns the
// new tat to store (unchanged when denied or peeking) and the decision. The
// Redis backend runs the same arithmetic in Lua (see redis.go).
func gcra(now, tat int64, l Limit, n int) (int64, Result) {
	emission := float64(time.Second) / l.Rate
	tolerance := int64(emission * float64(l.Burst))
	if tat < now {
		tat = now
	}
	cost := n
	if n == 0 {
		cost = 1
	}
	newTat := tat + int64(emission*float64(cost))
	allowAt := newTat - tolerance
	diff := now - allowAt
	if diff < 0 {
		r := Result{RetryAfter: time.Duration(-diff), ResetAfter: time.Duration(tat - now)}
		if int64(emission*float64(cost)) > tolerance {
			r.RetryAfter = -1
		}
		return tat, r
	}
	if n == 0 {
		// Peek: report as if the event had been spent, but keep the state.
		return tat, Result{Allowed: true, Remaining: int(float64(diff) / emission), ResetAfter: time.Duration(tat - now)}
	}
	return newTat, Result{Allowed: true, Remaining: int(float64(diff) / emission), ResetAfter: time.Duration(newTat - now)}
}
