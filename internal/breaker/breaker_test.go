package breaker_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/breaker"
	"github.com/rempart/rempart/internal/request"
)

// upstream is a fake upstream whose answer the test switches.
type upstream struct {
	calls  atomic.Int64
	status atomic.Int32 // 0 means 200
	delay  atomic.Int64 // nanoseconds to sleep, or until the request ends
	retry  atomic.Int32 // Retry-After seconds on a 503, when not 0
	block  chan struct{}
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.calls.Add(1)
	if u.block != nil {
		select {
		case <-u.block:
		case <-r.Context().Done():
		}
	}
	if d := time.Duration(u.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			w.WriteHeader(http.StatusGatewayTimeout)
			return
		}
	}
	status := int(u.status.Load())
	if status == 0 {
		status = http.StatusOK
	}
	if s := u.retry.Load(); s != 0 && status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(int(s)))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, `{"path":"`+r.URL.Path+`"}`)
}

// testConfig opens after 4 calls of which half failed and probes after
// 50 ms: short real durations, because failsafe-go's breaker reads the wall
// clock.
func testConfig() breaker.Config {
	return breaker.Config{Upstream: "estate", FailureRate: 0.5, MinCalls: 4, Window: time.Minute,
		Delay: 50 * time.Millisecond, Probes: 2, SlowCall: time.Second}
}

func newBreaker(t *testing.T, cfg breaker.Config, reg prometheus.Registerer) *breaker.Breaker {
	t.Helper()
	b, err := breaker.New(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func do(h http.Handler, method, target string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, target, nil))
	return w
}

// waitState polls, because a breaker half-opens on the first call after
// its delay, not by itself.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOpensOnFailures(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := newBreaker(t, testConfig(), reg)
	u := &upstream{}
	u.status.Store(503)
	h := b.Middleware(breaker.Route{})(u)
	for i := range 4 {
		if w := do(h, "GET", "/v1/accounts/A-alice/balance"); w.Code != 503 || w.Header().Get(breaker.HeaderBreaker) != "" {
			t.Fatalf("call %d: %d %v; want the upstream's own 503 passed through", i, w.Code, w.Header())
		}
	}
	if b.State() != breaker.Open {
		t.Fatalf("state %v after 4 failures of 4, want open", b.State())
	}
	w := do(h, "GET", "/v1/accounts/A-alice/balance")
	if u.calls.Load() != 4 {
		t.Fatalf("an open breaker let a call through (%d calls)", u.calls.Load())
	}
	if w.Code != 503 || w.Header().Get(breaker.HeaderBreaker) != "open" || w.Header().Get("Retry-After") == "" ||
		w.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("open breaker answered %d %v", w.Code, w.Header())
	}
	var p map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p["type"] != "https://rempart.dev/problems/degraded" || p["retry_after"] == nil {
		t.Fatalf("problem %s (%v)", w.Body, err)
	}
	if v := metricValue(t, reg, "rempart_breaker_state", map[string]string{"upstream": "estate"}); v != 2 {
		t.Fatalf("rempart_breaker_state = %v, want 2", v)
	}
	if v := metricValue(t, reg, "rempart_breaker_calls_total", map[string]string{"outcome": "rejected"}); v != 1 {
		t.Fatalf("rejected calls = %v, want 1", v)
	}
	if st := b.Stats(); st.State != breaker.Open || st.Calls != 4 || st.FailureRate != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestClientErrorsDoNotCount(t *testing.T) {
	b := newBreaker(t, testConfig(), nil)
	u := &upstream{}
	u.status.Store(404)
	h := b.Middleware(breaker.Route{})(u)
	for range 20 {
		if w := do(h, "GET", "/v1/accounts/nobody/balance"); w.Code != 404 {
			t.Fatalf("answer %d, want the upstream's 404", w.Code)
		}
	}
	if b.State() != breaker.Closed {
		t.Fatalf("4xx answers opened the breaker")
	}
}

