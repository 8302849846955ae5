package proxy

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/telemetry"

	"github.com/rempart/rempart/client"
)

// The gateway's retry budget is the SDK's client.RetryBudget: one algorithm
// at both ends, so the 10 % the gateway allows itself and the 10 % an app
// allows itself mean the same thing. failsafe-go's budget package was the
// other candidate; it bounds the share of executions in flight that are
// retries (a concurrency ratio, with a floor of 3 always allowed), not the
// retries over time, and is only fed through failsafe's own executors, so it
// cannot promise "at most 10 % more load on the core".

// RetryOptions configures a Retrier. Zero values take the defaults.
type RetryOptions struct {
	// Budget pays for the gateway's retries. Share it with the ReplayCache,
	// so that its clients' retries and the gateway's own together stay
	// within it. Default: a budget of its own with client.BudgetConfig's
	// defaults (retries at most 10 % of requests).
	Budget *client.RetryBudget
	// MaxBodyBytes is the largest request body buffered for a retry; a
	// request with a larger one is not retried. Default 1 MiB.
	MaxBodyBytes int64
	// Registerer receives the rempart_retry_* metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now is the time source for deadlines; nil means time.Now.
	Now func() time.Time
}

// Retrier makes the gateway's own bounded retries: one retry of a request
// that may safely run twice (GET and HEAD, and writes with an
// Idempotency-Key, which the upstream deduplicates) when the upstream could
// not be reached or answered 502, or 503 without Retry-After (a 503 with
// Retry-After was shed on purpose and is passed on). A retry is made only
// while the request's deadline has not passed and the retry budget allows.
type Retrier struct {
	budget  *client.RetryBudget
	maxBody int64
	now     func() time.Time

	sent     prometheus.Counter
	budgetNo prometheus.Counter
	lateNo   prometheus.Counter
}

// NewRetrier returns a Retrier. It panics if its metrics cannot be
// registered (a name taken by a collector of another kind); retriers sharing
// a registry share their counters.
func NewRetrier(opts RetryOptions) *Retrier {
	if opts.Budget == nil {
		opts.Budget = client.NewRetryBudget(client.BudgetConfig{})
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	refused := register(opts.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rempart_retry_refused_total",
		Help: "Gateway retries not made, by reason (budget: the retry budget was spent; deadline: the caller's deadline had passed).",
	}, []string{"reason"}))
	return &Retrier{
		budget:  opts.Budget,
		maxBody: opts.MaxBodyBytes,
		now:     opts.Now,
		sent: register(opts.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rempart_retry_sent_total",
			Help: "Requests the gateway sent to the upstream again after a 502 or a 503 without Retry-After.",
		})),
		budgetNo: refused.WithLabelValues("budget"),
		lateNo:   refused.WithLabelValues("deadline"),
	}
}

// Middleware returns next with retries. Every request passing through
// counts towards the budget, unless a ReplayCache in front already counted
// it in the same budget.
func (rt *Retrier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if !charged(ctx, rt.budget) {
			rt.budget.Deposit()
		}
		if !retriable(r) {
			next.ServeHTTP(w, r)
			return
		}
		if r.GetBody == nil {
			_, whole, err := readBody(r, rt.maxBody)
			if err != nil {
				writeBodyError(w, err)
				return
			}
			if !whole {
				next.ServeHTTP(w, r)
				return
			}
		}
		first := getAttempt(w, rt, ctx)
		next.ServeHTTP(first, r)
		if !first.suppressed {
			first.finish()
			first.release()
			return
		}
		first.release()
		rt.sent.Inc()
		again := r.Clone(ctx)
		again.Body = http.NoBody
		if r.GetBody != nil {
			body, err := r.GetBody()
			if err != nil {
				writeBodyError(w, err)
				return
			}
			again.Body = body
		}
		next.ServeHTTP(w, again)
	})
}

// retriable reports whether r may run twice.
func retriable(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return true
	}
	return isWrite(r.Method) && r.Header.Get("Idempotency-Key") != ""
}

