package memory

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/rempart/rempart/internal/session"
)

// The log and the snapshot are sequences of frames: payload length (uint32,
// little-endian), CRC-32 (IEEE) of the payload, payload. A payload is a kind
// byte and the fields below, strings and counts as uvarints, instants and
// durations as varints of nanoseconds.
const (
	recCreate byte = 1 // a whole session; in a snapshot, every record is one
	recTouch  byte = 2 // ID, LastSeen
	recDelete byte = 3 // ID
)

const (
	frameHeader = 8
	// maxPayload rejects a length that a torn or corrupt header made up: a
	// session is bounded by session.MaxFieldLen except for its attributes,
	// which have no business near this size.
	maxPayload = 16 << 20
)

// Each file starts with its magic, which also carries the format version.
const (
	logMagic      = "RMPSLOG1"
	snapshotMagic = "RMPSSNP1"
)

// errTorn marks a frame cut short or failing its checksum: the end of what
// was durably written.
var errTorn = errors.New("torn record")

// appendFrame appends a frame whose payload enc appends.
func appendFrame(buf []byte, enc func([]byte) []byte) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, frameHeader)...)
	buf = enc(buf)
	payload := buf[start+frameHeader:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.ChecksumIEEE(payload))
	return buf
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendCreate appends the record of e; the caller holds e's ID shard lock.
func (s *Store) appendCreate(buf []byte, e *entry) []byte {
	return appendFrame(buf, func(b []byte) []byte {
		b = append(b, recCreate)
		b = appendString(b, e.id())
		b = appendString(b, e.subject())
		b = appendString(b, s.clients.value(e.client))
		b = appendString(b, e.device())
		amr := s.amrs.value(e.amr)
		b = binary.AppendUvarint(b, uint64(len(amr)))
		for _, m := range amr {
			b = appendString(b, m)
		}
		b = binary.AppendVarint(b, e.created)
		b = binary.AppendVarint(b, e.lastSeen)
		b = binary.AppendVarint(b, e.expires)
		b = binary.AppendVarint(b, e.idle)
		if p := e.packedAttrs(); p != "" {
			return append(b, p...)
		}
		return binary.AppendUvarint(b, 0)
	})
}

func appendTouch(buf []byte, id string, lastSeen int64) []byte {
	return appendFrame(buf, func(b []byte) []byte {
		b = append(b, recTouch)
		b = appendString(b, id)
		return binary.AppendVarint(b, lastSeen)
	})
}

func appendDelete(buf []byte, id string) []byte {
	return appendFrame(buf, func(b []byte) []byte {
		b = append(b, recDelete)
		return appendString(b, id)
	})
}

// record is a decoded payload.
type record struct {
	kind     byte
	id       string
	lastSeen int64           // recTouch
	sess     session.Session // recCreate
}

// decoder reads a payload; the first malformed field sets err and every
// later read returns zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errors.New("malformed record")
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// count reads a length that must fit in what is left of the payload, so a
// corrupt count cannot make the decoder allocate without bound.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

func decodeRecord(payload []byte) (record, error) {
	if len(payload) == 0 {
		return record{}, errors.New("empty record")
	}
	d := decoder{b: payload[1:]}
	r := record{kind: payload[0]}
	switch r.kind {
	case recCreate:
		s := &r.sess
		s.ID = d.string()
		s.Subject = d.string()
		s.ClientID = d.string()
		s.DeviceID = d.string()
		if n := d.count(); n > 0 {
			s.AMR = make([]string, n)
			for i := range s.AMR {
				s.AMR[i] = d.string()
			}
		}
		s.CreatedAt = time.Unix(0, d.varint()).UTC()
		s.LastSeen = time.Unix(0, d.varint()).UTC()
		s.ExpiresAt = time.Unix(0, d.varint()).UTC()
		s.IdleTimeout = time.Duration(d.varint())
		if n := d.count(); n > 0 {
			s.Attrs = make(map[string]string, n)
			for range n {
				k := d.string()
				s.Attrs[k] = d.string()
			}
		}
		r.id = s.ID
	case recTouch:
		r.id = d.string()
		r.lastSeen = d.varint()
	case recDelete:
		r.id = d.string()
	default:
		return record{}, fmt.Errorf("unknown record kind %d", r.kind)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	return r, d.err
}

// readFrames calls fn with each payload in r until the end, and returns the
// offset just past the last whole, checksummed frame. A frame cut short or
// failing its checksum stops the read with errTorn; an error from fn stops
// it with that error.
func readFrames(r *bufio.Reader, start int64, fn func(payload []byte) error) (int64, error) {
	off := start
	var hdr [frameHeader]byte
	var payload []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return off, nil
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return off, errTorn
			}
			return off, err
		}
		n := binary.LittleEndian.Uint32(hdr[:])
		if n == 0 || n > maxPayload {
			return off, errTorn
		}
		if cap(payload) < int(n) {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return off, errTorn
			}
			return off, err
		}
		if crc32.ChecksumIEEE(payload) != binary.LittleEndian.Uint32(hdr[4:]) {
			return off, errTorn
		}
		if err := fn(payload); err != nil {
			return off, err
		}
		off += frameHeader + int64(n)
	}
}
