package breaker_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/breaker"
)

// TestTimeoutAbandonsAnUpstreamThatIgnoresCancellation: a legacy core in a
// lock convoy does not stop when its caller gives up. The route's Timeout must
// still bound the wait, so the fallback answers on time instead of after the
// lock time-out.
func TestTimeoutAbandonsAnUpstreamThatIgnoresCancellation(t *testing.T) {
	b := newBreaker(t, breaker.Config{Upstream: "stuck"}, prometheus.NewRegistry())
	release := make(chan struct{})
	defer close(release)
	stuck := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // ignores r.Context(), as the core's lock convoy does
		w.WriteHeader(http.StatusOK)
	})
	h := b.Middleware(breaker.Route{Timeout: 50 * time.Millisecond, Fallback: breaker.NewStale(breaker.StaleConfig{})})(stuck)
	done := make(chan int, 1)
	go func() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/v1/accounts/A1/balance", nil))
		done <- w.Code
	}()
	select {
	case code := <-done:
		if code != http.StatusServiceUnavailable {
			t.Errorf("status %d, want the fallback's 503 (nothing cached)", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the route waited for an upstream that ignores cancellation")
	}
}

// TestShedAnswersDoNotOpenTheBreaker: 503s given by the admission layer inside
// the breaker are protection, not upstream failures.
func TestShedAnswersDoNotOpenTheBreaker(t *testing.T) {
	b := newBreaker(t, testConfig(), prometheus.NewRegistry())
	shed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(breaker.HeaderShed, "true")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	h := b.Middleware(breaker.Route{})(shed)
	for range 20 {
		do(h, "GET", "/v1/accounts/A1/balance")
	}
	if st := b.State(); st != breaker.Closed {
		t.Errorf("breaker %v after shed answers, want closed", st)
	}
}
