package admission

import (
	"context"
	"errors"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/tier"
)

// numTiers sizes the per-tier arrays; tiers are dense from Critical.
const numTiers = int(tier.Sheddable) + 1

// Controller admits requests to one upstream. All routes to that upstream
// share it, so they share its learnt limit and its CRITICAL reservation. It
// is safe for concurrent use and starts no goroutine of its own.
//
// Why not failsafe-go's PriorityLimiter and Bulkhead: the PriorityLimiter's
// queue is its semaphore's single FIFO, so once a request is queued its tier
// no longer counts; it sheds by a threshold recalibrated on a timer from
// sampled priority levels, so tier order holds only statistically; and when
// its queue reaches maxRejectionFactor × limit it refuses every priority,
// CRITICAL included. None of these is a speed problem (its rejection costs
// well under a microsecond) but each breaks a guarantee this package owes:
// strict tier order, a CRITICAL reservation, LIFO under a standing queue,
// deadline-aware waiting. The Bulkhead is a fixed-size channel, so it cannot
// be a share of a limit that moves. Its adaptive limiter is discussed at
// limiter.
type Controller struct {
	opts    Options
	shed    *shedder
	metrics *metrics

	admitted [numTiers]atomic.Int64
	shedN    [numTiers][numReasons]atomic.Int64

	mu       sync.Mutex
	limiter  *limiter
	queues   [numTiers]tierQueue
	queued   int
	inFlight [numTiers]int
	total    int // sum of inFlight
	// serviceTime is a moving average of successful calls' duration: what
	// a request needs left of its deadline when it reaches the upstream.
	serviceTime  time.Duration
	serviceKnown bool
}

// New returns a Controller for one upstream. It fails when the options are
// invalid or the metrics cannot be registered (for example because another
// controller already registered the same Name).
func New(opts Options) (*Controller, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Controller{
		opts:    o,
		limiter: newLimiter(o, time.Now()),
	}
	if c.shed, err = newShedder(o); err != nil {
		return nil, err
	}
	if c.metrics, err = newMetrics(c, o.Registerer); err != nil {
		return nil, err
	}
	return c, nil
}

// Middleware returns next guarded by the controller. It reads the tier from
// request.From(r.Context()).Priority (NORMAL when the request carries no
// request.Info, SHEDDABLE when the tier is not one of the four) and the
// caller's deadline from its Deadline, which it also sets on the context
// passed to next.
func (c *Controller) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.serve(next, w, r)
	})
}

func classify(info *request.Info) (tier.Tier, time.Time) {
	if info == nil {
		return tier.Normal, time.Time{}
	}
	t := info.Priority
	if t < tier.Critical || t > tier.Sheddable {
		t = tier.Sheddable
	}
	return t, info.Deadline
}

func (c *Controller) serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	t, deadline := classify(request.From(ctx))
	now := time.Now()
	if !deadline.IsZero() && !now.Before(deadline) {
		c.reject(w, t, reasonDeadline)
		return
	}

	c.mu.Lock()
	admitted, wt, rsn := c.admitLocked(t, now, deadline)
	c.mu.Unlock()

	var waited time.Duration
	switch {
	case admitted:
	case wt != nil:
		if rsn, admitted = c.wait(ctx, wt); !admitted {
			c.reject(w, t, rsn)
			return
		}
		waited = time.Since(now)
	default:
		c.reject(w, t, rsn)
		return
	}

	c.admitted[t].Add(1)
	c.metrics.admitted[t].Inc()
	c.metrics.wait[t].Observe(waited.Seconds())
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
		r = r.WithContext(ctx)
	}
	sw := &statusWriter{ResponseWriter: w}
	start := time.Now()
	finished := false
	defer func() {
		// Also runs when next panics (http.ErrAbortHandler from a proxy whose
		// upstream broke mid-answer): the slot must come back either way.
		budget, _ := ctx.Deadline()
		c.release(t, start, outcome{status: sw.status, ctxErr: ctx.Err(), budget: budget, finished: finished,
			upstream: sw.upstream, measured: sw.measured})
	}()
	next.ServeHTTP(sw, r)
	finished = true
}

