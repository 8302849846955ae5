package ratelimit

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rempart/rempart/internal/scrub/clock"
)

var epoch = time.Date(2025, time.December, 18, 7, 0, 0, 0, time.UTC)

type step struct {
	advance   time.Duration // fake time passing before the call
	n         int
	allowed   bool
	remaining int
	retry     time.Duration // exact for the fake clock, within tolerance for Redis
}

// gcraCases is the GCRA table every backend passes.
var gcraCases = []struct {
	name  string
	limit Limit
	steps []step
}{
	{"burst then deny", Limit{Rate: 10, Burst: 3}, []step{
		{n: 1, allowed: true, remaining: 2},
		{n: 1, allowed: true, remaining: 1},
		{n: 1, allowed: true, remaining: 0},
		{n: 1, allowed: false, retry: 100 * time.Millisecond},
		{advance: 100 * time.Millisecond, n: 1, allowed: true, remaining: 0},
		{advance: 50 * time.Millisecond, n: 1, allowed: false, retry: 50 * time.Millisecond},
		{advance: time.Second, n: 1, allowed: true, remaining: 2},
	}},
	{"cost above burst never fits", Limit{Rate: 1, Burst: 2}, []step{
		{n: 3, allowed: false, retry: -1},
		{n: 2, allowed: true, remaining: 0},
	}},
	{"peek spends nothing", Limit{Rate: 1, Burst: 2}, []step{
		{n: 0, allowed: true, remaining: 1},
		{n: 0, allowed: true, remaining: 1},
		{n: 2, allowed: true, remaining: 0},
		{n: 0, allowed: false, retry: time.Second},
	}},
	{"slow rate", Limit{Rate: 0.1, Burst: 1}, []step{
		{n: 1, allowed: true, remaining: 0},
		{n: 1, allowed: false, retry: 10 * time.Second},
		{advance: 9 * time.Second, n: 1, allowed: false, retry: time.Second},
		{advance: time.Second, n: 1, allowed: true, remaining: 0},
	}},
}

// runGCRA plays the table against a backend; advance is nil for backends on
// a real clock, which then skip the steps that need time to pass.
func runGCRA(t *testing.T, newLimiter func(t *testing.T) Limiter, advance func(time.Duration)) {
	for _, tc := range gcraCases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimiter(t)
			key := fmt.Sprintf("t:%s:%d", tc.name, time.Now().UnixNano())
			for i, s := range tc.steps {
				if s.advance > 0 {
					if advance == nil {
						return // the rest of the table needs a fake clock
					}
					advance(s.advance)
				}
				r, err := l.Allow(context.Background(), key, tc.limit, s.n)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if r.Allowed != s.allowed {
					t.Fatalf("step %d: allowed = %v, want %v (%+v)", i, r.Allowed, s.allowed, r)
				}
				if s.allowed && r.Remaining != s.remaining {
					t.Fatalf("step %d: remaining = %d, want %d", i, r.Remaining, s.remaining)
				}
				if !s.allowed {
					tol := time.Duration(0)
					if advance == nil {
						tol = 50 * time.Millisecond // real time passes between calls
					}
					if d := s.retry - r.RetryAfter; d < 0 || d > tol {
						t.Fatalf("step %d: retry after %v, want %v", i, r.RetryAfter, s.retry)
					}
				}
			}
		})
	}
}

func TestLocalGCRA(t *testing.T) {
	clk := clock.NewFake(epoch)
	runGCRA(t, func(*testing.T) Limiter { return NewLocal(clk, LocalOptions{}) }, clk.Advance)
}

