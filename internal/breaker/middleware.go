package breaker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/timeout"

	"github.com/rempart/rempart/internal/admission"
	"github.com/rempart/rempart/internal/problem"
	"github.com/rempart/rempart/internal/request"
)

// ErrOpen is the cause of an outage when the breaker refused the call.
var ErrOpen = circuitbreaker.ErrOpen

// ErrTimeout is the cause of an outage when the call outlasted the route's
// Timeout.
var ErrTimeout = timeout.ErrExceeded

// errSlow marks a good answer that came after SlowCall: the breaker counts
// it as a failure, the client still gets it (a card authorisation the core
// approved, late, is still approved).
var errSlow = errors.New("slow call")

// ErrDeadline is the cause when the caller's own deadline (X-Request-Deadline,
// Grpc-Timeout) could not be met: it passed before or during the call, or
// admission shed the request because it could not be served in time. It is
// the caller's doing, not an outage: no fallback answers (a caller must not
// be able to force a stand-in approval by asking for too little time), the
// breaker does not count it, and the client gets 504 "deadline-exceeded".
var ErrDeadline = admission.ErrDeadline

// errCallerGone marks a call whose request ended (the client left or its
// deadline passed) before the upstream answered: what the upstream said then
// is not its verdict, and nobody waits for a fallback.
var errCallerGone = errors.New("caller gone")

// Route says how one route goes through its upstream's breaker.
type Route struct {
	// Fallback answers when the upstream cannot. Nil passes a 5xx answer
	// through and answers 503 "degraded" with Retry-After while the breaker
	// is open: what the journal's replayer wants.
	Fallback Fallback
	// Timeout bounds the upstream call for this route: past it the call
	// counts as a failure and the fallback answers. Zero leaves it to the
	// upstream's own time-out (the proxy's).
	Timeout time.Duration
	// Cancellable says the upstream handler returns soon after its
	// request's context is done, as a reverse proxy does (http.Transport
	// aborts the exchange): the call then runs on the request's own
	// goroutine, and the context's deadline is what bounds it. False, for
	// an in-process upstream that may ignore cancellation (a legacy core
	// holding a worker in a lock convoy), runs each call in a goroutine of
	// its own that the Timeout abandons.
	Cancellable bool
}

// Middleware returns the wrapper of one route: calls go through the breaker
// to next, and the route's fallback answers when the breaker is open or the
// call fails. Upstream answers are buffered so that a 5xx can be replaced
// before the client sees anything; the gateway's body limit bounds requests
// and the upstream's answers are small documents.
func (b *Breaker) Middleware(rt Route) func(next http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return &guard{b: b, rt: rt, next: next}
	}
}

type guard struct {
	b    *Breaker
	rt   Route
	next http.Handler
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			problem.Error(w, http.StatusRequestEntityTooLarge, "body-too-large",
				fmt.Sprintf("request body exceeds %d bytes", mbe.Limit))
			return
		}
		problem.Error(w, http.StatusBadRequest, "unreadable-body", "the request body could not be read")
		return
	}
	deadline := callerDeadline(r)
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		// Not even the journal is asked: the caller has given up.
		writeDeadline(w, r)
		return
	}
	if rc, ok := g.rt.Fallback.(Recaller); ok && rc.Recall(w, r, body) {
		g.b.m.fallbacks.WithLabelValues(g.b.cfg.Upstream, routeName(r), AnswerRecall).Inc()
		return
	}

	resp, err := g.guarded(r, body, deadline)
	fromUpstream := resp
	if g.rt.Fallback != nil && needsFallback(resp, err) {
		c := newCaptured()
		kind := g.rt.Fallback.Answer(c, r, body, g.b.outage(resp, err))
		g.b.m.fallbacks.WithLabelValues(g.b.cfg.Upstream, routeName(r), kind).Inc()
		resp, err = c.response(), nil
	}
	if errors.Is(err, errSlow) {
		err = nil
	}
	if err == nil && resp != nil {
		if o, ok := g.rt.Fallback.(Observer); ok && resp == fromUpstream && resp.StatusCode/100 == 2 {
			o.Observe(r, resp.StatusCode, resp.Header, bodyOf(resp))
		}
		send(w, resp)
		// Sent: the upstream's capture or the fallback's, nothing holds it
		// (failsafe's executor keeps no result past Get, the stale cache
		// copies what it keeps). An answer replaced by the fallback is left
		// to the garbage collector.
		if c := capturedOf(resp); c != nil {
			c.release()
		}
		return
	}
	switch {
	case errors.Is(err, ErrDeadline):
		if rp, ok := g.rt.Fallback.(Repeater); ok && rp.Repeats() && time.Now().Before(deadline) {
			kind := rp.Answer(w, r, body, g.b.outage(resp, err))
			g.b.m.fallbacks.WithLabelValues(g.b.cfg.Upstream, routeName(r), kind).Inc()
			return
		}
		writeDeadline(w, r)
	case errors.Is(err, ErrOpen):
		w.Header().Set(HeaderBreaker, "open")
		WriteDegraded(w, g.b.outage(nil, err), "the upstream is unavailable and its circuit breaker is open")
	case errors.Is(err, ErrTimeout):
		problem.Error(w, http.StatusGatewayTimeout, "upstream-timeout", "the upstream did not answer in time")
	case r.Context().Err() != nil || isCanceled(err):
		d := problem.New(499, "client-closed", "the client closed the request")
		d.Title = "Client Closed Request"
		problem.Write(w, d)
	default:
		problem.Error(w, http.StatusBadGateway, "upstream-unavailable", "the upstream could not be reached")
	}
}

