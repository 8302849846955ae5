package scrub

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// State is what a route's traffic looks like.
type State int32

// The route states.
const (
	// Normal: the rate is within SurgeFactor of the learned baseline.
	Normal State = iota
	// FlashCrowd: a surge carried mostly by known clients (sessions,
	// clearances, device cookies) with logins succeeding — the holiday rush.
	// Known clients pass; unknown ones meet the strict limits.
	FlashCrowd
	// Attack: a surge of unknown, new or concentrated sources, or credential
	// stuffing. Unknown clients must solve proof-of-work.
	Attack
)

var stateNames = [...]string{"normal", "flash_crowd", "attack"}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("state(%d)", int(s))
	}
	return stateNames[s]
}

// MarshalText implements encoding.TextMarshaler.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Mode is a route's operating mode: automatic (the detected state applies) or
// a state forced by hand through the ops API.
type Mode int32

// The modes.
const (
	ModeAuto Mode = iota
	ModeNormal
	ModeFlashCrowd
	ModeAttack
)

var modeNames = [...]string{"auto", "normal", "flash_crowd", "attack"}

func (m Mode) String() string {
	if m < 0 || int(m) >= len(modeNames) {
		return fmt.Sprintf("mode(%d)", int(m))
	}
	return modeNames[m]
}

