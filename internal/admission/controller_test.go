package admission

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/problem"
	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/tier"
)

// gate is an upstream whose calls wait until the test lets them through one
// at a time, so a test can fill the limit, queue requests behind it and see
// in which order they reach the upstream.
type gate struct {
	mu      sync.Mutex
	entered []string // request ids, in the order they reached the upstream
	pass    chan struct{}
}

func newGate() *gate { return &gate{pass: make(chan struct{})} }

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.entered = append(g.entered, request.From(r.Context()).ID)
	g.mu.Unlock()
	<-g.pass
	w.WriteHeader(http.StatusOK)
}

func (g *gate) seen() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.entered)
}

// fixed returns options with a limit that does not move, so that tests of
// ordering do not depend on what the limiter learns, no reservation, and
// queues bounded by MaxQueue alone that never time out or turn LIFO unless
// the test says so.
func fixed(limit int) Options {
	return Options{
		InitialLimit: limit, MinLimit: limit, MaxLimit: limit,
		CriticalReserve: -1,
		QueueFactor:     maxQueueCap,
		MaxWait:         time.Hour, QueueInterval: time.Hour,
	}
}

func mustNew(tb testing.TB, o Options) *Controller {
	tb.Helper()
	c, err := New(o)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// send serves one request of tier t with id and deadline through h in the
// background and delivers its recorded answer.
func send(h http.Handler, id string, t tier.Tier, deadline time.Time) <-chan *httptest.ResponseRecorder {
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r = r.WithContext(request.With(r.Context(), &request.Info{ID: id, Tier: t, Priority: t, Deadline: deadline}))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		done <- w
	}()
	return done
}

// eventually polls cond until it holds, failing the test after a generous
// 10s: the conditions are reached in microseconds, the margin is for a
// loaded machine.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(200 * time.Microsecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// accounted is how many requests the controller has taken in: admitted,
// shed or waiting.
func accounted(c *Controller) int {
	s := c.Stats()
	n := s.Queued
	for _, ts := range s.Tiers {
		n += int(ts.Admitted + ts.Shed)
	}
	return n
}

func slug(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var d problem.Details
	if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil {
		t.Fatalf("shed answer is not a problem document: %v: %s", err, w.Body)
	}
	return d.Type[len(problem.TypeBase):]
}

// TestPriorityOrder fills a fixed limit, queues requests of every tier
// behind it, then frees one slot at a time: slots go to the most important
// tier first, and a full queue sheds the least important first.
func TestPriorityOrder(t *testing.T) {
	C, I, N, S := tier.Critical, tier.Important, tier.Normal, tier.Sheddable
	tests := []struct {
		name       string
		limit      int
		maxQueue   int
		fill       []tier.Tier // admitted and held first
		arrive     []tier.Tier // then, one after the other
		wantServed []int       // arrivals in the order they reach the upstream
		wantShed   map[int]string
	}{{
		name:       "most important tier first",
		limit:      2,
		fill:       []tier.Tier{N, N},
		arrive:     []tier.Tier{S, N, I, C},
		wantServed: []int{3, 2, 1, 0},
	}, {
		name:       "FIFO within a tier",
		limit:      1,
		fill:       []tier.Tier{S},
		arrive:     []tier.Tier{N, N, C, N},
		wantServed: []int{2, 0, 1, 3},
	}, {
		name:     "full queue sheds SHEDDABLE, then NORMAL, then IMPORTANT",
		limit:    1,
		maxQueue: 3,
		fill:     []tier.Tier{N},
		arrive:   []tier.Tier{S, N, I, C, S, I, C},
		// C(3) evicts S(0); S(4) finds only more important waiters; I(5)
		// evicts N(1); C(6) evicts the oldest IMPORTANT, I(2).
		wantServed: []int{3, 6, 5},
		wantShed:   map[int]string{0: "overloaded", 1: "overloaded", 2: "overloaded", 4: "queue-full"},
	}, {
		name:       "CRITICAL never shed while a lower tier waits",
		limit:      1,
		maxQueue:   2,
		fill:       []tier.Tier{S},
		arrive:     []tier.Tier{S, S, C, C, C},
		wantServed: []int{2, 3},
		wantShed:   map[int]string{0: "overloaded", 1: "overloaded", 4: "queue-full"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := fixed(tt.limit)
			if tt.maxQueue > 0 {
				o.MaxQueue = tt.maxQueue
			}
			c := mustNew(t, o)
			g := newGate()
			h := c.Middleware(g)

			for i, ft := range tt.fill {
				send(h, "fill"+strconv.Itoa(i), ft, time.Time{})
				eventually(t, "the limit to fill", func() bool { return len(g.seen()) == i+1 })
			}
			answers := make([]<-chan *httptest.ResponseRecorder, len(tt.arrive))
			for i, at := range tt.arrive {
				answers[i] = send(h, strconv.Itoa(i), at, time.Time{})
				eventually(t, "arrival "+strconv.Itoa(i)+" to be queued or shed", func() bool {
					return accounted(c) == len(tt.fill)+i+1
				})
			}
			for i, want := range tt.wantShed {
				w := <-answers[i]
				if w.Code != http.StatusServiceUnavailable || slug(t, w) != want {
					t.Errorf("arrival %d (%s): %d %s, want 503 %s", i, tt.arrive[i], w.Code, w.Body, want)
				}
			}
			for range len(tt.fill) + len(tt.wantServed) {
				n := len(g.seen())
				g.pass <- struct{}{}
				if n < len(tt.fill)+len(tt.wantServed) {
					eventually(t, "the next waiter to reach the upstream", func() bool { return len(g.seen()) == n+1 })
				}
			}
			var want []string
			for i := range tt.fill {
				want = append(want, "fill"+strconv.Itoa(i))
			}
			for _, i := range tt.wantServed {
				want = append(want, strconv.Itoa(i))
			}
			if got := g.seen(); !slices.Equal(got, want) {
				t.Errorf("upstream saw %v, want %v", got, want)
			}
			for _, i := range tt.wantServed {
				if w := <-answers[i]; w.Code != http.StatusOK {
					t.Errorf("arrival %d: %d, want 200", i, w.Code)
				}
			}
		})
	}
}

