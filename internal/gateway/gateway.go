package gateway

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/admission"
	"github.com/rempart/rempart/internal/problem"
	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/telemetry"
	"github.com/rempart/rempart/internal/tier"
)

// Route is one entry of the routing table.
type Route struct {
	Name     string
	Pattern  string // http.ServeMux pattern, e.g. "POST /v1/cards/authorize"
	Tier     tier.Tier
	Upstream http.Handler
}

// Options are the gateway's knobs.
type Options struct {
	Logger       *slog.Logger
	Metrics      *telemetry.Metrics
	MaxBodyBytes int64
	// Observers see every answered request (the status page learns each
	// channel's health from them). They run on the request goroutine after
	// the response is written, so they must be cheap.
	Observers []Observer
}

// Observer is told how each request ended.
type Observer interface {
	ObserveRequest(info *request.Info, status int, header http.Header, elapsed time.Duration)
}

// Gateway routes requests to upstreams. It is an http.Handler.
type Gateway struct {
	mux       *http.ServeMux
	log       *slog.Logger
	metrics   *telemetry.Metrics
	maxBody   int64
	observers []Observer
}

// New builds a gateway from its routing table.
func New(routes []Route, opts Options) (*Gateway, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = telemetry.NewMetrics()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 64 << 10
	}
	g := &Gateway{mux: http.NewServeMux(), log: opts.Logger, metrics: opts.Metrics, maxBody: opts.MaxBodyBytes, observers: opts.Observers}
	for _, r := range routes {
		if r.Upstream == nil {
			return nil, fmt.Errorf("route %s: no upstream", r.Name)
		}
		if err := register(g.mux, r.Pattern, g.wrap(r)); err != nil {
			return nil, fmt.Errorf("route %s: %w", r.Name, err)
		}
		// Pre-create the series so dashboards show every route from the start.
		g.metrics.Duration.WithLabelValues(r.Name, r.Tier.String())
	}
	unmatched := Route{Name: "unmatched", Tier: tier.Sheddable, Upstream: http.HandlerFunc(notFound)}
	// A route of its own on "/" (or "/{path...}") already answers every
	// request no other route takes; registering beside it would panic.
	_ = register(g.mux, "/", g.wrap(unmatched))
	return g, nil
}