// admitLocked gives t a slot now, parks it as a waiter, or names why it is
// shed. Requests of a tier never overtake queued requests of the same or a
// more important tier.
func (c *Controller) admitLocked(t tier.Tier, now, deadline time.Time) (bool, *waiter, reason) {
	if !c.waitingAtOrAbove(t) {
		if c.acquireLocked(t) {
			c.limiter.busy(c.total, c.total+c.queued)
			return true, nil, 0
		}
	} else {
		c.limiter.turnedAway()
	}
	c.limiter.busy(c.total, c.total+c.queued+1)
	q := &c.queues[t]
	// An open queue is not the upstream's overload: it is neither purged
	// nor bounded to the target.
	standing := q.standing(now, c.opts.QueueInterval) && !c.openLocked(now)
	if standing {
		c.purgeLocked(t, now)
	}
	if !deadline.IsZero() {
		// A request that would spend its remaining time waiting, or reach
		// the upstream with less than a typical service time left, is
		// answered now: it costs the upstream nothing and its caller learns
		// early.
		if deadline.Sub(now) < c.waitEstimateLocked(t, standing)+c.serviceTime {
			return false, nil, reasonDeadline
		}
	}
	if c.queued >= c.maxQueueLocked(t, now) && !c.evictBelowLocked(t) {
		c.limiter.shedForSaturation()
		return false, nil, reasonQueueFull
	}
	maxWait := c.opts.MaxWait
	if standing && t != tier.Critical {
		// Served newest first, an older request would mostly wait to be
		// shed: a standing queue keeps one only the target.
		maxWait = c.targetLocked()
	}
	timeout := reasonQueueTimeout
	if !deadline.IsZero() && deadline.Sub(now)-c.serviceTime < maxWait {
		// The caller's deadline, not the queue's own bound, ends this wait:
		// running out is the caller's deadline, not saturation.
		maxWait, timeout = deadline.Sub(now)-c.serviceTime, reasonDeadline
	}
	w := &waiter{tier: t, enqueued: now, maxWait: maxWait, timeout: timeout, deadline: deadline,
		ready: make(chan struct{}, 1)}
	q.push(w, now)
	c.queued++
	return false, w, 0
}

// wait parks until w is granted a slot or dropped, its maxWait passes or
// ctx ends.
func (c *Controller) wait(ctx context.Context, w *waiter) (reason, bool) {
	timer := time.NewTimer(w.maxWait)
	select {
	case <-w.ready:
		// The signal hands w's fields over: no lock needed to read them.
		timer.Stop()
	case <-timer.C:
		c.giveUp(w, w.timeout)
	case <-ctx.Done():
		timer.Stop()
		c.giveUp(w, w.endedBy(ctx.Err(), time.Now()))
	}
	if w.state == dropped {
		return w.reason, false
	}
	if err := ctx.Err(); err != nil {
		// Granted just as the caller left: give the slot to the next one.
		now := time.Now()
		c.release(w.tier, now, outcome{ctxErr: err})
		return w.endedBy(err, now), false
	}
	return 0, true
}

// endedBy is why a wait ended by its context's error err at now. A context
// deadline is the caller's only when the caller's own deadline has passed;
// otherwise it is a budget of the bank's (a route's time-out set outside),
// and running it out waiting for a slot is saturation.
func (w *waiter) endedBy(err error, now time.Time) reason {
	switch {
	case !errors.Is(err, context.DeadlineExceeded):
		return reasonCanceled
	case !w.deadline.IsZero() && !now.Before(w.deadline):
		return reasonDeadline
	}
	return reasonQueueTimeout
}

