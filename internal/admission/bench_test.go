package admission

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/tier"
)

// benchWriter is a ResponseWriter that keeps nothing but reuses its header
// map, so the benchmarks measure the controller, not a recorder.
type benchWriter struct{ h http.Header }

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *benchWriter) WriteHeader(int)             {}

func benchRequest(t tier.Tier, deadline time.Time) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "http://upstream/", nil)
	return r.WithContext(request.With(context.Background(), &request.Info{Priority: t, Deadline: deadline}))
}

// BenchmarkReject is the cost of turning one request away: a SHEDDABLE
// request arriving at a full queue of more important ones, and one whose
// deadline has passed. Both answer with the full problem document and a
// jittered Retry-After, with metrics registered.
func BenchmarkReject(b *testing.B) {
	b.Run("queue-full", func(b *testing.B) {
		o := fixed(1)
		o.MaxQueue, o.Registerer = 8, prometheus.NewRegistry()
		c := mustNew(b, o)
		hold := make(chan struct{})
		defer close(hold)
		h := c.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-hold }))
		for i := range 1 + o.MaxQueue {
			go h.ServeHTTP(&benchWriter{h: http.Header{}}, benchRequest(tier.Critical, time.Time{}))
			for c.Stats().Queued+c.Stats().InFlight != i+1 {
				time.Sleep(time.Millisecond)
			}
		}
		r := benchRequest(tier.Sheddable, time.Time{})
		benchShed(b, h, r)
	})
	b.Run("deadline-passed", func(b *testing.B) {
		c := mustNew(b, Options{Registerer: prometheus.NewRegistry()})
		h := c.Middleware(http.NotFoundHandler())
		r := benchRequest(tier.Sheddable, time.Now().Add(-time.Second))
		benchShed(b, h, r)
	})
}

func benchShed(b *testing.B, h http.Handler, r *http.Request) {
	w := &benchWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, r)
	}
	b.StopTimer()
	if w.h.Get("Retry-After") == "" {
		b.Fatal("the request was not shed")
	}
}

// BenchmarkAdmitOverhead is what the controller adds to a request it lets
// through, against the same instant upstream called bare, in the same run.
// The parallel variants contend for the controller's lock as a busy gateway
// would.
func BenchmarkAdmitOverhead(b *testing.B) {
	upstream := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	c := mustNew(b, Options{Registerer: prometheus.NewRegistry(), InitialLimit: 1000, MaxLimit: 1000})
	handlers := []struct {
		name string
		h    http.Handler
	}{{"bare", upstream}, {"admission", c.Middleware(upstream)}}
	for _, withDeadline := range []bool{false, true} {
		for _, hh := range handlers {
			name := hh.name
			if withDeadline {
				name += "/deadline"
			}
			b.Run(name, func(b *testing.B) {
				var deadline time.Time
				if withDeadline {
					deadline = time.Now().Add(time.Hour)
				}
				r := benchRequest(tier.Normal, deadline)
				w := &benchWriter{h: http.Header{}}
				b.ReportAllocs()
				for b.Loop() {
					hh.h.ServeHTTP(w, r)
				}
			})
		}
	}
	for _, hh := range handlers {
		b.Run(hh.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := benchRequest(tier.Normal, time.Time{})
				w := &benchWriter{h: http.Header{}}
				for pb.Next() {
					hh.h.ServeHTTP(w, r)
				}
			})
		})
	}
	if s := c.Stats(); s.InFlight != 0 {
		b.Fatalf("%d still in flight", s.InFlight)
	}
}
