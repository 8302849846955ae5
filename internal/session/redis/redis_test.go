package redis

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rempart/rempart/internal/session"
	"github.com/rempart/rempart/internal/session/sessiontest"
)

// redisURL returns REDIS_URL or skips: these tests need a real server.
func redisURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("REDIS_URL")
	if url == "" {
		t.Skip("REDIS_URL not set: skipping Redis session tests")
	}
	return url
}

// newTestStore opens a store under a key prefix of its own and deletes its
// keys when the test ends.
func newTestStore(t testing.TB, url string, opts Options) *Store {
	t.Helper()
	opts.Prefix = fmt.Sprintf("rempart-test:%s:%s:", t.Name(), rand.Text()[:8])
	s, err := Open(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		// The store's own client may be closed by now.
		o, _ := goredis.ParseURL(url)
		c := goredis.NewClient(o)
		defer c.Close()
		ctx := context.Background()
		it := c.Scan(ctx, 0, opts.Prefix+"*", 1000).Iterator()
		for it.Next(ctx) {
			c.Del(ctx, it.Val())
		}
		if err := it.Err(); err != nil {
			t.Errorf("clean up test keys: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	url := redisURL(t)
	caps := sessiontest.Capabilities{RealTime: true}
	sessiontest.RunTestsWith(t, caps, func(t *testing.T, _ *sessiontest.FakeClock) session.Store {
		// The contract, not the timing (stall_test.go): the machine is
		// shared, and -race slows it.
		return newTestStore(t, url, Options{Timeout: 2 * time.Second})
	})
}

// TestEveryKeyExpires checks nothing the store writes can outlive the
// sessions: each key carries a TTL, the subject set the longest.
func TestEveryKeyExpires(t *testing.T) {
	s := newTestStore(t, redisURL(t), Options{})
	defer s.Close()
	ctx := context.Background()
	now := time.Now()
	for i, life := range []time.Duration{time.Hour, 3 * time.Hour, 2 * time.Hour} {
		in := session.Session{ID: fmt.Sprint(i), Subject: "c", CreatedAt: now, ExpiresAt: now.Add(life), IdleTimeout: 20 * time.Minute}
		if err := s.Create(ctx, in); err != nil {
			t.Fatal(err)
		}
		if ttl := s.c.PTTL(ctx, s.sessionKey(in.ID)).Val(); ttl <= 0 || ttl > 20*time.Minute {
			t.Fatalf("session key ttl %v, want the idle timeout", ttl)
		}
	}
	if ttl := s.c.PTTL(ctx, s.subjectKey("c")).Val(); ttl < 3*time.Hour-time.Minute || ttl > 3*time.Hour {
		t.Fatalf("subject set ttl %v, want the longest expiry, 3h", ttl)
	}
}

func BenchmarkCreate(b *testing.B) {
	sessiontest.BenchCreate(b, newTestStore(b, redisURL(b), Options{}))
}

func BenchmarkGet(b *testing.B) {
	sessiontest.BenchGet(b, newTestStore(b, redisURL(b), Options{}), 10_000)
}

func BenchmarkTouch(b *testing.B) {
	sessiontest.BenchTouch(b, newTestStore(b, redisURL(b), Options{}), 10_000)
}