// giveUp takes w out of its queue unless it was granted or dropped in the
// meantime, in which case its state says which.
func (c *Controller) giveUp(w *waiter, why reason) {
	c.mu.Lock()
	if w.state == waiting {
		c.dropLocked(w, why)
	}
	c.mu.Unlock()
}

// outcome is how a call to the upstream ended.
type outcome struct {
	status   int       // the upstream's answer, 0 when none
	ctxErr   error     // the call's context's error when it returned
	budget   time.Time // the call's deadline, zero when none
	finished bool      // next returned rather than panicked
	// upstream is the back end's own latency, from the request written to
	// the first byte read, when the proxy measured it (measured).
	upstream time.Duration
	measured bool
}

// release returns t's slot after a call that started at start, feeds the
// outcome to the limiter, and hands the slot on.
func (c *Controller) release(t tier.Tier, start time.Time, o outcome) {
	now := time.Now()
	d := now.Sub(start)

	c.mu.Lock()
	// A time-out says the upstream is overloaded only if the call reached it
	// with a fair chance, twice its usual service time: a waiter dispatched
	// with its deadline nearly spent times out however healthy the upstream
	// is, and counting that against the limit fed a collapse (the limit fell
	// from 20 to 4 within seconds at ten times capacity). An answer the
	// upstream gave because its caller's context ended is a time-out too,
	// not a refusal.
	timedOut := errors.Is(o.ctxErr, context.DeadlineExceeded)
	fair := o.budget.IsZero() || o.budget.Sub(start) >= 2*c.serviceTime
	var overload, ok bool
	switch {
	case !o.finished || errors.Is(o.ctxErr, context.Canceled):
	case timedOut:
		overload = fair
	case o.status >= 500:
		overload = true
	default:
		ok = true
	}

	c.inFlight[t]--
	c.total--
	// A failed or cut-short call's duration says nothing about the
	// upstream's speed (a refusal is fast, a time-out is the caller's
	// patience), so only successes are latency samples.
	switch {
	case overload:
		c.limiter.overloaded(now)
	case ok:
		// The limit is the back end's, so it learns from the back end's
		// latency where the proxy measured it; the whole call, which also
		// holds the gateway's own work, is what a deadline must allow for.
		lat := d
		if o.measured {
			lat = o.upstream
		}
		c.limiter.succeeded(start, now, lat)
		if !c.serviceKnown {
			c.serviceTime, c.serviceKnown = d, true
		} else {
			c.serviceTime += (d - c.serviceTime) / 8
		}
	}
	c.dispatchLocked(now)
	c.mu.Unlock()
}

// dispatchLocked hands free slots to waiters, most important tier first.
func (c *Controller) dispatchLocked(now time.Time) {
	for {
		t, ok := c.nextTierLocked(now)
		if !ok {
			return
		}
		if !c.acquireLocked(t) {
			// Tiers below t have no more room than t.
			return
		}
		q := &c.queues[t]
		w := q.head
		if q.standing(now, c.opts.QueueInterval) && !c.openLocked(now) {
			// Newest first only where the oldest are purged: in an open
			// queue they would wait out MaxWait behind newer arrivals.
			w = q.tail
		}
		q.remove(w)
		c.queued--
		c.limiter.busy(c.total, c.total+c.queued)
		w.state = granted
		w.ready <- struct{}{}
	}
}

// nextTierLocked is the most important tier with a waiter, after standing
// queues have shed their stale waiters.
func (c *Controller) nextTierLocked(now time.Time) (tier.Tier, bool) {
	for t := range tier.Tier(numTiers) {
		q := &c.queues[t]
		if q.n > 0 && q.standing(now, c.opts.QueueInterval) {
			c.purgeLocked(t, now)
		}
		if q.n > 0 {
			return t, true
		}
	}
	return 0, false
}

