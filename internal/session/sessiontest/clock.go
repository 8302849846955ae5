package sessiontest

import (
	"sync"
	"time"

	"github.com/rempart/rempart/internal/session"
)

// FakeClock is a session.Clock that moves only when told to.
type FakeClock struct {
	mu  sync.Mutex
	now time.Time
}

var _ session.Clock = (*FakeClock)(nil)

// NewFakeClock returns a clock stopped at start.
func NewFakeClock(start time.Time) *FakeClock {
	return &FakeClock{now: start}
}

// Now returns the clock's time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the clock to t.
func (c *FakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}
