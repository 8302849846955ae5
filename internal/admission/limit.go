package admission

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// limiter learns how many concurrent calls an upstream takes before they
// start queueing inside it. It is TCP Vegas applied to concurrency: over each
// sample window it compares the median latency of successful calls with the
// upstream's latency when nothing queues (the anchor), reads from their ratio
// how many calls are queued in the upstream (limit × (1 − anchor/median)),
// and keeps that between alpha and beta by moving the limit. 5xx answers and
// time-outs cut the limit by a tenth, at most once per round trip.
//
// It replaces failsafe-go's adaptivelimiter (v0.9.8), which this package was
// first built on, because that limiter is what failed the Done-when test.
// Driving a 16-worker, 20ms core at ten times capacity for 40s (TestSoak's
// mix with REMPART_TENFOLD_MEDIAN=20ms, sized on nominal capacity, 500ms
// time-outs, no -race, this controller around it), failsafe's limiter with its
// default 1s windows wandered from 21 up to 29 and down to 8; goodput was
// 87% of nominal capacity and CRITICAL success 99.61%. Shorter windows made
// it worse (5–26 with 500ms windows and a 20-window correlation: goodput
// 68%, CRITICAL 76.7%) or let it
// climb (21–67 with 250ms windows and a 10-sample correlation). Its
// baseline latency follows the recent one up under sustained load, and its
// brakes act only while its own semaphore is full and on a correlation over
// 50 windows. This limiter, on that core for 40s (TestSoak with
// REMPART_TENFOLD_MEDIAN=20ms, sized on measured capacity, 800ms
// time-outs), held 15–20 counting its probe windows, with goodput 99.8% of
// a twin core run closed-loop beside it (98% of nominal), every CRITICAL
// request served and CRITICAL's median latency 1.25 times the service
// time. Speed was never the issue: both cost well under a
// microsecond per call.
//
// Three things keep the anchor honest where a moving baseline drifts:
//   - it is the second smallest over anchorSpan of the windows' smoothed
//     medians, so it only rises when the upstream has been slower for that
//     long;
//   - every probeEvery a window runs at three quarters of the limit, which
//     shows the latency below the knee when the limit sits above it, and a
//     probe whose latency fell as much as the concurrency did is kept and
//     followed by another, which descends from far above the knee;
//   - when the last four windows all decreased the limit, by a quarter in
//     all, and latency did not fall by a tenth over them, the latency is the
//     upstream's own (a slower core), not queueing: the anchor is reset to
//     it instead of starving the upstream of calls.
//
// It is not safe for concurrent use; the Controller holds its lock.
type limiter struct {
	minLimit, maxLimit float64
	window             time.Duration
	limit              float64
	noise              func() time.Duration // latency the upstream did not cause; nil: none
	rng                *rand.Rand           // the reservoir's and the probes' draws

	winStart time.Time
	seen     int // successes recorded in this window
	sample   [reservoirSize]time.Duration
	binding  bool // the limit turned a call away in this window
	probing  bool // this window runs at probeShare of the limit
	nextProb time.Time

	anchors []anchorPoint // anchor candidates of the last anchorSpan, oldest first
	median  time.Duration // last window's median, a round-trip estimate
	smooth  time.Duration // moving average of regular windows' medians

	chain       int              // probes adopted in a row
	chainMedian time.Duration    // the last adopted probe's median
	streak      int              // consecutive decreasing windows
	past        [4]windowSummary // the last binding windows, a ring
	pastNext    int              // where the next summary goes in past
	nextBackoff time.Time

	// What the controller saw of the demand in this window.
	peakInFlight int  // most calls in flight at once
	peakDemand   int  // most calls in flight or queued at once
	erred        bool // a 5xx or time-out was recorded

	windows int // windows ended, up to 2
	// open is the state in which the queue in front of the upstream is
	// bounded only by MaxQueue, MaxWait and deadlines (Controller.openLocked).
	open bool
	shed bool // the queue shed a call for saturation in this window
	// opened is the limit before the last window doubled it, zero when
	// the last window did not; jumps are not made before noJumpUntil.
	opened      float64
	noJumpUntil time.Time
	// healthy is the most calls in flight at once in a recent window with
	// latency at the anchor and no error: concurrency the upstream served
	// at its baseline, until healthyUntil. An error forgets it.
	healthy      int
	healthyUntil time.Time
}