// guarded makes the call through the circuit breaker. A closed breaker
// needs no permit (failsafe-go's closed state grants every one), so the
// call is made directly and a success recorded directly: the common case
// costs no failsafe execution (about 20 allocations a request). A failure,
// and every call while the breaker is half-open or open, goes through
// failsafe's executor, which hands the breaker the failed answer (an
// upstream's Retry-After sets how long it stays open) and holds the
// half-open state's probe permits.
func (g *guard) guarded(r *http.Request, body []byte, deadline time.Time) (*http.Response, error) {
	if g.b.cb.IsClosed() {
		resp, err := g.call(r.Context(), r, body, deadline)
		if !isFailure(resp, err) {
			g.b.cb.RecordSuccess()
			return resp, err
		}
		// Recorded as failsafe would have: the answer is already known.
		// Should the breaker have opened meanwhile, the executor refuses
		// and records nothing, as for a call it had not let through.
		g.b.exec.WithContext(r.Context()).Get(func() (*http.Response, error) { return resp, err })
		return resp, err
	}
	called := false
	resp, err := g.b.exec.WithContext(r.Context()).Get(func() (*http.Response, error) {
		called = true
		return g.call(r.Context(), r, body, deadline)
	})
	if !called {
		g.b.outcome("rejected").Inc()
	}
	return resp, err
}

