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
	"net/http/httputil"
	"net/url"
	"sync"
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
	return WithTimeout(rp, timeout)
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
