package ratelimit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rempart/rempart/internal/scrub/clock"
)

// SharedOptions tune a Shared limiter.
type SharedOptions struct {
	// Timeout bounds one remote call (default 50ms): a limiter that waits
	// longer than the request it protects has become the outage.
	Timeout time.Duration
	// Backoff is how long the remote is left alone after a failure before it
	// is tried again (default 1s); meanwhile every decision is local.
	Backoff time.Duration
	// MaxCached bounds the local cache of over-limit keys (default 1<<18).
	MaxCached int
	// Logger receives one line when the remote is lost and one when it is back.
	Logger *slog.Logger
}

// Shared decides through a remote limiter (Redis) shared by every gateway,
// with two things in front of it, as envoyproxy/ratelimit does: a local cache
// of keys the remote declared over limit (until their retry-after, those are
// refused without a round trip, which is most of an attack's traffic), and a
// local limiter that takes over while the remote fails, so losing Redis
// degrades limits to per-gateway instead of failing open or closed.
type Shared struct {
	remote  Limiter
	local   *Local
	clock   clock.Clock
	timeout time.Duration
	backoff time.Duration
	log     *slog.Logger

	downUntil atomic.Int64 // unix nanos; 0 while the remote is healthy
	cached    overLimitCache

	cacheHits, remoteErrors, localDecisions atomic.Uint64
}

var _ Limiter = (*Shared)(nil)

// NewShared puts the over-limit cache and local fallback in front of remote.
func NewShared(remote Limiter, local *Local, c clock.Clock, o SharedOptions) *Shared {
	if o.Timeout <= 0 {
		o.Timeout = 50 * time.Millisecond
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.MaxCached <= 0 {
		o.MaxCached = 1 << 18
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Shared{remote: remote, local: local, clock: c, timeout: o.Timeout, backoff: o.Backoff,
		log: o.Logger, cached: overLimitCache{max: o.MaxCached, until: map[string]int64{}}}
}

// Allow implements Limiter. It never returns an error: a remote failure is
// answered by the local limiter.
func (s *Shared) Allow(ctx context.Context, key string, l Limit, n int) (Result, error) {
	if !l.Enabled() || n < 0 {
		return Result{}, ErrInvalidLimit
	}
	now := s.clock.Now().UnixNano()
	if until, ok := s.cached.get(key, now); ok {
		s.cacheHits.Add(1)
		return Result{RetryAfter: time.Duration(until - now), ResetAfter: time.Duration(until - now)}, nil
	}
	if d := s.downUntil.Load(); d != 0 && now < d {
		s.localDecisions.Add(1)
		return s.local.Allow(ctx, key, l, n)
	}
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	r, err := s.remote.Allow(rctx, key, l, n)
	cancel()
	if err != nil {
		s.remoteErrors.Add(1)
		if s.downUntil.Swap(now+s.backoff.Nanoseconds()) == 0 {
			s.log.Warn("scrub: shared rate limits unreachable, using local limits", "err", err)
		}
		s.localDecisions.Add(1)
		return s.local.Allow(ctx, key, l, n)
	}
	if s.downUntil.Swap(0) != 0 {
		s.log.Info("scrub: shared rate limits reachable again")
	}
	if !r.Allowed && n > 0 && r.RetryAfter > 0 {
		s.cached.put(key, now+r.RetryAfter.Nanoseconds(), now)
	}
	return r, nil
}

// Healthy reports whether the last remote call succeeded.
func (s *Shared) Healthy() bool { return s.downUntil.Load() == 0 }

// Stats are a Shared limiter's counters since it was built.
type Stats struct {
	CacheHits      uint64 // refused from the over-limit cache, no round trip
	RemoteErrors   uint64 // remote calls that failed or timed out
	LocalDecisions uint64 // decisions taken locally because the remote was down
}

// Stats returns the counters.
func (s *Shared) Stats() Stats {
	return Stats{CacheHits: s.cacheHits.Load(), RemoteErrors: s.remoteErrors.Load(),
		LocalDecisions: s.localDecisions.Load()}
}

// overLimitCache remembers keys over limit until their retry-after.
type overLimitCache struct {
	mu    sync.RWMutex
	max   int
	until map[string]int64
}

func (c *overLimitCache) get(key string, now int64) (int64, bool) {
	c.mu.RLock()
	u, ok := c.until[key]
	c.mu.RUnlock()
	return u, ok && now < u
}

func (c *overLimitCache) put(key string, until, now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.until[key]; !ok && len(c.until) >= c.max {
		// Forgetting a live entry only costs a round trip later.
		evict(c.until, now)
	}
	c.until[key] = until
}