// purgeLocked sheds the waiters of a standing queue that have waited longer
// than QueueTarget. They are the oldest, at the head: the ones adaptive LIFO
// serves last, whose callers are the likeliest to have given up already.
//
// CRITICAL is not purged: its requests wait while their deadline allows. A
// CRITICAL queue stands after a stall (a pause of the host, a burst from a
// partner network) far more often than because CRITICAL alone exceeds the
// upstream, and such a burst drains within its deadlines. Purged at
// QueueTarget and held to the QueueFactor bound like the other tiers,
// CRITICAL lost 7.6% of its requests (queue_timeout and queue_full) in a
// 20s run of TestSoak's load on a machine at load 9, whose stalls of up to
// 250ms released them in bursts.
func (c *Controller) purgeLocked(t tier.Tier, now time.Time) {
	if t == tier.Critical || c.openLocked(now) {
		return
	}
	q := &c.queues[t]
	target := c.targetLocked()
	for q.head != nil && now.Sub(q.head.enqueued) > target {
		c.dropLocked(q.head, reasonQueueTimeout)
	}
}

// evictBelowLocked frees a place in the queue for tier t by shedding the
// oldest waiter of the least important tier below t.
func (c *Controller) evictBelowLocked(t tier.Tier) bool {
	for lt := tier.Tier(numTiers - 1); lt > t; lt-- {
		if w := c.queues[lt].head; w != nil {
			c.dropLocked(w, reasonPreempted)
			return true
		}
	}
	return false
}

func (c *Controller) dropLocked(w *waiter, r reason) {
	if r != reasonCanceled {
		// Waited out its bound or its caller's deadline, or gave its place
		// to a more important call: the queue is more than the upstream
		// drains.
		c.limiter.shedForSaturation()
	}
	q := &c.queues[w.tier]
	q.remove(w)
	c.queued--
	w.state, w.reason = dropped, r
	w.ready <- struct{}{}
}

func (c *Controller) waitingAtOrAbove(t tier.Tier) bool {
	for u := tier.Critical; u <= t; u++ {
		if c.queues[u].n > 0 {
			return true
		}
	}
	return false
}

// acquireLocked takes a slot for a request of tier t if one is free. Other
// tiers start only while fewer calls than the limit are in flight, CRITICAL
// ones included; CRITICAL may go up to the limit plus its reservation.
//
// So the upstream carries more than the limit only while CRITICAL needs it,
// and the calls of other tiers that finish meanwhile are not replaced until
// it is back under. The reservation sits above the limit rather than inside
// it so that a quiet CRITICAL tier leaves no capacity idle. (An earlier
// version let other tiers fill the whole limit whatever CRITICAL held
// beyond it: the core then ran at limit + reservation, and CRITICAL's
// median latency was 1.75 times the service time in TestTenfold.)
func (c *Controller) acquireLocked(t tier.Tier) bool {
	l := c.limitLocked()
	room := l
	if t == tier.Critical {
		room += c.reserveFor(l)
	}
	if c.total >= room {
		c.limiter.turnedAway()
		return false
	}
	c.inFlight[t]++
	c.total++
	return true
}

func (c *Controller) limitLocked() int { return c.limiter.current() }

// reserveFor is how many slots beyond limit l only CRITICAL may use: at
// least one when the reservation is on.
func (c *Controller) reserveFor(l int) int {
	if c.opts.CriticalReserve <= 0 {
		return 0
	}
	return max(1, int(math.Ceil(c.opts.CriticalReserve*float64(l))))
}

// targetLocked is how long a request may wait in a standing queue:
// QueueTarget, but at least two slot releases (the service time over the
// limit). Below that even the head of the most important waiting tier
// could not be served in time, and a sparse tier would lose every waiter to
// the purge while a denser, less important one took the slots.
func (c *Controller) targetLocked() time.Duration {
	return max(c.opts.QueueTarget, 2*c.serviceTime/time.Duration(max(1, c.limitLocked())))
}

