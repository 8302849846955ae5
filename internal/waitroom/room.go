package waitroom

import (
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/rempart/rempart/internal/request"
)

// Room is a waiting room in front of one backend. It is safe for concurrent
// use; all its state sits behind one mutex, held for a few hundred
// nanoseconds per request and never while a request is served.
type Room struct {
	opts    Options
	key     []byte
	metrics *metrics

	mu      sync.Mutex
	next    uint64    // the last sequence number handed out, to a place in the line or a request let straight through
	serving uint64    // now serving: places numbered up to here are called
	calls   float64   // calls in hand: the line moves at the rate, one call per place that is still held
	tokens  float64   // admissions available now: called clients enter at the rate even when they come back late and all at once
	last    time.Time // when calls and tokens last accrued
	swept   int64     // the Unix second no-shows were last swept out of the line
	line    []waiter  // places not yet called, in sequence order, from head on
	head    int
	called  []waiter            // places called whose holders have not come back yet, in sequence order: owed an admission
	arrive  arrivals            // newcomers held back, and how many of them come back
	used    map[uint64]struct{} // tickets let through, refused a second time
	usedQ   []usedEntry         // the same, oldest first, to prune them
	usedH   int
	floor   uint64 // tickets numbered up to here are refused: their used entry was evicted
	// Newcomers' tickets (no place yet) are numbered too, with pendingBit
	// set: pendNext is the last such number, and joined maps the ones that
	// came back to the place (or the admission) they got, so the same
	// ticket presented again gets that place, never a second one.
	pendNext uint64
	joined   map[uint64]joinedEntry
	joinedQ  []usedEntry // joined's numbers, oldest first, to prune them
	joinedH  int
	est      *estimator
}

// pendingBit marks the number of a newcomer's ticket, which holds no place
// yet: places are numbered from 1 without it.
const pendingBit = 1 << 63

func isPending(seq uint64) bool { return seq&pendingBit != 0 }

// joinedEntry is what a newcomer's ticket got when it came back: a place in
// the line, or (place 0) an admission straight away.
type joinedEntry struct{ place uint64 }

// arrivals counts newcomers told to come back, and those of them who do, per
// second: the ones told in the last second will join the line ahead of a
// newcomer told now, and a quote that left them out would be short by as
// many places (measured: the 90th percentile of observed/quoted waits at 1.3
// in TestEstimatorFindsCapacity without them).
//
// It also counts how calls ended: the called who came back for their
// admission, and those whose appointment lapsed first. The line moves at
// the rate divided by the share who came back (see showUp).
type arrivals struct {
	sec            int64   // the second being counted
	pend, joined   int     // this second's counts
	prevPend       int     // the previous second's newcomers held back
	avgPend, avgIn float64 // the per-second counts, averaged

	lapsed, redeemed     int     // this second's calls that lapsed, and that were redeemed
	avgLapsed, avgRedeem float64 // the same, averaged
}

// arrivalsAlpha is the weight of the last second in the averages.
const arrivalsAlpha = 0.3

func (a *arrivals) roll(sec int64) {
	if sec == a.sec {
		return
	}
	a.avgPend += (float64(a.pend) - a.avgPend) * arrivalsAlpha
	a.avgIn += (float64(a.joined) - a.avgIn) * arrivalsAlpha
	a.avgLapsed += (float64(a.lapsed) - a.avgLapsed) * arrivalsAlpha
	a.avgRedeem += (float64(a.redeemed) - a.avgRedeem) * arrivalsAlpha
	a.lapsed, a.redeemed = 0, 0
	a.prevPend = 0
	if sec == a.sec+1 {
		a.prevPend = a.pend
	}
	a.sec, a.pend, a.joined = sec, 0, 0
}

// ahead is how many of those held back in the last second will be back for
// a place before one held back now, by the share that have come back lately.
func (a *arrivals) ahead(now time.Time) float64 {
	ratio := 1.0
	if a.avgPend > 0 {
		ratio = min(a.avgIn/a.avgPend, 1)
	}
	frac := float64(now.Nanosecond()) / 1e9
	return (float64(a.pend) + float64(a.prevPend)*(1-frac)) * ratio
}