// TestCriticalReservation floods a fixed limit with lower tiers and checks
// that CRITICAL still gets its reserved slots at once, that no other tier
// ever holds more than the limit, and that the next slot freed goes to a
// waiting CRITICAL request.
func TestCriticalReservation(t *testing.T) {
	tests := []struct {
		share        float64
		wantReserved int
	}{
		{share: 0.2, wantReserved: 2},
		{share: 0.5, wantReserved: 5},
		{share: 0.01, wantReserved: 1},
		{share: -1, wantReserved: 0},
	}
	for _, tt := range tests {
		t.Run(strconv.FormatFloat(tt.share, 'f', -1, 64), func(t *testing.T) {
			const limit = 10
			o := fixed(limit)
			o.CriticalReserve, o.QueueFactor = tt.share, 0
			c := mustNew(t, o)
			g := newGate()
			h := c.Middleware(g)

			for i := range 60 {
				send(h, "low"+strconv.Itoa(i), []tier.Tier{tier.Important, tier.Normal, tier.Sheddable}[i%3], time.Time{})
			}
			eventually(t, "the flood to be taken in", func() bool { return accounted(c) == 60 })
			if got := len(g.seen()); got != limit {
				t.Fatalf("upstream has %d calls of lower tiers, want the limit %d", got, limit)
			}
			for i := range tt.wantReserved + 1 {
				send(h, "crit"+strconv.Itoa(i), tier.Critical, time.Time{})
				eventually(t, "CRITICAL to be taken in", func() bool { return accounted(c) == 60+i+1 })
			}
			s := c.Stats()
			if s.Reserved != tt.wantReserved {
				t.Errorf("Stats.Reserved %d, want %d", s.Reserved, tt.wantReserved)
			}
			crit := s.Tiers[tier.Critical]
			if crit.InFlight != tt.wantReserved || crit.Queued != 1 {
				t.Errorf("CRITICAL in flight %d, queued %d; want %d in reserved slots and 1 waiting", crit.InFlight, crit.Queued, tt.wantReserved)
			}
			if other := s.InFlight - crit.InFlight; other != limit {
				t.Errorf("lower tiers hold %d slots, want the limit %d", other, limit)
			}

			g.pass <- struct{}{} // one lower-tier call finishes
			eventually(t, "the freed slot to be handed on", func() bool { return len(g.seen()) == limit+tt.wantReserved+1 })
			if last := g.seen()[limit+tt.wantReserved]; last != "crit"+strconv.Itoa(tt.wantReserved) {
				t.Errorf("freed slot went to %s, want the waiting CRITICAL request", last)
			}
			close(g.pass)
		})
	}
}

