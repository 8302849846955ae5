package status

import (
	"strings"
	"time"
)

// tally counts a channel's outcomes over a stretch of time.
type tally struct {
	sec      int64 // the Unix second of a bucket
	served   int
	fellBack int
	shed     int
	failed   int
	slow     int       // served or fellBack answers slower than the tier's objective
	asOf     time.Time // the oldest last-known value handed out, zero if none
}

func (t *tally) add(u tally) {
	t.served += u.served
	t.fellBack += u.fellBack
	t.shed += u.shed
	t.failed += u.failed
	t.slow += u.slow
	if !u.asOf.IsZero() && (t.asOf.IsZero() || u.asOf.Before(t.asOf)) {
		t.asOf = u.asOf
	}
}

func (t tally) counted() int { return t.served + t.fellBack + t.shed + t.failed }

// Why a channel is not up; it picks the words on the page.
type reason int

const (
	fine      reason = iota
	fallbacks        // fallbacks are answering
	line             // newcomers wait in line
	strained         // slow, shedding, failing or breaker open
)

// signals are what the rules look at for one channel.
type signals struct {
	t         tally
	breaker   string  // "", "closed", "open", "half-open"
	shedRatio float64 // from admission, when wired
	waiting   int     // in the waiting line, when wired
	wait      time.Duration
	probe     verdict // what the synthetic checks say, when probed
	probed    bool
}

// verdict is what the rules make of the signals, before hysteresis.
type verdict struct {
	level  Level
	reason reason
	// partial: down, but part of the channel still answers (its fallbacks
	// or a share of real answers). status.json says partial_outage.
	partial bool
	asOf    time.Time     // oldest last-known value handed out, for the words
	wait    time.Duration // the waiting line's wait, for the words
}

// Thresholds of the rules: chosen, not measured. One failed payment in a
// hundred is already a bad day for a bank's customers; below one in two the
// channel no longer works for most of them.
const (
	downBelow     = 0.50 // success share below which a channel is down
	degradedBelow = 0.99 // success share below which it is degraded
	degradedShare = 0.05 // share of fallbacks, shed or slow answers that makes it degraded
	partialShare  = 0.10 // share still answered that makes a down channel a partial outage
)

// judge applies the rules:
//
//   - Success is the share of answers that were useful, fallbacks included,
//     out of every answer except the client's own mistakes (4xx other than
//     429): a stand-in approval is a working card payment.
//   - Down when, over at least MinSamples answers, success is below 50 %.
//     It is a partial outage rather than a major one when at least 10 % of
//     the answers were still useful.
//   - Degraded when success is below 99 %, or more than 5 % of the answers
//     came from fallbacks, were shed or were slower than the tier's
//     objective (over at least MinSamples answers); or whenever the breaker
//     is open or half-open, admission sheds more than 5 %, or a waiting line
//     holds anyone.
//   - Up otherwise.
//   - On fewer than MinSamples answers, the synthetic checks (when there are
//     enough fresh ones, see probe.go) make the channel as bad as they say:
//     a channel nobody uses is not "Normal" through an outage. With enough
//     traffic, the customers' own answers are the better evidence.
func judge(s signals, minSamples int) verdict {
	v := rules(s, minSamples)
	v.asOf, v.wait = s.t.asOf, s.wait
	if s.probed && s.t.counted() < minSamples && s.probe.level > v.level {
		v = s.probe
		v.wait = s.wait
	}
	return v
}

func rules(s signals, minSamples int) verdict {
	n := s.t.counted()
	useful := s.t.served + s.t.fellBack
	enough := n >= minSamples && n > 0
	success := 1.0
	if n > 0 {
		success = float64(useful) / float64(n)
	}
	share := func(k int) float64 {
		if n == 0 {
			return 0
		}
		return float64(k) / float64(n)
	}
	reasonNow := strained
	if s.t.fellBack > 0 {
		reasonNow = fallbacks
	}
	if enough && success < downBelow {
		return verdict{level: Down, reason: reasonNow, partial: share(useful) >= partialShare}
	}
	switch {
	case enough && share(s.t.fellBack) > degradedShare:
		return verdict{level: Degraded, reason: fallbacks}
	case s.waiting > 0:
		return verdict{level: Degraded, reason: line}
	case enough && (success < degradedBelow || share(s.t.shed) > degradedShare ||
		(useful > 0 && float64(s.t.slow)/float64(useful) > degradedShare)):
		return verdict{level: Degraded, reason: reasonNow}
	case s.shedRatio > degradedShare:
		return verdict{level: Degraded, reason: strained}
	case breakerTripped(s.breaker):
		return verdict{level: Degraded, reason: strained}
	}
	return verdict{level: Up, reason: fine}
}

// breakerTripped reads the breaker's state leniently: the breaker package
// and failsafe-go spell half-open differently.
func breakerTripped(state string) bool {
	switch strings.ToLower(state) {
	case "open", "half-open", "half_open", "halfopen", "half open":
		return true
	}
	return false
}

// hysteresis holds a channel's level steady: it worsens to a level only
// once the channel has looked at least that bad for RaiseAfter, and improves
// to a level only once it has looked no worse for RecoverAfter. Verdicts
// arrive once per tick; history keeps those of the longer of the two spans.
type hysteresis struct {
	level   Level
	changed time.Time
	history []judged
	shown   verdict // the verdict whose words the page shows
}

type judged struct {
	at time.Time
	v  verdict
}

func (h *hysteresis) update(now time.Time, v verdict, raiseAfter, recoverAfter time.Duration) {
	h.history = append(h.history, judged{now, v})
	// Keep the last verdict at or before the start of the longer span: it
	// held at that instant, so the history covers the span.
	keep := now.Add(-max(raiseAfter, recoverAfter))
	i := 0
	for i+1 < len(h.history) && !h.history[i+1].at.After(keep) {
		i++
	}
	h.history = h.history[i:]

	if lv, ok := h.held(now.Add(-raiseAfter), best); ok && lv > h.level {
		h.level, h.changed = lv, now
	} else if lv, ok := h.held(now.Add(-recoverAfter), worst); ok && lv < h.level {
		h.level, h.changed = lv, now
	}

	// The words follow the latest verdict at the level shown, so "as of"
	// times and waits stay current while the level holds; a level held up by
	// hysteresis keeps the words of the last verdict that had it.
	switch {
	case v.level == h.level:
		h.shown = v
	case h.shown.level != h.level:
		h.shown = verdict{level: h.level, reason: strained}
		if h.level == Up {
			h.shown.reason = fine
		}
	}
}

func best(a, b Level) Level  { return min(a, b) }
func worst(a, b Level) Level { return max(a, b) }

// held folds pick (best: the best level held throughout; worst: the worst
// level seen) over the verdicts in force from since to now. It reports false
// when the history does not reach back to since.
func (h *hysteresis) held(since time.Time, pick func(Level, Level) Level) (Level, bool) {
	k := -1
	for i, j := range h.history {
		if j.at.After(since) {
			break
		}
		k = i
	}
	if k < 0 {
		return 0, false
	}
	lv := h.history[k].v.level
	for _, j := range h.history[k+1:] {
		lv = pick(lv, j.v.level)
	}
	return lv, true
}
