package breaker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/breaker"
	"github.com/rempart/rempart/internal/estate"
	"github.com/rempart/rempart/internal/estate/core"
	"github.com/rempart/rempart/internal/journal"
)

// TestCoreDownStandInThenReplayOnce is the "Done when": with the
// real estate's core switched down, card authorisations and ATM withdrawals
// keep being answered by stand-in; after recovery every stand-in approval is
// replayed once and the ledger invariant holds with every acknowledged key
// present exactly once.
func TestCoreDownStandInThenReplayOnce(t *testing.T) {
	est := newEstate(t)
	j, _ := openJournal(t)
	reg := prometheus.NewRegistry()
	br := newBreaker(t, breaker.Config{Upstream: "estate", MinCalls: 5, Window: time.Minute,
		Delay: 100 * time.Millisecond, Probes: 2}, reg)
	si, err := breaker.NewStandIn(t.Context(), breaker.StandInConfig{Journal: j, Upstream: "estate",
		Limits: breaker.Limits{PerTransaction: 200_00, PerCardPerDay: 300_00, Exposure: 5_000_00},
		Decode: estateDecode, Encode: estateEncode, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	up := est.Handler()
	route := br.Middleware(breaker.Route{Fallback: si, Timeout: 2 * time.Second})(up)

	// Healthy: the core answers itself.
	var acked []string
	w := pay(route, estate.PathCardAuthorize, "healthy-1", alice, 30_00)
	if d := readDecision(t, w); !d.Approved || d.StandIn || w.Header().Get(breaker.HeaderStandIn) != "" {
		t.Fatalf("healthy core: %+v", d)
	}
	acked = append(acked, "healthy-1")
	before, err := est.Check(t.Context(), acked)
	if err != nil || !before.OK {
		t.Fatalf("check before the outage: %+v %v", before, err)
	}

	if err := est.Core().SetFaults(core.Faults{Down: true}); err != nil {
		t.Fatal(err)
	}
	cards := []string{alice}
	for i := range 19 {
		cards = append(cards, est.Population().Nth(i).Card)
	}
	type answer struct {
		key string
		d   standInDecision
	}
	answers := make([]answer, 80)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < len(answers); i += 8 {
				path := estate.PathCardAuthorize
				if i%5 == 0 {
					path = estate.PathATMWithdraw
				}
				// 10, 50, ... 250 EUR: multiples of 10 EUR for the ATMs, some
				// over the 200 EUR per-transaction limit.
				amount := int64(10_00 + (i%7)*40_00)
				key := fmt.Sprintf("down-%02d", i)
				w := pay(route, path, key, cards[i%len(cards)], amount)
				if w.Code != http.StatusOK || w.Header().Get(breaker.HeaderStandIn) != "true" {
					t.Errorf("%s with the core down: %d %s", key, w.Code, w.Body)
					continue
				}
				var d standInDecision
				json.Unmarshal(w.Body.Bytes(), &d)
				answers[i] = answer{key, d}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if br.State() != breaker.Open {
		t.Fatalf("breaker %v with the core down", br.State())
	}
	var approved, declined []string
	for _, a := range answers {
		if !a.d.StandIn {
			t.Fatalf("%s not marked as a stand-in decision: %+v", a.key, a.d)
		}
		if a.d.Approved {
			approved = append(approved, a.key)
		} else {
			declined = append(declined, a.key)
		}
	}
	if len(approved) == 0 || len(declined) == 0 {
		t.Fatalf("%d approved, %d declined: the limits were not exercised", len(approved), len(declined))
	}
	acked = append(acked, approved...)
	t.Logf("core down: %d stand-in approvals, %d declines", len(approved), len(declined))

	// A repeat gets the same decision, from the journal.
	for _, a := range answers[:10] {
		path := estate.PathCardAuthorize
		if a.key == "down-00" || a.key == "down-05" {
			path = estate.PathATMWithdraw
		}
		i := 0
		fmt.Sscanf(a.key, "down-%d", &i)
		d := readDecision(t, pay(route, path, a.key, cards[i%len(cards)], int64(10_00+(i%7)*40_00)))
		if d.Approved != a.d.Approved || d.Reason != a.d.Reason || !d.Replayed {
			t.Fatalf("repeat of %s: %+v, first %+v", a.key, d, a.d)
		}
	}

	// Before the replay the ledger has none of the approvals.
	rep, err := est.Check(t.Context(), approved)
	if err != nil || len(rep.Missing) != len(approved) {
		t.Fatalf("before replay: %d of %d approvals missing (%v)", len(rep.Missing), len(approved), err)
	}

	// The core comes back; the replayer drains the journal through the
	// same breaker.
	if err := est.Core().SetFaults(core.Faults{}); err != nil {
		t.Fatal(err)
	}
	rp, err := journal.NewReplayer(journal.ReplayerConfig{Store: j, Upstream: "estate",
		Handler: br.Middleware(breaker.Route{})(up), Rate: 500, Workers: 4, Poll: 20 * time.Millisecond,
		OnComplete: si.Settle, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- rp.Run(ctx) }()
	waitFor(t, "the journal to drain", func() bool {
		c, err := j.Counts(t.Context())
		return err == nil && c.Pending[journal.KindStandIn] == 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	rep, err = est.Check(t.Context(), acked)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Fatalf("ledger after replay: %+v", rep)
	}
	if n := (rep.Transfers + rep.Declined) - (before.Transfers + before.Declined); n != len(approved) {
		t.Fatalf("the ledger gained %d transfers for %d stand-in approvals", n, len(approved))
	}
	for _, k := range approved {
		e, err := j.Get(t.Context(), k)
		if err != nil {
			t.Fatal(err)
		}
		var res estate.Decision
		if e.State != journal.Done || e.Result.Status != http.StatusOK || json.Unmarshal(e.Result.Body, &res) != nil || res.Replayed {
			t.Fatalf("%s after replay: %+v %s", k, e, e.Result.Body)
		}
	}
	if st := si.Stats(); st.Exposure != 0 || st.Open != 0 {
		t.Fatalf("stand-in still exposed after the replay: %+v", st)
	}
	if br.State() != breaker.Closed {
		t.Fatalf("breaker %v after recovery", br.State())
	}

	// Retries after recovery are answered from the journal and move nothing.
	for _, k := range approved[:3] {
		i := 0
		fmt.Sscanf(k, "down-%d", &i)
		path := estate.PathCardAuthorize
		if i%5 == 0 {
			path = estate.PathATMWithdraw
		}
		if d := readDecision(t, pay(route, path, k, cards[i%len(cards)], int64(10_00+(i%7)*40_00))); !d.Approved || !d.StandIn || !d.Replayed {
			t.Fatalf("retry of %s after recovery: %+v", k, d)
		}
	}
	again, err := est.Check(t.Context(), acked)
	if err != nil || !again.OK || again.Transfers != rep.Transfers || again.Declined != rep.Declined {
		t.Fatalf("retries moved money: %+v then %+v (%v)", rep, again, err)
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"rempart_journal_pending", map[string]string{"kind": "standin"}, 0},
		{"rempart_journal_replayed_total", map[string]string{"kind": "standin", "outcome": "applied"}, float64(len(approved))},
		{"rempart_breaker_state", map[string]string{"upstream": "estate"}, 0},
	} {
		if got := metricValue(t, reg, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

// TestOutboxWithTheEstate: instant transfers accepted while the core is down
// are executed once by the replay, and the status URL then shows the core's
// result; the ledger holds each accepted key once.
func TestOutboxWithTheEstate(t *testing.T) {
	est := newEstate(t)
	j, _ := openJournal(t)
	br := newBreaker(t, breaker.Config{Upstream: "estate", MinCalls: 3, Delay: 50 * time.Millisecond, Probes: 1}, nil)
	ob, err := breaker.NewOutbox(breaker.OutboxConfig{Journal: j, Upstream: "estate"})
	if err != nil {
		t.Fatal(err)
	}
	route := br.Middleware(breaker.Route{Fallback: ob})(est.Handler())
	status := ob.StatusHandler()
	if err := est.Core().SetFaults(core.Faults{Down: true}); err != nil {
		t.Fatal(err)
	}
	send := func(key string, amount int64) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", estate.PathInstantTransfer, strings.NewReader(
			fmt.Sprintf(`{"from":"A-bruno","to":"A-alice","amount":%d,"reference":"cadeau"}`, amount)))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Idempotency-Key", key)
		w := httptest.NewRecorder()
		route.ServeHTTP(w, r)
		return w
	}
	// Bruno has 150 EUR: the first two fit, the third is declined by the core.
	keys := []string{"wero-1", "wero-2", "wero-3"}
	for i, k := range keys {
		if w := send(k, []int64{50_00, 60_00, 90_00}[i]); w.Code != http.StatusAccepted ||
			w.Header().Get("Location") != "/v1/transfers/outbox/"+k {
			t.Fatalf("%s with the core down: %d %v %s", k, w.Code, w.Header(), w.Body)
		}
	}
	if err := est.Core().SetFaults(core.Faults{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(80 * time.Millisecond) // past the breaker's delay
	rp, err := journal.NewReplayer(journal.ReplayerConfig{Store: j, Upstream: "estate", Rate: 1000, Workers: 1,
		Handler: br.Middleware(breaker.Route{})(est.Handler())})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := rp.Drain(t.Context()); err != nil || p.Replayed != 3 {
		t.Fatalf("replay %+v %v", p, err)
	}
	for i, want := range []string{breaker.OutboxExecuted, breaker.OutboxExecuted, breaker.OutboxDeclined} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/v1/transfers/outbox/"+keys[i], nil)
		status.ServeHTTP(w, r)
		var st breaker.OutboxStatus
		var res estate.TransferResult
		if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || st.Status != want ||
			json.Unmarshal(st.Result, &res) != nil || res.Status != want || res.Replayed {
			t.Fatalf("%s: %d %s, want %s", keys[i], w.Code, w.Body, want)
		}
	}
	if w := send("wero-1", 50_00); w.Code != http.StatusOK {
		t.Fatalf("retry after execution: %d %s", w.Code, w.Body)
	}
	rep, err := est.Check(t.Context(), keys)
	if err != nil || !rep.OK || rep.Transfers != 2 || rep.Declined != 1 {
		t.Fatalf("ledger %+v %v", rep, err)
	}
}