// maxQueueLocked is how many waiters the queue may hold when a request of
// tier t arrives at now. Tiers below CRITICAL are the flood, held to about
// QueueFactor service times of work; CRITICAL only to MaxQueue, since its
// bursts are to be absorbed, not shed. An open queue holds MaxQueue for
// every tier, and the work is counted at the concurrency the upstream
// recently served at its baseline when that is above the limit: a limit
// that dips (a probe, a window the host's stalls made look queued) must not
// turn calls a healthy upstream was serving into sheds.
func (c *Controller) maxQueueLocked(t tier.Tier, now time.Time) int {
	if t == tier.Critical || c.openLocked(now) {
		return c.opts.MaxQueue
	}
	work := max(c.limitLocked(), c.limiter.healthyAt(now))
	return min(c.opts.MaxQueue, int(c.opts.QueueFactor*float64(work)))
}

// openLocked reports that the queue in front of the upstream is not the
// upstream's overload, so that it sheds only what it must: it is bounded by
// MaxQueue, MaxWait and the callers' deadlines, served oldest first and not
// purged at QueueTarget, while the limit still bounds the calls the
// upstream gets. Shedding ahead of need, by the QueueFactor bound and the
// standing-queue target, is for an upstream that has shown it is
// overloaded; in front of a healthy one it throws away calls that
// closed-loop clients send again at once, and on a host whose cores the
// clients, the gateway and the back end share, the latency the limit reads
// rises with the host's run queue whatever the back end does (issue 14: a
// quarter of the answers 503 in front of an idle back end). Envoy's adaptive
// concurrency, which has no queue, answers 503 for every call above its
// limit and so sheds whenever it pins the limit to measure its minimum
// round trip (envoyproxy/envoy#8337, #18152).
//
// The queue is open from the start (for a limit that can move), and again
// after a window with the latency at the anchor, no error and nothing
// shed; a 5xx or time-out, or a call the open queue itself had to shed
// (full at MaxQueue, waited out MaxWait or its deadline), closes it. It is
// also open while the calls in flight and waiting are no more than the
// upstream served at its baseline in the last healthySpan, and while the
// limit tests a doubling.
func (c *Controller) openLocked(now time.Time) bool {
	return c.limiter.opening() || c.total+c.queued <= c.limiter.healthyAt(now)
}

// waitEstimateLocked is how long a request of tier t queued now can expect
// to wait: the waiters that will be served before it, at the rate the
// upstream completes calls (its slots over its service time). In a standing
// queue served newest first, only more important tiers are ahead.
func (c *Controller) waitEstimateLocked(t tier.Tier, standing bool) time.Duration {
	ahead := 0
	for u := tier.Critical; u < t; u++ {
		ahead += c.queues[u].n
	}
	if !standing {
		ahead += c.queues[t].n
	}
	slots := c.limitLocked()
	if t == tier.Critical {
		slots += c.reserveFor(slots)
	}
	return time.Duration(ahead+1) * c.serviceTime / time.Duration(max(1, slots))
}

func (c *Controller) reject(w http.ResponseWriter, t tier.Tier, r reason) {
	recordShed(w, r)
	c.shedN[t][r].Add(1)
	c.metrics.shed[t][r].Inc()
	c.shed.write(w, r)
}

// Interface guards.
var (
	_ http.ResponseWriter = (*statusWriter)(nil)
	_ interface {
		Unwrap() http.ResponseWriter
	} = (*statusWriter)(nil)
	// proxy.LatencyRecorder, which the proxy looks for.
	_ interface {
		RecordUpstreamLatency(time.Duration)
	} = (*statusWriter)(nil)
)

// statusWriter remembers the status the upstream answered with and, when
// the proxy reports it, the upstream's own latency.
type statusWriter struct {
	http.ResponseWriter
	status   int
	upstream time.Duration
	measured bool
}

// RecordUpstreamLatency keeps the last attempt's latency: a retried call's
// answer is the second attempt's.
func (w *statusWriter) RecordUpstreamLatency(d time.Duration) {
	w.upstream, w.measured = d, true
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer's Flush,
// deadlines and hijacking.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
