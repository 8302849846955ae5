package scrub

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ListEntry is one CIDR of a block or allow list.
type ListEntry struct {
	Prefix  netip.Prefix `json:"cidr"`
	Reason  string       `json:"reason,omitempty"`
	Added   time.Time    `json:"added"`
	Expires time.Time    `json:"expires"`
}

// errListFull is returned when a list already holds its maximum.
var errListFull = errors.New("list full")

// cidrList is a set of prefixes with expiry. A lookup costs one map probe per
// distinct prefix length in the list (at most 33 for IPv4, 129 for IPv6), not
// one per entry; an empty list costs one atomic load.
type cidrList struct {
	mu      sync.RWMutex
	max     int
	entries map[netip.Prefix]ListEntry
	lens4   []int
	lens6   []int
	size    atomic.Int64
}

func newCIDRList(max int) *cidrList {
	return &cidrList{max: max, entries: map[netip.Prefix]ListEntry{}}
}

// lookup returns the live entry containing a, if any.
func (l *cidrList) lookup(a netip.Addr, now time.Time) (ListEntry, bool) {
	if l.size.Load() == 0 || !a.IsValid() {
		return ListEntry{}, false
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	lens := l.lens4
	if a.Is6() {
		lens = l.lens6
	}
	for _, n := range lens {
		p, err := a.Prefix(n)
		if err != nil {
			continue
		}
		if e, ok := l.entries[p]; ok && now.Before(e.Expires) {
			return e, true
		}
	}
	return ListEntry{}, false
}

// add inserts or replaces the entry for e.Prefix (masked).
func (l *cidrList) add(e ListEntry, now time.Time) error {
	e.Prefix = e.Prefix.Masked()
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.entries[e.Prefix]; !ok && len(l.entries) >= l.max {
		l.pruneLocked(now)
		if len(l.entries) >= l.max {
			return errListFull
		}
	}
	l.entries[e.Prefix] = e
	l.reindexLocked()
	return nil
}

// remove deletes the entry for p, reporting whether it was there.
func (l *cidrList) remove(p netip.Prefix, now time.Time) bool {
	p = p.Masked()
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[p]
	delete(l.entries, p)
	l.pruneLocked(now)
	l.reindexLocked()
	return ok && now.Before(e.Expires)
}

// list returns the live entries, most specific last.
func (l *cidrList) list(now time.Time) []ListEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruneLocked(now)
	l.reindexLocked()
	out := make([]ListEntry, 0, len(l.entries))
	for _, e := range l.entries {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b ListEntry) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return a.Prefix.Bits() - b.Prefix.Bits()
	})
	return out
}

func (l *cidrList) pruneLocked(now time.Time) {
	for p, e := range l.entries {
		if !now.Before(e.Expires) {
			delete(l.entries, p)
		}
	}
}

// reindexLocked rebuilds the distinct prefix lengths, longest first so the
// most specific entry (with its reason) is the one reported.
func (l *cidrList) reindexLocked() {
	var seen4, seen6 [129]bool
	l.lens4, l.lens6 = l.lens4[:0], l.lens6[:0]
	for p := range l.entries {
		if p.Addr().Is4() {
			seen4[p.Bits()] = true
		} else {
			seen6[p.Bits()] = true
		}
	}
	for n := 128; n >= 0; n-- {
		if seen4[n] {
			l.lens4 = append(l.lens4, n)
		}
		if seen6[n] {
			l.lens6 = append(l.lens6, n)
		}
	}
	l.size.Store(int64(len(l.entries)))
}
