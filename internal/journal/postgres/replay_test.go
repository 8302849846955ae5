package postgres_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/journal"
	"github.com/rempart/rempart/internal/journal/postgres"
)

// deliveries is a core that counts how often each Idempotency-Key reaches
// it. Each call takes a little while, as the estate's ledger does, so the
// two replayers below are busy at the same time.
type deliveries struct {
	mu    sync.Mutex
	count map[string]int
}

func (d *deliveries) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	time.Sleep(2 * time.Millisecond)
	d.mu.Lock()
	d.count[r.Header.Get("Idempotency-Key")]++
	d.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// TestTwoReplayersDeliverOnce runs two nodes' replayers, each with its own
// connections, on one journal table: every entry reaches the core once.
func TestTwoReplayersDeliverOnce(t *testing.T) {
	url, schema := newSchema(t)
	const entries = 40
	core := &deliveries{count: map[string]int{}}
	nodes := make([]*journal.Replayer, 2)
	for i := range nodes {
		s, err := postgres.Open(t.Context(), url, postgres.Options{Schema: schema, Key: testKey})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if i == 0 {
			for n := range entries {
				_, err := s.Append(t.Context(), journal.Entry{Key: fmt.Sprintf("k-%02d", n), Kind: journal.KindStandIn,
					Upstream: "estate", Request: journal.Request{Method: "POST", Path: "/v1/cards/authorize"},
					Created: time.Now()})
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		nodes[i], err = journal.NewReplayer(journal.ReplayerConfig{Store: s, Upstream: "estate", Handler: core,
			Rate: 100_000, Workers: 4, Batch: 10})
		if err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for _, rp := range nodes {
		wg.Go(func() {
			if _, err := rp.Drain(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	delivered, twice := 0, 0
	for n := range entries {
		switch c := core.count[fmt.Sprintf("k-%02d", n)]; {
		case c == 0:
			t.Errorf("k-%02d never delivered", n)
		case c > 1:
			twice++
		}
		delivered += core.count[fmt.Sprintf("k-%02d", n)]
	}
	t.Logf("%d entries, %d deliveries (%.2f per entry), %d delivered more than once; node 0 replayed %d, node 1 %d",
		entries, delivered, float64(delivered)/entries, twice, nodes[0].Stats().Replayed, nodes[1].Stats().Replayed)
	if twice > 0 {
		t.Errorf("%d of %d entries delivered more than once", twice, entries)
	}
}
