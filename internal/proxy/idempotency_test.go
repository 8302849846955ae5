package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rempart/rempart/client"
	"github.com/rempart/rempart/internal/problem"
)

// counting is an upstream that counts its calls and answers with status,
// echoing the body it got.
type counting struct {
	calls  atomic.Int64
	status func(n int64) int // of the n-th call, from 1
	header http.Header
}

func (u *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := u.calls.Add(1)
	b, _ := io.ReadAll(r.Body)
	for k, v := range u.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Request-Id", "up-"+strconv.FormatInt(n, 10))
	w.WriteHeader(u.status(n))
	fmt.Fprintf(w, `{"call":%d,"got":%q}`, n, b)
}

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

func always(status int) func(int64) int { return func(int64) int { return status } }

// write builds a write request as the gateway would pass it on.
func write(method, path, key, body string, hdr ...string) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if key != "" {
		r.Header.Set("Idempotency-Key", key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	return r
}

func do(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func TestReplaySecondRequest(t *testing.T) {
	const body = `{"amount":3000}`
	first := func() *http.Request { return write("POST", "/v1/cards/authorize", "k-1", body) }
	tests := []struct {
		name       string
		status     int
		header     http.Header
		second     *http.Request
		wantCalls  int64
		wantStatus int
		replayed   bool
	}{
		{"2xx is stored", 201, nil, first(), 1, 201, true},
		{"4xx is stored", 400, nil, first(), 1, 400, true},
		{"404 is stored", 404, nil, first(), 1, 404, true},
		{"500 is not", 500, nil, first(), 2, 500, false},
		{"502 is not", 502, nil, first(), 2, 502, false},
		{"503 is not", 503, nil, first(), 2, 503, false},
		{"504 is not", 504, nil, first(), 2, 504, false},
		{"408 is not", 408, nil, first(), 2, 408, false},
		{"409 is not", 409, nil, first(), 2, 409, false},
		{"425 is not", 425, nil, first(), 2, 425, false},
		{"429 is not", 429, nil, first(), 2, 429, false},
		{"shed 503 with Retry-After is not", 503, http.Header{"Retry-After": {"1"}}, first(), 2, 503, false},
		{"other body: key reused", 201, nil, write("POST", "/v1/cards/authorize", "k-1", `{"amount":3001}`), 1, 422, false},
		{"other path: key reused", 201, nil, write("POST", "/v1/atm/withdraw", "k-1", body), 1, 422, false},
		{"other method: key reused", 201, nil, write("PUT", "/v1/cards/authorize", "k-1", body), 1, 422, false},
		{"other query: key reused", 201, nil, write("POST", "/v1/cards/authorize?x=1", "k-1", body), 1, 422, false},
		{"other key: runs", 201, nil, write("POST", "/v1/cards/authorize", "k-2", body), 2, 201, false},
		{"another caller's key: runs", 201, nil, write("POST", "/v1/cards/authorize", "k-1", body, "Authorization", "Bearer other"), 2, 201, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &counting{status: always(tt.status), header: tt.header}
			h := NewReplayCache(ReplayOptions{}).Middleware(up)
			res1 := do(h, first())
			res2 := do(h, tt.second)
			if got := up.calls.Load(); got != tt.wantCalls {
				t.Errorf("upstream called %d times, want %d", got, tt.wantCalls)
			}
			if res2.Code != tt.wantStatus {
				t.Fatalf("second answer %d %s, want %d", res2.Code, res2.Body, tt.wantStatus)
			}
			if got := res2.Header().Get(ReplayedHeader) == "true"; got != tt.replayed {
				t.Errorf("replayed = %v, want %v", got, tt.replayed)
			}
			if tt.replayed {
				if res2.Body.String() != res1.Body.String() || res2.Header().Get("Content-Type") != "application/json" {
					t.Errorf("replay %q %v, want the first answer %q", res2.Body, res2.Header(), res1.Body)
				}
				if v := res2.Header().Get("X-Request-Id"); v != "" {
					t.Errorf("replay repeated the first exchange's X-Request-Id %q", v)
				}
			}
			if tt.wantStatus == 422 {
				var d problem.Details
				json.Unmarshal(res2.Body.Bytes(), &d)
				if d.Type != problem.TypeBase+"idempotency-key-reused" || d.Field != "Idempotency-Key" ||
					res2.Header().Get("Content-Type") != problem.ContentType {
					t.Errorf("422 answer %+v, want idempotency-key-reused on field Idempotency-Key", d)
				}
			}
		})
	}
}

func TestReplayPassesThrough(t *testing.T) {
	tests := []struct {
		name string
		req  func() *http.Request
	}{
		{"GET", func() *http.Request { return httptest.NewRequest("GET", "/v1/accounts/A1/balance", nil) }},
		{"POST without a key", func() *http.Request { return write("POST", "/v1/cards/authorize", "", "{}") }},
		{"body over the limit", func() *http.Request {
			return write("POST", "/v1/cards/authorize", "k", strings.Repeat("x", 2000))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &counting{status: always(200)}
			h := NewReplayCache(ReplayOptions{MaxBodyBytes: 1000}).Middleware(up)
			a, b := do(h, tt.req()), do(h, tt.req())
			if up.calls.Load() != 2 || b.Header().Get(ReplayedHeader) != "" {
				t.Errorf("upstream called %d times, replayed %q: want both to reach it", up.calls.Load(), b.Header().Get(ReplayedHeader))
			}
			if a.Body.String() == b.Body.String() {
				t.Errorf("second answer %q repeats the first", b.Body)
			}
			if tt.name == "body over the limit" && !strings.Contains(a.Body.String(), strings.Repeat("x", 2000)) {
				t.Errorf("a body over the limit did not reach the upstream whole: %.80s", a.Body)
			}
		})
	}
}

// TestReplayConcurrentDuplicates sends 100 copies of a write at once: one
// reaches the upstream, all get its answer.
func TestReplayConcurrentDuplicates(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int64
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		<-release
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":42}`)
	})
	reg := prometheus.NewRegistry()
	cache := NewReplayCache(ReplayOptions{Registerer: reg})
	srv := httptest.NewServer(cache.Middleware(up))
	defer srv.Close()

	const n = 100
	type answer struct {
		status   int
		body     string
		replayed bool
	}
	answers := make(chan answer, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", srv.URL+"/v1/transfers/instant", strings.NewReader(`{"amount":1}`))
			req.Header.Set("Idempotency-Key", "storm-1")
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			answers <- answer{res.StatusCode, string(b), res.Header.Get(ReplayedHeader) == "true"}
		}()
	}
	// Release the upstream once every duplicate is waiting on the first.
	waits := cache.m.waits
	for value(waits) < n-1 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(answers)

	replayed := 0
	for a := range answers {
		if a.status != http.StatusCreated || a.body != `{"id":42}` {
			t.Errorf("answer %d %q, want the first's 201 {\"id\":42}", a.status, a.body)
		}
		if a.replayed {
			replayed++
		}
	}
	if calls.Load() != 1 || replayed != n-1 {
		t.Errorf("upstream called %d times, %d answers replayed: want 1 and %d", calls.Load(), replayed, n-1)
	}
	if got := value(cache.m.stores); got != 1 {
		t.Errorf("rempart_replay_stores_total %v, want 1", got)
	}
}

