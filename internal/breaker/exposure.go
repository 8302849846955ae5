package breaker

import (
	"context"
	"time"
)

// Counter keeps the running totals stand-in limits are checked against: what
// each card was approved today, and the exposure (approved, not yet
// confirmed by the core). The in-process one counts one node's approvals;
// RedisCounter counts every node's, so that a cluster approves no more than
// one gateway would.
type Counter interface {
	// Reserve counts h towards its card's day and the exposure if neither
	// then passes its limit in l, and returns ""; otherwise it counts
	// nothing and returns ReasonDailyLimit or ReasonExposureCap. The
	// per-transaction limit is the caller's to check.
	Reserve(ctx context.Context, h Hold, l Limits) (reason string, err error)
	// Release undoes a Reserve whose decision was never given: the journal
	// refused it, or a concurrent request with the same key came first.
	Release(ctx context.Context, h Hold) error
	// Settle ends the exposure of the approval journaled under key, once the
	// core has it; it still counts towards its card's day. A key settled
	// already, or never reserved, changes nothing.
	Settle(ctx context.Context, key string) error
}

// Hold is one approval as a Counter counts it.
type Hold struct {
	Key    string    // the Idempotency-Key the approval is journaled under
	Card   string    // the card whose day it counts towards
	Amount int64     // euro cents
	Day    time.Time // midnight starting the day it was decided (StandInConfig.Location)
}
