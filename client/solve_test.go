package client

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/rempart/rempart/internal/scrub/pow"
)

// TestSolveMatchesServer checks the SDK's copy of the solver against the
// scrubbing layer's own: same token, same (smallest) counter.
func TestSolveMatchesServer(t *testing.T) {
	for bits := pow.MinBits; bits <= 16; bits++ {
		c := pow.Challenge{Bits: bits, Expires: 1766395800, Prefix: netip.MustParsePrefix("2001:db8:1::/48")}
		c.Nonce[3] = byte(bits)
		ch := c.String()
		want, err := pow.Solve(context.Background(), ch)
		if err != nil {
			t.Fatal(err)
		}
		got, err := solve(context.Background(), ch, 32)
		if err != nil || got != want {
			t.Fatalf("bits %d: solve = %q, %v; server's solver %q", bits, got, err, want)
		}
		if !pow.Enough(got, bits) {
			t.Fatalf("bits %d: %q is not enough work", bits, got)
		}
	}
}

func TestSolveStopsWithContext(t *testing.T) {
	c := pow.Challenge{Bits: 32, Expires: 1766395800, Prefix: netip.MustParsePrefix("192.0.2.0/24")}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := solve(ctx, c.String(), 32); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}
