package main

import (
	"os"
	"testing"

	"github.com/rempart/rempart/internal/config"
)

// TestServeWithRedisSessions starts the stack clustered: sessions in Redis and
// revocations over Redis pub/sub, and checks a token still gets a customer in.
func TestServeWithRedisSessions(t *testing.T) {
	url := os.Getenv("REDIS_URL")
	if url == "" {
		t.Skip("REDIS_URL not set: skipping the Redis-backed serve test")
	}
	cfg := config.Default()
	cfg.Estate.Customers = 100_000
	cfg.Sessions.Backend = "redis"
	cfg.Sessions.RedisURL = url
	cfg.Scrub.RedisURL = url
	s := startServe(t, cfg)
	res, b := s.do(t, "POST", s.public+"/oauth/token", "grant_type=client_credentials",
		map[string]string{"Content-Type": "application/x-www-form-urlencoded",
			"Authorization": "Basic cmVtcGFydC1kZW1vLXNlcnZpY2U6cmVtcGFydC1kZW1vLXNlcnZpY2Utc2VjcmV0"})
	if res.StatusCode != 200 {
		t.Fatalf("client credentials: %d %s", res.StatusCode, b)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	decode(t, b, &tok)
	res, b = s.do(t, "GET", s.public+"/v1/accounts/A-alice/balance", "", map[string]string{"Authorization": "Bearer " + tok.AccessToken})
	if res.StatusCode != 200 {
		t.Fatalf("balance with a token: %d %s", res.StatusCode, b)
	}
}