// TestDeadline checks that a request whose deadline has passed, or cannot be
// met given the queue ahead of it, is answered without reaching the
// upstream, and that one with time to spare carries its deadline to it.
func TestDeadline(t *testing.T) {
	tests := []struct {
		name      string
		busy      bool          // the only slot is taken and the upstream serves in 30ms
		left      time.Duration // deadline from now
		wantCalls int
		wantCode  int
	}{
		{name: "passed", left: -time.Millisecond, wantCode: http.StatusServiceUnavailable},
		{name: "now", left: 0, wantCode: http.StatusServiceUnavailable},
		{name: "ample", left: time.Hour, wantCalls: 1, wantCode: http.StatusOK},
		{name: "shorter than the wait", busy: true, left: 10 * time.Millisecond, wantCode: http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustNew(t, fixed(1))
			var mu sync.Mutex
			var calls int
			var gotDeadline time.Time
			block := make(chan struct{})
			h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch request.From(r.Context()).ID {
				case "teach":
					time.Sleep(30 * time.Millisecond)
				case "hold":
					<-block
				default:
					mu.Lock()
					calls++
					gotDeadline, _ = r.Context().Deadline()
					mu.Unlock()
				}
			}))
			if tt.busy {
				<-send(h, "teach", tier.Normal, time.Time{}) // learn the service time
				send(h, "hold", tier.Normal, time.Time{})
				eventually(t, "the slot to be taken", func() bool { return c.Stats().InFlight == 1 })
			}
			deadline := time.Now().Add(tt.left)
			w := <-send(h, "probe", tier.Critical, deadline)
			close(block)
			if w.Code != tt.wantCode {
				t.Fatalf("answer %d %s, want %d", w.Code, w.Body, tt.wantCode)
			}
			mu.Lock()
			defer mu.Unlock()
			if calls != tt.wantCalls {
				t.Errorf("upstream called %d times, want %d", calls, tt.wantCalls)
			}
			if w.Code == http.StatusServiceUnavailable && slug(t, w) != "deadline-exceeded" {
				t.Errorf("shed as %s, want deadline-exceeded", slug(t, w))
			}
			if tt.wantCalls > 0 && !gotDeadline.Equal(deadline) {
				t.Errorf("upstream's context deadline %v, want the caller's %v", gotDeadline, deadline)
			}
		})
	}
}

// TestRetryAfter checks that shed answers are problem documents with a
// Retry-After spread over the configured range, so shed clients do not
// return together.
func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		after      time.Duration
		jitter     time.Duration
		lo, hi     int
		wantSpread bool
	}{
		{name: "default", lo: 1, hi: 3, wantSpread: true},
		{name: "rounded up", after: 1500 * time.Millisecond, jitter: 5 * time.Second, lo: 2, hi: 7, wantSpread: true},
		{name: "no jitter", after: 5 * time.Second, jitter: -1, lo: 5, hi: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustNew(t, Options{RetryAfter: tt.after, RetryAfterJitter: tt.jitter})
			h := c.Middleware(http.NotFoundHandler())
			seen := map[int]int{}
			for range 200 {
				w := <-send(h, "", tier.Sheddable, time.Now().Add(-time.Second))
				if w.Code != http.StatusServiceUnavailable {
					t.Fatalf("answer %d, want 503", w.Code)
				}
				if ct := w.Header().Get("Content-Type"); ct != problem.ContentType {
					t.Fatalf("Content-Type %q, want %q", ct, problem.ContentType)
				}
				var d problem.Details
				if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil || d.Status != http.StatusServiceUnavailable {
					t.Fatalf("body %s is not a 503 problem: %v", w.Body, err)
				}
				if n, err := strconv.Atoi(w.Header().Get("Content-Length")); err != nil || n != w.Body.Len() {
					t.Fatalf("Content-Length %q for a body of %d bytes", w.Header().Get("Content-Length"), w.Body.Len())
				}
				ra, err := strconv.Atoi(w.Header().Get("Retry-After"))
				if err != nil || ra < tt.lo || ra > tt.hi {
					t.Fatalf("Retry-After %q, want whole seconds in [%d, %d]", w.Header().Get("Retry-After"), tt.lo, tt.hi)
				}
				seen[ra]++
			}
			// 200 draws over three or more values all landing on one has a
			// probability below 10^-95.
			if tt.wantSpread && len(seen) < 2 {
				t.Errorf("Retry-After always %v over 200 answers, want it spread", seen)
			}
		})
	}
}

