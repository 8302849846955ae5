package client

import (
	"errors"
	"sync"
	"time"
)

// ErrCircuitOpen is returned instead of sending a request while the client's
// circuit breaker is open: the server failed too often lately, and another
// request would only add to its load.
var ErrCircuitOpen = errors.New("circuit breaker open")

// BreakerConfig sizes the client's circuit breaker. Zero values take the
// defaults.
type BreakerConfig struct {
	// ConsecutiveFailures opens the breaker after this many failed attempts
	// in a row. Default 5.
	ConsecutiveFailures int
	// FailureRatio opens the breaker when this share of the last Window
	// attempts failed (once at least MinAttempts were counted). Default 0.5.
	FailureRatio float64
	// Window is how many recent attempts FailureRatio looks at. Default 20.
	Window int
	// MinAttempts is how many attempts the window needs before the ratio
	// counts. Default 10.
	MinAttempts int
	// OpenFor is how long the breaker stays open before it lets one probe
	// through (half-open). Default 5s.
	OpenFor time.Duration
}

func (c BreakerConfig) withDefaults() BreakerConfig {
	if c.ConsecutiveFailures <= 0 {
		c.ConsecutiveFailures = 5
	}
	if c.FailureRatio <= 0 || c.FailureRatio > 1 {
		c.FailureRatio = 0.5
	}
	if c.Window <= 0 {
		c.Window = 20
	}
	if c.MinAttempts <= 0 {
		c.MinAttempts = 10
	}
	c.MinAttempts = min(c.MinAttempts, c.Window)
	if c.OpenFor <= 0 {
		c.OpenFor = 5 * time.Second
	}
	return c
}

// BreakerState is the state of a circuit breaker.
type BreakerState int

const (
	Closed   BreakerState = iota // requests flow
	Open                         // requests are refused with ErrCircuitOpen
	HalfOpen                     // one probe is let through to test the server
)

func (s BreakerState) String() string {
	switch s {
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "closed"
}

// breaker is a count- and ratio-based circuit breaker over attempts.
type breaker struct {
	cfg BreakerConfig
	now func() time.Time

	mu          sync.Mutex
	state       BreakerState
	openedAt    time.Time
	probing     bool   // a half-open probe is out
	consecutive int    // failures in a row
	ring        []bool // last Window outcomes, true = failure
	next, count int    // ring position and fill
	failures    int    // failures in the ring
}

func newBreaker(cfg BreakerConfig, now func() time.Time) *breaker {
	cfg = cfg.withDefaults()
	return &breaker{cfg: cfg, now: now, ring: make([]bool, cfg.Window)}
}

// allow reports whether an attempt may be sent. An allowed attempt must be
// followed by exactly one call to done.
func (b *breaker) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Open:
		if b.now().Sub(b.openedAt) < b.cfg.OpenFor {
			return false
		}
		b.state = HalfOpen
		fallthrough
	case HalfOpen:
		if b.probing {
			return false
		}
		b.probing = true
	}
	return true
}

// outcome is what an attempt told about the server.
type outcome int

const (
	succeeded outcome = iota // the server answered as a working server does
	failed                   // the server failed or could not be reached
	abandoned                // we gave up before learning anything
)

// done records the outcome of an allowed attempt.
func (b *breaker) done(o outcome) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == HalfOpen {
		b.probing = false
		switch o {
		case succeeded:
			b.reset(Closed)
		case failed:
			b.trip()
		}
		return
	}
	if o == abandoned || b.state == Open {
		// An attempt let through before the breaker opened says nothing new.
		return
	}
	fail := o == failed
	if b.count == len(b.ring) && b.ring[b.next] {
		b.failures--
	}
	b.ring[b.next] = fail
	b.next = (b.next + 1) % len(b.ring)
	b.count = min(b.count+1, len(b.ring))
	if !fail {
		b.consecutive = 0
		return
	}
	b.failures++
	b.consecutive++
	if b.consecutive >= b.cfg.ConsecutiveFailures ||
		(b.count >= b.cfg.MinAttempts && float64(b.failures) >= b.cfg.FailureRatio*float64(b.count)) {
		b.trip()
	}
}

func (b *breaker) trip() {
	b.reset(Open)
	b.openedAt = b.now()
}

// reset empties the counters and enters state s.
func (b *breaker) reset(s BreakerState) {
	b.state = s
	b.consecutive, b.next, b.count, b.failures = 0, 0, 0, 0
	clear(b.ring)
}

func (b *breaker) current() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == Open && b.now().Sub(b.openedAt) >= b.cfg.OpenFor {
		return HalfOpen
	}
	return b.state
}
