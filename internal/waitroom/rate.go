package waitroom

import (
	"math"
	"net/http"
	"time"
)

// estimator learns the admission rate from the calls the room lets through.
// Once a second it decides, on the last Window of calls:
//
//   - The backend is overloaded when more than 5 % of the calls failed the
//     way a saturated server fails (5xx, 429), more than 10 % were slower
//     than LatencyTarget, or more calls are in flight than Little's law
//     allows at the current rate (2 × rate × LatencyTarget, see full): a stuck
//     backend, like the deadlocked identity database of the incident,
//     answers nothing, so only the calls piling up show it.
//   - Overloaded: the rate drops to 90 % of the goodput (good completions
//     per second) in the seconds of the window that showed saturation, or of
//     the current rate, whichever is lower. A saturated backend's goodput is
//     its capacity, so this is the measurement; the 10 % margin drains the
//     queue that built up. Then the estimator waits one window, so that its
//     next decision sees only traffic admitted at the new rate.
//   - Healthy, the line non-empty (the rate is what holds people back) and
//     the backend carried at least 80 % of the rate in the last second: the
//     rate rises to find out whether the backend can take more. By 50 % a
//     second while it is far below the capacity last measured, or none was
//     measured in the last minute, so a surge that starts at the floor
//     reaches hundreds of logins a second within ten seconds; by 10 % near it
//     (and by at least one login a second either way). Without that evidence
//     it waits: clients told to come back at the old rate return late when
//     the rate rises, and raising it further on no evidence would only pile
//     up called clients who then arrive together.
//   - A stall or an outage (calls piling up to the in-flight bound, or a
//     goodput below the floor) is cut like an overload but remembered: once the backend completes calls
//     again, promptly and without failures, the rate goes straight back to
//     half what it was before the stall, and climbs from there. When no
//     word comes (every call that hung has timed out, none is in flight),
//     it probes at that rate once the cooldown is over: a backend still
//     stalled fills the in-flight bound and is cut again.
//   - Otherwise the rate stays where it is. It matters only when demand
//     exceeds it, and then it starts from the last thing learnt.
//
// Called clients who never come back cost the line their turn: the room
// cannot tell a client who gave up from one who is late, and guessing would
// overload the backend when the late ones arrive. A concurrency limit
// adapted from latency (admission's job) would not fit here: a waiting client
// holds no connection, it comes back later, so what the room hands out is a
// rate, not slots.
type estimator struct {
	rate     float64
	min, max float64
	target   time.Duration
	buckets  []bucket // one per second of the window, ring indexed by Unix second
	cur      int64    // Unix second being filled
	cooldown int64    // no decision before this second
	capacity float64  // the goodput measured at the last overload, zero when none recently
	cutAt    int64    // the second of the last overload
	smooth   float64  // the rate averaged over the last half minute or so, for estimates
	decided  int64    // the second of the last decision
	binding  bool     // someone was held back since the last decision
	inflight int
	resume   float64 // the rate held before the backend stalled, zero when it has not
}

type bucket struct {
	sec             int64
	good, bad, slow int
}

// forgetAfter is how long, in seconds, a measured capacity is trusted to
// bound the fast climb: the identity provider of the incident recovered in
// steps, and a room that kept crawling at 10 %/s from an old figure would
// hold customers back long after.
const forgetAfter = 60

// minSamples is the fewest calls in a window on which failure and latency
// ratios are believed: one slow call out of three says nothing.
const minSamples = 10

func newEstimator(o Options, now time.Time) *estimator {
	return &estimator{
		rate:    o.InitialRate,
		smooth:  o.InitialRate,
		min:     o.MinRate,
		max:     o.MaxRate,
		target:  o.LatencyTarget,
		buckets: make([]bucket, int(o.Window/time.Second)),
		cur:     now.Unix(),
	}
}

// failed says whether a status is what a saturated server answers. A 4xx
// other than 429 is the client's problem (wrong password): the backend did
// its work.
func failed(code int) bool {
	return code >= 500 || code == http.StatusTooManyRequests
}

func (e *estimator) observe(now time.Time, latency time.Duration, code int) {
	e.roll(now)
	b := e.bucket(e.cur)
	if failed(code) {
		b.bad++
	} else {
		b.good++
	}
	if latency > e.target {
		b.slow++
	}
}

func (e *estimator) bucket(sec int64) *bucket {
	b := &e.buckets[int(sec%int64(len(e.buckets)))]
	if b.sec != sec {
		*b = bucket{sec: sec}
	}
	return b
}

// roll moves to now's second, deciding on the window that just closed. After
// an idle gap one decision is enough: nothing happened in between.
func (e *estimator) roll(now time.Time) {
	sec := now.Unix()
	if sec <= e.cur {
		return
	}
	e.decide(e.cur)
	e.cur = sec
	e.bucket(sec)
}

