package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/client"
)

// scriptedUpstream answers the n-th call with answers[n] (the last one for
// ever after) and records the bodies it got.
type scriptedUpstream struct {
	answers []scriptedAnswer
	mu      sync.Mutex
	bodies  []string
}

type scriptedAnswer struct {
	status int
	header http.Header
}

func (u *scriptedUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	a := u.answers[min(len(u.bodies), len(u.answers)-1)]
	u.bodies = append(u.bodies, string(b))
	n := len(u.bodies)
	u.mu.Unlock()
	for k, v := range a.header {
		w.Header()[k] = v
	}
	w.Header().Set("X-Attempt", strings.Repeat("I", n))
	w.WriteHeader(a.status)
	io.WriteString(w, http.StatusText(a.status))
}

func (u *scriptedUpstream) calls() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.bodies)
}

func TestRetrier(t *testing.T) {
	get := func() *http.Request { return httptest.NewRequest("GET", "/v1/accounts/A1/balance", nil) }
	keyed := func() *http.Request { return write("POST", "/v1/cards/authorize", "k-1", `{"amount":1}`) }
	shed := http.Header{"Retry-After": {"2"}}
	tests := []struct {
		name       string
		req        func() *http.Request
		answers    []scriptedAnswer
		wantCalls  int
		wantStatus int
	}{
		{"GET after 502", get, []scriptedAnswer{{502, nil}, {200, nil}}, 2, 200},
		{"GET after 503 without Retry-After", get, []scriptedAnswer{{503, nil}, {200, nil}}, 2, 200},
		{"HEAD after 502", func() *http.Request { return httptest.NewRequest("HEAD", "/x", nil) }, []scriptedAnswer{{502, nil}, {200, nil}}, 2, 200},
		{"keyed write after 502", keyed, []scriptedAnswer{{502, nil}, {200, nil}}, 2, 200},
		{"at most one retry", get, []scriptedAnswer{{502, nil}}, 2, 502},
		{"not a shed 503", get, []scriptedAnswer{{503, shed}, {200, nil}}, 1, 503},
		{"not a 500", get, []scriptedAnswer{{500, nil}, {200, nil}}, 1, 500},
		{"not a 504", get, []scriptedAnswer{{504, nil}, {200, nil}}, 1, 504},
		{"not a 429", get, []scriptedAnswer{{429, nil}, {200, nil}}, 1, 429},
		{"not a write without a key", func() *http.Request { return write("POST", "/v1/cards/authorize", "", "{}") },
			[]scriptedAnswer{{502, nil}, {200, nil}}, 1, 502},
		{"not a success", get, []scriptedAnswer{{200, nil}}, 1, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &scriptedUpstream{answers: tt.answers}
			h := NewRetrier(RetryOptions{}).Middleware(up)
			res := do(h, tt.req())
			if up.calls() != tt.wantCalls || res.Code != tt.wantStatus {
				t.Fatalf("%d calls, answer %d: want %d and %d", up.calls(), res.Code, tt.wantCalls, tt.wantStatus)
			}
			// Only the answer sent carries its headers: nothing of a dropped one.
			if want := strings.Repeat("I", tt.wantCalls); res.Header().Get("X-Attempt") != want {
				t.Errorf("X-Attempt %q, want %q", res.Header().Get("X-Attempt"), want)
			}
			if tt.wantCalls == 2 && tt.req().Method == "POST" {
				if up.bodies[0] != `{"amount":1}` || up.bodies[1] != up.bodies[0] {
					t.Errorf("bodies %q, want the same body twice", up.bodies)
				}
			}
		})
	}
}

// TestRetrierKeepsOuterHeaders: headers set before the retrier (a request
// id) survive a dropped attempt.
func TestRetrierKeepsOuterHeaders(t *testing.T) {
	up := &scriptedUpstream{answers: []scriptedAnswer{{502, http.Header{"X-Dropped": {"1"}}}, {200, nil}}}
	inner := NewRetrier(RetryOptions{}).Middleware(up)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req-1")
		inner.ServeHTTP(w, r)
	})
	res := do(h, httptest.NewRequest("GET", "/x", nil))
	if res.Code != 200 || res.Header().Get("X-Request-Id") != "req-1" || res.Header().Get("X-Dropped") != "" {
		t.Errorf("answer %d %v, want 200 with X-Request-Id and without the dropped attempt's headers", res.Code, res.Header())
	}
}

