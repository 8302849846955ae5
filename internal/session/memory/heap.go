package memory

import (
	"math"
	"slices"
)

// deadlines is a min-heap of entries ordered by heapKey, so the pruner
// finds what is due without scanning. Touch moves a deadline later without
// fixing the heap: heapKey is only a lower bound, and the pruner re-keys an
// entry it pops early. Each entry sits in the heap exactly once while it is
// in the store, at index hidx.
type deadlines []*entry

func (h *deadlines) push(e *entry) {
	e.hidx = int32(len(*h))
	*h = append(*h, e)
	h.up(len(*h) - 1)
}

// remove takes e out of the heap and marks it gone (hidx -1).
func (h *deadlines) remove(e *entry) {
	i := int(e.hidx)
	last := len(*h) - 1
	if i != last {
		h.swap(i, last)
	}
	(*h)[last] = nil
	*h = (*h)[:last]
	if i != last {
		h.fix(i)
	}
	e.hidx = -1
}

func (h deadlines) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h deadlines) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx = int32(i)
	h[j].hidx = int32(j)
}

func (h deadlines) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p].heapKey <= h[i].heapKey {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h deadlines) down(i int) bool {
	start := i
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && h[r].heapKey < h[l].heapKey {
			m = r
		}
		if h[i].heapKey <= h[m].heapKey {
			break
		}
		h.swap(i, m)
		i = m
	}
	return i > start
}

// shrink gives back the backing array's slack after a mass expiry.
func (h *deadlines) shrink() {
	if cap(*h) > 1024 && len(*h) < cap(*h)/4 {
		*h = slices.Clone(*h)
	}
}

// ceilSec is a deadline in Unix nanoseconds as whole seconds rounded up,
// clamped to what a heapKey holds: the pruner is never early, at most a
// second late.
func ceilSec(ns int64) uint32 {
	if ns <= 0 {
		return 0
	}
	s := (ns-1)/1e9 + 1
	if s > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(s)
}

// floorSec is an instant in Unix nanoseconds as whole seconds rounded down.
func floorSec(ns int64) uint32 {
	if ns <= 0 {
		return 0
	}
	s := ns / 1e9
	if s > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(s)
}
