package breaker_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/breaker"
	"github.com/rempart/rempart/internal/journal"
	"github.com/rempart/rempart/internal/problem"
)

func transfer(h http.Handler, key, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/v1/transfers/instant", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Idempotency-Key", key)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func status(t *testing.T, w *httptest.ResponseRecorder) breaker.OutboxStatus {
	t.Helper()
	var st breaker.OutboxStatus
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
		t.Fatalf("%v in %q", err, w.Body)
	}
	return st
}

// bank is a fake core for transfers: it executes a key once and declines
// amounts over 1000.
type bank struct {
	upstream
	applied map[string]int
}

func (b *bank) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if b.status.Load() != 0 {
		b.upstream.ServeHTTP(w, r)
		return
	}
	var v struct{ Amount int }
	body, _ := io.ReadAll(r.Body)
	json.Unmarshal(body, &v)
	key := r.Header.Get("Idempotency-Key")
	replayed := b.applied[key] > 0
	b.applied[key]++
	st := "executed"
	if v.Amount > 1000 {
		st = "declined"
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"status":%q,"amount":%d,"replayed":%v}`, st, v.Amount, replayed)
}

func TestOutboxAcceptsAndExecutesOnce(t *testing.T) {
	j, _ := openJournal(t)
	o, err := breaker.NewOutbox(breaker.OutboxConfig{Journal: j, Upstream: "estate"})
	if err != nil {
		t.Fatal(err)
	}
	core := &bank{applied: map[string]int{}}
	core.status.Store(503)
	b := newBreaker(t, testConfig(), nil)
	h := b.Middleware(breaker.Route{Fallback: o})(core)
	mux := http.NewServeMux()
	mux.Handle("GET /v1/transfers/outbox/{key}", o.StatusHandler())

	const body = `{"from":"A-alice","to":"A-bruno","amount":500}`
	w := transfer(h, "t/1", body)
	if w.Code != http.StatusAccepted || w.Header().Get("Location") != "/v1/transfers/outbox/t%2F1" ||
		w.Header().Get(breaker.HeaderOutbox) != "true" {
		t.Fatalf("accept answered %d %v %s", w.Code, w.Header(), w.Body)
	}
	if st := status(t, w); st.Status != breaker.OutboxPending || st.Key != "t/1" || st.StatusURL != "/v1/transfers/outbox/t%2F1" {
		t.Fatalf("accept document %+v", st)
	}
	// The client's retry is answered from the outbox, even once the core is
	// back: the transfer is executed by the replayer, once.
	core.status.Store(0)
	if w := transfer(h, "t/1", body); w.Code != http.StatusAccepted || len(core.applied) != 0 {
		t.Fatalf("retry answered %d; core applied %v", w.Code, core.applied)
	}
	if w := transfer(h, "t/1", `{"from":"A-alice","to":"A-bruno","amount":501}`); w.Code != http.StatusUnprocessableEntity {
		t.Fatalf("key reused for another transfer answered %d", w.Code)
	}
	get := func(key string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", "/v1/transfers/outbox/"+key, nil))
		return w
	}
	if st := status(t, get("t%2F1")); st.Status != breaker.OutboxPending {
		t.Fatalf("status %+v", st)
	}

	r, err := journal.NewReplayer(journal.ReplayerConfig{Store: j, Upstream: "estate", Rate: 1000,
		Handler: b.Middleware(breaker.Route{})(core)})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := r.Drain(t.Context()); err != nil || p.Replayed != 1 {
		t.Fatalf("replay %+v %v", p, err)
	}
	w = get("t%2F1")
	st := status(t, w)
	if w.Code != 200 || st.Status != breaker.OutboxExecuted || st.CompletedAt.IsZero() ||
		string(st.Result) != `{"status":"executed","amount":500,"replayed":false}` {
		t.Fatalf("status after replay %d %+v %s", w.Code, st, st.Result)
	}
	if w := transfer(h, "t/1", body); w.Code != 200 || status(t, w).Status != breaker.OutboxExecuted {
		t.Fatalf("retry after execution answered %d %s", w.Code, w.Body)
	}
	if core.applied["t/1"] != 1 {
		t.Fatalf("core applied the transfer %d times", core.applied["t/1"])
	}
	if w := get("nobody"); w.Code != 404 {
		t.Fatalf("unknown key: %d", w.Code)
	}
}

func TestOutboxDeclinedByTheCore(t *testing.T) {
	j, _ := openJournal(t)
	o, _ := breaker.NewOutbox(breaker.OutboxConfig{Journal: j, Upstream: "estate"})
	core := &bank{applied: map[string]int{}}
	core.status.Store(503)
	b := newBreaker(t, testConfig(), nil)
	transfer(b.Middleware(breaker.Route{Fallback: o})(core), "big", `{"amount":5000}`)
	core.status.Store(0)
	r, _ := journal.NewReplayer(journal.ReplayerConfig{Store: j, Rate: 1000, Handler: b.Middleware(breaker.Route{})(core)})
	r.Drain(t.Context())
	w := httptest.NewRecorder()
	o.StatusHandler().ServeHTTP(w, httptest.NewRequest("GET", "/v1/transfers/outbox/big", nil))
	if st := status(t, w); st.Status != breaker.OutboxDeclined {
		t.Fatalf("status %+v", st)
	}
}

func TestOutboxValidatesBeforeAccepting(t *testing.T) {
	j, _ := openJournal(t)
	o, _ := breaker.NewOutbox(breaker.OutboxConfig{Journal: j, Upstream: "estate",
		Validate: func(r *http.Request, body []byte) error {
			if !strings.Contains(string(body), `"to"`) {
				return problem.New(http.StatusBadRequest, "invalid-request", "to is required").WithField("to")
			}
			return nil
		}})
	h := newBreaker(t, testConfig(), nil).Middleware(breaker.Route{Fallback: o})(downCore())
	if w := transfer(h, "k", `{"from":"A-alice"}`); w.Code != 400 || !strings.Contains(w.Body.String(), `"field":"to"`) {
		t.Fatalf("invalid transfer answered %d %s", w.Code, w.Body)
	}
	if w := transfer(h, "", `{"to":"A-bruno"}`); w.Code != 400 {
		t.Fatalf("transfer without a key answered %d", w.Code)
	}
	if _, err := j.Get(t.Context(), "k"); !errors.Is(err, journal.ErrNotFound) {
		t.Fatalf("an invalid transfer was accepted: %v", err)
	}
}

func TestDefaultOutcome(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   string
	}{
		{200, `{"status":"executed"}`, "executed"},
		{200, `{"status":"declined","reason":"insufficient_funds"}`, "declined"},
		{200, `{"id":1}`, "executed"},
		{200, `not json`, "executed"},
		{404, `{"type":"unknown-account"}`, "declined"},
		{422, `{}`, "declined"},
	} {
		if got := breaker.DefaultOutcome(tc.status, []byte(tc.body)); got != tc.want {
			t.Errorf("DefaultOutcome(%d, %s) = %s, want %s", tc.status, tc.body, got, tc.want)
		}
	}
}

func TestOutboxStatusTime(t *testing.T) {
	j, _ := openJournal(t)
	at := time.Date(2025, 12, 22, 9, 0, 0, 0, time.UTC)
	o, _ := breaker.NewOutbox(breaker.OutboxConfig{Journal: j, Upstream: "estate", Now: func() time.Time { return at }})
	w := transfer(newBreaker(t, testConfig(), nil).Middleware(breaker.Route{Fallback: o})(downCore()), "k", `{}`)
	if !strings.Contains(w.Body.String(), `"accepted_at":"2025-12-22T09:00:00Z"`) || strings.Contains(w.Body.String(), "completed_at") {
		t.Fatalf("document %s", w.Body)
	}
}