// minShowUp bounds how far the line speeds up for the called who do not
// come back: at most ten calls per admission.
const minShowUp = 0.1

// showUp is the share of the called who come back for their admission,
// lately. Customers whose app gave up (its deadline shorter than the wait)
// still hold their places until their appointments lapse; calling them
// spends the line's turns on nobody. The line moves at the rate divided by
// this share, so admissions keep the rate whoever gives up, while the
// admissions themselves stay bounded by the rate: the called who all come
// back at once wait their turn for one.
//
// Only calls that ended count: a call whose holder is still on the way
// back says nothing yet (counting it would read the delay of coming back as
// giving up, and speed the line up for clients who are all coming).
func (a *arrivals) showUp() float64 {
	ended := a.avgRedeem + a.avgLapsed
	if ended < 0.5 {
		return 1
	}
	return clamp(a.avgRedeem/ended, minShowUp, 1)
}

// waiter is a place in the line.
type waiter struct {
	seq    uint64
	issued time.Time // when its holder first arrived
	due    time.Time // its holder must be back by then (its ticket's expiry), or the place is given up
}

type usedEntry struct {
	seq uint64
	at  time.Time
}

// burstSeconds sizes the burst, in seconds of the rate.
const burstSeconds = 1

// confirmAfter is when a newcomer held back is told to come back; only then
// does it get a place in the line. A client that never comes back (a flood
// that fires requests and forgets the answers, an abandoned page) never holds
// a place, so the customers behind it neither wait for it nor are quoted
// waits that count it. A client that follows the protocol pays one round
// trip, a second, once per login.
const confirmAfter = time.Second

// confirmEarly is how much sooner than confirmAfter a newcomer's return is
// still taken as its first poll (a client rounding its sleep down); sooner
// than that it is told to wait again, keeping its ticket.
const confirmEarly = 100 * time.Millisecond

// New returns a room. It panics if opts.Key is set but shorter than 32 bytes
// or if its metrics cannot be registered (a second room with the same ID on
// the same registerer): both are wiring mistakes, like a duplicate ServeMux
// pattern.
func New(opts Options) *Room {
	opts = opts.withDefaults()
	key := opts.Key
	switch {
	case len(key) == 0:
		key = make([]byte, 32)
		_, _ = rand.Read(key) // never fails, per its documentation
	case len(key) < 32:
		panic(fmt.Sprintf("waitroom: key of %d bytes, want at least 32", len(key)))
	}
	if len(opts.ID) > maxRoomLen {
		panic(fmt.Sprintf("waitroom: room id of %d bytes, want at most %d", len(opts.ID), maxRoomLen))
	}
	now := opts.Clock.Now()
	r := &Room{
		opts:   opts,
		key:    key,
		last:   now,
		swept:  now.Unix(),
		arrive: arrivals{sec: now.Unix()},
		used:   map[uint64]struct{}{},
		joined: map[uint64]joinedEntry{},
		est:    newEstimator(opts, now),
	}
	r.calls = r.burst()
	r.tokens = r.burst()
	r.metrics = newMetrics(r, opts.Registerer)
	return r
}

// Middleware puts the room in front of next, which should be the login
// routes only: everything else has better ways to be shed.
func (r *Room) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if info := request.From(req.Context()); info != nil && (info.Session || info.Partner != "") {
			next.ServeHTTP(w, req)
			return
		}
		if req.Header.Get(LeaveHeader) != "" {
			r.leave(w, req)
			return
		}
		d := r.decide(req)
		switch d.kind {
		case admit:
			r.serve(w, req, next, d)
		case wait:
			r.writeWaiting(w, req, d)
		case full:
			r.writeFull(w, req, d)
		}
	})
}

type kind int

const (
	admit kind = iota
	wait
	full
)

