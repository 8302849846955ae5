package waitroom

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
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
	next    uint64    // the last sequence number handed out, to a ticket or a request let straight through
	serving float64   // now serving: sequence numbers up to here are called
	tokens  float64   // admissions available now: called clients enter at the rate even when they come back late and all at once
	last    time.Time // when serving and tokens last advanced
	line    []waiter  // tickets not yet called, in sequence order, from head on
	head    int
	used    map[uint64]struct{} // tickets let through, refused a second time
	usedQ   []usedEntry         // the same, oldest first, to prune them
	usedH   int
	floor   uint64 // tickets numbered up to here are refused: their used entry was evicted
	est     *estimator
}

type waiter struct {
	seq    uint64
	issued time.Time
}

type usedEntry struct {
	seq uint64
	at  time.Time
}

// burstSeconds sizes the burst, in seconds of the rate.
const burstSeconds = 1

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
		opts: opts,
		key:  key,
		last: now,
		used: map[uint64]struct{}{},
		est:  newEstimator(opts, now),
	}
	r.serving = r.burst()
	r.tokens = r.burst()
	r.metrics = newMetrics(r, opts.Registerer)
	return r
}

// Middleware puts the room in front of next, which should be the login
// routes only: everything else has better ways to be shed.
func (r *Room) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if info := request.From(req.Context()); info != nil && (info.Session || info.Partner) {
			next.ServeHTTP(w, req)
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
		terr = r.checkSeq(tk.seq)
	}
	if presented && terr != nil {
		r.metrics.rejected(terr)
	}
	if presented && terr == nil {
		if float64(tk.seq) <= r.serving && r.tokens >= 1 {
			r.tokens--
			r.markUsed(tk.seq, now)
			r.est.inflight++
			r.metrics.admitted.Inc()
			return decision{kind: admit, viaTicket: true}
		}
		tk.expiry = now.Add(r.opts.TicketTTL)
		return r.waiting(tk)
	}

	// No ticket, or one that is no ticket: a newcomer at the back.
	seq := r.next + 1
	if float64(seq) <= r.serving && r.tokens >= 1 {
		r.next = seq
		r.tokens--
		r.est.inflight++
		r.metrics.admitted.Inc()
		return decision{kind: admit}
	}
	r.est.binding = true
	if len(r.line)-r.head >= r.opts.MaxWaiting {
		r.metrics.rejectedFull.Inc()
		// Come back when a tenth of the line has gone: by then there is room.
		d := time.Duration(float64(r.opts.MaxWaiting) / 10 / r.est.rate * float64(time.Second))
		return decision{kind: full, retryAfter: min(max(d, time.Second), r.opts.MaxPoll)}
	}
	r.next = seq
	if float64(seq) > r.serving {
		r.line = append(r.line, waiter{seq: seq, issued: now})
	} // else already called, only short of an admission this instant
	r.metrics.issued.Inc()
	return r.waiting(ticket{room: r.opts.ID, seq: seq, issued: now, expiry: now.Add(r.opts.TicketTTL), client: bound})
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

func (r *Room) checkSeq(seq uint64) error {
	if seq > r.next {
		return errUnknown
	}
	if _, ok := r.used[seq]; ok || seq <= r.floor {
		return errReplayed
	}
	return nil
}

// waiting answers a ticket holder still in the line; decide signs the
// ticket once the lock is released. Called with r.mu held.
func (r *Room) waiting(tk ticket) decision {
	// A holder whose number has been called but who came back in a crowd of
	// late-comers waits for the next admission: first in line, and not long.
	ahead := max(float64(tk.seq)-r.serving, 1-r.tokens)
	eta := time.Duration(ahead / r.est.etaRate() * float64(time.Second))
	// Poll halfway to the estimated turn, then halfway again: each poll
	// re-estimates at the rate measured by then, so clients arrive close to
	// their turn even when the rate moved since they were told (a client told
	// "in 60 s" who returns in 60 s after the rate doubled is 30 s late, and
	// the late ones then arrive together). About log2(wait) polls each; at
	// least once a second (Retry-After counts whole seconds), at most
	// MaxPoll apart so the ticket stays fresh.
	poll := time.Duration(math.Ceil(eta.Seconds())) * time.Second
	if eta > 2*time.Second {
		poll = time.Duration(math.Ceil(eta.Seconds()/2)) * time.Second
	}
	poll = min(max(poll, time.Second), r.opts.MaxPoll)
	return decision{
		kind:      wait,
		tk:        tk,
		position:  max(1, int(math.Ceil(float64(tk.seq)-r.serving))),
		eta:       eta,
		pollAfter: poll,
	}
}

// burst is how far the room lets the "now serving" counter and the
// admissions in hand run ahead: one second's worth of the rate. Clients come
// back on whole seconds (Retry-After), so those called within a second
// arrive together; a smaller burst would waste the rest of that second's
// admissions. It also bounds what an idle room banks for a later stampede.
func (r *Room) burst() float64 { return max(1, burstSeconds*r.est.rate) }

// advance moves the "now serving" counter and the admissions in hand at the
// current rate. Called with r.mu held.
func (r *Room) advance(now time.Time) {
	if dt := now.Sub(r.last).Seconds(); dt > 0 {
		r.serving += dt * r.est.rate
		r.tokens += dt * r.est.rate
		r.last = now
	}
	r.est.roll(now)
	r.serving = min(r.serving, float64(r.next)+r.burst())
	r.tokens = min(r.tokens, r.burst())
	for r.head < len(r.line) && float64(r.line[r.head].seq) <= r.serving {
		r.head++
	}
	if r.head > 0 && r.head >= len(r.line)/2 {
		r.line = append(r.line[:0], r.line[r.head:]...)
		r.head = 0
	}
	if len(r.line) > r.head {
		r.est.binding = true
	}
	r.pruneUsed(now)
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
// is at most TicketTTL after it was last handed out, which was before it was
// used. Called with r.mu held.
func (r *Room) pruneUsed(now time.Time) {
	cut := now.Add(-r.opts.TicketTTL)
	for r.usedH < len(r.usedQ) && !r.usedQ[r.usedH].at.After(cut) {
		delete(r.used, r.usedQ[r.usedH].seq)
		r.usedH++
	}
	if r.usedH > 0 && r.usedH >= len(r.usedQ)/2 {
		r.usedQ = append(r.usedQ[:0], r.usedQ[r.usedH:]...)
		r.usedH = 0
	}
}

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
	Waiting    int           // tickets not yet called
	AdmitRate  float64       // measured admission rate, logins per second
	OldestWait time.Duration // how long the head of the line has been waiting
	Wait       time.Duration // the wait a newcomer would be told now
	Issued     uint64        // sequence numbers handed out so far (tickets and straight admissions)
	Serving    uint64        // the "now serving" counter
}

// Stats returns the room's current state.
func (r *Room) Stats() Stats {
	now := r.opts.Clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.advance(now)
	s := Stats{
		Waiting:   len(r.line) - r.head,
		AdmitRate: r.est.rate,
		Issued:    r.next,
		Serving:   uint64(max(r.serving, 0)),
	}
	if s.Waiting > 0 {
		s.OldestWait = now.Sub(r.line[r.head].issued)
		s.Wait = time.Duration((float64(r.next+1) - r.serving) / r.est.etaRate() * float64(time.Second))
	}
	return s
}
