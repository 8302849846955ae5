package breaker_test

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/breaker"
)

// onCallersStack reports whether the function named fn is on the calling
// goroutine's stack: a handler run in a goroutine of its own has only the
// frames from that goroutine's start there.
func onCallersStack(fn string) bool {
	buf := make([]byte, 64<<10)
	return strings.Contains(string(buf[:runtime.Stack(buf, false)]), fn)
}

// TestCancellableRoute: a proxied upstream stops when its context ends, so
// its call runs on the request's goroutine (no goroutine per request) and
// the route's Timeout still bounds it, through the context's deadline.
func TestCancellableRoute(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := newBreaker(t, breaker.Config{Upstream: "proxied"}, reg)
	var sameGoroutine, hadDeadline bool
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sameGoroutine = onCallersStack("breaker.(*guard).ServeHTTP(")
		_, hadDeadline = r.Context().Deadline()
		if r.URL.Path == "/slow" {
			<-r.Context().Done() // as http.Transport does
			w.WriteHeader(http.StatusGatewayTimeout)
			return
		}
		if r.URL.Path == "/cut" {
			// As httputil.ReverseProxy does when the deadline cuts the
			// upstream's body short.
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("part"))
			<-r.Context().Done()
			panic(http.ErrAbortHandler)
		}
		w.Write([]byte("ok"))
	})
	rt := breaker.Route{Timeout: 50 * time.Millisecond, Cancellable: true, Fallback: breaker.NewStale(breaker.StaleConfig{})}
	h := b.Middleware(rt)(up)

	t.Run("answer", func(t *testing.T) {
		w := do(h, "GET", "/fast")
		if w.Code != http.StatusOK || w.Body.String() != "ok" {
			t.Fatalf("status %d %q, want 200 ok", w.Code, w.Body)
		}
		if !sameGoroutine {
			t.Error("the upstream ran in a goroutine of its own")
		}
		if !hadDeadline {
			t.Error("the upstream's context had no deadline: the route's Timeout does not reach it")
		}
	})
	t.Run("timeout", func(t *testing.T) {
		start := time.Now()
		w := do(h, "GET", "/slow")
		if w.Code != http.StatusServiceUnavailable {
			t.Errorf("status %d, want the fallback's 503 (nothing cached)", w.Code)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("answered after %v, want about the 50ms Timeout", d)
		}
	})
	t.Run("cut-off", func(t *testing.T) {
		h := b.Middleware(breaker.Route{Timeout: 50 * time.Millisecond, Cancellable: true})(up)
		if w := do(h, "GET", "/cut"); w.Code != http.StatusGatewayTimeout {
			t.Errorf("status %d, want 504 upstream-timeout", w.Code)
		}
	})
	if n := callsTotal(t, reg, "timeout"); n != 2 {
		t.Errorf("calls{outcome=timeout} = %v, want 2", n)
	}

	// Not cancellable: the call runs in a goroutine of its own.
	hg := b.Middleware(breaker.Route{Timeout: time.Second})(up)
	do(hg, "GET", "/fast")
	if sameGoroutine {
		t.Error("a route not marked cancellable ran its upstream on the request's goroutine")
	}
}

// callsTotal is rempart_breaker_calls_total{outcome} in reg.
func callsTotal(t *testing.T, reg *prometheus.Registry, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "rempart_breaker_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// BenchmarkMiddleware is one GET through a closed breaker, to a route that
// runs its upstream on the request's goroutine (a proxied upstream) and to
// one that runs it in a goroutine of its own (in process), against the bare
// handler in the same run.
//
//	go test -run '^$' -bench Middleware -benchmem -count 3 ./internal/breaker/
func BenchmarkMiddleware(b *testing.B) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	})
	br, err := breaker.New(breaker.Config{Upstream: "bench"}, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", up},
		{"cancellable", br.Middleware(breaker.Route{Timeout: time.Second, Cancellable: true})(up)},
		{"goroutine", br.Middleware(breaker.Route{Timeout: time.Second})(up)},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := httptest.NewRequest("GET", "/v1/accounts/A1/balance", nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				c.h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
