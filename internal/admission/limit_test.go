package admission

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// model is an upstream with c workers serving in s (lognormal around s with
// shape sigma): a call's latency is its service time stretched by the queue
// that forms when more than c calls are in it.
type model struct {
	c     int
	s     time.Duration
	sigma float64
	rng   *rand.Rand
}

func (m model) latency(inFlight int) time.Duration {
	d := float64(m.s) * math.Exp(m.sigma*m.rng.NormFloat64())
	return time.Duration(d * max(1, float64(inFlight)/float64(m.c)))
}

// run drives l with the upstream saturated (every window binding) for d of
// simulated time and returns the lowest limit and the time-weighted mean
// limit of its second half.
func (m model) run(l *limiter, now time.Time, d time.Duration) (_ time.Time, low int, mean float64) {
	end := now.Add(d)
	low = math.MaxInt
	var sum, weight float64
	for now.Before(end) {
		n := l.current()
		// The upstream completes min(n, c) calls per service time.
		step := m.s / time.Duration(max(1, min(n, m.c)))
		for range n {
			l.turnedAway()
			lat := m.latency(n)
			now = now.Add(step)
			l.succeeded(now.Add(-lat), now, lat)
		}
		if end.Sub(now) < d/2 {
			low = min(low, int(l.limit))
			w := float64(m.s) * max(1, float64(n)/float64(m.c))
			sum += l.limit * w
			weight += w
		}

	}
	return now, low, sum / weight
}

// TestLimiterFindsKnee checks that the limit settles just above the
// upstream's worker count, wherever it starts: above it the latency grows
// with the limit, below it the throughput falls.
//
// The draws are seeded, so the test is deterministic. Over seeds 1 to 300
// the second half's mean limit stayed within 1.10 and 1.24 times the
// workers (1.83 at most for 4 workers, where the queue Vegas keeps is 2 to
// 4 calls), and its lowest at or above 0.75 times: a probe.
func TestLimiterFindsKnee(t *testing.T) {
	const seed = 1
	tests := []struct {
		workers, initial int
		sigma            float64
	}{
		{workers: 4, initial: 20},
		{workers: 16, initial: 20},
		{workers: 16, initial: 20, sigma: 0.5},
		{workers: 16, initial: 2, sigma: 0.5},
		{workers: 64, initial: 20, sigma: 0.5},
		{workers: 200, initial: 20},
	}
	for _, tt := range tests {
		t.Run("", func(t *testing.T) {
			m := model{c: tt.workers, s: 20 * time.Millisecond, sigma: tt.sigma, rng: rand.New(rand.NewPCG(seed, 2))}
			o, _ := Options{InitialLimit: tt.initial}.withDefaults()
			now := time.Unix(0, 0)
			l := newLimiter(o, now)
			l.rng = rand.New(rand.NewPCG(seed, 7))
			_, low, mean := m.run(l, now, 120*time.Second)
			// Vegas keeps 2 to 4 calls queued, or a tenth to a fifth of the
			// limit, whichever is more.
			hi := float64(tt.workers) + max(4, float64(tt.workers)/4) + 2
			t.Logf("workers %d from %d: second half mean limit %.1f, lowest %d", tt.workers, tt.initial, mean, low)
			if mean < float64(tt.workers) || mean > hi {
				t.Errorf("mean limit %.1f, want within [%d, %.0f]", mean, tt.workers, hi)
			}
			// A probe adopted by a noisy measurement just above the knee
			// dips to three quarters of the limit for a few windows.
			if float64(low) < 0.7*float64(tt.workers) {
				t.Errorf("limit fell to %d in the second half, below 70%% of %d workers", low, tt.workers)
			}
		})
	}
}

// TestLimiterSlowerUpstream checks that a core that becomes three times
// slower keeps its share of calls: the limiter must not read the slower
// service as queueing and starve it.
func TestLimiterSlowerUpstream(t *testing.T) {
	m := model{c: 16, s: 20 * time.Millisecond, sigma: 0.5, rng: rand.New(rand.NewPCG(3, 4))}
	o, _ := Options{}.withDefaults()
	now := time.Unix(0, 0)
	l := newLimiter(o, now)
	l.rng = rand.New(rand.NewPCG(3, 7))
	now, _, before := m.run(l, now, 60*time.Second)
	m.s *= 3
	_, low, after := m.run(l, now, 60*time.Second)
	t.Logf("mean limit %.1f before the slowdown, %.1f after, lowest %d", before, after, low)
	if after < 16 {
		t.Errorf("mean limit %.1f in the second half-minute after the slowdown, want >= 16 workers", after)
	}
}

