package scrub

import (
	"hash/maphash"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// seenSet remembers addresses that have behaved (carried a session or
// clearance, logged in, or came in peacetime) in a rotating Bloom filter of
// two generations: lookups ask both, inserts go to the current one, and a
// full or old current generation becomes the previous one, dropping the
// oldest. Memory is fixed whatever the attacker's address space; a false
// positive (1 % at capacity) makes a new address look known for the
// new-address signal only, never for a mitigation decision.
type seenSet struct {
	seed     maphash.Seed
	capacity int64
	maxAge   time.Duration
	mu       sync.Mutex // serialises rotation
	cur      atomic.Pointer[bloom]
	prev     atomic.Pointer[bloom]
}

type bloom struct {
	words []atomic.Uint64
	k     uint64
	n     atomic.Int64
	born  time.Time
}

func newSeenSet(capacity int, maxAge time.Duration, now time.Time) *seenSet {
	s := &seenSet{seed: maphash.MakeSeed(), capacity: int64(capacity), maxAge: maxAge}
	s.cur.Store(newBloom(capacity, now))
	s.prev.Store(newBloom(1, now))
	return s
}

// newBloom sizes a filter for n items at a 1 % false-positive rate:
// m = -n ln p / (ln 2)^2 bits and k = (m/n) ln 2 hashes.
func newBloom(n int, now time.Time) *bloom {
	m := math.Ceil(-float64(n) * math.Log(0.01) / (math.Ln2 * math.Ln2))
	words := max(int(m+63)/64, 1)
	k := uint64(math.Round(float64(words*64) / float64(n) * math.Ln2))
	return &bloom{words: make([]atomic.Uint64, words), k: min(max(k, 1), 16), born: now}
}

func (s *seenSet) hash(a netip.Addr) uint64 {
	b := a.As16()
	return maphash.Bytes(s.seed, b[:])
}

// has reports whether a was added within the last one or two generations.
func (s *seenSet) has(a netip.Addr) bool {
	h := s.hash(a)
	return s.cur.Load().has(h) || s.prev.Load().has(h)
}

// add remembers a.
func (s *seenSet) add(a netip.Addr, now time.Time) {
	h := s.hash(a)
	b := s.cur.Load()
	if b.has(h) {
		return
	}
	b.add(h)
	if b.n.Add(1) >= s.capacity || now.Sub(b.born) >= s.maxAge {
		s.mu.Lock()
		if s.cur.Load() == b {
			s.prev.Store(b)
			s.cur.Store(newBloom(int(s.capacity), now))
		}
		s.mu.Unlock()
	}
}

// Double hashing (Kirsch–Mitzenmacher): probe i is h1 + i*h2.
func (b *bloom) probes(h uint64, f func(word int, bit uint64) bool) bool {
	h1, h2 := h&0xffffffff, h>>32|1
	m := uint64(len(b.words) * 64)
	for i := uint64(0); i < b.k; i++ {
		p := (h1 + i*h2) % m
		if !f(int(p/64), 1<<(p%64)) {
			return false
		}
	}
	return true
}

func (b *bloom) has(h uint64) bool {
	return b.probes(h, func(w int, bit uint64) bool { return b.words[w].Load()&bit != 0 })
}

func (b *bloom) add(h uint64) {
	b.probes(h, func(w int, bit uint64) bool { b.words[w].Or(bit); return true })
}
