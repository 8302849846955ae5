package memory

import (
	"encoding/binary"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rempart/rempart/internal/session"
)

// entry is one session as the store keeps it: 80 bytes, exactly a Go size
// class, plus one allocation for its strings. Ten million of them are the
// reason for every field's type (see BenchmarkBytesPerSession): the three
// strings share one allocation and one header, ClientID and AMR are 16-bit
// codes, attributes cost a nil pointer when absent. Present, they are packed
// into one string as the log writes them (a count, then each key and value
// length-prefixed), not held in a map: a Go map of even one entry costs about
// 300 bytes, more than the rest of a backup-login snapshot beyond its
// verifier. They sit apart from keys because Update replaces them under the
// ID shard's lock alone, while keys is read under the subject shard's.
type entry struct {
	keys string // ID, DeviceID and Subject end to end
	// next is the subject's next session by CreatedAt. It is guarded by the
	// subject shard's lock; every other field by the ID shard's.
	next  *entry
	attrs *string // packed attributes; nil when empty, the common case

	created, lastSeen, expires, idle int64 // Unix nanoseconds; idle in nanoseconds

	heapKey uint32 // deadline in Unix seconds rounded up, as of the last heap fix
	hidx    int32  // index in the shard's deadline heap; -1 once out of the store
	client  uint16 // interned ClientID
	amr     uint16 // interned AMR list
	idLen   uint16
	devLen  uint16
}

func (e *entry) id() string      { return e.keys[:e.idLen] }
func (e *entry) device() string  { return e.keys[e.idLen : int(e.idLen)+int(e.devLen)] }
func (e *entry) subject() string { return e.keys[int(e.idLen)+int(e.devLen):] }

// setAttrs packs attrs into the entry; the caller holds its ID shard lock.
func (e *entry) setAttrs(attrs map[string]string) {
	e.attrs = nil
	if len(attrs) > 0 {
		p := string(appendAttrs(nil, attrs))
		e.attrs = &p
	}
}

// packedAttrs is the attributes as the log writes them; "" when none.
func (e *entry) packedAttrs() string {
	if e.attrs == nil {
		return ""
	}
	return *e.attrs
}

// appendAttrs packs attrs, keys sorted, as the log writes them.
func appendAttrs(b []byte, attrs map[string]string) []byte {
	b = binary.AppendUvarint(b, uint64(len(attrs)))
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		b = appendString(b, k)
		b = appendString(b, attrs[k])
	}
	return b
}

// attrMap unpacks the entry's attributes; nil when none.
func (e *entry) attrMap() map[string]string {
	p := e.packedAttrs()
	n, w := binary.Uvarint([]byte(p[:min(len(p), binary.MaxVarintLen64)]))
	if n == 0 || w <= 0 {
		return nil
	}
	p = p[w:]
	next := func() string {
		l, w := binary.Uvarint([]byte(p[:min(len(p), binary.MaxVarintLen64)]))
		v := p[w : w+int(l)]
		p = p[w+int(l):]
		return v
	}
	out := make(map[string]string, n)
	for range n {
		k := next()
		out[k] = next()
	}
	return out
}

// deadline is when the entry stops being live unless touched.
func (e *entry) deadline() int64 {
	d := e.expires
	if e.idle > 0 && e.idle < d-e.lastSeen {
		d = e.lastSeen + e.idle
	}
	return d
}

func (e *entry) live(now int64) bool { return now < e.deadline() }

// newEntry converts a validated session.
func (s *Store) newEntry(in session.Session) (*entry, error) {
	client, err := s.clients.code(in.ClientID, func() string { return strings.Clone(in.ClientID) })
	if err != nil {
		return nil, err
	}
	var scratch [64]byte
	amr, err := s.amrs.codeBytes(appendAMRKey(scratch[:0], in.AMR), func() []string {
		return slices.Clip(slices.Clone(in.AMR))
	})
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.Grow(len(in.ID) + len(in.DeviceID) + len(in.Subject))
	b.WriteString(in.ID)
	b.WriteString(in.DeviceID)
	b.WriteString(in.Subject)
	e := &entry{
		keys:    b.String(),
		idLen:   uint16(len(in.ID)),
		devLen:  uint16(len(in.DeviceID)),
		client:  client,
		amr:     amr,
		created: in.CreatedAt.UnixNano(),
		expires: in.ExpiresAt.UnixNano(),
		idle:    int64(in.IdleTimeout),
	}
	e.lastSeen = e.created
	if !in.LastSeen.IsZero() {
		e.lastSeen = in.LastSeen.UnixNano()
	}
	e.setAttrs(in.Attrs)
	return e, nil
}

// session copies e out; the caller holds e's ID shard lock.
func (s *Store) session(e *entry) session.Session {
	out := session.Session{
		ID:          e.id(),
		Subject:     e.subject(),
		ClientID:    s.clients.value(e.client),
		DeviceID:    e.device(),
		CreatedAt:   time.Unix(0, e.created).UTC(),
		LastSeen:    time.Unix(0, e.lastSeen).UTC(),
		ExpiresAt:   time.Unix(0, e.expires).UTC(),
		IdleTimeout: time.Duration(e.idle),
	}
	if amr := s.amrs.value(e.amr); len(amr) > 0 {
		out.AMR = slices.Clone(amr)
	}
	out.Attrs = e.attrMap()
	return out
}

// appendAMRKey appends an unambiguous key for an AMR list: each method
// prefixed by its length. The empty list's key is empty.
func appendAMRKey(b []byte, amr []string) []byte {
	for _, m := range amr {
		b = strconv.AppendInt(b, int64(len(m)), 10)
		b = append(b, ':')
		b = append(b, m...)
	}
	return b
}
