package memory

import (
	"context"
	"testing"

	"github.com/rempart/rempart/internal/session"
	"github.com/rempart/rempart/internal/session/sessiontest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	sessiontest.RunTests(t, func(t *testing.T, clk *sessiontest.FakeClock) session.Store {
		return mustOpen(t, Options{Clock: clk, PruneEvery: -1})
	})
}

func TestConformanceDurable(t *testing.T) {
	t.Parallel()
	sessiontest.RunTests(t, func(t *testing.T, clk *sessiontest.FakeClock) session.Store {
		return mustOpen(t, Options{Clock: clk, Dir: t.TempDir(), PruneEvery: -1})
	})
}

func mustOpen(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}
