package sessiontest

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/session"
)

// BenchSession returns the i-th session of the shape the benchmarks store:
// a 43-byte ID (the length of 32 random bytes in base64url, what the IdP
// issues), two sessions per customer, a 22-byte device cookie ID and the AMR of a
// strong login, no attributes.
func BenchSession(i uint64, now time.Time) session.Session {
	id := strconv.AppendUint([]byte("bench-session-0000000000000000000000000000"), i, 10)
	dev := strconv.AppendUint([]byte("device-000000000000000"), i, 36)
	return session.Session{
		ID:          string(id[len(id)-43:]),
		Subject:     "customer-" + strconv.FormatUint(i/2, 10),
		ClientID:    "bank-app",
		DeviceID:    string(dev[len(dev)-22:]),
		AMR:         []string{"pwd", "otp"},
		CreatedAt:   now,
		ExpiresAt:   now.Add(12 * time.Hour),
		IdleTimeout: 30 * time.Minute,
	}
}

// BenchCreate measures Create from parallel goroutines; each session is new.
func BenchCreate(b *testing.B, s session.Store) {
	ctx := context.Background()
	now := time.Now()
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Create(ctx, BenchSession(next.Add(1), now)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchGet measures Get of n existing sessions from parallel goroutines.
func BenchGet(b *testing.B, s session.Store, n int) {
	benchRead(b, s, n, func(ctx context.Context, id string) error {
		_, err := s.Get(ctx, id)
		return err
	})
}

// BenchTouch measures Touch of n existing sessions from parallel goroutines.
func BenchTouch(b *testing.B, s session.Store, n int) {
	benchRead(b, s, n, func(ctx context.Context, id string) error {
		_, err := s.Touch(ctx, id)
		return err
	})
}

func benchRead(b *testing.B, s session.Store, n int, op func(ctx context.Context, id string) error) {
	ctx := context.Background()
	ids := seed(b, s, n)
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// A stride co-prime with typical n walks every session without a
		// shared random source.
		i := next.Add(7919) * 104729
		for pb.Next() {
			i += 7919
			if err := op(ctx, ids[i%uint64(n)]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// seed creates n sessions for the read benchmarks and returns their IDs.
func seed(b *testing.B, s session.Store, n int) []string {
	now := time.Now()
	ids := make([]string, n)
	for i := range n {
		sess := BenchSession(uint64(i), now)
		if err := s.Create(context.Background(), sess); err != nil {
			b.Fatal(err)
		}
		ids[i] = sess.ID
	}
	return ids
}