// TestStandingQueue checks adaptive LIFO: a queue that stays non-empty for
// QueueInterval is served newest first and sheds waiters older than
// QueueTarget, except CRITICAL ones, which wait while their deadline allows.
func TestStandingQueue(t *testing.T) {
	tests := []struct {
		name       string
		tier       tier.Tier
		interval   time.Duration
		target     time.Duration
		wantServed []string
		wantShed   []string
	}{
		{name: "draining queue is FIFO", tier: tier.Normal, interval: time.Hour, target: time.Hour, wantServed: []string{"a", "b", "c"}},
		{name: "standing queue is LIFO", tier: tier.Normal, interval: time.Millisecond, target: time.Hour, wantServed: []string{"c", "b", "a"}},
		// a is stale when b arrives; b, queued into a standing queue, may
		// wait only the target and leaves the queue empty for c.
		{name: "standing queue sheds the stale", tier: tier.Normal, interval: time.Millisecond, target: 10 * time.Millisecond, wantShed: []string{"a", "b"}, wantServed: []string{"c"}},
		{name: "CRITICAL is never shed for waiting", tier: tier.Critical, interval: time.Millisecond, target: 10 * time.Millisecond, wantServed: []string{"c", "b", "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := fixed(1)
			o.QueueInterval, o.QueueTarget = tt.interval, tt.target
			c := mustNew(t, o)
			g := newGate()
			h := c.Middleware(g)
			send(h, "fill", tier.Sheddable, time.Time{})
			eventually(t, "the slot to be taken", func() bool { return len(g.seen()) == 1 })
			answers := map[string]<-chan *httptest.ResponseRecorder{}
			for i, id := range []string{"a", "b", "c"} {
				answers[id] = send(h, id, tt.tier, time.Time{})
				eventually(t, id+" to be queued", func() bool { return accounted(c) == i+2 })
				// Outlive the interval, and the target when it is short, so
				// that the queue stands and each waiter is stale when the
				// next arrives.
				time.Sleep(max(3*tt.target, 3*tt.interval) % time.Hour)
			}
			for _, id := range tt.wantShed {
				if w := <-answers[id]; w.Code != http.StatusServiceUnavailable {
					t.Errorf("%s: %d, want 503", id, w.Code)
				}
			}
			if n := c.Stats().Tiers[tt.tier].ShedBy["queue_timeout"]; n != int64(len(tt.wantShed)) {
				t.Errorf("%d shed for their wait, want %d", n, len(tt.wantShed))
			}
			for range tt.wantServed {
				n := len(g.seen())
				g.pass <- struct{}{}
				eventually(t, "the next waiter to reach the upstream", func() bool { return len(g.seen()) == n+1 })
			}
			close(g.pass)
			if got := g.seen()[1:]; !slices.Equal(got, tt.wantServed) {
				t.Errorf("served %v, want %v", got, tt.wantServed)
			}
		})
	}
}

// TestOverloadSignal checks which upstream outcomes lower the limit: 5xx
// answers and time-outs with a fair budget do, other answers and callers
// that leave do not.
func TestOverloadSignal(t *testing.T) {
	tests := []struct {
		name      string
		upstream  func(w http.ResponseWriter, r *http.Request)
		deadline  time.Duration // from the request's start; 0: none
		cancel    bool          // the caller leaves after 5ms
		wantLower bool
	}{
		{name: "503", upstream: status(503), wantLower: true},
		{name: "500", upstream: status(500), wantLower: true},
		{name: "time-out", upstream: untilDone(http.StatusGatewayTimeout), deadline: 20 * time.Millisecond, wantLower: true},
		{name: "200", upstream: status(200)},
		{name: "404", upstream: status(404)},
		{name: "caller left", upstream: untilDone(http.StatusServiceUnavailable), cancel: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustNew(t, Options{InitialLimit: 20})
			h := c.Middleware(http.HandlerFunc(tt.upstream))
			for range 10 {
				ctx, cancel := context.WithCancel(context.Background())
				var deadline time.Time
				if tt.deadline > 0 {
					deadline = time.Now().Add(tt.deadline)
				}
				if tt.cancel {
					time.AfterFunc(5*time.Millisecond, cancel)
				}
				r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
				r = r.WithContext(request.With(ctx, &request.Info{Priority: tier.Normal, Deadline: deadline}))
				h.ServeHTTP(httptest.NewRecorder(), r)
				cancel()
			}
			got := c.Stats().Limit
			if lower := got < 20; lower != tt.wantLower {
				t.Errorf("limit %d after ten calls, want lowered: %v", got, tt.wantLower)
			}
		})
	}
}

