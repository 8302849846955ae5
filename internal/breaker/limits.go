package breaker

import (
	"context"
	"sync"
	"time"
)

// Limits bound what stand-in processing approves; a request over any of
// them is declined. Amounts are in euro cents; a zero field takes its
// default. The defaults are conservative placeholders, not measurements: the
// bank's risk team sets the real ones, as card schemes' stand-in parameters.
type Limits struct {
	// PerTransaction is the largest single amount approved. Default 100 EUR.
	PerTransaction int64 `json:"per_transaction"`
	// PerCardPerDay is the most stand-in approves for one card in one day
	// (midnight to midnight in StandInConfig.Location), replayed or not.
	// Default 300 EUR.
	PerCardPerDay int64 `json:"per_card_per_day"`
	// Exposure is the most stand-in holds approved and not yet confirmed by
	// the core, across all cards: the bank's risk while the core is away.
	// Default 1,000,000 EUR.
	Exposure int64 `json:"exposure"`
}

// Reasons for a stand-in decline, in StandInDecision.Reason.
const (
	ReasonAmountLimit = "standin_amount_limit" // over Limits.PerTransaction
	ReasonDailyLimit  = "standin_daily_limit"  // over Limits.PerCardPerDay
	ReasonExposureCap = "standin_exposure_cap" // over Limits.Exposure
)

func (l Limits) withDefaults() Limits {
	if l.PerTransaction <= 0 {
		l.PerTransaction = 100_00
	}
	if l.PerCardPerDay <= 0 {
		l.PerCardPerDay = 300_00
	}
	if l.Exposure <= 0 {
		l.Exposure = 1_000_000_00
	}
	return l
}

// share is one node's part of l when nodes gateways decide against the same
// limits and cannot tell one another what they approved: the per-card and
// total limits divided, the per-transaction limit whole.
func (l Limits) share(nodes int) Limits {
	if nodes > 1 {
		l.PerCardPerDay /= int64(nodes)
		l.Exposure /= int64(nodes)
	}
	return l
}

// limiter is the in-process Counter: the running totals of this process.
// It also rebuilds them from the journal at start (restore) and tells them
// to the status page (totals).
type limiter struct {
	loc *time.Location

	mu       sync.Mutex
	day      time.Time        // midnight starting the day perCard counts
	perCard  map[string]int64 // card -> approved today
	open     map[string]int64 // key -> amount approved the core has not confirmed
	exposure int64            // sum of open
}

var _ Counter = (*limiter)(nil)

func newLimiter(loc *time.Location) *limiter {
	return &limiter{loc: loc, perCard: map[string]int64{}, open: map[string]int64{}}
}

func (l *limiter) midnight(t time.Time) time.Time {
	y, m, d := t.In(l.loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, l.loc)
}

// roll starts a new day's per-card totals when day is past the current one.
func (l *limiter) roll(day time.Time) {
	if day.After(l.day) {
		l.day = day
		clear(l.perCard)
	}
}

// Reserve implements Counter. A hold of a day already over (a request
// decided across midnight) counts towards the exposure only.
func (l *limiter) Reserve(_ context.Context, h Hold, lim Limits) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.roll(h.Day)
	switch {
	case h.Day.Equal(l.day) && l.perCard[h.Card]+h.Amount > lim.PerCardPerDay:
		return ReasonDailyLimit, nil
	case l.exposure+h.Amount > lim.Exposure:
		return ReasonExposureCap, nil
	}
	l.add(h)
	return "", nil
}

// add counts h whatever the limits: an approval the shared counters made,
// still part of what this node approved. l.mu is held.
func (l *limiter) add(h Hold) {
	l.roll(h.Day)
	if h.Day.Equal(l.day) {
		l.perCard[h.Card] += h.Amount
	}
	l.open[h.Key] += h.Amount
	l.exposure += h.Amount
}

// count is add for callers not holding l.mu.
func (l *limiter) count(h Hold) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.add(h)
}

// Release implements Counter. It gives back no more than the key holds, as
// the Redis counter does: a key settled meanwhile keeps its card's day.
func (l *limiter) Release(_ context.Context, h Hold) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	amount := min(h.Amount, l.open[h.Key])
	if amount <= 0 {
		return nil
	}
	if h.Day.Equal(l.day) {
		if l.perCard[h.Card] -= amount; l.perCard[h.Card] <= 0 {
			delete(l.perCard, h.Card)
		}
	}
	if l.open[h.Key] -= amount; l.open[h.Key] <= 0 {
		delete(l.open, h.Key)
	}
	l.exposure -= amount
	return nil
}

// Settle implements Counter. A key this process never counted (another
// node's approval) changes nothing.
func (l *limiter) Settle(_ context.Context, key string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if amount, ok := l.open[key]; ok {
		delete(l.open, key)
		l.exposure -= amount
	}
	return nil
}

// restore counts an approval found in the journal at start-up, after roll
// has set the current day: towards its card's day if it was made today,
// towards the exposure if the core does not have it yet.
func (l *limiter) restore(key, card string, amount int64, at time.Time, pending bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.midnight(at).Equal(l.day) {
		l.perCard[card] += amount
	}
	if _, ok := l.open[key]; pending && !ok {
		l.open[key] = amount
		l.exposure += amount
	}
}

// totals returns the exposure, the approvals it is made of and the cards
// with approvals today.
func (l *limiter) totals() (exposure int64, open, cards int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.exposure, len(l.open), len(l.perCard)
}