// decision is what the room made of one request.
type decision struct {
	kind       kind
	viaTicket  bool          // admitted on a ticket (its cookie is cleared)
	tk         ticket        // the ticket to hand back while waiting
	ticket     string        // the same, signed and encoded
	position   int           // place in the line, 1 is next
	eta        time.Duration // expected wait at the measured rate
	pollAfter  time.Duration // when to come back
	retryAfter time.Duration // full: when to try again
}

// presented returns the ticket the client sent: the header (apps) first,
// then the cookie (browsers).
func presented(req *http.Request) string {
	if t := req.Header.Get("Rempart-Ticket"); t != "" {
		return t
	}
	if c, err := req.Cookie(cookieName); err == nil {
		return c.Value
	}
	return ""
}

func (r *Room) decide(req *http.Request) decision {
	now := r.opts.Clock.Now()
	bound := r.bound(req)
	var tk ticket
	var terr error
	raw := presented(req)
	if raw != "" {
		// Verify and sign outside the lock: the HMACs are the costliest
		// steps, and they need none of the room's state.
		tk, terr = parseTicket(raw, r.key, r.opts.ID, now)
		if terr == nil && r.opts.BindClient && tk.client != bound {
			terr = errOtherClient
		}
	}
	r.mu.Lock()
	d := r.decideLocked(now, raw != "", tk, terr, bound)
	r.mu.Unlock()
	if d.kind == wait {
		d.ticket = d.tk.encode(r.key)
	}
	return d
}

// decideLocked is the decision proper, on a ticket already verified (when
// presented is true, terr says whether it is valid). Called with r.mu held.
func (r *Room) decideLocked(now time.Time, presented bool, tk ticket, terr error, bound netip.Prefix) decision {
	r.advance(now)
	if presented && terr == nil {
		if isPending(tk.seq) {
			terr = r.checkPending(&tk)
		} else {
			terr = r.checkSeq(tk.seq)
		}
	}
	if presented && terr != nil {
		r.metrics.rejected(terr)
	}
	if presented && terr == nil {
		switch {
		case isPending(tk.seq) && now.Sub(tk.issued) < confirmAfter-confirmEarly:
			// Back too soon: the same ticket, the same appointment.
			return r.pending(now, tk, tk.issued.Add(confirmAfter).Sub(now))
		case isPending(tk.seq):
			// A newcomer's first poll: now it gets its place.
			pend := tk.seq
			d := r.join(now, tk)
			r.recordJoin(pend, d, now)
			return d
		case tk.seq <= r.serving && r.tokens >= 1 && !r.est.full():
			r.tokens--
			r.forget(tk.seq)
			r.arrive.redeemed++
			r.markUsed(tk.seq, now)
			r.est.inflight++
			r.metrics.admitted.Inc()
			return decision{kind: admit, viaTicket: true}
		}
		return r.waiting(now, tk)
	}

	// No ticket, or one that is no ticket: a newcomer. Nobody waiting and an
	// admission in hand: straight through. Otherwise it is told to come
	// back, and gets its place at the back when it does.
	if r.open() {
		return r.straight(false)
	}
	r.est.binding = true
	if d, ok := r.lineFull(); !ok {
		return d
	}
	r.pendNext++
	d := r.pending(now, ticket{room: r.opts.ID, seq: pendingBit | r.pendNext, issued: now, client: bound}, confirmAfter)
	r.arrive.pend++
	r.metrics.pending.Inc()
	return d
}

// LeaveHeader, sent with a ticket, gives its place up: the client stops
// waiting. The room answers it itself (204), without calling the backend;
// the client SDK sends it when its deadline is shorter than the wait.
const LeaveHeader = "Rempart-Leave"

// leave takes the presented ticket's place out of the line (or out of the
// called, where it counts as a call that was not taken up).
func (r *Room) leave(w http.ResponseWriter, req *http.Request) {
	now := r.opts.Clock.Now()
	tk, err := parseTicket(presented(req), r.key, r.opts.ID, now)
	if err == nil && tk.seq != 0 {
		r.mu.Lock()
		r.advance(now)
		if i, ok := search(r.line[r.head:], tk.seq); ok {
			r.line = slices.Delete(r.line, r.head+i, r.head+i+1)
			r.metrics.gaveUp.Inc()
		} else if r.forget(tk.seq) {
			r.arrive.lapsed++
			r.metrics.gaveUp.Inc()
		}
		r.mu.Unlock()
	}
	h := w.Header()
	h.Set(Header, "left")
	noStore(h)
	if c, err := req.Cookie(cookieName); err == nil && c.Value != "" {
		http.SetCookie(w, r.cookie(req, "", -1))
	}
	w.WriteHeader(http.StatusNoContent)
}

