package ratelimit

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"
)

// gcraScript is gcra in Lua, on microseconds from the Redis server's clock so
// gateways with skewed clocks share one timeline. The TAT is written with
// %.0f because Lua's default number format keeps only 14 digits.
var gcraScript = redis.NewScript(`
local emission = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tolerance = emission * burst
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local cost = n
if n == 0 then cost = 1 end
local new_tat = tat + emission * cost
local diff = now - (new_tat - tolerance)
if diff < 0 then
  local retry = -diff
  if emission * cost > tolerance then retry = -1 end
  return {0, 0, retry, tat - now}
end
if n == 0 then
  return {1, math.floor(diff / emission), 0, tat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor(diff / emission), 0, new_tat - now}
`)

// Redis is a GCRA limiter shared by every gateway through one Redis server.
type Redis struct {
	client redis.Scripter
	prefix string
}

var _ Limiter = (*Redis)(nil)

// NewRedis returns a limiter storing each key's state at prefix+key.
func NewRedis(client redis.Scripter, prefix string) *Redis {
	return &Redis{client: client, prefix: prefix}
}

// Allow implements Limiter with one round trip (EVALSHA, EVAL after a script
// cache miss).
func (l *Redis) Allow(ctx context.Context, key string, lim Limit, n int) (Result, error) {
	if !lim.Enabled() || n < 0 {
		return Result{}, ErrInvalidLimit
	}
	emission := math.Max(1e6/lim.Rate, 1)
	v, err := gcraScript.Run(ctx, l.client, []string{l.prefix + key}, emission, lim.Burst, n).Int64Slice()
	if err != nil {
		return Result{}, fmt.Errorf("redis gcra %s: %w", key, err)
	}
	if len(v) != 4 {
		return Result{}, fmt.Errorf("redis gcra %s: reply of %d values", key, len(v))
	}
	r := Result{Allowed: v[0] == 1, Remaining: int(v[1]), ResetAfter: time.Duration(v[3]) * time.Microsecond}
	if v[2] < 0 {
		r.RetryAfter = -1
	} else {
		r.RetryAfter = time.Duration(v[2]) * time.Microsecond
	}
	return r, nil
}
