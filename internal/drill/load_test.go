package drill

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// drive sends a scenario's schedule to handler through the engine, as if the
// drill had started at now+offset, and returns what was recorded.
func drive(t *testing.T, yaml string, handler http.HandlerFunc, offset time.Duration) (*Scenario, *recorder) {
	t.Helper()
	s := mustScenario(t, yaml)
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	e, rec, _ := newTestEngine(t, s)
	e.setBase(srv.URL)
	e.run(context.Background(), time.Now().Add(offset))
	return s, rec
}

// newTestEngine is an engine and its recorder for s, closed when the test
// ends, with the channels it counts in.
func newTestEngine(t *testing.T, s *Scenario) (*engine, *recorder, []ChannelInfo) {
	chans := channels(s)
	idx := make(map[string]int)
	for i, c := range chans {
		idx[c.Name] = i
	}
	nsec := int((s.Duration() + time.Second - 1) / time.Second)
	rec := newRecorder(nsec, len(chans), len(s.Populations), len(s.Phases))
	e := newEngine(s, rec, idx, EstateCustomers(estateSeed, s.Customers))
	t.Cleanup(e.close)
	return e, rec, chans
}

func total(rec *recorder) Counts {
	_, c := rec.phaseHist(func(int, int, int) bool { return true })
	return c
}

// A server that serves one request at a time, 40 ms each, receives 50
// arrivals a second for a second: requests queue behind each other. Measured
// from the intended send time, the mean latency must be what a FIFO queue
// predicts from the actual schedule, not the 40 ms of service.
func TestLatencyIncludesQueueing(t *testing.T) {
	const service = 40 * time.Millisecond
	var mu sync.Mutex
	s, rec := drive(t, `
name: queue
seed: 3
populations:
  - name: app
    requests: {balance: 1}
    timeout: 10s
phases:
  - name: busy
    duration: 1s
    rates: {app: 50}
`, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		time.Sleep(service)
		mu.Unlock()
	}, 50*time.Millisecond)

	// The schedule's own prediction. For a work-conserving single server the
	// sum of completion times does not depend on the order served, so the
	// mean holds whatever order the mutex picks.
	var done, sum time.Duration
	as := arrivals(s)
	for _, a := range as {
		done = max(a.at, done) + service
		sum += done - a.at
	}
	want := sum / time.Duration(len(as))

	h, c := rec.phaseHist(func(int, int, int) bool { return true })
	if c.OK != int64(len(as)) || c.Offered != int64(len(as)) {
		t.Fatalf("counts %+v, want %d offered and ok", c, len(as))
	}
	got := time.Duration(h.Mean()) * time.Microsecond
	t.Logf("%d requests, mean latency %v, FIFO prediction %v, max %v", len(as), got, want, time.Duration(h.Max())*time.Microsecond)
	if want < 4*service {
		t.Fatalf("the schedule did not queue (prediction %v): the test proves nothing", want)
	}
	if got < want*9/10 {
		t.Errorf("mean latency %v is below the queueing prediction %v: latency is not measured from the intended time", got, want)
	}
}

// A generator that falls behind must charge its lateness to the latency: the
// drill here "started" 300 ms before the engine did.
func TestLatencyIncludesDispatchLag(t *testing.T) {
	_, rec := drive(t, `
name: late
populations:
  - name: app
    requests: {balance: 1}
phases:
  - name: p
    duration: 1s
    rates: {app: 100}
`, func(http.ResponseWriter, *http.Request) {}, -300*time.Millisecond)
	lag := time.Duration(rec.lag.Max()) * time.Microsecond
	first := time.Duration(rec.secLat[0].Max()) * time.Microsecond
	if lag < 250*time.Millisecond || first < lag {
		t.Errorf("dispatch lag %v, worst latency of second 0 %v: want both ≥ 250ms, latency ≥ lag", lag, first)
	}
}

func TestClientDropped(t *testing.T) {
	_, rec := drive(t, `
name: dropped
max_in_flight: 2
populations:
  - name: app
    requests: {balance: 1}
phases:
  - name: p
    duration: 1s
    rates: {app: 60}
`, func(http.ResponseWriter, *http.Request) { time.Sleep(200 * time.Millisecond) }, 0)
	c := total(rec)
	if c.Dropped == 0 || c.OK == 0 {
		t.Fatalf("counts %+v: want both served and client-dropped requests", c)
	}
	if c.Offered != c.OK+c.Dropped {
		t.Errorf("offered %d != ok %d + dropped %d", c.Offered, c.OK, c.Dropped)
	}
	if c.OK > 12 {
		t.Errorf("%d served with 2 in flight and 200 ms each over ~1.2 s", c.OK)
	}
}