// waitingNow is the number of places in the line. Called with r.mu held.
func (r *Room) waitingNow() int { return len(r.line) - r.head }

// open says whether a newcomer may go straight through: nobody in the line,
// an admission in hand beyond those owed to the called expected back, and
// room in flight. Called with r.mu held.
func (r *Room) open() bool {
	return r.waitingNow() == 0 && r.tokens >= 1+r.owedNow() && !r.est.full()
}

// owedNow is how many of the called are expected back for an admission:
// those not yet lapsed, by the share of the called who come back. Called
// with r.mu held.
func (r *Room) owedNow() float64 { return float64(len(r.called)) * r.arrive.showUp() }

// lineFull answers a newcomer when the line is at MaxWaiting; ok is false
// then. Called with r.mu held.
func (r *Room) lineFull() (decision, bool) {
	if r.waitingNow() < r.opts.MaxWaiting {
		return decision{}, true
	}
	r.metrics.rejectedFull.Inc()
	// Come back when a tenth of the line has gone: by then there is room.
	d := time.Duration(float64(r.opts.MaxWaiting) / 10 / r.est.rate * float64(time.Second))
	return decision{kind: full, retryAfter: min(max(d, time.Second), r.opts.MaxPoll)}, false
}

// pending answers a newcomer who has no place yet: come back in poll, with
// the wait quoted as if it had joined the line now. Called with r.mu held.
func (r *Room) pending(now time.Time, tk ticket, poll time.Duration) decision {
	poll = max(poll, time.Second-confirmEarly)
	tk.expiry = now.Add(poll + r.opts.Grace)
	position := r.waitingNow() + 1
	eta := max(poll, r.waitLine(float64(position)+r.arrive.ahead(now)-r.calls))
	return decision{kind: wait, tk: tk, position: position, eta: eta, pollAfter: poll}
}

// join gives a newcomer back for its first poll its place at the back of
// the line, or lets it straight through when nobody waits and an admission
// is in hand. Called with r.mu held.
func (r *Room) join(now time.Time, tk ticket) decision {
	if r.open() {
		return r.straight(true)
	}
	r.est.binding = true
	if d, ok := r.lineFull(); !ok {
		return d
	}
	r.next++
	tk.seq = r.next
	// Due back at once until waiting sets the appointment: the call below
	// must not pass it over.
	r.line = append(r.line, waiter{seq: tk.seq, issued: tk.issued, due: now.Add(time.Nanosecond)})
	r.arrive.joined++
	r.metrics.issued.Inc()
	r.call(now)
	return r.waiting(now, tk)
}

// straight lets a newcomer through with nobody waiting: it takes a number,
// a call and an admission. Called with r.mu held.
func (r *Room) straight(viaTicket bool) decision {
	r.next++
	r.serving = r.next
	r.calls = max(r.calls-1, 0)
	r.tokens--
	r.est.inflight++
	r.metrics.admitted.Inc()
	return decision{kind: admit, viaTicket: viaTicket}
}

// bound is the network a new ticket is bound to, if binding is on.
func (r *Room) bound(req *http.Request) (p netip.Prefix) {
	if !r.opts.BindClient {
		return p
	}
	if info := request.From(req.Context()); info != nil && info.Client.IsValid() {
		return clientNet(info.Client)
	}
	return p
}

var (
	errOtherClient = errors.New("other-client")
	errReplayed    = errors.New("replayed")
	errUnknown     = errors.New("unknown") // numbered beyond anything issued: another incarnation of the room
)

