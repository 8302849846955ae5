package journal_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/journal"
	"github.com/rempart/rempart/internal/journal/sqlite"
	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/tier"
)

func newStore(t *testing.T) journal.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func pending(t *testing.T, s journal.Store, key, kind string) {
	t.Helper()
	_, err := s.Append(t.Context(), journal.Entry{Key: key, Kind: kind, Upstream: "estate",
		Request: journal.Request{Method: "POST", Path: "/v1/cards/authorize?x=1", ContentType: "application/json",
			Body: []byte(`{"card":"4971111111111110","amount":3000}`)},
		Created: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
}

// core is a fake upstream that applies each Idempotency-Key once and
// answers a repeat with the first result, as the estate's ledger does.
type core struct {
	mu      sync.Mutex
	applied map[string]int // key -> times applied
	calls   int
	status  atomic.Int32 // answer with this status instead, when not 0
	seen    []*http.Request
	bodies  []string
}

func newCore() *core { return &core{applied: map[string]int{}} }

func (c *core) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	c.seen = append(c.seen, r)
	c.bodies = append(c.bodies, string(body))
	if s := c.status.Load(); s != 0 {
		w.WriteHeader(int(s))
		return
	}
	key := r.Header.Get("Idempotency-Key")
	replayed := c.applied[key] > 0
	if !replayed {
		c.applied[key]++
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"key":%q,"replayed":%v}`, key, replayed)
}

func replayer(t *testing.T, cfg journal.ReplayerConfig) *journal.Replayer {
	t.Helper()
	if cfg.Rate == 0 {
		cfg.Rate = 10_000
	}
	if cfg.Poll == 0 {
		cfg.Poll = 10 * time.Millisecond
	}
	r, err := journal.NewReplayer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReplaySendsTheOriginalRequestAndRecordsTheResult(t *testing.T) {
	s := newStore(t)
	pending(t, s, "k1", journal.KindStandIn)
	c := newCore()
	var done []string
	r := replayer(t, journal.ReplayerConfig{Store: s, Upstream: "estate", Handler: c,
		OnComplete: func(e journal.Entry) { done = append(done, e.Key) }})
	p, err := r.Drain(t.Context())
	if err != nil || p.Replayed != 1 || p.Failed != 0 {
		t.Fatalf("Drain = %+v, %v; want one replayed", p, err)
	}
	req := c.seen[0]
	if req.Method != "POST" || req.URL.RequestURI() != "/v1/cards/authorize?x=1" ||
		req.Header.Get("Idempotency-Key") != "k1" || req.Header.Get("Content-Type") != "application/json" ||
		c.bodies[0] != `{"card":"4971111111111110","amount":3000}` {
		t.Fatalf("replayed request %s %s %v %q", req.Method, req.URL, req.Header, c.bodies[0])
	}
	info := request.From(req.Context())
	if info == nil || info.Priority != tier.Sheddable || info.Tier != tier.Critical || info.Route != "journal-replay" {
		t.Fatalf("replay request info = %+v, want critical tier at sheddable priority", info)
	}
	e, err := s.Get(t.Context(), "k1")
	if err != nil {
		t.Fatal(err)
	}
	if e.State != journal.Done || e.Result.Status != 200 || e.Result.ContentType != "application/json" ||
		string(e.Result.Body) != `{"key":"k1","replayed":false}` {
		t.Fatalf("entry after replay: %+v", e)
	}
	if len(done) != 1 || done[0] != "k1" {
		t.Fatalf("OnComplete saw %v", done)
	}
	if p, _ := r.Drain(t.Context()); p.Replayed != 0 {
		t.Fatalf("a second pass replayed %d entries again", p.Replayed)
	}
}

func TestReplayStatusHandling(t *testing.T) {
	for _, tc := range []struct {
		status int
		done   bool
	}{
		{200, true}, {201, true}, {400, true}, {404, true}, {422, true},
		{408, false}, {429, false}, {499, false}, {500, false}, {502, false}, {503, false}, {504, false},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			s := newStore(t)
			pending(t, s, "k", journal.KindOutbox)
			c := newCore()
			c.status.Store(int32(tc.status))
			r := replayer(t, journal.ReplayerConfig{Store: s, Handler: c})
			if _, err := r.Drain(t.Context()); err != nil {
				t.Fatal(err)
			}
			e, err := s.Get(t.Context(), "k")
			if err != nil {
				t.Fatal(err)
			}
			if got := e.State == journal.Done; got != tc.done {
				t.Fatalf("status %d: done = %v, want %v", tc.status, got, tc.done)
			}
		})
	}
}

func TestReplayStopsWhenTheUpstreamKeepsFailing(t *testing.T) {
	s := newStore(t)
	for i := range 10 {
		pending(t, s, fmt.Sprint("k", i), journal.KindStandIn)
	}
	c := newCore()
	c.status.Store(503)
	r := replayer(t, journal.ReplayerConfig{Store: s, Handler: c, Workers: 1})
	p, err := r.Drain(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !p.Stopped || c.calls != 3 || p.Failed != 3 {
		t.Fatalf("pass %+v after %d calls; want it stopped after 3 failures", p, c.calls)
	}
	c.status.Store(0)
	if p, _ = r.Drain(t.Context()); p.Replayed != 10 {
		t.Fatalf("after recovery replayed %d, want 10", p.Replayed)
	}
	if st := r.Stats(); st.Replayed != 10 || st.Failures != 3 || st.Pending[journal.KindStandIn] != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A single entry the upstream refuses (5xx) does not hold back the others.
func TestReplayPoisonEntryDoesNotBlock(t *testing.T) {
	s := newStore(t)
	for i := range 5 {
		pending(t, s, fmt.Sprint("k", i), journal.KindStandIn)
	}
	c := newCore()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Idempotency-Key") == "k0" {
			w.WriteHeader(500)
			return
		}
		c.ServeHTTP(w, r)
	})
	r := replayer(t, journal.ReplayerConfig{Store: s, Handler: h, Workers: 1})
	p, err := r.Drain(t.Context())
	if err != nil || p.Replayed != 4 || p.Failed != 1 {
		t.Fatalf("Drain = %+v, %v; want 4 replayed around the poison entry", p, err)
	}
}

func TestReplayRateIsBounded(t *testing.T) {
	s := newStore(t)
	const n = 11
	for i := range n {
		pending(t, s, fmt.Sprint("k", i), journal.KindStandIn)
	}
	r := replayer(t, journal.ReplayerConfig{Store: s, Handler: newCore(), Rate: 100, Workers: 4})
	start := time.Now()
	if p, err := r.Drain(t.Context()); err != nil || p.Replayed != n {
		t.Fatalf("Drain = %+v, %v", p, err)
	}
	// 11 permits at 100/s are 10 intervals of 10 ms apart; the bound is
	// loose on purpose, only the lower side is a property of the limiter.
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Fatalf("replayed %d entries in %v: faster than 100/s", n, d)
	}
}

func TestReplayOnlyItsUpstream(t *testing.T) {
	s := newStore(t)
	pending(t, s, "mine", journal.KindStandIn)
	if _, err := s.Append(t.Context(), journal.Entry{Key: "theirs", Kind: journal.KindStandIn, Upstream: "other",
		Request: journal.Request{Method: "POST", Path: "/x"}, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	c := newCore()
	r := replayer(t, journal.ReplayerConfig{Store: s, Upstream: "estate", Handler: c})
	if p, _ := r.Drain(t.Context()); p.Replayed != 1 || c.applied["theirs"] != 0 {
		t.Fatalf("pass %+v, applied %v", p, c.applied)
	}
}

// Two replayers on one journal (a gateway restarted while the old one still
// drains, or two gateways on PostgreSQL) apply each key once: the upstream
// dedups, and the journal keeps one result per entry.
func TestConcurrentReplayersApplyOnce(t *testing.T) {
	s := newStore(t)
	const n = 40
	for i := range n {
		pending(t, s, fmt.Sprint("k", i), journal.KindStandIn)
	}
	c := newCore()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			r := replayer(t, journal.ReplayerConfig{Store: s, Handler: c, Workers: 3})
			if _, err := r.Drain(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for k, times := range c.applied {
		if times != 1 {
			t.Fatalf("key %s applied %d times", k, times)
		}
	}
	if len(c.applied) != n {
		t.Fatalf("%d keys applied, want %d", len(c.applied), n)
	}
	cs, err := s.Counts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if cs.Pending[journal.KindStandIn] != 0 || cs.Done[journal.KindStandIn] != n {
		t.Fatalf("counts %+v", cs)
	}
}

func TestRunDrainsUntilCanceled(t *testing.T) {
	s := newStore(t)
	reg := prometheus.NewRegistry()
	r := replayer(t, journal.ReplayerConfig{Store: s, Handler: newCore(), Registerer: reg})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	pending(t, s, "late", journal.KindOutbox)
	deadline := time.Now().Add(5 * time.Second)
	for {
		e, err := s.Get(t.Context(), "late")
		if err != nil {
			t.Fatal(err)
		}
		if e.State == journal.Done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not replay an entry appended while it ran")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v", err)
	}
	if v := metricValue(t, reg, "rempart_journal_replayed_total", map[string]string{"kind": "outbox", "outcome": "applied"}); v != 1 {
		t.Fatalf("rempart_journal_replayed_total = %v, want 1", v)
	}
	if v := metricValue(t, reg, "rempart_journal_pending", map[string]string{"kind": "outbox"}); v != 0 {
		t.Fatalf("rempart_journal_pending = %v, want 0", v)
	}
	// A second replayer on the same registry shares the series.
	replayer(t, journal.ReplayerConfig{Store: s, Handler: newCore(), Registerer: reg})
}

func TestStatsJSON(t *testing.T) {
	r := replayer(t, journal.ReplayerConfig{Store: newStore(t), Upstream: "estate", Handler: newCore()})
	b, err := json.Marshal(r.Stats())
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"upstream":"estate","pending":{},"replayed":0,"failures":0}`; string(b) != want {
		t.Fatalf("stats JSON %s, want %s", b, want)
	}
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

// TestReplayLeases: a node's pass leaves alone what another live node has
// claimed, takes over a dead node's entries once their lease ended, and
// starts no call the lease could not cover.
func TestReplayLeases(t *testing.T) {
	start := time.Date(2025, 12, 22, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		after     time.Duration // since the other node claimed, when this one claims
		wait      time.Duration // from its claim to the call (the rate limiter's queue)
		delivered bool
	}{
		{"live lease", 29 * time.Second, 0, false},
		{"expired lease", 31 * time.Second, 0, true},
		{"call within its lease", 31 * time.Second, 19 * time.Second, true},
		{"call the lease could not cover", 31 * time.Second, 21 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			pending(t, s, "k", journal.KindStandIn)
			// The other node claimed k and died.
			if _, err := s.Claim(t.Context(), journal.Filter{Limit: 10},
				journal.Lease{Owner: "dead", Now: start, Until: start.Add(30 * time.Second)}); err != nil {
				t.Fatal(err)
			}
			c := newCore()
			var readings atomic.Int64
			now := func() time.Time {
				if readings.Add(1) == 1 {
					return start.Add(tc.after) // the claim
				}
				return start.Add(tc.after + tc.wait)
			}
			r := replayer(t, journal.ReplayerConfig{Store: s, Upstream: "estate", Handler: c, Owner: "alive",
				Lease: 30 * time.Second, Timeout: 10 * time.Second, Now: now})
			if _, err := r.Drain(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := c.calls > 0; got != tc.delivered {
				t.Fatalf("delivered = %v, want %v", got, tc.delivered)
			}
		})
	}
	t.Run("lease shorter than two timeouts", func(t *testing.T) {
		_, err := journal.NewReplayer(journal.ReplayerConfig{Store: newStore(t), Handler: newCore(),
			Lease: 15 * time.Second, Timeout: 10 * time.Second})
		if !errors.Is(err, journal.ErrInvalid) {
			t.Fatalf("NewReplayer = %v, want ErrInvalid", err)
		}
	})
}
