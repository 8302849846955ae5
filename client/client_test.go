package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rempart/rempart/client"
)

// fakeClock advances when the client sleeps, so no test waits.
type fakeClock struct {
	manualTime
	smu   sync.Mutex
	slept []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{manualTime: manualTime{t: time.Now().Truncate(time.Second)}}
}

func (f *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.smu.Lock()
	f.slept = append(f.slept, d)
	f.smu.Unlock()
	f.Advance(d)
	return nil
}

func (f *fakeClock) Slept() []time.Duration {
	f.smu.Lock()
	defer f.smu.Unlock()
	return append([]time.Duration(nil), f.slept...)
}

// answer is one scripted response.
type answer struct {
	status int
	header map[string]string
	body   string
}

// seenRequest is what the scripted server received.
type seenRequest struct {
	method, path string
	header       http.Header
	body         string
}

// scripted answers from a list (the last one for ever after) and records
// what it got.
type scripted struct {
	mu      sync.Mutex
	answers []answer
	seen    []seenRequest
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	a := s.answers[min(len(s.seen), len(s.answers)-1)]
	s.seen = append(s.seen, seenRequest{r.Method, r.URL.Path, r.Header.Clone(), string(b)})
	s.mu.Unlock()
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

func (s *scripted) Seen() []seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenRequest(nil), s.seen...)
}

func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func problemAnswer(status int, slug string, extra string) answer {
	return answer{status: status, header: map[string]string{"Content-Type": "application/problem+json"},
		body: fmt.Sprintf(`{"type":"https://rempart.dev/problems/%s","title":%q,"status":%d%s}`,
			slug, http.StatusText(status), status, extra)}
}