// checkPending checks a newcomer's ticket: one the room has numbered, and,
// when it came back before, turned into the place it got then (an error if
// that place was let in already, or the admission was straight away).
// Called with r.mu held.
func (r *Room) checkPending(tk *ticket) error {
	if tk.seq&^pendingBit > r.pendNext || tk.seq == pendingBit {
		return errUnknown
	}
	j, ok := r.joined[tk.seq]
	if !ok {
		return nil
	}
	if j.place == 0 {
		return errReplayed
	}
	tk.seq = j.place
	return r.checkSeq(j.place)
}

// recordJoin remembers what the newcomer's ticket pend got when it came
// back — a place, or an admission straight away — for as long as that
// ticket can be presented. Turned away (the line full), it got nothing and
// may come back. Called with r.mu held.
func (r *Room) recordJoin(pend uint64, d decision, now time.Time) {
	var place uint64
	switch d.kind {
	case admit:
	case wait:
		place = d.tk.seq
	default:
		return
	}
	r.joined[pend] = joinedEntry{place: place}
	r.joinedQ = append(r.joinedQ, usedEntry{seq: pend, at: now})
}

func (r *Room) checkSeq(seq uint64) error {
	if seq > r.next {
		return errUnknown
	}
	if _, ok := r.used[seq]; ok || seq <= r.floor {
		return errReplayed
	}
	return nil
}

// waiting answers a ticket holder with a place, called or not, and renews
// its appointment: its ticket, and its place, last until it is due back
// plus Grace. decide signs the ticket once the lock is released. Called with
// r.mu held.
func (r *Room) waiting(now time.Time, tk ticket) decision {
	var eta time.Duration
	position := 1
	i := -1
	if tk.seq > r.serving {
		i = r.find(tk)
		position = i - r.head + 1
		eta = r.waitLine(float64(position) - r.calls)
	} else {
		// Called but back before an admission was in hand: in line for the
		// next ones, after those called before it.
		j := r.owed(tk)
		eta = r.wait(float64(j+1)*r.arrive.showUp() - r.tokens)
	}
	// Poll halfway to the estimated turn, then halfway again: each poll
	// re-estimates at the rate measured by then, so clients arrive close to
	// their turn even when the rate moved since they were told (a client told
	// "in 60 s" who returns in 60 s after the rate doubled is 30 s late, and
	// the late ones then arrive together). About log2(wait) polls each; at
	// least once a second (Retry-After counts whole seconds), at most
	// MaxPoll apart.
	poll := time.Duration(math.Ceil(eta.Seconds())) * time.Second
	if eta > 2*time.Second {
		poll = time.Duration(math.Ceil(eta.Seconds()/2)) * time.Second
	}
	poll = min(max(poll, time.Second), r.opts.MaxPoll)
	if r.est.resume > 0 {
		// The rate sits at what a stalled backend allowed and jumps back
		// when it answers again: an estimate at the stalled rate is no
		// reason to stay away long (an app told to come back after its
		// deadline gives up, and the line it leaves is ghosts).
		poll = time.Second
	}
	tk.expiry = now.Add(poll + r.opts.Grace)
	if i >= 0 {
		r.line[i].due = tk.expiry
	} else {
		r.called[r.owed(tk)].due = tk.expiry
	}
	return decision{kind: wait, tk: tk, position: position, eta: eta, pollAfter: poll}
}

// wait is how long ahead places take to be called at the rate waits are
// quoted at.
func (r *Room) wait(ahead float64) time.Duration {
	return time.Duration(max(ahead, 0) / r.est.etaRate() * float64(time.Second))
}

// waitLine is how long ahead places in the line take to be called: the
// line moves faster than the rate by the share of the called who do not
// come back.
func (r *Room) waitLine(ahead float64) time.Duration { return r.wait(ahead * r.arrive.showUp()) }

// find returns the index in r.line of tk's place, putting it
// back in order if the sweep took it out while its ticket was still valid
// (the sweep and a ticket's expiry agree to the millisecond). Called with
// r.mu held.
func (r *Room) find(tk ticket) int {
	i, ok := search(r.line[r.head:], tk.seq)
	i += r.head
	if !ok {
		r.line = slices.Insert(r.line, i, waiter{seq: tk.seq, issued: tk.issued})
	}
	return i
}

