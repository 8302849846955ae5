package client

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBackoffCeiling(t *testing.T) {
	tests := []struct {
		name      string
		base, cap time.Duration
		n         int
		want      time.Duration
	}{
		{"first retry", 100 * time.Millisecond, time.Second, 0, 100 * time.Millisecond},
		{"second doubles", 100 * time.Millisecond, time.Second, 1, 200 * time.Millisecond},
		{"fourth", 100 * time.Millisecond, time.Second, 3, 800 * time.Millisecond},
		{"capped", 100 * time.Millisecond, time.Second, 4, time.Second},
		{"far past the cap", 100 * time.Millisecond, time.Second, 1000, time.Second},
		{"cap below base", time.Second, time.Millisecond, 3, time.Second},
		{"no base", 0, time.Second, 3, 0},
		{"huge cap does not overflow", time.Second, 1<<63 - 1, 80, 1<<63 - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Backoff{Base: tt.base, Cap: tt.cap}).Ceiling(tt.n); got != tt.want {
				t.Errorf("Ceiling(%d) = %v, want %v", tt.n, got, tt.want)
			}
		})
	}
}

// TestBackoffFullJitter checks that delays are spread uniformly over the
// whole of [0, ceiling): full jitter, not "ceiling/2 plus a little".
func TestBackoffFullJitter(t *testing.T) {
	for _, n := range []int{0, 2, 10} {
		b := Backoff{Base: 100 * time.Millisecond, Cap: 5 * time.Second, rand: lockedRand(rand.NewPCG(1, uint64(n)))}
		ceiling := b.Ceiling(n)
		const draws, bins = 100_000, 10
		var hist [bins]int
		var sum time.Duration
		for range draws {
			d := b.Delay(n)
			if d < 0 || d >= ceiling {
				t.Fatalf("retry %d: delay %v outside [0, %v)", n, d, ceiling)
			}
			hist[int(d*bins/ceiling)]++
			sum += d
		}
		// Each bin expects 10,000 draws with a standard deviation of about
		// 95: 5 % is over five of them, and the seed is fixed.
		for i, got := range hist {
			if got < draws/bins*95/100 || got > draws/bins*105/100 {
				t.Errorf("retry %d: bin %d holds %d draws, want about %d (%v)", n, i, got, draws/bins, hist)
			}
		}
		if mean := sum / draws; mean < ceiling*48/100 || mean > ceiling*52/100 {
			t.Errorf("retry %d: mean delay %v, want about half of %v", n, mean, ceiling)
		}
	}
}