func (e *estimator) decide(sec int64) {
	binding := e.binding
	e.binding = false
	defer e.smoothen(sec)
	stuck := e.full()
	lb := e.bucket(sec)
	last := lb.good
	if e.resume > 0 && !stuck && last > 0 && lb.bad == 0 && lb.slow == 0 {
		// The backend answers again, promptly and without failing, after a
		// stall: the stall said nothing about its capacity, so the rate goes
		// back to half what it was before, without waiting out the cooldown
		// (the incident's identity store came back at once when unblocked,
		// and a room crawling up from its floor would have kept customers
		// out for minutes after).
		e.rate = clamp(max(e.rate, e.resume/2), e.min, e.max)
		e.resume = 0
		e.cooldown = sec + 1
		return
	}
	if sec < e.cooldown {
		return
	}
	if e.resume > 0 && e.inflight == 0 {
		// Still no word since the stall, and nothing left waiting on the
		// backend: the calls that hung on it have ended (timed out). With
		// nothing admitted nothing will be learnt, and customers wait on a
		// floor set by a stall that may be over: probe at half the rate
		// before it. If the backend still hangs, the probe's calls pile up
		// to the in-flight bound (see full) and the next decision cuts
		// again; if it answers, the first prompt second confirms.
		e.rate = clamp(max(e.rate, e.resume/2), e.min, e.max)
		e.cooldown = sec + int64(len(e.buckets))
		return
	}
	var good, bad, slow, span, satGood, satSpan int
	for _, b := range e.buckets {
		if b.sec <= sec && b.sec > sec-int64(len(e.buckets)) && b.good+b.bad > 0 {
			good, bad, slow = good+b.good, bad+b.bad, slow+b.slow
			span++
			if b.bad > 0 || b.slow > 0 {
				satGood += b.good
				satSpan++
			}
		}
	}
	n := good + bad
	over := stuck || (n >= minSamples && (bad*20 > n || slow*10 > n))
	switch {
	case over:
		// What the backend completed in the seconds it showed saturation is
		// its capacity; the quieter seconds of the window are not. With no
		// such second (a stuck backend fails nothing, it just holds calls),
		// the window's seconds that saw traffic.
		goodput := float64(good) / float64(max(span, 1))
		if satSpan > 0 {
			goodput = float64(satGood) / float64(satSpan)
		}
		if stuck || 0.9*goodput <= e.min {
			// Calls pile up, or next to none succeed: a stall or an outage
			// (whole or partial), not a saturation, and what completes
			// meanwhile (the calls that got past the part that hangs or
			// fails) is no measure of what the backend can do once it is
			// back.
			e.resume = max(e.resume, e.rate)
			e.rate = clamp(0.9*min(e.rate, goodput), e.min, e.max)
			e.cooldown = sec + int64(len(e.buckets))
			e.capacity, e.cutAt = 0, sec
			return
		}
		e.rate = clamp(0.9*min(e.rate, goodput), e.min, e.max)
		e.cooldown = sec + int64(len(e.buckets))
		e.capacity, e.cutAt = goodput, sec
	case binding && float64(last) >= 0.8*e.rate:
		if sec-e.cutAt > forgetAfter {
			e.capacity = 0
		}
		growth := 1.1
		if e.rate < 0.5*e.capacity || e.capacity == 0 {
			growth = 1.5
		}
		e.rate = clamp(max(e.rate*growth, e.rate+1), e.min, e.max)
	}
}

// full says whether as many calls are in flight as Little's law allows at
// the current rate (2 × rate × LatencyTarget, and two more): the room admits
// no more until some complete. A healthy backend never gets there (its
// calls take less than the target, so it holds under half as many); a
// stalled one does, and is then fed no more calls that would only hang on
// it and, released together when it comes back, land on it all at once.
func (e *estimator) full() bool {
	return float64(e.inflight) >= 2*e.rate*e.target.Seconds()+2
}

// smoothTau is the time constant, in seconds, of the rate behind the
// estimates: it irons out the estimator's probe-and-cut saw-tooth so a client
// quoted at the top of a probe is not told a wait the next cut makes a lie,
// and still follows a climb. 3 s came out of TestEstimatorFindsCapacity:
// median observed/quoted wait 0.85–0.93, against 0.9–1.1 with no smoothing
// but a 90th percentile of 1.3 (late), and 0.5–0.65 with 10 s (waits
// overstated by half while the rate climbs).
const smoothTau = 3.0

func (e *estimator) smoothen(sec int64) {
	if e.decided != 0 {
		e.smooth += (e.rate - e.smooth) * (1 - math.Exp(-float64(sec-e.decided)/smoothTau))
	}
	e.decided = sec
}

// etaRate is the rate waits are estimated at: the smoothed rate, or the
// current one when lower (just after a cut). While the rate climbs this
// overstates waits a little; customers told three minutes who get in after
// two do not retry in anger.
func (e *estimator) etaRate() float64 { return min(e.rate, e.smooth) }

func clamp(v, lo, hi float64) float64 { return min(max(v, lo), hi) }
