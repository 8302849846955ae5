package journal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/journal"
)

// answering is an upstream that answers every request the same way.
type answering struct {
	status int
	body   string
}

func (a answering) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	w.Write([]byte(a.body))
}

// verdict reads answers in the estate's shape, as cmd/rempart's does.
func verdict(e journal.Entry) journal.Verdict {
	var req struct{ Card string }
	json.Unmarshal(e.Request.Body, &req)
	var d struct {
		Approved bool
		Reason   string
	}
	ok := e.Result.Status < 300 && json.Unmarshal(e.Result.Body, &d) == nil
	return journal.Verdict{Declined: !ok || !d.Approved, Route: "card-authorize", Reason: d.Reason,
		CardLast4: req.Card[len(req.Card)-4:]}
}

// syncBuffer is a log sink safe for the replay workers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestReplayCountsStandInsTheCoreDeclines(t *testing.T) {
	for _, tc := range []struct {
		name     string
		kind     string
		core     answering
		verdict  bool // configure a Verdict
		declined float64
	}{
		{"insufficient funds", journal.KindStandIn, answering{200, `{"approved":false,"reason":"insufficient_funds"}`}, true, 1},
		{"approved", journal.KindStandIn, answering{200, `{"approved":true}`}, true, 0},
		{"refused as unknown", journal.KindStandIn, answering{404, `{"type":"unknown-account"}`}, true, 1},
		{"an outbox transfer is not a stand-in", journal.KindOutbox, answering{200, `{"approved":false}`}, true, 0},
		{"no verdict configured", journal.KindStandIn, answering{200, `{"approved":false}`}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			pending(t, s, "declined-key", tc.kind)
			reg := prometheus.NewRegistry()
			var logs syncBuffer
			cfg := journal.ReplayerConfig{Store: s, Upstream: "estate", Handler: tc.core, Registerer: reg,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			if tc.verdict {
				cfg.Verdict = verdict
			}
			r := replayer(t, cfg)
			if p, err := r.Drain(t.Context()); err != nil || p.Replayed != 1 {
				t.Fatalf("Drain = %+v, %v; want the entry replayed once", p, err)
			}
			got := declinedCount(t, reg)
			if got != tc.declined {
				t.Fatalf("rempart_standin_declined_on_replay_total = %v, want %v", got, tc.declined)
			}
			out := logs.String()
			if strings.Contains(out, "4971111111111110") {
				t.Fatalf("the card number was logged: %s", out)
			}
			warned := strings.Contains(out, "level=WARN") && strings.Contains(out, "declined a stand-in") &&
				strings.Contains(out, "key=declined-key") && strings.Contains(out, "card_last4=1110")
			if warned != (tc.declined == 1) {
				t.Fatalf("WARN with key and last four digits = %v, want %v: %s", warned, tc.declined == 1, out)
			}
		})
	}
}

// declinedCount sums rempart_standin_declined_on_replay_total{route="card-authorize"};
// a counter never incremented has no series yet.
func declinedCount(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "rempart_standin_declined_on_replay_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if l := m.GetLabel(); len(l) == 1 && l[0].GetValue() == "card-authorize" {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestDeclinedCountedOnceAcrossReplayers: a second replayer finding the
// entry already done by the first (two nodes on one PostgreSQL) does not
// count the decline again.
func TestDeclinedCountedOnceAcrossReplayers(t *testing.T) {
	s := newStore(t)
	pending(t, s, "k", journal.KindStandIn)
	if _, err := s.Complete(t.Context(), "k", journal.Result{Status: 200, Body: []byte(`{"approved":false}`)},
		time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	// The entry was claimed pending before the other node completed it.
	e, err := s.Get(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	late := &lateStore{Store: s, stale: e}
	r := replayer(t, journal.ReplayerConfig{Store: late, Upstream: "estate", Registerer: reg, Verdict: verdict,
		Handler: answering{200, `{"approved":false,"replayed":true}`}})
	if p, err := r.Drain(t.Context()); err != nil || p.Replayed != 1 {
		t.Fatalf("Drain = %+v, %v", p, err)
	}
	if got := declinedCount(t, reg); got != 0 {
		t.Fatalf("declined counted %v times by the second replayer, want 0", got)
	}
}

// lateStore claims one entry as pending although it is already done, as
// when another node's lease ran out while it was replaying it.
type lateStore struct {
	journal.Store
	stale  journal.Entry
	listed bool
}

func (l *lateStore) Claim(ctx context.Context, f journal.Filter, lease journal.Lease) ([]journal.Entry, error) {
	if l.listed {
		return l.Store.Claim(ctx, f, lease)
	}
	l.listed = true
	e := l.stale
	e.State, e.Completed, e.Result = journal.Pending, time.Time{}, journal.Result{}
	return []journal.Entry{e}, nil
}
