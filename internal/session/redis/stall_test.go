package redis

import (
	"context"
	"errors"
	"net/url"
	"os"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rempart/rempart/internal/session"
	"github.com/rempart/rempart/internal/stall"
)

// stalledURL is url through a proxy of the test's own, which the test stalls.
func stalledURL(t *testing.T, raw string) (string, *stall.Proxy) {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	px := stall.New(t, u.Host)
	u.Host = px.Addr()
	return u.String(), px
}

// A Redis that accepts and never answers (SIGSTOPped) costs a call the
// store's Timeout, or the caller's shorter deadline, then an error that says
// so: not go-redis's 3 s read timeout retried three times.
func TestStalledRedisFailsFast(t *testing.T) {
	u, px := stalledURL(t, redisURL(t))
	s := newTestStore(t, u, Options{})
	now := time.Now()
	in := session.Session{ID: "stalled", Subject: "alice", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.Create(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	slow := newTestStore(t, u, Options{Timeout: 5 * time.Second})
	px.Stall()
	t.Cleanup(px.Resume) // before the stores' clean-up, which goes through it

	// The caller has no deadline: the client's own bound fires.
	start := time.Now()
	_, err := s.Get(context.Background(), in.ID)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Get on a stalled Redis: err = %v, want a deadline exceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Get on a stalled Redis took %v; the store's %v bound did not apply", d, DefaultTimeout)
	}

	// A caller's deadline shorter than the client's is the one that fires.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = slow.Get(ctx, in.ID)
	// The connection's deadline is the context's own (the context's timer
	// may fire a moment after it), so the call ends at, not before, it.
	if dl, _ := ctx.Deadline(); err == nil || time.Now().Before(dl) {
		t.Fatalf("Get returned (err = %v) before the caller's deadline", err)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, goredis.ErrPoolTimeout) {
		t.Fatalf("err = %v, want a deadline exceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Get took %v: the caller's deadline did not bound it", d)
	}

	// A new connection (the timed-out ones are dropped) is bounded too.
	if err := s.c.Ping(context.Background()).Err(); err == nil {
		t.Fatal("PING answered through a stalled proxy")
	}

	px.Resume()
	if _, err := s.Get(t.Context(), in.ID); err != nil {
		t.Fatalf("after the stall: %v", err)
	}
}
