package memory

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/session"
)

// TestPruneOnTime checks that dead sessions leave memory when their
// deadline passes, without anyone asking for them.
func TestPruneOnTime(t *testing.T) {
	t.Parallel()
	clk := incidentClock()
	s := mustOpen(t, Options{Clock: clk, PruneEvery: -1})
	defer s.Close()
	start := clk.Now()
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 5000
	deadlines := make([]time.Time, n)
	for i := range n {
		sess := session.Session{
			ID:        fmt.Sprintf("s-%d", i),
			Subject:   fmt.Sprintf("c-%d", i%1500),
			CreatedAt: start,
			ExpiresAt: start.Add(time.Duration(1+rng.IntN(120)) * time.Minute),
		}
		if i%2 == 0 {
			sess.IdleTimeout = time.Duration(1+rng.IntN(60)) * time.Minute
		}
		if err := s.Create(ctx, sess); err != nil {
			t.Fatal(err)
		}
		deadlines[i] = sess.Deadline()
	}
	// Touch some idle-limited sessions so their heap keys go stale.
	clk.Advance(30 * time.Second)
	for i := 0; i < n; i += 4 {
		if got, err := s.Touch(ctx, fmt.Sprintf("s-%d", i)); err == nil {
			deadlines[i] = got.Deadline()
		}
	}
	for step := range 130 {
		now := start.Add(time.Duration(step) * time.Minute)
		clk.Set(now)
		s.Prune(now)
		live := 0
		for _, d := range deadlines {
			// Pruning rounds deadlines up to the second.
			if now.Unix() < int64(ceilSec(d.UnixNano())) {
				live++
			}
		}
		if got := s.Len(); got != live {
			t.Fatalf("after %d min: %d sessions in memory, want %d", step, got, live)
		}
	}
	for i := range s.subjects {
		if n := s.subjects[i].heads.n; n != 0 {
			t.Fatalf("subject shard %d still indexes %d subjects", i, n)
		}
		if n := len(s.ids[i].heap); n != 0 {
			t.Fatalf("id shard %d heap holds %d entries", i, n)
		}
	}
}

// TestPruneInBackground checks the loop prunes on its own.
func TestPruneInBackground(t *testing.T) {
	clk := incidentClock()
	s := mustOpen(t, Options{Clock: clk, PruneEvery: 5 * time.Millisecond})
	defer s.Close()
	now := clk.Now()
	for i := range 100 {
		sess := session.Session{ID: fmt.Sprint(i), Subject: "c", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
		if err := s.Create(ctx, sess); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(time.Minute + time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for s.Len() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d dead sessions still in memory", s.Len())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
