package journal_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/journal"
)

func TestPurgerKeepsRetention(t *testing.T) {
	s := newStore(t)
	now := time.Date(2025, 12, 22, 12, 0, 0, 0, time.UTC)
	for _, e := range []struct {
		key       string
		completed time.Duration // before now; 0: still pending
	}{
		{"pending-for-days", 0},
		{"done-25h-ago", 25 * time.Hour},
		{"done-23h-ago", 23 * time.Hour},
	} {
		entry := journal.Entry{Key: e.key, Kind: journal.KindStandIn, Upstream: "estate",
			Request: journal.Request{Method: "POST", Path: "/v1/cards/authorize"}, Created: now.Add(-72 * time.Hour)}
		if e.completed != 0 {
			entry.State, entry.Completed = journal.Done, now.Add(-e.completed)
		}
		if _, err := s.Append(t.Context(), entry); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	p, err := journal.NewPurger(journal.PurgerConfig{Store: s, Retention: 24 * time.Hour,
		Now: func() time.Time { return now }, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := p.Purge(t.Context()); n != 1 || err != nil {
		t.Fatalf("Purge = %d, %v; want the entry done 25h ago purged", n, err)
	}
	left, err := s.List(t.Context(), journal.Filter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join([]string{left[0].Key, left[1].Key}, " "); len(left) != 2 || got != "pending-for-days done-23h-ago" {
		t.Fatalf("left %+v", left)
	}
	if got := metricValue(t, reg, "rempart_journal_purged_total", nil); got != 1 {
		t.Fatalf("rempart_journal_purged_total = %v, want 1", got)
	}
}

func TestNewPurgerNeedsRetention(t *testing.T) {
	s := newStore(t)
	for _, r := range []time.Duration{0, -time.Hour} {
		if _, err := journal.NewPurger(journal.PurgerConfig{Store: s, Retention: r}); !errors.Is(err, journal.ErrInvalid) {
			t.Errorf("retention %v: err = %v, want ErrInvalid", r, err)
		}
	}
}

func TestPurgerRunPurgesInTheBackground(t *testing.T) {
	s := newStore(t)
	p, err := journal.NewPurger(journal.PurgerConfig{Store: s, Retention: time.Hour, Every: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() { p.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()
	// Appended after Run started: found by a later tick, not the first pass.
	old := time.Now().Add(-2 * time.Hour)
	if _, err := s.Append(t.Context(), journal.Entry{Key: "old", Kind: journal.KindOutbox, Upstream: "estate",
		Request: journal.Request{Method: "POST", Path: "/v1/transfers/instant"}, State: journal.Done,
		Created: old, Completed: old}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := s.Get(t.Context(), "old"); errors.Is(err, journal.ErrNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the entry done two hours ago is still there after 10s of purging every 5ms")
		}
	}
}