type windowSummary struct {
	limit  float64 // before the window's adjustment
	median time.Duration
}

type anchorPoint struct {
	at time.Time
	d  time.Duration
}

const (
	// reservoirSize samples give a window median within about 4% (standard
	// error 1.25σ/√n for a lognormal of σ=0.5), below the 6% that one call
	// more queued adds to the latency of a 16-worker upstream.
	reservoirSize = 256
	// minSamples per window: fewer make the median too noisy to act on.
	minSamples = 32
	// anchorSpan is how long a low latency is remembered. Long, because a
	// slower upstream is recognised sooner by the streak rule, in five
	// windows.
	anchorSpan = 30 * time.Second
	// probeEvery and probeShare: a window at 75% of the limit every 10s
	// costs at most 0.6% of throughput when the limit sits at the knee.
	probeEvery = 10 * time.Second
	probeShare = 0.75
	// healthySpan is how long concurrency served at baseline keeps the
	// queue open for it: longer than the few windows a stall of the host
	// makes look queued (window medians three to eight times the anchor,
	// one or two windows at a time, in TestHealthyBackEndAtGatewaySaturation
	// on a machine at load 12), so that a dip of the limit is waited out
	// rather than shed.
	healthySpan = 10 * time.Second
	// errBackoff is the cut for a 5xx or time-out. 0.9 is the ratio of
	// Netflix's concurrency-limits AIMD: one burst of errors does not empty
	// the upstream, sustained failure halves the limit within seven round
	// trips.
	errBackoff = 0.9
)

func newLimiter(o Options, now time.Time) *limiter {
	return &limiter{
		minLimit: float64(o.MinLimit),
		maxLimit: float64(o.MaxLimit),
		window:   o.SampleWindow,
		noise:    o.Noise,
		limit:    float64(o.InitialLimit),
		// A limit that can move starts open: nothing says yet that the
		// upstream is overloaded. A fixed one bounds its queue as told.
		open:     o.MaxLimit > o.MinLimit,
		rng:      rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		winStart: now,
		// The first window's latency is taken at InitialLimit, which may
		// already queue in the upstream: probe right after it.
		nextProb: now,
	}
}

// current is the number of calls the upstream may have now.
func (l *limiter) current() int {
	if l.probing {
		return max(int(l.minLimit), int(l.limit*probeShare))
	}
	return int(l.limit)
}

// turnedAway notes that a call found no free slot: the limit, not the
// demand, sets the load, so the latency says something about the limit.
func (l *limiter) turnedAway() { l.binding = true }

// succeeded records a call that started at start and succeeded at now,
// having spent lat in the upstream.
func (l *limiter) succeeded(start, now time.Time, lat time.Duration) {
	// A probe window measures only calls that started under the lowered
	// limit, not those still queued from before it.
	if !l.probing || !start.Before(l.winStart) {
		// Algorithm R keeps every success of the window equally likely to be
		// in the sample.
		if l.seen < reservoirSize {
			l.sample[l.seen] = lat
		} else if i := l.rng.IntN(l.seen + 1); i < reservoirSize {
			l.sample[i] = lat
		}
		l.seen++
	}
	// A window spans at least four round trips, so that calls started after
	// the last change of the limit dominate it. A probe's median goes into
	// the anchor raw, not smoothed, so it waits for four times the samples:
	// the minimum of a few 50-sample probes sat 18% below the true latency.
	need := minSamples
	if l.probing {
		need = 4 * minSamples
	}
	if l.seen >= need && now.Sub(l.winStart) >= max(l.window, 4*l.median) {
		l.endWindow(now)
	}
}

// busy notes, as a call is admitted or queued, how many calls are in
// flight and how many are in flight or waiting.
func (l *limiter) busy(inFlight, demand int) {
	l.peakInFlight = max(l.peakInFlight, inFlight)
	l.peakDemand = max(l.peakDemand, demand)
}

// opening reports that the queue in front of the upstream is the limit's,
// not the upstream's: the controller is open, or the last window found the
// upstream at its baseline with calls turned away and doubled the limit
// (until the next window, which either confirms the baseline at the new
// limit or finds the knee).
func (l *limiter) opening() bool { return l.open || l.opened > 0 }

