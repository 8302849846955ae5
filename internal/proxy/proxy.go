// Package proxy forwards the gateway's requests to upstreams: remote ones
// over HTTP, or the in-process estate directly, each with its time-out.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rempart/rempart/internal/problem"
)

// New returns a handler that forwards to the upstream at base, bounding each
// request by timeout. Upstream failures become RFC 9457 problems: 504 for a
// time-out, 502 for anything else.
func New(base *url.URL, timeout time.Duration, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := &http.Transport{
		Proxy:                 nil, // never route bank traffic through an environment proxy
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: timeout,
		ForceAttemptHTTP2:     false,
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(base)
			pr.SetXForwarded()
		},
		Transport:  tr,
		BufferPool: newBufferPool(),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn("upstream error", "upstream", base.Host, "err", err)
			writeUpstreamError(w, err)
		},
	}
	return WithTimeout(timed(rp), timeout)
}

// LatencyRecorder is implemented by the ResponseWriter of a layer outside
// the proxy that learns from the upstream's own latency: an admission
// controller, whose limit must follow the back end, not the gateway around
// it. RecordUpstreamLatency is called, on the request's goroutine, with the
// time from the request written to the first byte of the answer read, once
// per attempt that got an answer.
type LatencyRecorder interface {
	RecordUpstreamLatency(d time.Duration)
}

// timed reports the upstream's latency to the first LatencyRecorder among
// the writers w wraps (through Unwrap, as http.ResponseController looks for
// Flush). Measured around the whole handler, a call's duration also holds
// the gateway's own work and waits: the answer's copy to a slow client, the
// layers around the proxy, and, on a machine whose cores the clients, the
// gateway and the back end share, the run queue before each of them. Read
// as the back end's latency, that made the admission limit fall while the
// back end idled (issue 14). From the request written to the first byte
// read, only the back end and the network are left, and one wake-up of the
// transport's reader, which the controller discounts as scheduling delay.
func timed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := latencyRecorder(w)
		if rec == nil {
			next.ServeHTTP(w, r)
			return
		}
		s := getSpan()
		next.ServeHTTP(w, r.WithContext(httptrace.WithClientTrace(r.Context(), &s.trace)))
		if d, ok := s.latency(); ok {
			rec.RecordUpstreamLatency(d)
		}
		s.release()
	})
}

// spans lends timed its spans: a span and its two hooks were 3 of the 6
// allocations timing cost a request (BenchmarkProxiedRequest in
// cmd/rempart). The hooks are bound to their span once, when it is made.
var spans = sync.Pool{New: func() any { return newSpan() }}

func getSpan() *span {
	s := spans.Get().(*span)
	// WithClientTrace composes an outer trace's hooks into the one it is
	// given: start from the span's own hooks every time.
	s.trace = s.hooks
	return s
}

// span is one request's timing. The transport's writer and reader
// goroutines set it, and a short answer can be read before the writer has
// noted its write, so the fields are atomic and the order is not assumed.
//
// A span goes back to the pool only when no hook can fire on it again: a
// hook that fired late on a span lent to another request would time that
// request with this one's clock. http.Transport calls, per attempt, GotConn
// once (in getConn, on the caller's goroutine), WroteRequest once (the last
// deferred call of Request.write, on the writer) and GotFirstResponseByte
// once (before the answer is handed over, on the reader). An attempt that
// fails is retried only after its writer has returned (mapRoundTripError
// waits for writeLoopDone), but its reader may still be peeking. So a span
// is reused only when there was exactly one attempt and all three of its
// hooks have fired: nothing is left to call it. Any other case (an error, a
// retry, an answer that came before the request was written: a large body
// the upstream refused early) leaves the span to the garbage collector.
type span struct {
	trace, hooks         httptrace.ClientTrace
	wrote, first         atomic.Int64 // Unix nanoseconds, zero until seen
	conns, writes, byte1 atomic.Int32 // hooks fired
}

func newSpan() *span {
	s := &span{}
	s.hooks = httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { s.conns.Add(1) },
		WroteRequest: func(httptrace.WroteRequestInfo) {
			s.wrote.Store(time.Now().UnixNano())
			s.writes.Add(1)
		},
		GotFirstResponseByte: func() {
			s.first.Store(time.Now().UnixNano())
			s.byte1.Add(1)
		},
	}
	return s
}

// release returns s to the pool when no hook of the request can still fire.
func (s *span) release() {
	if !s.settled() {
		return
	}
	s.wrote.Store(0)
	s.first.Store(0)
	s.conns.Store(0)
	s.writes.Store(0)
	s.byte1.Store(0)
	spans.Put(s)
}

// settled reports whether no hook can fire on s again: one attempt, whose
// three hooks have all fired.
func (s *span) settled() bool {
	return s.conns.Load() == 1 && s.writes.Load() == 1 && s.byte1.Load() == 1
}

func (s *span) latency() (time.Duration, bool) {
	wrote, first := s.wrote.Load(), s.first.Load()
	if wrote == 0 || first == 0 {
		return 0, false // no answer: the attempt failed, and says nothing of the speed
	}
	// An answer read before the write was noted came as fast as it could.
	return time.Duration(max(0, first-wrote)), true
}

func latencyRecorder(w http.ResponseWriter) LatencyRecorder {
	for w != nil {
		if rec, ok := w.(LatencyRecorder); ok {
			return rec
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
	return nil
}

// bufferPool lends httputil.ReverseProxy its copy buffers. Without one it
// allocates 32 KB for every request, the largest allocation of a proxied
// request (BenchmarkProxiedRequest in cmd/rempart). It pools array
// pointers, so that neither Get nor Put allocates.
type bufferPool struct{ pool sync.Pool }

// copyBufferSize is ReverseProxy's own buffer size.
const copyBufferSize = 32 << 10

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}
}

func (p *bufferPool) Get() []byte { return p.pool.Get().(*[copyBufferSize]byte)[:] }

func (p *bufferPool) Put(b []byte) {
	if cap(b) < copyBufferSize {
		return
	}
	p.pool.Put((*[copyBufferSize]byte)(b[:copyBufferSize]))
}

var _ httputil.BufferPool = (*bufferPool)(nil)

// WithTimeout bounds a handler by a deadline carried in the request context.
func WithTimeout(h http.Handler, timeout time.Duration) http.Handler {
	if timeout <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

func writeUpstreamError(w http.ResponseWriter, err error) {
	// A body over the gateway's limit is only found out while it is being
	// forwarded (when it came without a length): the caller's fault, not the
	// upstream's.
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		problem.Error(w, http.StatusRequestEntityTooLarge, "body-too-large",
			fmt.Sprintf("request body exceeds the limit of %d bytes", tooLarge.Limit))
		return
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		problem.Error(w, http.StatusGatewayTimeout, "upstream-timeout", "the upstream did not answer in time")
		return
	}
	if errors.Is(err, context.Canceled) {
		// The client went away; the status is only for logs and metrics.
		d := problem.New(499, "client-closed", "the client closed the request")
		d.Title = "Client Closed Request"
		problem.Write(w, d)
		return
	}
	problem.Error(w, http.StatusBadGateway, "upstream-unavailable", "the upstream could not be reached")
}
