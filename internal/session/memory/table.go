package memory

import "hash/maphash"

// table is an open-addressing hash table of entries keyed by their ID or by
// their subject, with linear probing and backward-shift deletion. It exists
// to save memory: a map[string]*entry spends 24 bytes a slot plus control
// bytes at a load between 7/16 and 7/8, about 38 bytes a session on
// average; this spends 9 bytes a slot (a pointer and a tag) at a load
// between 0.35 and 0.7. The tag, 8 more bits of the hash, lets a probe skip
// a slot without following its pointer: with millions of sessions each
// pointer followed is a cache miss.
type table struct {
	slots     []*entry
	tags      []uint8
	n         int
	seed      maphash.Seed
	bySubject bool
}

const minTableSize = 8

func (t *table) key(e *entry) string {
	if t.bySubject {
		return e.subject()
	}
	return e.id()
}

// tag takes bits the shard index (top 6) and the slot index (low bits) do not.
func tag(h uint64) uint8 { return uint8(h >> 48) }

// find returns the slot holding key, or -1.
func (t *table) find(h uint64, key string) int {
	if len(t.slots) == 0 {
		return -1
	}
	mask := len(t.slots) - 1
	tg := tag(h)
	for i := int(h) & mask; ; i = (i + 1) & mask {
		e := t.slots[i]
		if e == nil {
			return -1
		}
		if t.tags[i] == tg && t.key(e) == key {
			return i
		}
	}
}

func (t *table) get(h uint64, key string) *entry {
	if i := t.find(h, key); i >= 0 {
		return t.slots[i]
	}
	return nil
}

// put adds e, whose key must not be in the table.
func (t *table) put(h uint64, e *entry) {
	if (t.n+1)*10 > len(t.slots)*7 {
		t.resize(max(minTableSize, 2*len(t.slots)))
	}
	t.place(h, e)
	t.n++
}

func (t *table) place(h uint64, e *entry) {
	mask := len(t.slots) - 1
	i := int(h) & mask
	for t.slots[i] != nil {
		i = (i + 1) & mask
	}
	t.slots[i], t.tags[i] = e, tag(h)
}

// replace swaps the entry stored under key for e, which has the same key.
func (t *table) replace(h uint64, key string, e *entry) {
	t.slots[t.find(h, key)] = e
}

// del removes key and reports whether it was there.
func (t *table) del(h uint64, key string) bool {
	i := t.find(h, key)
	if i < 0 {
		return false
	}
	mask := len(t.slots) - 1
	// Shift later members of the probe run back into the hole, so lookups
	// never need tombstones.
	for j := (i + 1) & mask; t.slots[j] != nil; j = (j + 1) & mask {
		k := int(maphash.String(t.seed, t.key(t.slots[j]))) & mask
		// The entry at j may move to i only if its home is not in (i, j].
		if (i < j && (k <= i || k > j)) || (i > j && k <= i && k > j) {
			t.slots[i], t.tags[i] = t.slots[j], t.tags[j]
			i = j
		}
	}
	t.slots[i] = nil
	t.n--
	// Give memory back after a mass expiry, with hysteresis so a table
	// hovering at a boundary does not resize back and forth.
	if len(t.slots) > 64 && t.n*8 < len(t.slots) {
		t.resize(len(t.slots) / 2)
	}
	return true
}

func (t *table) resize(size int) {
	old := t.slots
	t.slots = make([]*entry, size)
	t.tags = make([]uint8, size)
	for _, e := range old {
		if e != nil {
			t.place(maphash.String(t.seed, t.key(e)), e)
		}
	}
}

// each calls fn for every entry, in no particular order.
func (t *table) each(fn func(*entry)) {
	for _, e := range t.slots {
		if e != nil {
			fn(e)
		}
	}
}