func TestLocalBounded(t *testing.T) {
	clk := clock.NewFake(epoch)
	l := NewLocal(clk, LocalOptions{MaxKeys: 256, Shards: 4})
	for i := range 10000 {
		if _, err := l.Allow(context.Background(), fmt.Sprint("k", i), Limit{Rate: 1, Burst: 1}, 1); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.Len(); n > 256 {
		t.Fatalf("local limiter holds %d keys, bound is 256", n)
	}
}

func TestLocalRefusesInvalid(t *testing.T) {
	l := NewLocal(clock.NewFake(epoch), LocalOptions{})
	for _, c := range []struct {
		l Limit
		n int
	}{{Limit{}, 1}, {Limit{Rate: 1}, 1}, {Limit{Rate: 1, Burst: 1}, -1}} {
		if _, err := l.Allow(context.Background(), "k", c.l, c.n); err == nil {
			t.Errorf("Allow(%+v, %d) accepted", c.l, c.n)
		}
	}
}

func redisClient(t testing.TB) *redis.Client {
	t.Helper()
	url := os.Getenv("REDIS_URL")
	if url == "" {
		t.Skip("REDIS_URL not set: skipping tests against a real Redis")
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("REDIS_URL: %v", err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s: %v", url, err)
	}
	return c
}

func TestRedisGCRA(t *testing.T) {
	c := redisClient(t)
	runGCRA(t, func(*testing.T) Limiter { return NewRedis(c, "rempart-test:") }, nil)
}

func TestSharedAcrossGateways(t *testing.T) {
	c := redisClient(t)
	clk := clock.System{}
	// Two gateways, one Redis: together they get one budget.
	a := NewShared(NewRedis(c, "rempart-test:"), NewLocal(clk, LocalOptions{}), clk, SharedOptions{})
	b := NewShared(NewRedis(c, "rempart-test:"), NewLocal(clk, LocalOptions{}), clk, SharedOptions{})
	key := fmt.Sprint("shared:", time.Now().UnixNano())
	lim := Limit{Rate: 0.1, Burst: 10}
	allowed := 0
	for i := range 30 {
		l := a
		if i%2 == 1 {
			l = b
		}
		r, err := l.Allow(context.Background(), key, lim, 1)
		if err != nil {
			t.Fatal(err)
		}
		if r.Allowed {
			allowed++
		}
	}
	if allowed != 10 {
		t.Fatalf("two gateways allowed %d events, want the shared burst of 10", allowed)
	}
	// Denials are now answered from each gateway's over-limit cache.
	before := a.Stats().CacheHits
	for range 5 {
		if r, _ := a.Allow(context.Background(), key, lim, 1); r.Allowed {
			t.Fatal("allowed past the shared limit")
		}
	}
	if a.Stats().CacheHits-before != 5 {
		t.Fatalf("cache hits = %d, want 5", a.Stats().CacheHits-before)
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestSharedFallsBackToLocal(t *testing.T) {
	clk := clock.NewFake(epoch)
	c := redis.NewClient(&redis.Options{Addr: closedAddr(t), MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer c.Close()
	s := NewShared(NewRedis(c, "x:"), NewLocal(clk, LocalOptions{}), clk, SharedOptions{})
	lim := Limit{Rate: 1, Burst: 2}
	var got []bool
	for range 3 {
		r, err := s.Allow(context.Background(), "k", lim, 1)
		if err != nil {
			t.Fatalf("Shared returned an error instead of falling back: %v", err)
		}
		got = append(got, r.Allowed)
	}
	if fmt.Sprint(got) != "[true true false]" {
		t.Fatalf("decisions with Redis down = %v, want the local limit [true true false]", got)
	}
	st := s.Stats()
	if st.RemoteErrors != 1 || st.LocalDecisions != 3 || s.Healthy() {
		t.Fatalf("stats %+v healthy %v: want one remote error then local decisions during backoff", st, s.Healthy())
	}
}

func TestSharedRecovers(t *testing.T) {
	c := redisClient(t)
	clk := clock.NewFake(time.Now())
	failing := &flaky{Limiter: NewRedis(c, "rempart-test:")}
	s := NewShared(failing, NewLocal(clk, LocalOptions{}), clk, SharedOptions{Backoff: time.Second})
	failing.fail(true)
	lim := Limit{Rate: 100, Burst: 100}
	key := fmt.Sprint("recover:", time.Now().UnixNano())
	s.Allow(context.Background(), key, lim, 1)
	if s.Healthy() {
		t.Fatal("healthy while the remote fails")
	}
	failing.fail(false)
	clk.Advance(2 * time.Second)
	if _, err := s.Allow(context.Background(), key, lim, 1); err != nil || !s.Healthy() {
		t.Fatalf("not healthy after the remote came back: %v", err)
	}
}

type flaky struct {
	Limiter
	mu   sync.Mutex
	down bool
}

func (f *flaky) fail(v bool) { f.mu.Lock(); f.down = v; f.mu.Unlock() }

func (f *flaky) Allow(ctx context.Context, key string, l Limit, n int) (Result, error) {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		return Result{}, fmt.Errorf("injected failure")
	}
	return f.Limiter.Allow(ctx, key, l, n)
}

func BenchmarkLocalDeny(b *testing.B) {
	l := NewLocal(clock.System{}, LocalOptions{})
	lim := Limit{Rate: 1, Burst: 1}
	l.Allow(context.Background(), "k", lim, 1)
	b.ReportAllocs()
	for b.Loop() {
		l.Allow(context.Background(), "k", lim, 1)
	}
}

func BenchmarkRedisAllow(b *testing.B) {
	c := redisClient(b)
	l := NewRedis(c, "rempart-bench:")
	lim := Limit{Rate: 1e6, Burst: 1e6}
	for b.Loop() {
		if _, err := l.Allow(context.Background(), "k", lim, 1); err != nil {
			b.Fatal(err)
		}
	}
}
