package main

import (
	"os"
	"testing"

	"github.com/rempart/rempart/internal/config"
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