// call sends the request to the upstream and classifies its answer for the
// breaker. The call ends at the caller's deadline, when it has one, or at
// the route's Timeout, whichever comes first: a caller can shorten
// rempart's wait, never lengthen it.
func (g *guard) call(ctx context.Context, r *http.Request, body []byte, deadline time.Time) (resp *http.Response, err error) {
	start := time.Now()
	outcome := "success"
	defer func() {
		if p := recover(); p != nil {
			resp, err, outcome = nil, fmt.Errorf("upstream handler panicked: %v", p), "failure"
			if p == http.ErrAbortHandler && ctx.Err() != nil {
				// A proxy whose answer the deadline cut off mid-body
				// aborts: the call ran out of time, it did not fail.
				switch {
				case r.Context().Err() != nil:
					outcome, err = "canceled", fmt.Errorf("%w: %w", errCallerGone, r.Context().Err())
				case pastDeadline(ctx, deadline):
					outcome, err = "deadline", ErrDeadline
				default:
					outcome, err = "timeout", ErrTimeout
				}
			}
		}
		g.b.outcome(outcome).Inc()
	}()
	// The route's end is a deadline in ctx, so the layers inside
	// (admission, the retrier, a proxy) see the real budget in
	// ctx.Deadline, and a cancellable upstream stops there.
	var end time.Time
	if g.rt.Timeout > 0 {
		end = start.Add(g.rt.Timeout)
	}
	var cancel context.CancelFunc = func() {}
	switch {
	case !deadline.IsZero() && (end.IsZero() || deadline.Before(end)):
		ctx, cancel = context.WithDeadlineCause(ctx, deadline, ErrDeadline)
	case !end.IsZero():
		ctx, cancel = context.WithDeadline(ctx, end)
	}
	defer cancel()
	req := r.WithContext(ctx)
	req.Body, req.ContentLength, req.GetBody = http.NoBody, 0, nil
	if len(body) > 0 {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	c := newCaptured()
	if g.rt.Cancellable {
		g.next.ServeHTTP(c, req)
	} else {
		// The upstream runs in its own goroutine so the route's Timeout
		// really bounds the wait: an upstream that ignores cancellation (a
		// legacy core holding a worker in a lock convoy) would otherwise
		// keep the caller — and its stand-in answer — waiting for the whole
		// lock time-out. An abandoned call finishes into its private
		// capture, which nobody reads.
		done := make(chan any, 1)
		go func() {
			defer func() { done <- recover() }()
			g.next.ServeHTTP(c, req)
		}()
		select {
		case p := <-done:
			if p != nil {
				panic(p) // recovered above, like a panic of a synchronous call
			}
		case <-ctx.Done():
			if r.Context().Err() != nil {
				outcome = "canceled"
				return nil, fmt.Errorf("%w: %w", errCallerGone, r.Context().Err())
			}
			if pastDeadline(ctx, deadline) {
				outcome = "deadline"
				return nil, ErrDeadline
			}
			outcome = "timeout"
			return nil, ErrTimeout
		}
	}
	resp = c.response()
	switch {
	case r.Context().Err() != nil:
		// The client left; what the upstream said is not its verdict.
		outcome = "canceled"
		return resp, fmt.Errorf("%w: %w", errCallerGone, r.Context().Err())
	case errors.Is(c.shed, admission.ErrDeadline),
		pastDeadline(ctx, deadline) && (resp.StatusCode >= 500 || c.shed != nil):
		// Admission could not serve the request within the caller's
		// deadline, or the deadline cut the call short. A good answer that
		// beat it is still used below: it is the core's verdict.
		outcome = "deadline"
		return resp, ErrDeadline
	case ctx.Err() != nil:
		// The route's Timeout passed before the answer was complete (a
		// cancellable upstream answers its own 504 or 502 then).
		outcome = "timeout"
		return resp, ErrTimeout
	case c.shed != nil || (resp.StatusCode >= 500 && resp.Header.Get(HeaderShed) != ""):
		// Admission protected a saturated back end (queue full, the wait
		// bounded by the queue or the route's budget): the bank's own
		// failure, which the fallback is for, but not the upstream's.
		outcome = "shed"
	case resp.StatusCode >= 500:
		outcome = "failure"
	case time.Since(start) > g.b.cfg.SlowCall:
		outcome = "slow"
		return resp, errSlow
	}
	return resp, nil
}

// pastDeadline reports whether the caller's deadline cut a call with
// context ctx short. Layers inside may derive their own context with the
// same deadline, whose timer can fire first: the clock decides, not whose
// timer won.
func pastDeadline(ctx context.Context, deadline time.Time) bool {
	return errors.Is(context.Cause(ctx), ErrDeadline) || (!deadline.IsZero() && !time.Now().Before(deadline))
}

// needsFallback is when the route's fallback answers instead: the breaker
// refused the call, the call failed or timed out, or the upstream answered
// 5xx. A slow good answer is used, and a client that left needs no answer.
func needsFallback(resp *http.Response, err error) bool {
	if err != nil {
		return !errors.Is(err, errSlow) && !isCanceled(err) && !errors.Is(err, ErrDeadline)
	}
	return resp != nil && resp.StatusCode >= 500
}

func isCanceled(err error) bool {
	return errors.Is(err, errCallerGone) || errors.Is(err, context.Canceled)
}

// outage describes why a fallback answers.
func (b *Breaker) outage(resp *http.Response, err error) Outage {
	cause := err
	if cause == nil && resp != nil {
		cause = &UpstreamError{Status: resp.StatusCode}
	}
	return Outage{Upstream: b.cfg.Upstream, Cause: cause, RetryAfter: max(b.cb.RemainingDelay(), time.Second)}
}

// callerDeadline is the deadline the caller gave (parsed by the gateway),
// zero when none.
func callerDeadline(r *http.Request) time.Time {
	if info := request.From(r.Context()); info != nil {
		return info.Deadline
	}
	return time.Time{}
}

// writeDeadline answers 504 for a request that could not be served within
// its caller's deadline, naming the header that set it.
func writeDeadline(w http.ResponseWriter, r *http.Request) {
	d := problem.New(http.StatusGatewayTimeout, "deadline-exceeded",
		"the request could not be served within the caller's deadline; it was not decided")
	if f := admission.DeadlineField(r.Header, time.Now()); f != "" {
		d = d.WithField(f)
	}
	problem.Write(w, d)
}

func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	defer r.Body.Close()
	return io.ReadAll(r.Body)
}

// routeName is the route for metrics: the gateway's name for it, else the
// mux pattern.
func routeName(r *http.Request) string {
	if info := request.From(r.Context()); info != nil && info.Route != "" {
		return info.Route
	}
	if r.Pattern != "" {
		return r.Pattern
	}
	return "unknown"
}
