package breaker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/breaker"
	"github.com/rempart/rempart/internal/journal"
	"github.com/rempart/rempart/internal/journal/sqlite"
	"github.com/rempart/rempart/internal/problem"
)

func openJournal(t *testing.T) (journal.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j, path
}

// The unit tests' wire format: {"card","amount"} in, the decision out.
func decode(r *http.Request, body []byte) (breaker.StandInRequest, error) {
	var v struct {
		Card   string `json:"card"`
		Amount int64  `json:"amount"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return breaker.StandInRequest{}, problem.New(http.StatusBadRequest, "malformed-json", err.Error())
	}
	return breaker.StandInRequest{Card: v.Card, Amount: v.Amount, Kind: "card"}, nil
}

func encode(d breaker.StandInDecision) (int, []byte) {
	b, _ := json.Marshal(map[string]any{"approved": d.Approved, "reason": d.Reason, "amount": d.Amount,
		"replayed": d.Replayed, "stand_in": true})
	return http.StatusOK, b
}

var testLimits = breaker.Limits{PerTransaction: 100_00, PerCardPerDay: 150_00, Exposure: 250_00}

func newStandIn(t *testing.T, j journal.Store, clk *fakeClock) *breaker.StandIn {
	t.Helper()
	s, err := breaker.NewStandIn(t.Context(), breaker.StandInConfig{Journal: j, Upstream: "estate",
		Limits: testLimits, Decode: decode, Encode: encode, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type decision struct {
	Approved bool   `json:"approved"`
	Reason   string `json:"reason"`
	Replayed bool   `json:"replayed"`
	StandIn  bool   `json:"stand_in"`
}

func authorize(t *testing.T, h http.Handler, key, card string, amount int64) (decision, *httptest.ResponseRecorder) {
	t.Helper()
	r := httptest.NewRequest("POST", "/v1/cards/authorize", strings.NewReader(fmt.Sprintf(`{"card":%q,"amount":%d}`, card, amount)))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Idempotency-Key", key)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var d decision
	if w.Code == 200 {
		if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil {
			t.Fatalf("%s: %v in %q", key, err, w.Body)
		}
	}
	return d, w
}

// downCore answers 503 to everything, like the estate's core switched down.
func downCore() *upstream {
	u := &upstream{}
	u.status.Store(503)
	return u
}

func TestStandInLimits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before [][2]any // earlier approvals: card, amount
		card   string
		amount int64
		reason string // "" approves
	}{
		{"under every limit", nil, "c1", 50_00, ""},
		{"at the transaction limit", nil, "c1", 100_00, ""},
		{"over the transaction limit", nil, "c1", 100_01, breaker.ReasonAmountLimit},
		{"within the card's day", [][2]any{{"c1", 100_00}}, "c1", 50_00, ""},
		{"over the card's day", [][2]any{{"c1", 100_00}}, "c1", 50_01, breaker.ReasonDailyLimit},
		{"another card's day is its own", [][2]any{{"c1", 100_00}, {"c1", 50_00}}, "c2", 100_00, ""},
		{"over the exposure cap", [][2]any{{"c1", 100_00}, {"c2", 100_00}}, "c3", 50_01, breaker.ReasonExposureCap},
		{"at the exposure cap", [][2]any{{"c1", 100_00}, {"c2", 100_00}}, "c3", 50_00, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, _ := openJournal(t)
			s := newStandIn(t, j, newClock(time.Date(2025, 12, 22, 9, 0, 0, 0, time.UTC)))
			h := newBreaker(t, testConfig(), nil).Middleware(breaker.Route{Fallback: s})(downCore())
			for i, b := range tc.before {
				if d, w := authorize(t, h, fmt.Sprint("before-", i), b[0].(string), int64(b[1].(int))); !d.Approved {
					t.Fatalf("setup approval %d declined: %d %s", i, w.Code, w.Body)
				}
			}
			d, w := authorize(t, h, "k", tc.card, tc.amount)
			if w.Code != 200 || w.Header().Get(breaker.HeaderStandIn) != "true" || !d.StandIn {
				t.Fatalf("answer %d %v %s", w.Code, w.Header(), w.Body)
			}
			if d.Approved != (tc.reason == "") || d.Reason != tc.reason {
				t.Fatalf("decision %+v, want reason %q", d, tc.reason)
			}
			e, err := j.Get(t.Context(), "k")
			if err != nil {
				t.Fatalf("decision not journaled: %v", err)
			}
			// Declines move no money and are not replayed.
			if want := map[bool]journal.State{true: journal.Pending, false: journal.Done}[d.Approved]; e.State != want {
				t.Fatalf("journal state %s, want %s", e.State, want)
			}
		})
	}
}

func TestStandInSameKeySameDecision(t *testing.T) {
	j, _ := openJournal(t)
	s := newStandIn(t, j, newClock(time.Now()))
	core := downCore()
	b := newBreaker(t, testConfig(), nil)
	h := b.Middleware(breaker.Route{Fallback: s})(core)
	first, _ := authorize(t, h, "pay-1", "c1", 90_00)
	if !first.Approved || first.Replayed {
		t.Fatalf("first decision %+v", first)
	}
	// Same key, same request: the first decision, not a second one (which,
	// with 90 of 150 EUR used today, would be a decline).
	again, w := authorize(t, h, "pay-1", "c1", 90_00)
	if !again.Approved || !again.Replayed || w.Header().Get(breaker.HeaderStandIn) != "true" {
		t.Fatalf("repeat answered %+v", again)
	}
	// Once the core is back the repeat is still answered from the journal,
	// not decided a second time by the core.
	core.status.Store(0)
	calls := core.calls.Load()
	if again, _ = authorize(t, h, "pay-1", "c1", 90_00); !again.Approved || !again.Replayed || core.calls.Load() != calls {
		t.Fatalf("repeat after recovery answered %+v with %d core calls", again, core.calls.Load()-calls)
	}
	// Same key, another request: refused.
	if _, w := authorize(t, h, "pay-1", "c1", 10_00); w.Code != http.StatusUnprocessableEntity {
		t.Fatalf("reused key answered %d, want 422", w.Code)
	}
	if st := s.Stats(); st.Exposure != 90_00 || st.Open != 1 {
		t.Fatalf("stats %+v: the repeat counted twice", st)
	}
}

func TestStandInConcurrentSameKey(t *testing.T) {
	j, _ := openJournal(t)
	s := newStandIn(t, j, newClock(time.Now()))
	h := newBreaker(t, testConfig(), nil).Middleware(breaker.Route{Fallback: s})(downCore())
	var wg sync.WaitGroup
	var mu sync.Mutex
	replayed := 0
	for range 8 {
		wg.Go(func() {
			d, w := authorize(t, h, "same", "c1", 60_00)
			mu.Lock()
			defer mu.Unlock()
			if w.Code != 200 || !d.Approved {
				t.Errorf("answer %d %+v", w.Code, d)
			}
			if d.Replayed {
				replayed++
			}
		})
	}
	wg.Wait()
	if replayed != 7 {
		t.Fatalf("%d of 8 concurrent requests with one key were answered as repeats, want 7", replayed)
	}
	if st := s.Stats(); st.Exposure != 60_00 || st.Open != 1 {
		t.Fatalf("stats %+v: one key reserved more than once", st)
	}
	e, err := j.Complete(t.Context(), "same", journal.Result{Status: 200}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s.Settle(e)
	if st := s.Stats(); st.Exposure != 0 || st.Open != 0 {
		t.Fatalf("after the replay %+v: the approval's exposure was lost track of", st)
	}
}

// events is a journal that logs its appends into the same sequence as the
// client's response, to show which came first.
type events struct {
	journal.Store
	mu  sync.Mutex
	log []string
	err error // Append fails with it when set
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log = append(e.log, s)
}

func (e *events) Append(ctx context.Context, en journal.Entry) (journal.Entry, error) {
	if e.err != nil {
		return journal.Entry{}, e.err
	}
	got, err := e.Store.Append(ctx, en)
	if err == nil {
		e.add("journaled " + en.Key)
	}
	return got, err
}

type loggingWriter struct {
	http.ResponseWriter
	ev *events
}

func (w loggingWriter) WriteHeader(code int) {
	w.ev.add(fmt.Sprint("answered ", code))
	w.ResponseWriter.WriteHeader(code)
}

func TestStandInJournalsBeforeAnswering(t *testing.T) {
	j, path := openJournal(t)
	ev := &events{Store: j}
	s, err := breaker.NewStandIn(t.Context(), breaker.StandInConfig{Journal: ev, Upstream: "estate",
		Limits: testLimits, Decode: decode, Encode: encode})
	if err != nil {
		t.Fatal(err)
	}
	h := newBreaker(t, testConfig(), nil).Middleware(breaker.Route{Fallback: s})(downCore())
	r := httptest.NewRequest("POST", "/v1/cards/authorize", strings.NewReader(`{"card":"c1","amount":2500}`))
	r.Header.Set("Idempotency-Key", "first")
	w := httptest.NewRecorder()
	h.ServeHTTP(loggingWriter{w, ev}, r)
	if got := strings.Join(ev.log, ", "); got != "journaled first, answered 200" {
		t.Fatalf("events: %s", got)
	}
	// Durable: another connection to the file sees it.
	other, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if e, err := other.Get(t.Context(), "first"); err != nil || e.State != journal.Pending ||
		e.Request.Path != "/v1/cards/authorize" || string(e.Request.Body) != `{"card":"c1","amount":2500}` {
		t.Fatalf("journal holds %+v, %v", e, err)
	}

	// No record, no decision.
	ev.err = errors.New("disk full")
	d, w := authorize(t, h, "second", "c1", 10_00)
	if w.Code != 503 || d.Approved || w.Header().Get("Retry-After") == "" {
		t.Fatalf("decision without a journal: %d %s", w.Code, w.Body)
	}
	if st := s.Stats(); st.Exposure != 25_00 {
		t.Fatalf("exposure %d: an unrecorded decision still holds its reservation", st.Exposure)
	}
}

func TestStandInRefusesBadRequests(t *testing.T) {
	j, _ := openJournal(t)
	s := newStandIn(t, j, newClock(time.Now()))
	h := newBreaker(t, testConfig(), nil).Middleware(breaker.Route{Fallback: s})(downCore())
	for _, tc := range []struct {
		name, key, body string
		want            int
	}{
		{"no key", "", `{"card":"c1","amount":100}`, 400},
		{"key with a space", "a b", `{"card":"c1","amount":100}`, 400},
		{"malformed", "k1", `{"card":`, 400},
		{"no card", "k2", `{"amount":100}`, 400},
		{"zero amount", "k3", `{"card":"c1","amount":0}`, 400},
	} {
		r := httptest.NewRequest("POST", "/v1/cards/authorize", strings.NewReader(tc.body))
		if tc.key != "" {
			r.Header.Set("Idempotency-Key", tc.key)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want || w.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s", tc.name, w.Code, w.Body)
		}
	}
	if c, _ := j.Counts(t.Context()); len(c.Pending)+len(c.Done) != 0 {
		t.Fatalf("bad requests were journaled: %+v", c)
	}
}

func TestStandInRebuildsLimitsAfterRestart(t *testing.T) {
	j, _ := openJournal(t)
	clk := newClock(time.Date(2025, 12, 22, 23, 0, 0, 0, time.UTC))
	h := func(s *breaker.StandIn) http.Handler {
		return newBreaker(t, testConfig(), nil).Middleware(breaker.Route{Fallback: s})(downCore())
	}
	s1 := newStandIn(t, j, clk)
	authorize(t, h(s1), "yesterday", "c1", 100_00)
	clk.Advance(2 * time.Hour) // past midnight: c1's day starts again
	authorize(t, h(s1), "today", "c1", 100_00)
	authorize(t, h(s1), "declined", "c1", 100_00) // 100 + 100 is over c1's 150 a day
	if st := s1.Stats(); st.Exposure != 200_00 || st.CardsToday != 1 {
		t.Fatalf("before restart %+v", st)
	}

	s2 := newStandIn(t, j, clk) // a restarted gateway
	if st := s2.Stats(); st.Exposure != 200_00 || st.Open != 2 || st.CardsToday != 1 {
		t.Fatalf("after restart %+v, want both approvals pending and c1's day restored", st)
	}
	if d, _ := authorize(t, h(s2), "more", "c1", 50_01); d.Reason != breaker.ReasonDailyLimit {
		t.Fatalf("after restart c1 got %+v, want its day's limit kept", d)
	}
	// The replayer settles approvals the core now has.
	e, err := j.Complete(t.Context(), "yesterday", journal.Result{Status: 200}, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	s2.Settle(e)
	s2.Settle(e) // twice is harmless
	if st := s2.Stats(); st.Exposure != 100_00 || st.Open != 1 {
		t.Fatalf("after settling %+v", st)
	}
	s3 := newStandIn(t, j, clk)
	if st := s3.Stats(); st.Exposure != 100_00 {
		t.Fatalf("after a second restart %+v", st)
	}
}

func TestStandInMetrics(t *testing.T) {
	j, _ := openJournal(t)
	reg := prometheus.NewRegistry()
	s, err := breaker.NewStandIn(t.Context(), breaker.StandInConfig{Journal: j, Upstream: "estate",
		Limits: testLimits, Decode: decode, Encode: encode, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	h := newBreaker(t, testConfig(), reg).Middleware(breaker.Route{Fallback: s})(downCore())
	authorize(t, h, "a", "c1", 40_00)
	authorize(t, h, "b", "c1", 200_00)
	authorize(t, h, "a", "c1", 40_00)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"rempart_breaker_standin_decisions_total", map[string]string{"decision": "approved"}, 1},
		{"rempart_breaker_standin_decisions_total", map[string]string{"decision": "declined", "reason": breaker.ReasonAmountLimit}, 1},
		{"rempart_breaker_standin_exposure_euros", nil, 40},
		{"rempart_breaker_fallback_answers_total", map[string]string{"kind": "standin"}, 2},
		{"rempart_breaker_fallback_answers_total", map[string]string{"kind": "recall"}, 1},
	} {
		if got := metricValue(t, reg, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}