func TestMinCallsBeforeJudging(t *testing.T) {
	b := newBreaker(t, testConfig(), nil)
	u := &upstream{}
	u.status.Store(500)
	h := b.Middleware(breaker.Route{})(u)
	repeat(h, "/x", 3)
	if b.State() != breaker.Closed {
		t.Fatalf("3 failures opened a breaker that needs 4 calls")
	}
}

func TestOpensOnSlowCalls(t *testing.T) {
	cfg := testConfig()
	cfg.SlowCall = 10 * time.Millisecond
	b := newBreaker(t, cfg, nil)
	u := &upstream{}
	u.delay.Store(int64(20 * time.Millisecond))
	h := b.Middleware(breaker.Route{})(u)
	for i := range 4 {
		// A slow answer still reaches the client: the core decided.
		if w := do(h, "GET", "/x"); w.Code != 200 || w.Body.String() != `{"path":"/x"}` {
			t.Fatalf("slow call %d answered %d %q", i, w.Code, w.Body)
		}
	}
	if b.State() != breaker.Open {
		t.Fatalf("state %v after 4 slow calls, want open", b.State())
	}
}

func TestHalfOpenProbesThenCloses(t *testing.T) {
	b := newBreaker(t, testConfig(), nil)
	u := &upstream{}
	u.status.Store(500)
	h := b.Middleware(breaker.Route{})(u)
	repeat(h, "/x", 4)
	if b.State() != breaker.Open {
		t.Fatal("not open")
	}
	u.status.Store(0)
	time.Sleep(60 * time.Millisecond)

	// Probes (2) calls are let through at once; a third waits its turn.
	u.block = make(chan struct{})
	before := u.calls.Load()
	var wg sync.WaitGroup
	codes := make([]int, 3)
	for i := range 2 {
		wg.Go(func() { codes[i] = do(h, "GET", "/x").Code })
	}
	waitFor(t, "two probes in flight", func() bool { return u.calls.Load() == before+2 })
	if b.State() != breaker.HalfOpen {
		t.Fatalf("state %v with probes in flight, want half-open", b.State())
	}
	if w := do(h, "GET", "/x"); w.Code != 503 || w.Header().Get(breaker.HeaderBreaker) != "open" {
		t.Fatalf("a third call while 2 probes are out answered %d, want refused", w.Code)
	}
	close(u.block)
	wg.Wait()
	if codes[0] != 200 || codes[1] != 200 {
		t.Fatalf("probes answered %v", codes[:2])
	}
	if b.State() != breaker.Closed {
		t.Fatalf("state %v after 2 good probes, want closed", b.State())
	}
}

func TestHalfOpenFailureReopens(t *testing.T) {
	b := newBreaker(t, testConfig(), nil)
	u := &upstream{}
	u.status.Store(500)
	h := b.Middleware(breaker.Route{})(u)
	repeat(h, "/x", 4)
	time.Sleep(60 * time.Millisecond)
	do(h, "GET", "/x") // the probe fails
	if b.State() != breaker.Open {
		t.Fatalf("state %v after a failed probe, want open", b.State())
	}
}

func TestRetryAfterLengthensTheDelay(t *testing.T) {
	cfg := testConfig()
	cfg.MaxDelay = 30 * time.Second
	b := newBreaker(t, cfg, nil)
	u := &upstream{}
	u.status.Store(503)
	u.retry.Store(20)
	h := b.Middleware(breaker.Route{})(u)
	repeat(h, "/x", 4)
	// 20 s ± the 20 % jitter, far above the configured 50 ms.
	if d := b.Stats().RetryIn; d < 15*time.Second || d > 25*time.Second {
		t.Fatalf("open for %v, want about the upstream's Retry-After of 20s", d)
	}
	u.retry.Store(3600)
	b2 := newBreaker(t, cfg, nil)
	h2 := b2.Middleware(breaker.Route{})(u)
	repeat(h2, "/x", 4)
	if d := b2.Stats().RetryIn; d > 37*time.Second {
		t.Fatalf("open for %v: an upstream's Retry-After beyond MaxDelay was obeyed", d)
	}
}

