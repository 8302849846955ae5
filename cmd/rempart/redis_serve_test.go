package main

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/config"
	sessionredis "github.com/rempart/rempart/internal/session/redis"
	"github.com/rempart/rempart/internal/stall"
)

// TestServeWithRedisSessions starts the stack clustered: sessions in Redis and
// revocations over Redis pub/sub, and checks a customer logs in and reads their
// own account, and only theirs.
func TestServeWithRedisSessions(t *testing.T) {
	url := os.Getenv("REDIS_URL")
	if url == "" {
		t.Skip("REDIS_URL not set: skipping the Redis-backed serve test")
	}
	cfg := config.Default()
	cfg.OpsTokenSMS = true // the test reads login codes from the outbox
	cfg.Estate.Customers = 100_000
	cfg.Sessions.Backend = "redis"
	cfg.Sessions.RedisURL = url
	cfg.Scrub.RedisURL = url
	s := startServe(t, cfg)
	// A real login (sessions in Redis), then the customer's own balance; a
	// service token reads no customer data, clustered or not.
	tok := s.login(t, "alice", "alice-demo-2025", "+33 6 12 34 56 78")
	res, b := s.do(t, "GET", s.public+"/v1/accounts/A-alice/balance", "", map[string]string{"Authorization": "Bearer " + tok})
	if res.StatusCode != 200 {
		t.Fatalf("balance with alice's token: %d %s", res.StatusCode, b)
	}
	res, b = s.do(t, "GET", s.public+"/v1/accounts/A-bruno/balance", "", map[string]string{"Authorization": "Bearer " + tok})
	if res.StatusCode != 403 {
		t.Fatalf("bruno's balance with alice's token: %d %s", res.StatusCode, b)
	}
}

// TestServeRedisStalled runs the stack on a Redis behind a proxy of the
// test's own and stalls it, as a SIGSTOPped Redis would: /readyz keeps the
// node in the balancer (200) and says redis is down, and an authenticated
// read (verified at the edge, rate limited through Redis) is still served,
// its shared limit falling back to the node's own.
func TestServeRedisStalled(t *testing.T) {
	raw := os.Getenv("REDIS_URL")
	if raw == "" {
		t.Skip("REDIS_URL not set: skipping the Redis-backed serve test")
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	px := stall.New(t, u.Host)
	u.Host = px.Addr()
	cfg := config.Default()
	cfg.OpsTokenSMS = true // the test reads login codes from the outbox
	cfg.Estate.Customers = 100_000
	cfg.Sessions.Backend = "redis"
	cfg.Sessions.RedisURL = u.String()
	cfg.Scrub.RedisURL = u.String()
	s := startServe(t, cfg)
	t.Cleanup(px.Resume) // before serve stops: its shutdown flushes to Redis
	tok := s.login(t, "alice", "alice-demo-2025", "+33 6 12 34 56 78")

	readyz := func() (int, map[string]any) {
		t.Helper()
		res, b := s.do(t, "GET", s.ops+"/readyz", "", nil)
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("readyz body %q: %v", b, err)
		}
		return res.StatusCode, body
	}
	if code, body := readyz(); code != 200 || body["status"] != "ready" {
		t.Fatalf("readyz before the stall: %d %v", code, body)
	}
	px.Stall()
	code, body := readyz()
	deps, _ := body["dependencies"].(map[string]any)
	redis, _ := deps["redis"].(map[string]any)
	if code != 200 || body["status"] != "degraded" || redis["status"] != "down" {
		t.Fatalf("readyz with Redis stalled: %d %v, want 200 degraded with redis down", code, body)
	}
	start := time.Now()
	res, b := s.do(t, "GET", s.public+"/v1/accounts/A-alice/balance", "", map[string]string{"Authorization": "Bearer " + tok})
	if res.StatusCode != 200 {
		t.Fatalf("balance with Redis stalled: %d %s", res.StatusCode, b)
	}
	// Loose on purpose (a shared machine): go-redis's defaults cost 5 s.
	if d := time.Since(start); d > time.Second {
		t.Fatalf("balance with Redis stalled took %v", d)
	}
}

// TestServeRequiresPersistence: with sessions.require_persistence, serve
// starts on a Redis that keeps every acknowledged write (appendonly yes,
// appendfsync always) and refuses, naming the setting, on any other.
func TestServeRequiresPersistence(t *testing.T) {
	raw := os.Getenv("REDIS_URL")
	if raw == "" {
		t.Skip("REDIS_URL not set: skipping the Redis-backed serve test")
	}
	st, err := sessionredis.Open(t.Context(), raw, sessionredis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.Persistence(t.Context())
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Estate.Customers = 1000
	cfg.Sessions.Backend, cfg.Sessions.RedisURL, cfg.Sessions.RequirePersistence = "redis", raw, true
	cfg.Listen, cfg.OpsListen, cfg.DataDir, cfg.LogLevel = "127.0.0.1:0", "127.0.0.1:0", t.TempDir(), "error"
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	started := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, func(string, string) { started <- struct{}{} }) }()
	select {
	case <-started:
		if p.Loss() != "" {
			t.Fatalf("serve started on a Redis that loses %s", p.Loss())
		}
		cancel()
		<-done
	case err := <-done:
		if p.Loss() == "" {
			t.Fatalf("serve refused a Redis with appendonly and fsync always: %v", err)
		}
		if err == nil || !strings.Contains(err.Error(), "sessions.require_persistence") || !strings.Contains(err.Error(), "appendonly yes") {
			t.Fatalf("serve on a Redis without persistence: %v, want a refusal naming sessions.require_persistence and the fix", err)
		}
	}
}