// Each population's policy against the answer it gets: naive apps retry
// anything at once, careful ones retry sheds after Retry-After but never a
// 404, apps on the client/ SDK retry through it, and time-outs are told
// apart from errors.
func TestRetryPolicies(t *testing.T) {
	var mu sync.Mutex
	seen := make(map[string]bool)
	s, rec := drive(t, `
name: retries
populations:
  - name: naive
    requests: {balance: 1}
    retry: {policy: immediate, attempts: 4}
  - name: polite-shed
    requests: {balance: 1}
    retry: {policy: backoff, attempts: 3, base: 5ms, cap: 1s}
  - name: polite-404
    requests: {login: 1}
    retry: {policy: backoff, attempts: 3}
  - name: impatient
    requests: {transactions: 1}
    timeout: 50ms
  - name: sdk-app
    requests: {card_authorize: 1}
    retry: {policy: sdk, attempts: 3, base: 5ms, cap: 50ms}
phases:
  - name: p
    duration: 1s
    rates: {naive: 10, polite-shed: 10, polite-404: 10, impatient: 10, sdk-app: 5}
`, func(w http.ResponseWriter, r *http.Request) {
		switch pop := strings.TrimPrefix(r.UserAgent(), "rempart-drill/"); pop {
		case "sdk-app":
			// Shed each write once: the SDK must retry it with the same key
			// and carry the caller's deadline.
			mu.Lock()
			again := seen[r.Header.Get("Idempotency-Key")]
			seen[r.Header.Get("Idempotency-Key")] = true
			mu.Unlock()
			if r.Header.Get("X-Request-Deadline") == "" {
				w.WriteHeader(http.StatusBadRequest)
			} else if !again {
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		case "naive":
			w.WriteHeader(http.StatusInternalServerError)
		case "polite-shed":
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		case "polite-404":
			http.NotFound(w, r)
		case "impatient":
			time.Sleep(150 * time.Millisecond)
		}
	}, 0)
	for i, p := range s.Populations {
		t.Run(p.Name, func(t *testing.T) {
			_, c := rec.phaseHist(func(_, _, pop int) bool { return pop == i })
			if c.Offered == 0 {
				t.Fatal("no traffic")
			}
			var want Counts
			switch p.Name {
			case "naive":
				want = Counts{Errors: c.Offered, Attempts: 4 * c.Offered}
			case "polite-shed":
				want = Counts{Shed: c.Offered, Attempts: 3 * c.Offered}
			case "polite-404":
				want = Counts{Errors: c.Offered, Attempts: c.Offered}
			case "impatient":
				want = Counts{Timeouts: c.Offered, Attempts: c.Offered}
			case "sdk-app":
				want = Counts{OK: c.Offered, Attempts: 2 * c.Offered}
			}
			want.Offered = c.Offered
			if c != want {
				t.Errorf("counts %+v, want %+v", c, want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	r := Retry{Policy: RetryBackoff, Attempts: 5, Base: 100 * time.Millisecond, Cap: time.Second}
	rng := newTestRand()
	tests := []struct {
		name       string
		n          int
		retryAfter time.Duration
		ceil       time.Duration
		again      bool
	}{
		{"first retry under base", 1, 0, 100 * time.Millisecond, true},
		{"third retry under 4×base", 3, 0, 400 * time.Millisecond, true},
		{"capped", 4, 0, time.Second, true},
		{"retry-after honoured", 1, 700 * time.Millisecond, 700 * time.Millisecond, true},
		{"retry-after beyond patience", 1, 5 * time.Second, 0, false},
		{"attempts spent", 5, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 100 {
				d, again := r.backoff(tt.n, tt.retryAfter, rng)
				if again != tt.again || d > tt.ceil || (tt.retryAfter > 0 && again && d != tt.retryAfter) {
					t.Fatalf("backoff = %v, %t; want ≤ %v, %t", d, again, tt.ceil, tt.again)
				}
			}
		})
	}
}