func TestTimeoutFallsBack(t *testing.T) {
	b := newBreaker(t, testConfig(), nil)
	u := &upstream{}
	u.delay.Store(int64(time.Hour))
	s := breaker.NewStale(breaker.StaleConfig{})
	h := b.Middleware(breaker.Route{Fallback: s, Timeout: 20 * time.Millisecond})(u)
	start := time.Now()
	w := do(h, "GET", "/v1/accounts/A-alice/balance")
	if w.Code != 503 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("timed-out call with nothing cached answered %d", w.Code)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the route's 20ms time-out took %v", d)
	}
	nf := b.Middleware(breaker.Route{Timeout: 20 * time.Millisecond})(u)
	if w := do(nf, "GET", "/x"); w.Code != 504 {
		t.Fatalf("timed-out call without fallback answered %d, want 504", w.Code)
	}
	if st := b.Stats(); st.Calls != 2 || st.FailureRate != 1 {
		t.Fatalf("time-outs not counted as failures: %+v", st)
	}
}

func TestClientGoneIsNotAFailure(t *testing.T) {
	b := newBreaker(t, testConfig(), nil)
	u := &upstream{}
	u.delay.Store(int64(time.Hour))
	h := b.Middleware(breaker.Route{})(u)
	for range 6 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/x", nil).WithContext(ctx))
		cancel()
		if w.Code != 499 {
			t.Fatalf("answer to a client that left: %d", w.Code)
		}
	}
	if b.State() != breaker.Closed {
		t.Fatal("clients leaving opened the breaker")
	}
}

func TestPanickingUpstreamIsAFailure(t *testing.T) {
	b := newBreaker(t, testConfig(), nil)
	h := b.Middleware(breaker.Route{})(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	for range 4 {
		if w := do(h, "GET", "/x"); w.Code != 502 {
			t.Fatalf("panicking upstream answered %d, want 502", w.Code)
		}
	}
	if b.State() != breaker.Open {
		t.Fatal("panics did not open the breaker")
	}
}

func TestRequestBodyReachesTheUpstream(t *testing.T) {
	b := newBreaker(t, testConfig(), nil)
	var got string
	h := b.Middleware(breaker.Route{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = string(body) + " " + strconv.FormatInt(r.ContentLength, 10) + " " + request.From(r.Context()).Route
	}))
	r := httptest.NewRequest("POST", "/v1/cards/authorize", stringsReader(`{"amount":1}`))
	r = r.WithContext(request.With(r.Context(), &request.Info{Route: "card-authorize"}))
	h.ServeHTTP(httptest.NewRecorder(), r)
	if got != `{"amount":1} 12 card-authorize` {
		t.Fatalf("upstream saw %q", got)
	}
}

func TestStatsJSON(t *testing.T) {
	b := newBreaker(t, testConfig(), nil)
	st := b.Stats()
	st.Since = time.Time{}
	out, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"upstream":"estate","state":"closed","since":"0001-01-01T00:00:00Z","failure_rate":0,"calls":0}`; string(out) != want {
		t.Fatalf("stats JSON %s, want %s", out, want)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := breaker.New(breaker.Config{}, nil); err == nil {
		t.Error("a breaker without an upstream name was built")
	}
	if _, err := breaker.New(breaker.Config{Upstream: "x", FailureRate: 1.5}, nil); err == nil {
		t.Error("a failure rate of 1.5 was accepted")
	}
	reg := prometheus.NewRegistry()
	newBreaker(t, breaker.Config{Upstream: "a"}, reg)
	newBreaker(t, breaker.Config{Upstream: "b"}, reg) // shares the series
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metric
				}
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}
