package client

import (
	"testing"
	"time"
)

// step is one thing that happens to a breaker in a scripted test.
type step struct {
	wait    time.Duration // advance the clock first
	outcome outcome       // then, if allowed, record this
	allowed bool          // what allow must say
	state   BreakerState  // the state after
}

func TestBreaker(t *testing.T) {
	cfg := BreakerConfig{ConsecutiveFailures: 3, FailureRatio: 0.5, Window: 10, MinAttempts: 6, OpenFor: time.Second}
	ok := func(s BreakerState) step { return step{outcome: succeeded, allowed: true, state: s} }
	fail := func(s BreakerState) step { return step{outcome: failed, allowed: true, state: s} }
	refused := step{allowed: false, state: Open}
	tests := []struct {
		name  string
		steps []step
	}{
		{"consecutive failures open it", []step{fail(Closed), fail(Closed), fail(Open), refused}},
		{"a success resets the count", []step{fail(Closed), fail(Closed), ok(Closed), fail(Closed), fail(Closed), ok(Closed)}},
		{"failure ratio opens it", []step{
			ok(Closed), fail(Closed), ok(Closed), fail(Closed), ok(Closed), fail(Open), // 3 of 6: half
		}},
		{"ratio below the threshold keeps it closed", []step{
			fail(Closed), ok(Closed), ok(Closed), fail(Closed), ok(Closed), ok(Closed), fail(Closed), ok(Closed),
		}},
		{"half-open probe that succeeds closes it", []step{
			fail(Closed), fail(Closed), fail(Open),
			{wait: 999 * time.Millisecond, allowed: false, state: Open},
			{wait: time.Millisecond, outcome: succeeded, allowed: true, state: Closed},
			ok(Closed),
		}},
		{"half-open probe that fails reopens it", []step{
			fail(Closed), fail(Closed), fail(Open),
			{wait: time.Second, outcome: failed, allowed: true, state: Open},
			refused,
			{wait: time.Second, outcome: succeeded, allowed: true, state: Closed},
		}},
		{"an abandoned probe lets another through", []step{
			fail(Closed), fail(Closed), fail(Open),
			{wait: time.Second, outcome: abandoned, allowed: true, state: HalfOpen},
			{outcome: succeeded, allowed: true, state: Closed},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1766395800, 0)
			b := newBreaker(cfg, func() time.Time { return now })
			for i, s := range tt.steps {
				now = now.Add(s.wait)
				got := b.allow()
				if got != s.allowed {
					t.Fatalf("step %d: allow = %v, want %v", i, got, s.allowed)
				}
				if got {
					b.done(s.outcome)
				}
				if st := b.current(); st != s.state {
					t.Fatalf("step %d: state %v, want %v", i, st, s.state)
				}
			}
		})
	}
}

// TestBreakerOneProbe checks that half-open lets exactly one request through
// until the probe's outcome is known.
func TestBreakerOneProbe(t *testing.T) {
	now := time.Unix(1766395800, 0)
	b := newBreaker(BreakerConfig{ConsecutiveFailures: 1, OpenFor: time.Second}, func() time.Time { return now })
	b.allow()
	b.done(failed)
	now = now.Add(time.Second)
	if !b.allow() {
		t.Fatal("no probe let through after OpenFor")
	}
	for i := range 5 {
		if b.allow() {
			t.Fatalf("request %d let through while the probe is out", i)
		}
	}
}