// shedForSaturation notes that the queue turned a call away because it was
// full or the call waited too long: evidence of overload, which closes it.
func (l *limiter) shedForSaturation() { l.shed, l.open = true, false }

// healthyAt is the concurrency the upstream served at its baseline in the
// last healthySpan, zero when none or after an error.
func (l *limiter) healthyAt(now time.Time) int {
	if now.After(l.healthyUntil) {
		return 0
	}
	return l.healthy
}

// overloaded records a 5xx answer or a time-out.
func (l *limiter) overloaded(now time.Time) {
	// Errors are not the baseline: what was served before them no longer
	// holds the queue open, and a doubled limit goes back.
	l.erred, l.healthy, l.open = true, 0, false
	if l.opened > 0 {
		l.limit, l.opened = min(l.limit, l.opened), 0
		l.noJumpUntil = now.Add(anchorSpan)
	}
	if now.Before(l.nextBackoff) {
		return
	}
	l.limit = max(l.minLimit, l.limit*errBackoff)
	l.nextBackoff = now.Add(max(l.median, time.Millisecond))
}

func (l *limiter) endWindow(now time.Time) {
	s := l.sample[:min(l.seen, reservoirSize)]
	slices.Sort(s)
	med := s[len(s)/2]
	l.median = med
	// The minimum of hundreds of noisy medians sits well below their mean
	// (about 2.8 standard errors for 300 windows): used as the anchor it
	// made the limiter see a queue that was not there, and the limit slid
	// from 18 to 11 over 40s in front of 16 workers. Regular windows
	// therefore offer their moving average, which has a third of the noise;
	// a probe window offers its own median, being the one measurement of a
	// lower load.
	cand := med
	if !l.probing {
		if l.smooth == 0 {
			l.smooth = med
		}
		l.smooth += (med - l.smooth) / 4
		cand = l.smooth
	}
	anchor := l.pushAnchor(now, cand)
	var noise time.Duration
	if l.noise != nil {
		noise = l.noise()
	}
	queued := l.queued(med, anchor, noise)
	// The first window is its own anchor: it says nothing of a queue.
	compared := l.windows > 0
	l.windows = min(2, l.windows+1)
	if compared && !l.probing && !l.erred && queued <= max(4, l.limit/5) {
		// At the baseline (no more queued than Vegas's beta) and without
		// error: the upstream served this concurrency as it serves one call.
		if !now.Before(l.healthyUntil) {
			l.healthy = 0
		}
		l.healthy = max(l.healthy, l.peakInFlight)
		l.healthyUntil = now.Add(healthySpan)
		if !l.shed {
			// Nothing was shed either: the queue opens again.
			l.open = true
		}
	}
	jumped := l.opened
	l.opened = 0

	switch {
	case l.probing:
		l.probing = false
		// Latency that fell nearly as much as the concurrency did (by nine
		// tenths of the cut) means the upstream was saturated even at the
		// probe's level: its throughput did not change, so the lower limit
		// costs nothing and saves the queue. Keep it and probe again at
		// once, against this probe's latency; this descends from far above
		// the knee in a few windows, where Vegas alone would stall at the
		// limit whose probe no longer reaches below the knee (4β = 16
		// calls). Nine tenths, not less: a limit just above the knee sees
		// its latency fall by 84% of the cut, and a looser threshold let
		// noise adopt a probe below the knee in one run of four.
		ref := l.smooth
		if l.chain > 0 {
			ref = l.chainMedian
		}
		if float64(med) <= (1-0.9*(1-probeShare))*float64(ref) {
			l.limit = max(l.minLimit, l.limit*probeShare)
			l.nextProb = now
			l.chain++
			l.chainMedian = med
		} else {
			l.chain = 0
		}
	case l.binding:
		l.adjust(now, med, queued, jumped, compared)
	}
	// A doubled limit is tested by the next window, not by a probe below it.
	if l.binding && l.opened == 0 && !now.Before(l.nextProb) {
		l.probing = true
		// Jitter keeps the controllers of several gateways from probing
		// in step.
		l.nextProb = now.Add(probeEvery + time.Duration(l.rng.Int64N(int64(probeEvery/4))))
	}
	l.winStart, l.seen, l.binding = now, 0, false
	l.peakInFlight, l.peakDemand, l.erred, l.shed = 0, 0, false, false
}

