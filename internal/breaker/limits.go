package breaker

import (
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

// limiter keeps the running totals the limits are checked against. A
// reservation is taken before the decision is journaled and released if the
// journal refuses it, so that concurrent decisions cannot together pass a
// limit each of them respects alone.
type limiter struct {
	limits Limits
	loc    *time.Location

	mu       sync.Mutex
	day      time.Time        // midnight starting the day perCard counts
	perCard  map[string]int64 // card -> approved today
	open     map[string]hold  // key -> approval the core has not confirmed
	exposure int64            // sum of open
}

type hold struct {
	card   string
	amount int64
	day    time.Time
}

func newLimiter(l Limits, loc *time.Location) *limiter {
	return &limiter{limits: l.withDefaults(), loc: loc, perCard: map[string]int64{}, open: map[string]hold{}}
}

func (l *limiter) midnight(t time.Time) time.Time {
	y, m, d := t.In(l.loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, l.loc)
}

// roll starts a new day's per-card totals when t is past the current day.
func (l *limiter) roll(t time.Time) time.Time {
	day := l.midnight(t)
	if day.After(l.day) {
		l.day = day
		clear(l.perCard)
	}
	return day
}

// reserve approves amount on card, or returns why not. The approval counts
// at once; commit files it under its key once journaled, release undoes it
// if it never was (journal failure, or a concurrent request with the same
// key journaled first).
func (l *limiter) reserve(card string, amount int64, now time.Time) (*hold, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	day := l.roll(now)
	switch {
	case amount > l.limits.PerTransaction:
		return nil, ReasonAmountLimit
	case l.perCard[card]+amount > l.limits.PerCardPerDay:
		return nil, ReasonDailyLimit
	case l.exposure+amount > l.limits.Exposure:
		return nil, ReasonExposureCap
	}
	l.perCard[card] += amount
	l.exposure += amount
	return &hold{card: card, amount: amount, day: day}, ""
}

// commit files a journaled approval under its key, for settle. The replayer
// cannot settle a key before this: it replays only what Append has returned,
// and commit follows Append in the same goroutine.
func (l *limiter) commit(key string, h *hold) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open[key] = *h
}

// release undoes a reservation whose decision was never given.
func (l *limiter) release(h *hold) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h.day.Equal(l.day) {
		if l.perCard[h.card] -= h.amount; l.perCard[h.card] <= 0 {
			delete(l.perCard, h.card)
		}
	}
	l.exposure -= h.amount
}

// settle ends the exposure of an approval the core now has; it still counts
// towards the card's day. Settling twice is harmless.
func (l *limiter) settle(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h, ok := l.open[key]; ok {
		delete(l.open, key)
		l.exposure -= h.amount
	}
}

// restore counts an approval found in the journal at start-up, after roll
// has set the current day: towards its card's day if it was made today,
// towards the exposure if the core does not have it yet.
func (l *limiter) restore(key, card string, amount int64, at time.Time, pending bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	day := l.midnight(at)
	if day.Equal(l.day) {
		l.perCard[card] += amount
	}
	if _, ok := l.open[key]; pending && !ok {
		l.open[key] = hold{card: card, amount: amount, day: day}
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
