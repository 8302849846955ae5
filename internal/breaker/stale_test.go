package breaker_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/breaker"
	"github.com/rempart/rempart/internal/request"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestStaleServedWhenTheUpstreamFails(t *testing.T) {
	clk := newClock(time.Date(2025, 12, 22, 9, 0, 0, 0, time.UTC))
	s := breaker.NewStale(breaker.StaleConfig{Now: clk.Now})
	b := newBreaker(t, testConfig(), nil)
	u := &upstream{}
	h := b.Middleware(breaker.Route{Fallback: s})(u)

	if w := do(h, "GET", "/v1/accounts/A-alice/balance"); w.Code != 200 || w.Header().Get(breaker.HeaderStale) != "" {
		t.Fatalf("fresh answer %d %v", w.Code, w.Header())
	}
	clk.Advance(90 * time.Second)
	u.status.Store(500)
	w := do(h, "GET", "/v1/accounts/A-alice/balance")
	if w.Code != 200 || w.Body.String() != `{"path":"/v1/accounts/A-alice/balance"}` {
		t.Fatalf("stale answer %d %q", w.Code, w.Body)
	}
	for k, want := range map[string]string{
		breaker.HeaderStale: "true",
		breaker.HeaderAsOf:  "2025-12-22T09:00:00Z",
		"Age":               "90",
		"Content-Type":      "application/json",
		"Cache-Control":     "no-store",
	} {
		if got := w.Header().Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	// Another URL was never answered: nothing to serve.
	w = do(h, "GET", "/v1/accounts/A-bruno/balance")
	if w.Code != 503 || w.Header().Get("Retry-After") == "" || w.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("miss answered %d %v", w.Code, w.Header())
	}
}

func TestStaleServedWhileOpen(t *testing.T) {
	s := breaker.NewStale(breaker.StaleConfig{})
	b := newBreaker(t, testConfig(), nil)
	u := &upstream{}
	h := b.Middleware(breaker.Route{Fallback: s})(u)
	do(h, "GET", "/v1/accounts/A-alice/transactions?limit=5")
	u.status.Store(503)
	repeat(h, "/v1/accounts/A-alice/transactions?limit=5", 4)
	if b.State() != breaker.Open {
		t.Fatal("not open")
	}
	calls := u.calls.Load()
	w := do(h, "GET", "/v1/accounts/A-alice/transactions?limit=5")
	if w.Code != 200 || w.Header().Get(breaker.HeaderStale) != "true" || u.calls.Load() != calls {
		t.Fatalf("open breaker: %d %v after %d calls", w.Code, w.Header(), u.calls.Load()-calls)
	}
	// The query is part of the key.
	if w := do(h, "GET", "/v1/accounts/A-alice/transactions?limit=50"); w.Code != 503 {
		t.Fatalf("another query answered %d from the cache", w.Code)
	}
}

func TestStaleKeepsOnlyGoodReads(t *testing.T) {
	s := breaker.NewStale(breaker.StaleConfig{MaxBody: 20})
	ok := func(status int, body string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			w.Write([]byte(body))
		})
	}
	b := newBreaker(t, breaker.Config{Upstream: "estate", MinCalls: 1000}, nil)
	for _, tc := range []struct {
		method string
		status int
		body   string
	}{
		{"GET", 404, "{}"},
		{"GET", 201, "{}"},
		{"POST", 200, "{}"},
		{"GET", 200, `{"far too long for the limit":true}`},
	} {
		do(b.Middleware(breaker.Route{Fallback: s})(ok(tc.status, tc.body)), tc.method, "/r")
	}
	if s.Len() != 0 {
		t.Fatalf("cached %d answers that are not good reads", s.Len())
	}
}

func TestStaleEvictsLeastRecentlyUsed(t *testing.T) {
	s := breaker.NewStale(breaker.StaleConfig{Entries: 2})
	b := newBreaker(t, breaker.Config{Upstream: "estate", MinCalls: 1000}, nil)
	u := &upstream{}
	h := b.Middleware(breaker.Route{Fallback: s})(u)
	do(h, "GET", "/a")
	do(h, "GET", "/b")
	u.status.Store(500)
	do(h, "GET", "/a") // served stale: /a is now the most recent
	u.status.Store(0)
	do(h, "GET", "/c") // evicts /b
	u.status.Store(500)
	if s.Len() != 2 {
		t.Fatalf("len %d, want 2", s.Len())
	}
	for path, want := range map[string]int{"/a": 200, "/b": 503, "/c": 200} {
		if w := do(h, "GET", path); w.Code != want {
			t.Errorf("%s answered %d, want %d", path, w.Code, want)
		}
	}
}

func TestStaleMaxAge(t *testing.T) {
	clk := newClock(time.Now())
	s := breaker.NewStale(breaker.StaleConfig{MaxAge: time.Hour, Now: clk.Now})
	b := newBreaker(t, breaker.Config{Upstream: "estate", MinCalls: 1000}, nil)
	u := &upstream{}
	h := b.Middleware(breaker.Route{Fallback: s})(u)
	do(h, "GET", "/a")
	u.status.Store(500)
	clk.Advance(time.Hour + time.Second)
	if w := do(h, "GET", "/a"); w.Code != 503 {
		t.Fatalf("an answer older than MaxAge was served: %d", w.Code)
	}
}

// One customer's cached answer is never served to another.
func TestStaleKeyedBySubject(t *testing.T) {
	s := breaker.NewStale(breaker.StaleConfig{})
	b := newBreaker(t, breaker.Config{Upstream: "estate", MinCalls: 1000}, nil)
	u := &upstream{}
	h := b.Middleware(breaker.Route{Fallback: s})(u)
	as := func(subject string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/v1/customers/me/accounts", nil)
		r = r.WithContext(request.With(r.Context(), &request.Info{Session: subject != "", Subject: subject}))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	as("alice")
	u.status.Store(500)
	if w := as("alice"); w.Code != 200 || w.Header().Get(breaker.HeaderStale) != "true" {
		t.Fatalf("alice's own answer: %d", w.Code)
	}
	if w := as("bruno"); w.Code != 503 {
		t.Fatalf("bruno was served alice's answer: %d", w.Code)
	}
	if w := as(""); w.Code != 503 {
		t.Fatalf("an anonymous request was served alice's answer: %d", w.Code)
	}
}