// queued is Vegas's estimate of the calls queued in the upstream in a window
// of median med against the anchor.
func (l *limiter) queued(med, anchor, noise time.Duration) float64 {
	// Vegas reads the queue from the latency above the anchor:
	// limit × (med − anchor) / med. The part of that excess the gateway's
	// own scheduling explains is not the upstream's queue. Against a back
	// end answering in a fraction of a millisecond, a run queue of a
	// millisecond or two (clients, gateway and back end on two cores) made
	// the median look three times the anchor and the limit fell to 13
	// while the back end idled (issue 14).
	// At most half the median is explained away: a saturated machine can
	// report a run queue of tens of milliseconds, and an upstream that
	// really queues behind it must still show.
	excess := med - anchor - min(noise, med/2)
	if excess <= 0 || med <= 0 {
		return 0
	}
	return l.limit * float64(excess) / float64(med)
}

// adjust moves the limit after a binding window that read queued calls in
// the upstream; jumped is the limit the window before doubled, zero when it
// did not, and compared says the window had an earlier one to compare with.
func (l *limiter) adjust(now time.Time, med time.Duration, queued, jumped float64, compared bool) {
	// The allowed queue grows with the limit, so that the latency it adds
	// stays between a tenth and a fifth whatever the upstream's size.
	alpha := max(2, l.limit/10)
	beta := max(4, l.limit/5)
	// past[pastNext] is the oldest summary: four binding windows ago.
	then := l.past[l.pastNext]
	l.past[l.pastNext] = windowSummary{l.limit, med}
	l.pastNext = (l.pastNext + 1) % len(l.past)
	switch {
	case queued > beta && jumped > 0:
		// The doubling found the knee: the upstream queues above the limit
		// it doubled from. Back to it, and from there by Vegas's steps.
		l.limit = jumped
		l.noJumpUntil = now.Add(anchorSpan)
	case queued > beta:
		l.streak++
		l.limit = max(l.minLimit, l.limit-max(1, l.limit/10))
		if l.streak > len(l.past) && l.limit <= 0.75*then.limit && float64(med) >= 0.9*float64(then.median) {
			l.anchors = append(l.anchors[:0], anchorPoint{now, med})
			l.smooth = med
			l.streak = 0
		}
	case queued < alpha:
		l.streak = 0
		next := l.limit + max(1, l.limit/20)
		if demand := float64(l.peakDemand); compared && demand > next && !now.Before(l.noJumpUntil) {
			// Calls were turned away while the upstream answered at its
			// baseline: the limit, not the upstream, held them. In steps of
			// a twentieth the limit needs 24 windows, six seconds, to go
			// from 20 to the 64 connections of issue 14's bench, queueing
			// in the gateway on the way; doubling up to the demand opens in
			// two. A
			// doubling past the knee shows in the next window, which undoes
			// it (TCP's slow start, with the knee for its threshold).
			l.opened = l.limit
			next = min(2*l.limit, demand)
		}
		l.limit = min(l.maxLimit, next)
	default:
		l.streak = 0
	}
}

// pushAnchor adds an anchor candidate and returns the anchor: the second
// smallest candidate of the last anchorSpan, or the smallest while there
// are fewer than three. Not the smallest: one probe median drawn four
// standard errors low became the anchor, made every later window look
// queued, and in 3 of 1,800 simulated runs (TestLimiterFindsKnee over 300
// seeds) cut the limit to as little as 0.375 of the knee before the
// slowdown rule reset it. At four candidates a second, the scan is cheap.
func (l *limiter) pushAnchor(now time.Time, d time.Duration) time.Duration {
	i := 0
	for i < len(l.anchors) && now.Sub(l.anchors[i].at) > anchorSpan {
		i++
	}
	l.anchors = append(l.anchors[i:], anchorPoint{now, d})
	first, second := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
	for _, a := range l.anchors {
		switch {
		case a.d < first:
			first, second = a.d, first
		case a.d < second:
			second = a.d
		}
	}
	if len(l.anchors) < 3 {
		return first
	}
	return second
}