func post(t *testing.T, c *client.Client, ctx context.Context, url string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"amount":3000}`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Do(ctx, req)
	if res != nil {
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	return res, err
}

func TestRetriesOnlyWhatMaySucceed(t *testing.T) {
	tests := []struct {
		status       int
		wantAttempts int
	}{
		{http.StatusServiceUnavailable, 4},
		{http.StatusBadGateway, 4},
		{http.StatusGatewayTimeout, 4},
		{http.StatusTooManyRequests, 4},
		{http.StatusInternalServerError, 1},
		{http.StatusBadRequest, 1},
		{http.StatusNotFound, 1},
		{http.StatusConflict, 1},
		{http.StatusUnprocessableEntity, 1},
		{http.StatusOK, 1},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			s := &scripted{answers: []answer{{status: tt.status}}}
			srv := serve(t, s)
			c := client.New(srv.URL, client.WithClock(newFakeClock()))
			res, err := post(t, c, context.Background(), srv.URL+"/v1/cards/authorize")
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tt.status {
				t.Errorf("status %d, want the server's last answer %d", res.StatusCode, tt.status)
			}
			if got := len(s.Seen()); got != tt.wantAttempts {
				t.Errorf("%d attempts, want %d", got, tt.wantAttempts)
			}
		})
	}
}

func TestConnectionErrorsRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	clock := newFakeClock()
	c := client.New("http://"+addr, client.WithClock(clock))
	_, err = post(t, c, context.Background(), "http://"+addr+"/v1/cards/authorize")
	var ne net.Error
	if !errors.As(err, &ne) {
		t.Fatalf("got %v, want the connection error", err)
	}
	if st := c.Stats(); st.Attempts != 4 || st.Retries != 3 || len(clock.Slept()) != 3 {
		t.Errorf("stats %+v with %d sleeps, want 4 attempts and 3 retries after a wait each", st, len(clock.Slept()))
	}
}

func TestRetryAfterIsAFloor(t *testing.T) {
	secs := func(v string) func(time.Time) string { return func(time.Time) string { return v } }
	tests := []struct {
		name       string
		retryAfter func(now time.Time) string
		deadline   time.Duration // from ctx; 0: none
		wantTries  int
		wantSleep  time.Duration // at least, before the retry
	}{
		{"seconds", secs("7"), 0, 2, 7 * time.Second},
		{"HTTP date", func(now time.Time) string { return now.Add(30 * time.Second).UTC().Format(http.TimeFormat) }, 0, 2, 30 * time.Second},
		{"zero leaves the backoff", secs("0"), 0, 2, 0},
		{"garbage is ignored", secs("soon"), 0, 2, 0},
		{"past the deadline: handed back", secs("60"), 10 * time.Second, 1, 0},
		{"longer than the client waits: handed back", secs("3600"), 0, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			s := &scripted{answers: []answer{{status: 503, header: map[string]string{"Retry-After": tt.retryAfter(clock.Now())}}, {status: 200}}}
			srv := serve(t, s)
			c := client.New(srv.URL, client.WithClock(clock), client.WithBackoff(10*time.Millisecond, 20*time.Millisecond))
			ctx := context.Background()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, clock.Now().Add(tt.deadline))
				defer cancel()
			}
			res, err := post(t, c, ctx, srv.URL+"/x")
			if err != nil {
				t.Fatal(err)
			}
			if got := len(s.Seen()); got != tt.wantTries {
				t.Fatalf("%d attempts, want %d", got, tt.wantTries)
			}
			if tt.wantTries == 1 {
				if res.StatusCode != 503 {
					t.Errorf("status %d, want the 503 handed back", res.StatusCode)
				}
				return
			}
			slept := clock.Slept()
			if len(slept) != 1 || slept[0] < tt.wantSleep || (tt.wantSleep == 0 && slept[0] >= 20*time.Millisecond) {
				t.Errorf("slept %v, want one wait of at least %v (within the backoff when 0)", slept, tt.wantSleep)
			}
		})
	}
}

func TestIdempotencyKey(t *testing.T) {
	s := &scripted{answers: []answer{{status: 503}, {status: 502}, {status: 200}}}
	srv := serve(t, s)
	c := client.New(srv.URL, client.WithClock(newFakeClock()))
	ctx := context.Background()

	post(t, c, ctx, srv.URL+"/v1/transfers/instant") // three attempts
	post(t, c, ctx, srv.URL+"/v1/transfers/instant") // a second operation
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/transfers/instant", strings.NewReader("{}"))
	req.Header.Set("Idempotency-Key", "mine-1")
	c.Do(ctx, req)
	get, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/accounts/A1/balance", nil)
	c.Do(ctx, get)

	seen := s.Seen()
	if len(seen) != 6 {
		t.Fatalf("%d requests, want 6", len(seen))
	}
	key := func(i int) string { return seen[i].header.Get("Idempotency-Key") }
	if key(0) == "" || key(0) != key(1) || key(1) != key(2) {
		t.Errorf("keys across one operation's attempts %q %q %q, want one key", key(0), key(1), key(2))
	}
	if key(3) == "" || key(3) == key(0) {
		t.Errorf("second operation's key %q, want a new one (first %q)", key(3), key(0))
	}
	if key(4) != "mine-1" {
		t.Errorf("caller's own key became %q", key(4))
	}
	if key(5) != "" {
		t.Errorf("a GET got Idempotency-Key %q", key(5))
	}
	for i := range 3 {
		if seen[i].body != `{"amount":3000}` {
			t.Errorf("attempt %d sent body %q", i, seen[i].body)
		}
	}
}

// TestBodyWithoutGetBody sends a body http.NewRequest cannot rewind: the
// client buffers it so the retry sends it again.
func TestBodyWithoutGetBody(t *testing.T) {
	s := &scripted{answers: []answer{{status: 503}, {status: 200}}}
	srv := serve(t, s)
	c := client.New(srv.URL, client.WithClock(newFakeClock()))
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/x", io.MultiReader(strings.NewReader("once")))
	res, err := c.Do(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	seen := s.Seen()
	if len(seen) != 2 || seen[0].body != "once" || seen[1].body != "once" {
		t.Errorf("bodies %+v, want \"once\" twice", seen)
	}
}

func TestDeadlineHeader(t *testing.T) {
	s := &scripted{answers: []answer{{status: 200}}}
	srv := serve(t, s)
	c := client.New(srv.URL)
	deadline := time.Now().Add(3 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	post(t, c, ctx, srv.URL+"/x")
	post(t, c, context.Background(), srv.URL+"/x")
	seen := s.Seen()
	got, err := time.Parse(time.RFC3339, seen[0].header.Get(client.DeadlineHeader))
	if err != nil || !got.Equal(deadline.Truncate(time.Millisecond)) {
		t.Errorf("X-Request-Deadline %q (%v), want %v", seen[0].header.Get(client.DeadlineHeader), err, deadline)
	}
	if v := seen[1].header.Get(client.DeadlineHeader); v != "" {
		t.Errorf("a call without a deadline sent X-Request-Deadline %q", v)
	}
}

// TestBudgetBoundsRetries has every call fail with a retryable answer that
// does not trip the breaker: the budget alone keeps retries to 10 %.
func TestBudgetBoundsRetries(t *testing.T) {
	s := &scripted{answers: []answer{{status: http.StatusTooManyRequests}}}
	srv := serve(t, s)
	clock := newFakeClock()
	budget := client.NewRetryBudget(client.BudgetConfig{Now: clock.Now, Window: time.Hour})
	c := client.New(srv.URL, client.WithClock(clock), client.WithRetryBudget(budget))
	const calls = 500
	for range calls {
		post(t, c, context.Background(), srv.URL+"/x")
	}
	st := c.Stats()
	if st.Calls != calls || st.Retries != calls/10 || st.BudgetRefused == 0 {
		t.Errorf("stats %+v, want %d calls and %d retries, then refusals", st, calls, calls/10)
	}
	if got := int64(len(s.Seen())); got != st.Calls+st.Retries {
		t.Errorf("server saw %d requests, want calls+retries = %d", got, st.Calls+st.Retries)
	}
}

func TestBreakerStopsCalls(t *testing.T) {
	healthy := false
	var mu sync.Mutex
	var hits int
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		hits++
		if !healthy {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	clock := newFakeClock()
	c := client.New(srv.URL, client.WithClock(clock), client.WithBreaker(client.BreakerConfig{ConsecutiveFailures: 5, OpenFor: 5 * time.Second}))
	for range 5 {
		if _, err := post(t, c, context.Background(), srv.URL+"/x"); err != nil {
			t.Fatal(err)
		}
	}
	if c.BreakerState() != client.Open {
		t.Fatalf("breaker %v after 5 failures, want open", c.BreakerState())
	}
	_, err := post(t, c, context.Background(), srv.URL+"/x")
	if !errors.Is(err, client.ErrCircuitOpen) || hits != 5 {
		t.Fatalf("got %v with %d requests, want ErrCircuitOpen and nothing sent", err, hits)
	}
	mu.Lock()
	healthy = true
	mu.Unlock()
	clock.Advance(5 * time.Second)
	if c.BreakerState() != client.HalfOpen {
		t.Fatalf("breaker %v after OpenFor, want half-open", c.BreakerState())
	}
	if res, err := post(t, c, context.Background(), srv.URL+"/x"); err != nil || res.StatusCode != 200 {
		t.Fatalf("probe: %v", err)
	}
	if c.BreakerState() != client.Closed {
		t.Errorf("breaker %v after a good probe, want closed", c.BreakerState())
	}
}

func TestPostJSON(t *testing.T) {
	tests := []struct {
		name      string
		answer    answer
		wantErr   *client.Problem
		wantValue string
	}{
		{"decodes a 2xx", answer{status: 200, header: map[string]string{"Content-Type": "application/json"}, body: `{"status":"executed"}`}, nil, "executed"},
		{"problem with a field", problemAnswer(422, "idempotency-key-reused", `,"detail":"reused","field":"Idempotency-Key"`),
			&client.Problem{Type: "https://rempart.dev/problems/idempotency-key-reused", Title: "Unprocessable Entity", Status: 422, Detail: "reused", Field: "Idempotency-Key"}, ""},
		{"plain text error", answer{status: 404, body: "no such thing\n"},
			&client.Problem{Title: "Not Found", Status: 404, Detail: "no such thing"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, &scripted{answers: []answer{tt.answer}})
			c := client.New(srv.URL + "/bank")
			var out struct{ Status string }
			err := c.PostJSON(context.Background(), "/v1/transfers/instant", map[string]any{"amount": 1}, &out)
			if tt.wantErr == nil {
				if err != nil || out.Status != tt.wantValue {
					t.Fatalf("got %v %+v, want %q", err, out, tt.wantValue)
				}
				return
			}
			var p *client.Problem
			if !errors.As(err, &p) {
				t.Fatalf("got %v, want a *client.Problem", err)
			}
			if !reflect.DeepEqual(p, tt.wantErr) {
				t.Errorf("problem %+v, want %+v", *p, *tt.wantErr)
			}
		})
	}
}

func TestBadBaseURL(t *testing.T) {
	for _, u := range []string{"", "localhost:8080", "ftp://bank", "http://%zz"} {
		c := client.New(u)
		if err := c.PostJSON(context.Background(), "/x", 1, nil); err == nil {
			t.Errorf("base %q: no error", u)
		}
	}
}