func TestRetrierBudget(t *testing.T) {
	up := &scriptedUpstream{answers: []scriptedAnswer{{502, nil}}}
	budget := client.NewRetryBudget(client.BudgetConfig{Ratio: 0.1, MinRetries: 1, Window: time.Hour})
	rt := NewRetrier(RetryOptions{Budget: budget, Registerer: prometheus.NewRegistry()})
	h := rt.Middleware(up)
	const requests = 30
	for range requests {
		do(h, httptest.NewRequest("GET", "/x", nil))
	}
	// 30 requests pay for max(3, 1) retries.
	if up.calls() != requests+3 || value(rt.sent) != 3 || value(rt.budgetNo) != requests-3 {
		t.Errorf("%d upstream calls, %v retries sent, %v refused: want %d, 3, %d",
			up.calls(), value(rt.sent), value(rt.budgetNo), requests+3, requests-3)
	}
}

func TestRetrierDeadline(t *testing.T) {
	now := time.Unix(1766395800, 0)
	up := &scriptedUpstream{answers: []scriptedAnswer{{502, nil}, {200, nil}}}
	rt := NewRetrier(RetryOptions{Now: func() time.Time { return now }})
	h := rt.Middleware(up)
	ctx, cancel := context.WithDeadline(context.Background(), now) // passed by the time the 502 came
	defer cancel()
	res := do(h, httptest.NewRequest("GET", "/x", nil).WithContext(ctx))
	if res.Code != 502 || up.calls() != 1 || value(rt.lateNo) != 1 {
		t.Errorf("answer %d after %d calls, want the 502 and no retry past the deadline", res.Code, up.calls())
	}
}

// TestSharedBudgetChargedOnce: behind a ReplayCache sharing its budget, a
// request is counted once, not once per middleware.
func TestSharedBudgetChargedOnce(t *testing.T) {
	budget := client.NewRetryBudget(client.BudgetConfig{Ratio: 0.5, MinRetries: 1, Window: time.Hour})
	up := &counting{status: always(200)}
	h := NewReplayCache(ReplayOptions{Budget: budget}).Middleware(NewRetrier(RetryOptions{Budget: budget}).Middleware(up))
	for i := range 10 {
		do(h, write("POST", "/x", "k-"+strings.Repeat("x", i+1), "{}"))
	}
	allowed := 0
	for budget.TryWithdraw() {
		allowed++
	}
	if allowed != 5 {
		t.Errorf("10 requests paid for %d retries, want 5 (each counted once)", allowed)
	}
}

// TestRetrierConnectionError retries through the real forwarding handler to
// an address where nothing listens.
func TestRetrierConnectionError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rt := NewRetrier(RetryOptions{})
	h := rt.Middleware(New(mustURL(t, "http://"+addr), time.Second, nil))
	res := do(h, httptest.NewRequest("GET", "/v1/parcels/X1", nil))
	if res.Code != http.StatusBadGateway || value(rt.sent) != 1 {
		t.Errorf("answer %d after %v retries, want 502 after one retry", res.Code, value(rt.sent))
	}
}

// TestRetrierTrailers forwards through the real reverse proxy to an upstream
// that sends a trailer: it reaches the client.
func TestRetrierTrailers(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "abc")
	}))
	defer up.Close()
	gw := front(t, NewRetrier(RetryOptions{}).Middleware(New(mustURL(t, up.URL), 5*time.Second, nil)))
	res, err := gw.Client().Get(gw.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(res.Body)
	res.Body.Close()
	if res.Trailer.Get("X-Checksum") != "abc" {
		t.Errorf("trailers %v, want X-Checksum: abc", res.Trailer)
	}
}
