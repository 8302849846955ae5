package scrub

import (
	"net/netip"
	"sync"
	"time"
)

// steadySet learns which unknown addresses are steady sources: a card
// scheme's gateway not declared as a partner, a company's NAT, an app's
// backend. An address that has kept sending for SteadyAfter without a pause
// longer than SteadyGap, in normal state, is limited like a known client
// (Options.KnownAddress) rather than like a stranger: in front of a real back
// end most of an ordinary day's traffic can come from a few such addresses,
// and the stranger's limit refused it. Only the normal state learns and uses
// it — a flash crowd or an attack gets the existing defences — and the
// route's own surge detection still bounds the total, so a botnet cannot buy
// more than each address's share by being patient.
//
// The set is per node and bounded: when it is full, addresses idle past the
// gap are dropped, and a new address is not tracked (it keeps the stranger's
// limit) until there is room.
type steadySet struct {
	after, gap time.Duration
	max        int

	mu sync.Mutex
	m  map[netip.Addr]steadySpan
}

type steadySpan struct{ first, last time.Time }

func newSteadySet(after, gap time.Duration, max int) *steadySet {
	return &steadySet{after: after, gap: gap, max: max, m: make(map[netip.Addr]steadySpan)}
}

// see records a request from a at now and reports whether a is, with it, a
// steady source.
func (s *steadySet) see(a netip.Addr, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp, ok := s.m[a]
	if !ok || now.Sub(sp.last) > s.gap {
		if !ok && len(s.m) >= s.max && !s.sweep(now) {
			return false
		}
		sp.first = now
	}
	sp.last = now
	s.m[a] = sp
	return now.Sub(sp.first) >= s.after
}

// sweep drops the addresses idle past the gap and reports whether there is
// room for one more. The caller holds the lock.
func (s *steadySet) sweep(now time.Time) bool {
	for a, sp := range s.m {
		if now.Sub(sp.last) > s.gap {
			delete(s.m, a)
		}
	}
	return len(s.m) < s.max
}