// status answers code after 2ms, longer than the limiter's minimum spacing
// between two cuts.
func status(code int) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
		w.WriteHeader(code)
	}
}

// untilDone answers code once the request's context ends.
func untilDone(code int) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		w.WriteHeader(code)
	}
}

// TestPanicReleasesSlot checks that a slot comes back when the upstream
// handler panics, as httputil.ReverseProxy does with http.ErrAbortHandler.
func TestPanicReleasesSlot(t *testing.T) {
	c := mustNew(t, fixed(1))
	h := c.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
	func() {
		defer func() {
			if p := recover(); p != http.ErrAbortHandler {
				t.Errorf("recovered %v, want http.ErrAbortHandler passed on", p)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	}()
	if s := c.Stats(); s.InFlight != 0 {
		t.Fatalf("%d in flight after the panic, want 0", s.InFlight)
	}
	ok := c.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	if w := <-send(ok, "", tier.Normal, time.Time{}); w.Code != http.StatusOK {
		t.Fatalf("next request answered %d, want 200: the slot was not returned", w.Code)
	}
}

// TestTierOfRequest checks how a request's tier is read: its Priority, NORMAL
// without request.Info, SHEDDABLE for a tier out of range.
func TestTierOfRequest(t *testing.T) {
	tests := []struct {
		name string
		info *request.Info
		want tier.Tier
	}{
		{name: "priority", info: &request.Info{Tier: tier.Normal, Priority: tier.Important}, want: tier.Important},
		{name: "no info", want: tier.Normal},
		{name: "out of range", info: &request.Info{Priority: tier.Tier(9)}, want: tier.Sheddable},
		{name: "negative", info: &request.Info{Priority: tier.Tier(-1)}, want: tier.Sheddable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustNew(t, Options{})
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.info != nil {
				r = r.WithContext(request.With(r.Context(), tt.info))
			}
			c.Middleware(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), r)
			for _, ts := range c.Stats().Tiers {
				want := int64(0)
				if ts.Tier == tt.want {
					want = 1
				}
				if ts.Admitted != want {
					t.Errorf("%s admitted %d, want %d", ts.Tier, ts.Admitted, want)
				}
			}
		})
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{name: "zero value"},
		{name: "fixed limit", opts: Options{InitialLimit: 5, MinLimit: 5, MaxLimit: 5}},
		{name: "negative MinLimit", opts: Options{MinLimit: -1}, wantErr: "MinLimit"},
		{name: "MaxLimit below MinLimit", opts: Options{MinLimit: 10, MaxLimit: 5, InitialLimit: 5}, wantErr: "MaxLimit"},
		{name: "InitialLimit above MaxLimit", opts: Options{MaxLimit: 10, InitialLimit: 50}, wantErr: "InitialLimit"},
		{name: "CriticalReserve over 1", opts: Options{CriticalReserve: 1.5}, wantErr: "CriticalReserve"},
		{name: "negative QueueTarget", opts: Options{QueueTarget: -time.Second}, wantErr: "QueueTarget"},
		{name: "huge MaxQueue", opts: Options{MaxQueue: 1 << 30}, wantErr: "MaxQueue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New: %v, want an error naming %s", err, tt.wantErr)
			}
		})
	}
}

// TestLearnsFromUpstreamLatency: when the proxy reports the upstream's own
// latency, the limiter learns from it, not from the whole call, which also
// holds the gateway's work around the upstream (here 20ms of it against
// 1ms in the upstream); the service time a deadline must allow for stays
// the whole call's.
func TestLearnsFromUpstreamLatency(t *testing.T) {
	c := mustNew(t, Options{SampleWindow: time.Millisecond})
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec, ok := w.(interface{ RecordUpstreamLatency(time.Duration) })
		if !ok {
			t.Fatal("the controller's writer does not take the upstream's latency")
		}
		time.Sleep(20 * time.Millisecond)
		rec.RecordUpstreamLatency(time.Millisecond)
		w.WriteHeader(http.StatusOK)
	}))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 2 * minSamples / 8 {
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
			}
		})
	}
	wg.Wait()
	c.mu.Lock()
	median, service := c.limiter.median, c.serviceTime
	c.mu.Unlock()
	if median != time.Millisecond {
		t.Errorf("the limiter's window median is %v, want the upstream's 1ms", median)
	}
	if service < 20*time.Millisecond {
		t.Errorf("service time %v, want the whole call's, at least 20ms", service)
	}
}
