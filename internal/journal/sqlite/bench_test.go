package sqlite_test

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/journal"
	"github.com/rempart/rempart/internal/journal/sqlite"
)

// BenchmarkAppendParallel measures fsynced appends from concurrent callers,
// the stand-in's load while the core is down: group commit lets them share
// a sync, so the rate grows with callers instead of staying at one sync per
// decision.
func BenchmarkAppendParallel(b *testing.B) {
	s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "journal.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var n atomic.Int64
	body := []byte(`{"card":"4971111111111110","amount":3000,"merchant":"Boulangerie","channel":"shop"}`)
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := journal.Entry{Key: fmt.Sprintf("bench-%d", n.Add(1)), Kind: journal.KindStandIn, Upstream: "estate",
				Request:  journal.Request{Method: "POST", Path: "/v1/cards/authorize", ContentType: "application/json", Body: body},
				Decision: []byte(`{"approved":true}`), Created: time.Now()}
			if _, err := s.Append(b.Context(), e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