func register(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pattern %q: %v", pattern, r)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

func notFound(w http.ResponseWriter, r *http.Request) {
	problem.Error(w, http.StatusNotFound, "no-route", "no route matches "+r.Method+" "+r.URL.Path)
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mux.ServeHTTP(w, r)
}

// codeCounters are one route's request counters by status code, looked up
// in the CounterVec once per code rather than once per request (a label
// lookup hashes three strings and formats the code: measured at a quarter of
// the gateway layer's own cost before).
type codeCounters struct {
	vec         *prometheus.CounterVec
	route, tier string
	byCode      [500]atomic.Pointer[prometheus.Counter] // 100..599
}

func (c *codeCounters) inc(code int) {
	if code < 100 || code > 599 {
		c.vec.WithLabelValues(c.route, c.tier, strconv.Itoa(code)).Inc()
		return
	}
	slot := &c.byCode[code-100]
	if p := slot.Load(); p != nil {
		(*p).Inc()
		return
	}
	ctr := c.vec.WithLabelValues(c.route, c.tier, strconv.Itoa(code))
	slot.Store(&ctr)
	ctr.Inc()
}

// exchange is what the gateway allocates per request, in one piece: the
// recorder of the response, the request's context with its info, and the
// one-element backing arrays of the headers it sets (four allocations of
// their own before: BenchmarkGateway, BenchmarkProxiedRequest in cmd/rempart).
type exchange struct {
	rec         recorder
	ctx         request.Carrier
	ids, parent [1]string
}

// wrap adds ids, trace context, body limit, metrics and a log line around a
// route's upstream. Answers below 400 are logged at DEBUG (counted always):
// a log record per successful request is most of a proxy's CPU at a few
// thousand requests a second; refusals, sheds and failures stay at INFO and
// WARN, so every one of them is still in the log.
func (g *Gateway) wrap(rt Route) http.Handler {
	tierName := rt.Tier.String()
	inflight := g.metrics.InFlight.WithLabelValues(tierName)
	duration := g.metrics.Duration.WithLabelValues(rt.Name, tierName)
	codes := &codeCounters{vec: g.metrics.Requests, route: rt.Name, tier: tierName}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		inflight.Inc()
		defer inflight.Dec()

		id := r.Header.Get("X-Request-Id")
		if !telemetry.ValidRequestID(id) {
			id = telemetry.NewRequestID()
		}
		tc, ok := telemetry.ParseTraceparent(r.Header.Get("Traceparent"))
		if ok {
			tc = tc.Child()
		} else {
			tc = telemetry.NewTrace()
			r.Header.Del("Tracestate") // state without a valid parent is meaningless
		}
		// Upstreams see our hop as the parent. The id's one-element slice
		// is shared by the request and the response: Set and Add replace or
		// grow a header's slice, never write into it.
		x := &exchange{rec: recorder{ResponseWriter: w, status: http.StatusOK},
			ctx: request.Carrier{Context: r.Context(),
				Info: request.Info{ID: id, Trace: tc, Route: rt.Name, Tier: rt.Tier, Priority: rt.Tier}}}
		x.parent[0], x.ids[0] = tc.String(), id
		r.Header["Traceparent"] = x.parent[:]
		ids := x.ids[:]
		r.Header["X-Request-Id"] = ids
		w.Header()["X-Request-Id"] = ids

		info, rec := &x.ctx.Info, &x.rec
		r = r.WithContext(&x.ctx)

		var abort any
		dl, hasDeadline, dlErr := admission.ParseDeadline(r.Header, start)
		if hasDeadline {
			info.Deadline = dl
		}
		if dlErr != nil {
			problem.Write(rec, problem.New(http.StatusBadRequest, "invalid-deadline", dlErr.Error()).WithField(admission.DeadlineHeader))
		} else if r.ContentLength > g.maxBody {
			problem.Write(rec, problem.New(http.StatusRequestEntityTooLarge, "body-too-large",
				fmt.Sprintf("request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, g.maxBody)))
		} else {
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = http.MaxBytesReader(rec, r.Body, g.maxBody)
			}
			abort = g.serve(rt.Upstream, rec, r)
		}

		elapsed := time.Since(start)
		duration.Observe(elapsed.Seconds())
		for _, o := range g.observers {
			o.ObserveRequest(info, rec.status, rec.Header(), elapsed)
		}
		codes.inc(rec.status)
		level := slog.LevelDebug
		switch {
		case rec.status >= 500 || abort != nil:
			level = slog.LevelWarn
		case rec.status >= 400:
			level = slog.LevelInfo
		}
		if g.log.Enabled(r.Context(), level) {
			g.log.LogAttrs(r.Context(), level, "request",
				slog.String("request_id", id),
				slog.String("trace_id", tc.TraceIDString()),
				slog.String("route", rt.Name),
				slog.String("tier", tierName),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", rec.status),
				slog.Int64("bytes", rec.bytes),
				slog.Duration("duration", elapsed),
				slog.Bool("aborted", abort != nil),
			)
		}
		if abort != nil {
			panic(abort)
		}
	})
}

// serve runs the upstream and turns a panic into a logged 500 problem rather
// than a dropped connection, so one bad request cannot take the listener down.
// When the response has already started, or the upstream aborted it on
// purpose (http.ErrAbortHandler, as httputil.ReverseProxy does when an
// upstream's body breaks off), a problem can no longer be sent: serve returns
// http.ErrAbortHandler for the caller to re-raise once the request is counted
// and logged, so the client sees a broken response, not a truncated one that
// looks complete.
func (g *Gateway) serve(h http.Handler, w *recorder, r *http.Request) (abort any) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if p != http.ErrAbortHandler {
			g.log.LogAttrs(r.Context(), slog.LevelError, "upstream panic",
				slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
		}
		if p == http.ErrAbortHandler || w.wrote {
			abort = http.ErrAbortHandler
			return
		}
		// Drop what the upstream meant to send with its own body.
		hdr := w.Header()
		id := hdr.Get("X-Request-Id")
		clear(hdr)
		hdr.Set("X-Request-Id", id)
		problem.Error(w, http.StatusInternalServerError, "internal", "internal error")
	}()
	h.ServeHTTP(w, r)
	return nil
}

// recorder captures the status and size of a response.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status = code
		r.wrote = true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.wrote = true
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush forwards streaming flushes.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
