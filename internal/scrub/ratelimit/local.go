package ratelimit

import (
	"context"
	"hash/maphash"
	"sync"

	"github.com/rempart/rempart/internal/scrub/clock"
)

// LocalOptions size a Local limiter.
type LocalOptions struct {
	// MaxKeys bounds the keys remembered across all shards (default 1<<20,
	// about 100 MB at worst). When a shard is full, keys whose bucket is full
	// again are forgotten first (they carry no state); if none, an arbitrary
	// key is: it gets a fresh burst. Memory stays bounded whatever the
	// attacker's address space.
	MaxKeys int
	// Shards spreads lock contention (default 64).
	Shards int
}

// Local is a GCRA limiter in this process's memory.
type Local struct {
	clock  clock.Clock
	seed   maphash.Seed
	shards []localShard
	perCap int
}

type localShard struct {
	mu  sync.Mutex
	tat map[string]int64
	_   [40]byte // keep shards on separate cache lines
}

var _ Limiter = (*Local)(nil)

// NewLocal returns an empty local limiter reading time from c.
func NewLocal(c clock.Clock, o LocalOptions) *Local {
	if o.MaxKeys <= 0 {
		o.MaxKeys = 1 << 20
	}
	if o.Shards <= 0 {
		o.Shards = 64
	}
	l := &Local{clock: c, seed: maphash.MakeSeed(), shards: make([]localShard, o.Shards),
		perCap: max(o.MaxKeys/o.Shards, 1)}
	for i := range l.shards {
		l.shards[i].tat = make(map[string]int64)
	}
	return l
}

func (l *Local) shard(key string) *localShard {
	return &l.shards[maphash.String(l.seed, key)%uint64(len(l.shards))]
}

// Allow implements Limiter. It never fails for an enabled limit.
func (l *Local) Allow(_ context.Context, key string, lim Limit, n int) (Result, error) {
	if !lim.Enabled() || n < 0 {
		return Result{}, ErrInvalidLimit
	}
	now := l.clock.Now().UnixNano()
	s := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	tat, ok := s.tat[key]
	newTat, r := gcra(now, tat, lim, n)
	if r.Allowed && n > 0 {
		if !ok && len(s.tat) >= l.perCap {
			evict(s.tat, now)
		}
		s.tat[key] = newTat
	}
	return r, nil
}

// evictScan bounds the work of making room: a full map under a spray of new
// keys must not cost a sweep of every key per request.
const evictScan = 64

// evict frees room in a full map of deadlines (Unix nanoseconds). Map
// iteration starts at a random place, so the scanned keys are a random
// sample: those past their deadline (full buckets, spent cache entries: no
// state worth keeping) go first, else the first one seen.
func evict(m map[string]int64, now int64) {
	var victim string
	scanned, freed := 0, 0
	for k, t := range m {
		if scanned == 0 {
			victim = k
		}
		if t <= now {
			delete(m, k)
			freed++
		}
		if scanned++; scanned == evictScan {
			break
		}
	}
	if freed == 0 && scanned > 0 {
		delete(m, victim)
	}
}

// Reset forgets key, giving it a full bucket.
func (l *Local) Reset(key string) {
	s := l.shard(key)
	s.mu.Lock()
	delete(s.tat, key)
	s.mu.Unlock()
}

// Len returns how many keys are remembered.
func (l *Local) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.tat)
		s.mu.Unlock()
	}
	return n
}