// owed returns the index in r.called of tk's place, putting it back in
// order if it lapsed while its ticket was still valid. Called with r.mu held.
func (r *Room) owed(tk ticket) int {
	i, ok := search(r.called, tk.seq)
	if !ok {
		r.called = slices.Insert(r.called, i, waiter{seq: tk.seq, issued: tk.issued})
	}
	return i
}

// forget drops a place from those owed (admitted, or given up) and says
// whether it was there. Called with r.mu held.
func (r *Room) forget(seq uint64) bool {
	i, ok := search(r.called, seq)
	if ok {
		r.called = slices.Delete(r.called, i, i+1)
	}
	return ok
}

// search finds the place numbered seq in ws, which is in sequence order.
func search(ws []waiter, seq uint64) (int, bool) {
	return slices.BinarySearchFunc(ws, seq, func(w waiter, s uint64) int { return cmp.Compare(w.seq, s) })
}

// burst is how far calls and admissions in hand may run ahead: one second's
// worth of the rate. Clients come back on whole seconds (Retry-After), so
// those called within a second arrive together; a smaller burst would waste
// the rest of that second's admissions. It also bounds what an idle room
// banks for a later stampede.
func (r *Room) burst() float64 { return max(1, burstSeconds*r.est.rate) }

// advance accrues calls and admissions at the current rate and calls the
// places at the head of the line. A place whose holder is overdue (it stopped
// polling: gave up, or was never a customer) is passed over without spending
// a call, so the line moves at the rate for those still in it. Called with
// r.mu held.
func (r *Room) advance(now time.Time) {
	if dt := now.Sub(r.last).Seconds(); dt > 0 {
		r.calls += dt * r.est.rate / r.arrive.showUp()
		r.tokens += dt * r.est.rate
		r.last = now
	}
	r.est.roll(now)
	r.arrive.roll(now.Unix())
	if sec := now.Unix(); sec != r.swept {
		r.swept = sec
		r.sweep(now)
	}
	r.call(now)
	r.calls = min(r.calls, r.burst()/r.arrive.showUp())
	r.tokens = min(r.tokens, r.burst())
	if r.head > 0 && r.head >= len(r.line)/2 {
		r.line = append(r.line[:0], r.line[r.head:]...)
		r.head = 0
	}
	if len(r.line) > r.head {
		r.est.binding = true
	}
	r.pruneUsed(now)
}

// call calls the places at the head of the line while calls are in hand,
// passing over the overdue. Called with r.mu held.
func (r *Room) call(now time.Time) {
	for r.head < len(r.line) {
		w := r.line[r.head]
		if now.Before(w.due) {
			if r.calls < 1 {
				break
			}
			r.calls--
			r.called = append(r.called, w)
		} else {
			r.metrics.gaveUp.Inc()
		}
		r.serving = w.seq
		r.head++
	}
}

// sweep takes overdue places out of the line, so positions and waits count
// only clients still polling. Once a second, O(line). Called with r.mu held.
func (r *Room) sweep(now time.Time) {
	kept := r.line[:0]
	for _, w := range r.line[r.head:] {
		if now.Before(w.due) {
			kept = append(kept, w)
		} else {
			r.metrics.gaveUp.Inc()
		}
	}
	r.line, r.head = kept, 0
	// The called who did not come back in time are owed nothing: the
	// admission they would have taken goes to whoever is next.
	r.called = slices.DeleteFunc(r.called, func(w waiter) bool {
		if now.Before(w.due) {
			return false
		}
		r.arrive.lapsed++
		return true
	})
}

// markUsed records a ticket as let through. Called with r.mu held.
func (r *Room) markUsed(seq uint64, now time.Time) {
	if len(r.used) >= r.opts.ReplayLimit {
		e := r.usedQ[r.usedH]
		r.usedH++
		delete(r.used, e.seq)
		r.floor = max(r.floor, e.seq)
	}
	r.used[seq] = struct{}{}
	r.usedQ = append(r.usedQ, usedEntry{seq: seq, at: now})
}

