package breaker

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// The counters live in three kinds of key under the prefix: "exposure" (the
// total not yet confirmed by the core), "open" (a hash: idempotency key ->
// amount, what Settle gives back, so a settle is counted once whichever node
// replays the entry) and "card:<day>:<card id>" (a card's approvals on that
// day, expiring an hour after the day ends). Each call is one script, one
// round trip, atomic on the server: two nodes checking one card at once are
// served one after the other.

var reserveScript = redis.NewScript(`
local amount = tonumber(ARGV[1])
local card = tonumber(redis.call('GET', KEYS[1]) or '0')
if card + amount > tonumber(ARGV[2]) then return 1 end
local exposure = tonumber(redis.call('GET', KEYS[2]) or '0')
if exposure + amount > tonumber(ARGV[3]) then return 2 end
redis.call('INCRBY', KEYS[1], amount)
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
redis.call('INCRBY', KEYS[2], amount)
redis.call('HINCRBY', KEYS[3], ARGV[5], amount)
return 0
`)

// releaseScript gives back no more than the key holds: after a Redis
// restart that lost the counters, a release must not drive them negative
// and so raise the limits.
var releaseScript = redis.NewScript(`
local held = tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0')
local amount = math.min(tonumber(ARGV[1]), held)
if amount <= 0 then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DECRBY', KEYS[1], amount) end
redis.call('DECRBY', KEYS[2], amount)
if held - amount <= 0 then redis.call('HDEL', KEYS[3], ARGV[2]) else redis.call('HINCRBY', KEYS[3], ARGV[2], -amount) end
return amount
`)

var settleScript = redis.NewScript(`
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if held <= 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('DECRBY', KEYS[1], held)
return held
`)

// RedisOptions configure a RedisCounter.
type RedisOptions struct {
	// Prefix starts every key. Default "rempart:standin:".
	Prefix string
	// CardKey keys the HMAC-SHA256 that names a card in its keys, so Redis
	// never holds a card number; every node needs the same one. Without it
	// cards are named by plain SHA-256, which whoever reads Redis could
	// reverse by trying card numbers.
	CardKey []byte
}

// RedisCounter is a Counter shared by every node through one Redis server
// (not Redis Cluster: a decision touches keys of several slots).
type RedisCounter struct {
	client  redis.Scripter
	closer  func() error
	prefix  string
	cardKey []byte
}

var _ Counter = (*RedisCounter)(nil)

// redisTimeout is the client's own bound on a call, matching the stand-in's
// default SharedTimeout: it applies when a caller has no deadline.
const redisTimeout = 50 * time.Millisecond

// OpenRedisCounter connects to the Redis at url (redis:// or rediss://).
// The caller's deadline bounds every call: go-redis would otherwise wait out
// its own 5s read timeout on a Redis that accepts and never answers.
func OpenRedisCounter(url string, o RedisOptions) (*RedisCounter, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("stand-in redis: %w", err)
	}
	opts.ContextTimeoutEnabled = true
	// The client's own bounds, for a caller without a deadline; dialling
	// and the pool wait get more (see session/redis.ClientOptions for why).
	for _, d := range []struct {
		p *time.Duration
		v time.Duration
	}{{&opts.ReadTimeout, redisTimeout}, {&opts.WriteTimeout, redisTimeout}, {&opts.DialTimeout, 5 * redisTimeout}, {&opts.PoolTimeout, 5 * redisTimeout}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
	// A retry would come after the deadline that matters has passed.
	opts.MaxRetries = -1
	opts.DialerRetries = 1
	c := redis.NewClient(opts)
	r := NewRedisCounter(c, o)
	r.closer = c.Close
	return r, nil
}

// NewRedisCounter returns a counter on client, which the caller configures
// and closes.
func NewRedisCounter(client redis.Scripter, o RedisOptions) *RedisCounter {
	if o.Prefix == "" {
		o.Prefix = "rempart:standin:"
	}
	return &RedisCounter{client: client, closer: func() error { return nil }, prefix: o.Prefix, cardKey: o.CardKey}
}

// Warm loads the scripts into Redis, so that the first decisions do not
// each pay a second round trip (EVALSHA refused, then EVAL) within their
// deadline.
func (c *RedisCounter) Warm(ctx context.Context) error {
	for _, s := range []*redis.Script{reserveScript, releaseScript, settleScript} {
		if err := s.Load(ctx, c.client).Err(); err != nil {
			return fmt.Errorf("stand-in redis: load scripts: %w", err)
		}
	}
	return nil
}

// Close closes the connections OpenRedisCounter made.
func (c *RedisCounter) Close() error { return c.closer() }

func (c *RedisCounter) keys(h Hold) []string {
	var sum []byte
	if len(c.cardKey) > 0 {
		m := hmac.New(sha256.New, c.cardKey)
		m.Write([]byte(h.Card))
		sum = m.Sum(nil)
	} else {
		s := sha256.Sum256([]byte(h.Card))
		sum = s[:]
	}
	return []string{c.prefix + "card:" + h.Day.Format("2006-01-02") + ":" + hex.EncodeToString(sum[:16]),
		c.prefix + "exposure", c.prefix + "open"}
}

// Reserve implements Counter.
func (c *RedisCounter) Reserve(ctx context.Context, h Hold, l Limits) (string, error) {
	end := h.Day.AddDate(0, 0, 1)
	v, err := reserveScript.Run(ctx, c.client, c.keys(h), h.Amount, l.PerCardPerDay, l.Exposure,
		end.Add(time.Hour).UnixMilli(), h.Key).Int()
	if err != nil {
		return "", fmt.Errorf("stand-in redis reserve: %w", err)
	}
	switch v {
	case 0:
		return "", nil
	case 1:
		return ReasonDailyLimit, nil
	case 2:
		return ReasonExposureCap, nil
	}
	return "", fmt.Errorf("stand-in redis reserve: unexpected reply %d", v)
}

// Release implements Counter.
func (c *RedisCounter) Release(ctx context.Context, h Hold) error {
	if err := releaseScript.Run(ctx, c.client, c.keys(h), h.Amount, h.Key).Err(); err != nil {
		return fmt.Errorf("stand-in redis release: %w", err)
	}
	return nil
}

// Settle implements Counter.
func (c *RedisCounter) Settle(ctx context.Context, key string) error {
	if err := settleScript.Run(ctx, c.client, []string{c.prefix + "exposure", c.prefix + "open"}, key).Err(); err != nil {
		return fmt.Errorf("stand-in redis settle: %w", err)
	}
	return nil
}