// TestReplayRetryBudget has every attempt fail: a retry of a failed key is
// let through only while the budget allows, and refused with a jittered
// Retry-After otherwise.
func TestReplayRetryBudget(t *testing.T) {
	up := &counting{status: always(500)}
	budget := client.NewRetryBudget(client.BudgetConfig{Ratio: 0.1, MinRetries: 2, Window: time.Hour})
	cache := NewReplayCache(ReplayOptions{Budget: budget})
	h := cache.Middleware(up)
	const keys = 10
	for i := range keys {
		do(h, write("POST", "/v1/cards/authorize", "k-"+strconv.Itoa(i), "{}"))
	}
	var admitted, refused int
	for i := range keys {
		res := do(h, write("POST", "/v1/cards/authorize", "k-"+strconv.Itoa(i), "{}"))
		switch res.Code {
		case 500:
			admitted++
		case 503:
			refused++
			ra, err := strconv.Atoi(res.Header().Get("Retry-After"))
			if err != nil || ra < 1 || ra > 3 {
				t.Errorf("Retry-After %q, want 1 to 3 seconds", res.Header().Get("Retry-After"))
			}
			var d problem.Details
			json.Unmarshal(res.Body.Bytes(), &d)
			if d.Type != problem.TypeBase+"retry-budget-exhausted" {
				t.Errorf("refusal %+v, want retry-budget-exhausted", d)
			}
		default:
			t.Errorf("retry answered %d", res.Code)
		}
	}
	// 10 calls pay for max(10 %, floor 2) = 2 retries.
	if admitted != 2 || refused != keys-2 || up.calls.Load() != keys+2 {
		t.Errorf("%d retries admitted, %d refused, upstream called %d times: want 2, 8 and 12", admitted, refused, up.calls.Load())
	}
}