// MarshalText implements encoding.TextMarshaler.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// ParseMode reads a mode name.
func ParseMode(s string) (Mode, error) {
	for i, n := range modeNames {
		if s == n {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("unknown mode %q (want one of %s)", s, strings.Join(modeNames[:], ", "))
}

// Window geometry: ten one-second buckets; source, prefix and fingerprint
// counts are kept in hashed histograms of histBins bins, so memory per route
// is fixed (about 120 KB) whatever the number of sources. Entropy and top
// shares computed from them are estimates: collisions can only merge sources,
// so entropy reads low and top shares read high by at most the collision
// share, negligible until thousands of distinct sources, where neither
// indicator matters.
const (
	windowBuckets = 10
	histBins      = 1024
)

type bucket struct {
	sec                          int64
	total, known, session, fresh uint32
	logins, loginFails           uint32
	passed                       uint32 // unknown requests the surge cap let through
	addr, prefix, fp             [histBins]uint32
}

func (b *bucket) reset(sec int64) {
	*b = bucket{sec: sec}
}

// Signals are the measurements behind a route's state, over the last second
// (a sliding window: the current bucket plus the previous one weighted by
// the part of it still inside the window).
type Signals struct {
	Rate                float64 `json:"rate"`                  // requests per second
	Baseline            float64 `json:"baseline"`              // learned requests per second
	SurgeThreshold      float64 `json:"surge_threshold"`       // rate at which a surge starts
	KnownShare          float64 `json:"known_share"`           // with session, clearance or device cookie
	SessionShare        float64 `json:"session_share"`         // with a session
	NewAddressShare     float64 `json:"new_address_share"`     // from never-seen addresses
	LoginAttempts       float64 `json:"login_attempts"`        // per second
	LoginFailRatio      float64 `json:"login_fail_ratio"`      // failed / attempts
	AddressEntropy      float64 `json:"address_entropy"`       // normalised 0..1
	TopPrefixShare      float64 `json:"top_prefix_share"`      // busiest /24 or /48
	TopFingerprintShare float64 `json:"top_fingerprint_share"` // most common header fingerprint
	Window10s           float64 `json:"window_10s_rate"`       // mean rate over the ten-second window
}

// Indicator is one test of the evidence.
type Indicator struct {
	Name      string  `json:"name"`
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Fired     bool    `json:"fired"`
}

// Evidence is what a route's state was decided on.
type Evidence struct {
	At         time.Time   `json:"at"`
	Signals    Signals     `json:"signals"`
	Surge      bool        `json:"surge"`
	Indicators []Indicator `json:"indicators"`
	Detected   State       `json:"detected"`
	Reason     string      `json:"reason"`
}

// route is one route's detector and state.
type route struct {
	name  string
	login bool

	mu       sync.Mutex
	b        [windowBuckets]bucket
	sec      int64 // second of the current bucket
	baseline float64
	learned  int // seconds learned from
	nextEval int64
	since    time.Time // when the effective state last changed
	calm     time.Time // since when the evidence has been calmer than the state
	detected State
	evidence Evidence

	state atomic.Int32 // effective State, read lock-free by requests
	mode  atomic.Int32 // Mode
	bits  atomic.Int32 // current proof-of-work difficulty

	m routeMetrics
}

// observation is what one request contributes to its route's window.
type observation struct {
	addr, prefix, fp uint64 // hashes
	known, session   bool
	fresh            bool // never-seen address
	// capped: an unknown client the surge cap applies to (not known, not
	// allow-listed).
	capped bool
}

func (r *route) effective() State { return State(r.state.Load()) }

// rotateLocked moves the window to now's second, learning the baseline from
// each second that completed.
func (r *route) rotateLocked(now time.Time, s *Scrubber) {
	sec := now.Unix()
	if sec <= r.sec {
		return // same second, or the clock stepped back: keep the bucket
	}
	if r.sec != 0 {
		done := &r.b[r.sec%windowBuckets]
		if done.sec == r.sec {
			r.learn(float64(done.total), s)
		}
		r.quiet(sec-r.sec-1, s)
	}
	if sec-r.sec >= windowBuckets {
		for i := range r.b {
			r.b[i].reset(0)
		}
	} else {
		for t := r.sec + 1; t < sec; t++ {
			r.b[t%windowBuckets].reset(t)
		}
	}
	r.b[sec%windowBuckets].reset(sec)
	r.sec = sec
}

// learn folds one second's request count into the baseline (an EWMA): a
// running mean while warming up, then with the configured half-life. It does
// not learn under attack, and caps what a flash crowd teaches per second so
// the baseline follows a lasting new normal without jumping to a spike.
func (r *route) learn(x float64, s *Scrubber) {
	d := &s.opts.Detection
	if r.detected == Attack {
		return
	}
	if r.learned < warmUp(d) {
		r.learned++
		r.baseline += (x - r.baseline) / float64(r.learned)
		return
	}
	x = math.Min(x, d.SurgeFactor*math.Max(r.baseline, d.MinRate/d.SurgeFactor))
	alpha := 1 - math.Exp2(-1/d.BaselineHalfLife.Seconds())
	r.baseline += alpha * (x - r.baseline)
}

// warmUp is Detection.WarmUp in whole seconds: a route without a baseline
// learns from its first seconds, during which it declares no surge.
func warmUp(d *Detection) int { return max(1, int(d.WarmUp/time.Second)) }

// quiet folds n seconds without a request into the baseline at once.
func (r *route) quiet(n int64, s *Scrubber) {
	for ; n > 0 && r.learned < warmUp(&s.opts.Detection); n-- {
		r.learn(0, s)
	}
	if n > 0 && r.detected != Attack {
		r.baseline *= math.Exp2(-float64(n) / s.opts.Detection.BaselineHalfLife.Seconds())
	}
}

// observe records one request and, when due, re-evaluates the state. It
// returns the effective state, the current difficulty and, for a capped
// observation, whether the surge cap let it through (see admitLocked).
func (r *route) observe(now time.Time, o observation, s *Scrubber) (State, int, bool) {
	r.mu.Lock()
	r.rotateLocked(now, s)
	b := &r.b[r.sec%windowBuckets]
	b.total++
	if o.known {
		b.known++
	}
	if o.session {
		b.session++
	}
	if o.fresh {
		b.fresh++
	}
	b.addr[o.addr%histBins]++
	b.prefix[o.prefix%histBins]++
	b.fp[o.fp%histBins]++
	if now.UnixNano() >= r.nextEval {
		r.evaluateLocked(now, s)
	}
	admit := !o.capped || r.admitLocked(now, s)
	r.mu.Unlock()
	return r.effective(), int(r.bits.Load()), admit
}

// admitLocked is the surge cap. Until a route is called an attack, the
// unknown clients it lets through are counted in the same sliding one-second
// window as detection, and none passes once that count has reached the surge
// threshold. Detection needs up to one window (plus an evaluation interval)
// to call a surge of strangers an attack; meanwhile at most one window of
// surge-rate traffic reaches the handler, however fast the attacker sends.
// The cap holds only while the route is normal, that is while a surge has
// not been classified: a flash crowd is real customers (the waiting room,
// not a 429, is what they meet), and under attack strangers are challenged
// instead. Refused requests still count towards the rate, so the cap never
// hides a flood from detection. A mode set by hand is the operator's
// classification and lifts the cap; a route still warming up has no
// threshold yet. Known
// clients are never capped: they are not observed as capped.
func (r *route) admitLocked(now time.Time, s *Scrubber) bool {
	if r.effective() != Normal || Mode(r.mode.Load()) != ModeAuto || r.learned < warmUp(&s.opts.Detection) {
		return true
	}
	cur, prev, w := r.slideLocked(now)
	if float64(cur.passed)+w*float64(prev.passed)+1 > r.thresholdLocked(s) {
		return false
	}
	cur.passed++
	return true
}

// thresholdLocked is the rate at which a surge starts, in requests per second.
func (r *route) thresholdLocked(s *Scrubber) float64 {
	d := &s.opts.Detection
	return math.Max(d.SurgeFactor*r.baseline, d.MinRate)
}

// slideLocked returns the window's current and previous buckets and the
// weight of the previous one: the part of it still inside the sliding second.
func (r *route) slideLocked(now time.Time) (cur, prev *bucket, w float64) {
	cur = &r.b[r.sec%windowBuckets]
	prev = &r.b[(r.sec-1+windowBuckets)%windowBuckets]
	frac := float64(now.Sub(time.Unix(r.sec, 0))) / float64(time.Second)
	if prev.sec == r.sec-1 && frac < 1 {
		w = 1 - frac
	}
	return cur, prev, w
}

// lateSession records that a request observed without a session turned out
// to carry one (the token verifier ran after the scrubber).
func (r *route) lateSession(now time.Time, known bool) {
	r.mu.Lock()
	if b := &r.b[r.sec%windowBuckets]; b.sec == now.Unix() {
		b.session++
		if !known {
			b.known++
		}
	}
	r.mu.Unlock()
}

// observeLogin records a password check's outcome.
func (r *route) observeLogin(now time.Time, ok bool, s *Scrubber) {
	r.mu.Lock()
	r.rotateLocked(now, s)
	b := &r.b[r.sec%windowBuckets]
	b.logins++
	if !ok {
		b.loginFails++
	}
	if now.UnixNano() >= r.nextEval {
		r.evaluateLocked(now, s)
	}
	r.mu.Unlock()
}

// evaluate re-evaluates the state now (for the ops API and metrics, which
// must not show a stale state on a route that went quiet).
func (r *route) evaluate(now time.Time, s *Scrubber) {
	r.mu.Lock()
	r.rotateLocked(now, s)
	r.evaluateLocked(now, s)
	r.mu.Unlock()
}

// signalsLocked measures the sliding last second.
func (r *route) signalsLocked(now time.Time, s *Scrubber) Signals {
	cur, prev, w := r.slideLocked(now)
	frac := float64(now.Sub(time.Unix(r.sec, 0))) / float64(time.Second)
	sum := func(c, p uint32) float64 { return float64(c) + w*float64(p) }
	var sig Signals
	total := sum(cur.total, prev.total)
	sig.Rate = total
	sig.Baseline = r.baseline
	sig.SurgeThreshold = r.thresholdLocked(s)
	if total > 0 {
		sig.KnownShare = sum(cur.known, prev.known) / total
		sig.SessionShare = sum(cur.session, prev.session) / total
		sig.NewAddressShare = sum(cur.fresh, prev.fresh) / total
	}
	sig.LoginAttempts = sum(cur.logins, prev.logins)
	if sig.LoginAttempts > 0 {
		sig.LoginFailRatio = sum(cur.loginFails, prev.loginFails) / sig.LoginAttempts
	}
	sig.AddressEntropy = 1
	if total > 1 {
		var h, top float64
		for i := range cur.addr {
			if c := sum(cur.addr[i], prev.addr[i]); c > 0 {
				p := c / total
				h -= p * math.Log2(p)
			}
		}
		sig.AddressEntropy = math.Min(h/math.Log2(math.Min(total, histBins)), 1)
		for i := range cur.prefix {
			top = math.Max(top, sum(cur.prefix[i], prev.prefix[i]))
		}
		sig.TopPrefixShare = top / total
		top = 0
		for i := range cur.fp {
			top = math.Max(top, sum(cur.fp[i], prev.fp[i]))
		}
		sig.TopFingerprintShare = top / total
	}
	var n, secs float64
	for i := range r.b {
		if b := &r.b[i]; b.sec > r.sec-windowBuckets && b.sec != 0 {
			n += float64(b.total)
			secs++
		}
	}
	if secs > 1 {
		// The current bucket is partial.
		sig.Window10s = n / (secs - 1 + frac)
	}
	return sig
}

// classify turns signals into a detected state and the evidence for it.
func classify(sig Signals, warm bool, d *Detection) Evidence {
	ev := Evidence{Signals: sig}
	enough := sig.Rate >= d.MinSamples
	ind := func(name string, v, th float64, fired bool) bool {
		ev.Indicators = append(ev.Indicators, Indicator{Name: name, Value: round3(v), Threshold: th, Fired: fired})
		return fired
	}
	ev.Surge = ind("rate_surge", sig.Rate, round3(sig.SurgeThreshold), warm && sig.Rate >= sig.SurgeThreshold)
	stuffing := ind("login_failures", sig.LoginFailRatio, d.LoginFailRatio,
		sig.LoginAttempts >= d.MinLoginAttempts && sig.LoginFailRatio >= d.LoginFailRatio)
	n := 0
	for _, fired := range []bool{
		ind("unknown_clients", 1-sig.KnownShare, 1-d.KnownShare, enough && sig.KnownShare < d.KnownShare),
		ind("new_addresses", sig.NewAddressShare, d.NewAddressShare, enough && sig.NewAddressShare >= d.NewAddressShare),
		ind("prefix_concentration", sig.TopPrefixShare, d.TopPrefixShare, enough && sig.TopPrefixShare >= d.TopPrefixShare),
		ind("fingerprint_concentration", sig.TopFingerprintShare, d.TopFingerprintShare,
			enough && sig.TopFingerprintShare >= d.TopFingerprintShare),
		ind("low_address_entropy", sig.AddressEntropy, d.MinEntropy, enough && sig.AddressEntropy < d.MinEntropy),
	} {
		if fired {
			n++
		}
	}
	switch {
	case stuffing:
		ev.Detected, ev.Reason = Attack, "credential stuffing: login failure ratio over threshold"
	case !ev.Surge:
		ev.Detected, ev.Reason = Normal, "rate within the baseline's surge threshold"
	case sig.KnownShare >= d.KnownShare:
		ev.Detected, ev.Reason = FlashCrowd, "surge carried by known clients"
	case n >= d.Indicators:
		ev.Detected, ev.Reason = Attack, fmt.Sprintf("surge with %d suspicious indicators", n)
	default:
		ev.Detected, ev.Reason = FlashCrowd, fmt.Sprintf("surge with only %d suspicious indicator(s)", n)
	}
	return ev
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// evaluateLocked re-decides the route's state with hysteresis: escalation is
// immediate, de-escalation waits until the evidence has stayed calmer for
// CalmDown.
func (r *route) evaluateLocked(now time.Time, s *Scrubber) {
	d := &s.opts.Detection
	r.nextEval = now.Add(d.EvalInterval).UnixNano()
	sig := r.signalsLocked(now, s)
	ev := classify(sig, r.learned >= warmUp(d), d)
	ev.At = now
	r.evidence = ev

	switch {
	case ev.Detected >= r.detected:
		r.detected = ev.Detected
		r.calm = time.Time{}
	case r.calm.IsZero():
		r.calm = now
	case now.Sub(r.calm) >= d.CalmDown:
		r.detected = ev.Detected
		r.calm = time.Time{}
	}

	bits := s.opts.PoW.BaseBits
	if ratio := sig.Rate / sig.SurgeThreshold; ratio > 1 {
		bits += int(math.Log2(ratio))
	}
	for _, in := range ev.Indicators {
		if in.Name == "login_failures" && in.Fired {
			bits += 2 // a password guess is worth more to a bot than a page
		}
	}
	r.bits.Store(int32(min(bits, s.opts.PoW.MaxBits)))

	eff := r.detected
	if m := Mode(r.mode.Load()); m != ModeAuto {
		eff = State(m - 1)
	}
	if old := State(r.state.Swap(int32(eff))); old != eff {
		r.since = now
		s.transition(r, old, eff, ev)
	}
}

// setMode forces a state by hand (or returns to automatic) and applies it
// at once.
func (r *route) setMode(m Mode, now time.Time, s *Scrubber) {
	r.mode.Store(int32(m))
	r.evaluate(now, s)
}

// RouteState is a route's state as the ops API shows it.
type RouteState struct {
	Route          string    `json:"route"`
	State          State     `json:"state"`
	Detected       State     `json:"detected"`
	Mode           Mode      `json:"mode"`
	Since          time.Time `json:"since"`
	Login          bool      `json:"login_route"`
	DifficultyBits int       `json:"difficulty_bits"`
	Evidence       Evidence  `json:"evidence"`
}

func (r *route) snapshot(now time.Time, s *Scrubber) RouteState {
	r.evaluate(now, s)
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.evidence
	ev.Indicators = append([]Indicator(nil), ev.Indicators...)
	return RouteState{Route: r.name, State: r.effective(), Detected: r.detected, Mode: Mode(r.mode.Load()),
		Since: r.since, Login: r.login, DifficultyBits: int(r.bits.Load()), Evidence: ev}
}