// allow decides, when the first attempt's status is known, whether to drop
// its answer and try again.
func (rt *Retrier) allow(ctx context.Context, status int, h http.Header) bool {
	if status != http.StatusBadGateway && (status != http.StatusServiceUnavailable || h.Get("Retry-After") != "") {
		return false
	}
	if ctx.Err() != nil {
		rt.lateNo.Inc()
		return false
	}
	if dl, ok := ctx.Deadline(); ok && !rt.now().Before(dl) {
		rt.lateNo.Inc()
		return false
	}
	if !rt.budget.TryWithdraw() {
		rt.budgetNo.Inc()
		return false
	}
	return true
}

// attemptWriter holds a first attempt's answer back until its status is
// known: a retried one is dropped, any other passed on as it is written. The
// handler writes headers into a copy, so a dropped answer leaves nothing
// behind.
type attemptWriter struct {
	w      http.ResponseWriter
	header http.Header
	rt     *Retrier
	ctx    context.Context // the request's, for the retry's deadline

	decided    bool // the status is known
	suppressed bool // and the answer is dropped for a retry
}

// attempts lends the Retrier its first-attempt writers with their header
// maps: a writer, its header copy and the closure it had were 3 allocations
// a request (BenchmarkProxiedRequest in cmd/rempart). A writer is released
// once the handler it was given has returned, so nothing writes to it.
var attempts = sync.Pool{New: func() any { return &attemptWriter{header: http.Header{}} }}

func getAttempt(w http.ResponseWriter, rt *Retrier, ctx context.Context) *attemptWriter {
	a := attempts.Get().(*attemptWriter)
	a.w, a.rt, a.ctx = w, rt, ctx
	// The value slices are shared, not copied: Set and Add replace or grow
	// a header's slice, never write into it (as the gateway shares its
	// request id's), so a dropped answer still leaves nothing behind.
	maps.Copy(a.header, w.Header())
	return a
}

// release clears a (its header map keeps its room) and returns it to the
// pool. The values it held are the response's now, or dropped: clearing the
// map does not touch them.
func (a *attemptWriter) release() {
	clear(a.header)
	*a = attemptWriter{header: a.header}
	attempts.Put(a)
}

// Header is the attempt's own copy until the answer is passed on, then the
// response's (for trailers set after the body).
func (a *attemptWriter) Header() http.Header {
	if a.decided && !a.suppressed {
		return a.w.Header()
	}
	return a.header
}

func (a *attemptWriter) WriteHeader(code int) {
	if a.decided {
		return
	}
	if code < 200 {
		// Informational answers (103 Early Hints) go through as they come.
		a.pass()
		a.w.WriteHeader(code)
		return
	}
	a.decided = true
	if a.rt.allow(a.ctx, code, a.header) {
		a.suppressed = true
		return
	}
	a.pass()
	a.w.WriteHeader(code)
}

func (a *attemptWriter) Write(b []byte) (int, error) {
	if !a.decided {
		a.WriteHeader(http.StatusOK)
	}
	if a.suppressed {
		return len(b), nil
	}
	return a.w.Write(b)
}

// FlushError passes a flush on (http.ResponseController finds it).
func (a *attemptWriter) FlushError() error {
	if !a.decided {
		a.WriteHeader(http.StatusOK)
	}
	if a.suppressed {
		return nil
	}
	return http.NewResponseController(a.w).Flush()
}

func (a *attemptWriter) Unwrap() http.ResponseWriter { return a.w }

// pass makes the handler's headers the response's.
func (a *attemptWriter) pass() {
	dst := a.w.Header()
	clear(dst)
	maps.Copy(dst, a.header)
}

// finish sends the headers of a handler that wrote nothing, before net/http
// sends its implicit 200.
func (a *attemptWriter) finish() {
	if !a.decided {
		a.pass()
	}
}

// chargedKey marks a request context with the budget its request was
// counted in, so that a Retrier behind a ReplayCache does not count it again.
type chargedKey struct{}

func charge(ctx context.Context, b *client.RetryBudget) context.Context {
	return context.WithValue(ctx, chargedKey{}, b)
}

func charged(ctx context.Context, b *client.RetryBudget) bool {
	got, _ := ctx.Value(chargedKey{}).(*client.RetryBudget)
	return got == b
}

// register registers c, or returns the collector of the same description
// already registered, so that several instances on one registry share their
// series.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	c, err := telemetry.Register(reg, c)
	if err != nil {
		panic(fmt.Sprintf("proxy: register metrics: %v", err))
	}
	return c
}