func TestReplayBounds(t *testing.T) {
	now := time.Unix(1766395800, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	big := strings.Repeat("b", 900)

	tests := []struct {
		name      string
		opts      ReplayOptions
		keys      []string // stored in this order, with body
		body      string
		wait      time.Duration
		again     string // key sent again
		wantCalls int64  // upstream calls in all
		wantEvict string // eviction reason counted, if any
	}{
		{"kept within bounds", ReplayOptions{MaxEntries: 3}, []string{"a", "b", "c"}, "{}", 0, "a", 3, ""},
		{"least recently used goes first", ReplayOptions{MaxEntries: 3}, []string{"a", "b", "c", "d"}, "{}", 0, "a", 5, "capacity"},
		{"most recent stays", ReplayOptions{MaxEntries: 3}, []string{"a", "b", "c", "d"}, "{}", 0, "d", 4, "capacity"},
		{"bytes bound", ReplayOptions{MaxBytes: 4000}, []string{"a", "b", "c", "d"}, big, 0, "a", 5, "capacity"},
		{"answer over the entry limit is not kept", ReplayOptions{MaxEntryBytes: 500}, []string{"a"}, big, 0, "a", 2, ""},
		{"expired after the TTL", ReplayOptions{TTL: time.Hour}, []string{"a"}, "{}", time.Hour, "a", 2, "expired"},
		{"alive before the TTL", ReplayOptions{TTL: time.Hour}, []string{"a"}, "{}", time.Hour - time.Second, "a", 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &counting{status: always(200)}
			tt.opts.Now = clock
			cache := NewReplayCache(tt.opts)
			h := cache.Middleware(up)
			for _, k := range tt.keys {
				do(h, write("POST", "/v1/x", k, tt.body))
			}
			advance(tt.wait)
			do(h, write("POST", "/v1/x", tt.again, tt.body))
			if got := up.calls.Load(); got != tt.wantCalls {
				t.Errorf("upstream called %d times, want %d", got, tt.wantCalls)
			}
			for _, reason := range []string{"capacity", "expired"} {
				got := value(cache.m.evictions.WithLabelValues(reason))
				if want := reason == tt.wantEvict; (got > 0) != want {
					t.Errorf("%s evictions %v, want any: %v", reason, got, want)
				}
			}
			cache.mu.Lock()
			defer cache.mu.Unlock()
			if len(cache.entries) > cache.opts.MaxEntries || cache.bytes > cache.opts.MaxBytes || cache.lru.Len() != len(cache.entries) {
				t.Errorf("%d entries (list %d), %d bytes: over the bounds %d, %d",
					len(cache.entries), cache.lru.Len(), cache.bytes, cache.opts.MaxEntries, cache.opts.MaxBytes)
			}
		})
	}
}

