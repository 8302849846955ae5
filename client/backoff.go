package client

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Backoff is exponential backoff with full jitter, as in the AWS Architecture
// Blog's "Exponential Backoff And Jitter": before retry n (0 for the first)
// wait a uniformly random time in [0, min(Cap, Base·2^n)). Full jitter
// spreads the retries of clients that failed together, so they do not come
// back together; the blog measured it as the least total work of the
// variants it compared.
type Backoff struct {
	Base time.Duration // ceiling of the first wait
	Cap  time.Duration // largest ceiling; one below Base means Base

	// rand draws in [0, n); nil means math/rand/v2.
	rand func(n int64) int64
}

// Ceiling is the upper bound of the wait before retry n.
func (b Backoff) Ceiling(n int) time.Duration {
	if b.Base <= 0 {
		return 0
	}
	limit := max(b.Cap, b.Base)
	c := b.Base
	for range n {
		if c >= limit/2 {
			return limit
		}
		c *= 2
	}
	return min(c, limit)
}

// Delay draws the wait before retry n.
func (b Backoff) Delay(n int) time.Duration {
	c := b.Ceiling(n)
	if c <= 0 {
		return 0
	}
	if b.rand != nil {
		return time.Duration(b.rand(int64(c)))
	}
	return time.Duration(rand.Int64N(int64(c)))
}

// lockedRand makes a seeded source safe to share between goroutines.
func lockedRand(src rand.Source) func(n int64) int64 {
	var mu sync.Mutex
	r := rand.New(src)
	return func(n int64) int64 {
		mu.Lock()
		defer mu.Unlock()
		return r.Int64N(n)
	}
}