// TestLimiterOverloaded checks the cut for 5xx answers and time-outs: a
// tenth, at most once per round trip, never below MinLimit.
func TestLimiterOverloaded(t *testing.T) {
	o, _ := Options{InitialLimit: 100, MinLimit: 5}.withDefaults()
	now := time.Unix(0, 0)
	l := newLimiter(o, now)
	l.median = 10 * time.Millisecond

	l.overloaded(now)
	l.overloaded(now.Add(5 * time.Millisecond)) // same round trip: ignored
	if l.limit != 90 {
		t.Fatalf("limit %.1f after two errors within a round trip, want 90", l.limit)
	}
	for i := range 100 {
		l.overloaded(now.Add(time.Duration(i+1) * 10 * time.Millisecond))
	}
	if l.limit != 5 {
		t.Fatalf("limit %.1f after sustained errors, want MinLimit 5", l.limit)
	}
}

// TestLimiterOwnSchedulingIsNotTheUpstreams drives a back end with room to
// spare (300 µs a call, no queue of its own) through a gateway whose own run
// queue grows with the calls in flight, as when clients, gateway and back end
// share two cores: each call in flight adds about 40 µs of waiting for a
// processor to every other. The latency the limiter sees then rises with
// the limit although the back end never queues. Told that scheduling delay
// (its p90 at the current load, as rempart_sched_latency_p90_seconds
// reports it), the limiter must stay open above the offered concurrency; not
// told, it reads the delay as a queue in the back end and cuts — the failure
// of issue 14 (the limit settled at 13 in front of 64 connections and a
// quarter of the answers were shed), checked here so that the first case
// cannot pass by accident.
func TestLimiterOwnSchedulingIsNotTheUpstreams(t *testing.T) {
	const offered = 64
	const perCall = 40 * time.Microsecond
	for _, tt := range []struct {
		name string
		told bool
	}{{"told the scheduling latency", true}, {"not told", false}} {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			n := 0 // calls in flight in this round
			var noise func() time.Duration
			if tt.told {
				// p90 of a uniform wait in [0, 2·n·perCall).
				noise = func() time.Duration { return time.Duration(1.8 * float64(n) * float64(perCall)) }
			}
			o, _ := Options{Noise: noise}.withDefaults() // starts at the default 20
			now := time.Unix(0, 0)
			l := newLimiter(o, now)
			l.rng = rand.New(rand.NewPCG(3, 5))
			low := math.MaxInt
			for end := now.Add(60 * time.Second); now.Before(end); {
				n = min(offered, l.current())
				for range n {
					if n < offered {
						l.turnedAway()
					}
					wait := time.Duration(rng.Int64N(int64(2*time.Duration(n)*perCall) + 1))
					lat := 300*time.Microsecond + wait
					now = now.Add(lat / time.Duration(n))
					l.succeeded(now.Add(-lat), now, lat)
				}
				if now.After(time.Unix(10, 0)) {
					low = min(low, l.current())
				}
			}
			if tt.told && low < offered*3/4 {
				t.Fatalf("the limit fell to %d with %d calls offered to an idle back end", low, offered)
			}
			if !tt.told && low >= offered*3/4 {
				t.Fatalf("without the noise the limit stayed at %d or more: the scenario does not show the failure", low)
			}
			t.Logf("lowest limit after 10 s: %d (offered %d)", low, offered)
		})
	}
}

// TestLimiterNoiseDoesNotHideAQueue: an upstream that really queues (16
// workers, 20 ms) behind a saturated gateway that reports a 30 ms run queue
// must still be found: the scheduling delay explains away at most half the
// latency, so the limit stays within a few times the knee rather than
// climbing to its ceiling (42 in this run: a third of the latency was
// explained away; at a cap of a third the idle back end above was cut).
func TestLimiterNoiseDoesNotHideAQueue(t *testing.T) {
	m := model{c: 16, s: 20 * time.Millisecond, sigma: 0.3, rng: rand.New(rand.NewPCG(1, 2))}
	o, _ := Options{InitialLimit: 20, Noise: func() time.Duration { return 30 * time.Millisecond }}.withDefaults()
	now := time.Unix(0, 0)
	l := newLimiter(o, now)
	l.rng = rand.New(rand.NewPCG(1, 7))
	_, _, mean := m.run(l, now, 120*time.Second)
	if mean > 3*16 {
		t.Fatalf("mean limit %.1f in front of 16 workers: the reported run queue hid the upstream's own", mean)
	}
	t.Logf("mean limit %.1f (16 workers)", mean)
}
