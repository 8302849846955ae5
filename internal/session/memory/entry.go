package memory

import (
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
// codes, attributes cost a nil pointer when absent.
type entry struct {
	keys string // ID, DeviceID and Subject end to end
	// next is the subject's next session by CreatedAt. It is guarded by the
	// subject shard's lock; every other field by the ID shard's.
	next  *entry
	attrs map[string]string // nil when empty, the common case

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
	if len(in.Attrs) > 0 {
		e.attrs = maps.Clone(in.Attrs)
	}
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
	if len(e.attrs) > 0 {
		out.Attrs = maps.Clone(e.attrs)
	}
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