// TestReplayFirstRequestOutlivesItsCaller: the caller of the first request
// gives up; the request still finishes, and the caller's retry gets its
// answer without a second run.
func TestReplayFirstRequestOutlivesItsCaller(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int64
	var upErr atomic.Value
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		<-release
		if err := r.Context().Err(); err != nil {
			upErr.Store(err)
		}
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"approved":true}`)
	})
	h := NewReplayCache(ReplayOptions{}).Middleware(up)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		do(h, write("POST", "/v1/cards/authorize", "k", "{}").WithContext(ctx))
	}()
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel() // the app timed out
	close(release)
	<-done
	if err := upErr.Load(); err != nil {
		t.Fatalf("the upstream saw its request cancelled: %v", err)
	}
	res := do(h, write("POST", "/v1/cards/authorize", "k", "{}"))
	if calls.Load() != 1 || res.Header().Get(ReplayedHeader) != "true" || res.Body.String() != `{"approved":true}` {
		t.Errorf("retry: %d %q after %d upstream calls, want the replayed first answer", res.Code, res.Body, calls.Load())
	}
}

func TestReplayWaiterDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{})
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
	})
	h := NewReplayCache(ReplayOptions{}).Middleware(up)
	go do(h, write("POST", "/v1/x", "k", "{}"))
	<-started
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	res := do(h, write("POST", "/v1/x", "k", "{}").WithContext(ctx))
	if res.Code != http.StatusGatewayTimeout {
		t.Errorf("waiter past its deadline got %d, want 504", res.Code)
	}
}

// TestReplayLeaderPanics: the first request's handler aborts (as a reverse
// proxy does when its upstream breaks off mid-answer); its duplicates are
// released and the key counts as tried.
func TestReplayLeaderPanics(t *testing.T) {
	var calls atomic.Int64
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			panic(http.ErrAbortHandler)
		}
		w.WriteHeader(http.StatusOK)
	})
	cache := NewReplayCache(ReplayOptions{})
	h := cache.Middleware(up)
	func() {
		defer func() {
			if v := recover(); !errors.Is(v.(error), http.ErrAbortHandler) {
				t.Errorf("recovered %v, want the handler's own panic", v)
			}
		}()
		do(h, write("POST", "/v1/x", "k", "{}"))
	}()
	if len(cache.inflight) != 0 {
		t.Fatal("the aborted first request is still in flight")
	}
	if res := do(h, write("POST", "/v1/x", "k", "{}")); res.Code != 200 || calls.Load() != 2 {
		t.Errorf("retry got %d after %d calls, want it run again (budget floor) and 200", res.Code, calls.Load())
	}
	if got := value(cache.m.retries[0]); got != 1 {
		t.Errorf("admitted retries %v, want 1: the aborted attempt counts as tried", got)
	}
}

func TestReplayBodyErrors(t *testing.T) {
	h := NewReplayCache(ReplayOptions{}).Middleware(&counting{status: always(200)})
	rec := httptest.NewRecorder()
	r := write("POST", "/v1/x", "k", strings.Repeat("x", 100))
	r.Body = http.MaxBytesReader(rec, r.Body, 10)
	h.ServeHTTP(rec, r)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("body over the gateway's limit: %d, want 413", rec.Code)
	}
}

// discard is a ResponseWriter that keeps nothing, so the benchmark measures
// the handlers, not a recorder.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(int)             {}
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkReplay compares a replay-cache hit with the bare handler it
// stands in front of, on the same card authorisation.
func BenchmarkReplay(b *testing.B) {
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"id":1,"approved":true,"amount":3000,"balance":247000,"at":"2025-12-22T09:30:00Z"}`)
	})
	const body = `{"card":"4971111111111110","amount":3000,"merchant":"Boulangerie","channel":"shop"}`
	cached := NewReplayCache(ReplayOptions{Registerer: prometheus.NewRegistry()}).Middleware(bare)
	do(cached, write("POST", "/v1/cards/authorize", "bench-1", body))
	tmpl := write("POST", "/v1/cards/authorize", "bench-1", body)
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"bare handler", bare}, {"replay hit", cached}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			w := &discard{h: http.Header{}}
			for b.Loop() {
				r := *tmpl
				r.Body = io.NopCloser(strings.NewReader(body))
				clear(w.h)
				bc.h.ServeHTTP(w, &r)
			}
		})
	}
}
