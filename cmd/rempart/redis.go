package main

import (
	"time"

	goredis "github.com/redis/go-redis/v9"

	sessionredis "github.com/rempart/rempart/internal/session/redis"
)

// Each Redis client's own bound on a call (dial, pool wait, write, read),
// sized for the route it serves; a caller's shorter deadline wins, since
// every client runs with ContextTimeoutEnabled. go-redis's defaults (5 s
// dial, 3 s read, retried three times) made a SIGSTOPped Redis cost a card
// payment 10 s and a refresh 15 s (issue 13).
const (
	// scrubRedisTimeout: the shared rate limit is on every public request,
	// and falls back to the node's local limit (ratelimit.Shared's own
	// 50 ms deadline).
	scrubRedisTimeout = 50 * time.Millisecond
	// revocationRedisTimeout: revocations are published off the request
	// path (pending, flushed in the background and retried), so they may
	// wait longer than a request would.
	revocationRedisTimeout = time.Second
)

// newRedis returns a client on url that fails fast (see
// sessionredis.ClientOptions).
func newRedis(url string, timeout time.Duration) (*goredis.Client, error) {
	o, err := sessionredis.ClientOptions(url, timeout)
	if err != nil {
		return nil, err
	}
	return goredis.NewClient(o), nil
}