// pruneUsed forgets used tickets that have expired anyway: a ticket's expiry
// is at most MaxPoll + Grace after it was last handed out, which was before
// it was used. Called with r.mu held.
func (r *Room) pruneUsed(now time.Time) {
	cut := now.Add(-r.opts.MaxPoll - r.opts.Grace)
	pruneQueue(&r.usedQ, &r.usedH, cut, func(seq uint64) { delete(r.used, seq) })
	// A newcomer's ticket expires within MaxPoll + Grace of its return too.
	pruneQueue(&r.joinedQ, &r.joinedH, cut, func(seq uint64) { delete(r.joined, seq) })
}

// pruneQueue drops the entries of q from its head *h on that are not after
// cut, calling forget for each, and compacts q once half of it is dropped.
func pruneQueue(q *[]usedEntry, h *int, cut time.Time, forget func(uint64)) {
	for *h < len(*q) && !(*q)[*h].at.After(cut) {
		forget((*q)[*h].seq)
		*h++
	}
	if *h > 0 && *h >= len(*q)/2 {
		*q = append((*q)[:0], (*q)[*h:]...)
		*h = 0
	}
}

// DegradedHeader, on a backend's 5xx or 429, marks a refusal the backend
// chose on purpose and gave at once — the identity provider telling a login
// without a backup snapshot that the directory is down — rather than
// saturation: the room does not slow the line for it. Only the backend sets
// it, on its own answers.
const DegradedHeader = "Rempart-Degraded"

// serve lets an admitted request through and measures how the backend
// answered it.
func (r *Room) serve(w http.ResponseWriter, req *http.Request, next http.Handler, d decision) {
	if d.viaTicket {
		if _, err := req.Cookie(cookieName); err == nil {
			http.SetCookie(w, r.cookie(req, "", -1))
		}
	}
	rec := &recorder{ResponseWriter: w}
	start := r.opts.Clock.Now()
	defer func() {
		// A panic still ends the call, as a 500 (what net/http makes of it),
		// and must not leave it counted in flight for ever.
		p := recover()
		code := rec.code
		switch {
		case p != nil:
			code = http.StatusInternalServerError
		case code == 0:
			code = http.StatusOK // returned without writing: net/http sends 200
		case failed(code) && w.Header().Get(DegradedHeader) != "":
			// A refusal the backend chose, promptly: not saturation.
			code = http.StatusOK
		}
		end := r.opts.Clock.Now()
		r.done(end, end.Sub(start), code)
		if p != nil {
			panic(p)
		}
	}()
	next.ServeHTTP(rec, req)
}

func (r *Room) done(now time.Time, latency time.Duration, code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.est.inflight--
	r.est.observe(now, latency, code)
}

// recorder remembers the status the backend answered with.
type recorder struct {
	http.ResponseWriter
	code int
}

func (w *recorder) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flush, deadlines).
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Stats is a snapshot of the room.
type Stats struct {
	Waiting    int           // places not yet called
	AdmitRate  float64       // measured admission rate, logins per second
	OldestWait time.Duration // how long the head of the line has been waiting
	Wait       time.Duration // the wait a newcomer would be told now
	Issued     uint64        // sequence numbers handed out so far (places and straight admissions)
	Serving    uint64        // the "now serving" counter
	InFlight   int           // calls let through and not yet answered
}

// Stats returns the room's current state.
func (r *Room) Stats() Stats {
	now := r.opts.Clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.advance(now)
	s := Stats{
		Waiting:   r.waitingNow(),
		AdmitRate: r.est.rate,
		Issued:    r.next,
		Serving:   r.serving,
		InFlight:  r.est.inflight,
	}
	if s.Waiting > 0 {
		s.OldestWait = now.Sub(r.line[r.head].issued)
		s.Wait = max(confirmAfter, r.waitLine(float64(s.Waiting+1)+r.arrive.ahead(now)-r.calls))
	}
	return s
}
