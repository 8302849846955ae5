package client

import (
	"sync"
	"time"
)

// BudgetConfig sizes a RetryBudget. Zero values take the defaults.
type BudgetConfig struct {
	// Ratio is the share of calls that may be retried: 0.1 lets retries add
	// at most 10 % to the load a failing server sees. Default 0.1.
	Ratio float64
	// MinRetries is the floor: this many retries per Window are allowed even
	// when Ratio of the calls is fewer, so that a client making one call a
	// minute can still retry it. Default 10.
	MinRetries int
	// Window is how far back calls and retries are counted. Default 10s.
	Window time.Duration
	// Now is the time source; nil means time.Now.
	Now func() time.Time
}

// budgetBuckets is how finely the window slides: a tenth of it at a time.
const budgetBuckets = 10

// RetryBudget bounds retries to a share of calls over a sliding window, the
// retry budget of Finagle and of the SRE book's "client-side throttling": a
// call deposits, a retry withdraws, and a retry the budget cannot pay for is
// not sent. Unlike a per-call attempt limit it holds when every call fails:
// retries then add at most Ratio to the load instead of multiplying it.
//
// One budget may be shared by several Clients talking to the same service,
// and by the gateway's own retries. It is safe for concurrent use.
type RetryBudget struct {
	ratio float64
	floor int64
	width time.Duration // of one bucket
	now   func() time.Time

	mu      sync.Mutex
	buckets [budgetBuckets]budgetBucket
}

// budgetBucket counts one slice of the window.
type budgetBucket struct {
	slot             int64 // which slice of time it counts; stale when old
	calls, withdrawn int64
}

// NewRetryBudget returns an empty budget sized by cfg.
func NewRetryBudget(cfg BudgetConfig) *RetryBudget {
	if cfg.Ratio <= 0 {
		cfg.Ratio = 0.1
	}
	if cfg.MinRetries <= 0 {
		cfg.MinRetries = 10
	}
	if cfg.Window <= 0 {
		cfg.Window = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	width := max(cfg.Window/budgetBuckets, time.Nanosecond)
	return &RetryBudget{ratio: cfg.Ratio, floor: int64(cfg.MinRetries), width: width, now: cfg.Now}
}

// Deposit records one call (a first attempt, never a retry).
func (b *RetryBudget) Deposit() {
	b.mu.Lock()
	b.current().calls++
	b.mu.Unlock()
}

// TryWithdraw reports whether one retry may be sent now, and if so counts it.
// A retry is allowed while the retries in the window stay within the greater
// of Ratio times the calls in the window and MinRetries.
func (b *RetryBudget) TryWithdraw() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.current()
	var calls, withdrawn int64
	for i := range b.buckets {
		if b.live(b.buckets[i].slot, cur.slot) {
			calls += b.buckets[i].calls
			withdrawn += b.buckets[i].withdrawn
		}
	}
	allowed := max(int64(b.ratio*float64(calls)), b.floor)
	if withdrawn >= allowed {
		return false
	}
	cur.withdrawn++
	return true
}

// current returns the bucket of now, emptied if it held an older slice.
// Called with mu held.
func (b *RetryBudget) current() *budgetBucket {
	slot := b.now().UnixNano() / int64(b.width)
	bk := &b.buckets[(slot%budgetBuckets+budgetBuckets)%budgetBuckets]
	if bk.slot != slot {
		*bk = budgetBucket{slot: slot}
	}
	return bk
}

// live reports whether a bucket of slot is inside the window ending at cur.
func (b *RetryBudget) live(slot, cur int64) bool {
	return slot > cur-budgetBuckets && slot <= cur
}
