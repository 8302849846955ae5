package memory

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/session"
)

// seedRecords returns a log's worth of frames as the store writes them: a
// plain session, one with every field, a touch and a delete, and edge
// cases (empty strings, far instants, many attributes).
func seedRecords(f *testing.F) [][]byte {
	s, err := Open(ctx, Options{PruneEvery: -1})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2025, time.December, 18, 7, 0, 0, 0, time.UTC)
	attrs := map[string]string{}
	for i := range 40 {
		attrs[strings.Repeat("k", i)] = strings.Repeat("v", 40-i)
	}
	var frames [][]byte
	for _, in := range []session.Session{
		{ID: "s-1", Subject: "alice", CreatedAt: t0, ExpiresAt: t0.Add(12 * time.Hour)},
		{ID: "s-2", Subject: "bruno", ClientID: "bank-app", DeviceID: "dev-1", AMR: []string{"pwd", "otp", "mfa"},
			CreatedAt: t0, LastSeen: t0.Add(time.Minute), ExpiresAt: t0.Add(time.Hour), IdleTimeout: 30 * time.Minute,
			Attrs: map[string]string{"auth_time": "1766041200", "name": "Bruno"}},
		{ID: "s-3", Subject: "C00000042", AMR: []string{""}, CreatedAt: time.Unix(0, -1<<62).UTC(),
			ExpiresAt: time.Unix(0, 1<<62).UTC(), Attrs: attrs},
	} {
		e, err := s.newEntry(in)
		if err != nil {
			f.Fatal(err)
		}
		frames = append(frames, s.appendCreate(nil, e))
	}
	return append(frames, appendTouch(nil, "s-2", t0.Add(2*time.Minute).UnixNano()), appendDelete(nil, "s-1"),
		appendTouch(nil, "", -1), appendDelete(nil, strings.Repeat("x", 2000)))
}

// FuzzDecodeRecord decodes payloads of the session log and snapshot. A
// payload that decodes, encoded again the way the store writes it, decodes
// to the same record; a session from it that passes Validate comes back as
// the store would serve it.
func FuzzDecodeRecord(f *testing.F) {
	for _, fr := range seedRecords(f) {
		f.Add(fr[frameHeader:])
	}
	f.Add([]byte{})
	f.Add([]byte{recCreate})
	f.Add([]byte{recCreate, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{recTouch, 0x01, 'a', 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Add([]byte{recDelete, 0x00, 0x00})
	f.Add([]byte{9, 0})
	s, err := Open(ctx, Options{PruneEvery: -1})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	f.Fuzz(func(t *testing.T, payload []byte) {
		r, err := decodeRecord(payload)
		if err != nil {
			return
		}
		var again []byte
		switch r.kind {
		case recCreate:
			if r.id != r.sess.ID {
				t.Fatalf("record id %q, session id %q", r.id, r.sess.ID)
			}
			if r.sess.Validate() != nil {
				return // restore refuses it before it reaches the store
			}
			e, err := s.newEntry(r.sess)
			if err != nil {
				return // interner full: refused too
			}
			again = s.appendCreate(nil, e)
			if served := s.session(e); !reflect.DeepEqual(served, r.sess) {
				t.Fatalf("%x decodes to\n%+v\nbut the store would serve\n%+v", payload, r.sess, served)
			}
		case recTouch:
			again = appendTouch(nil, r.id, r.lastSeen)
		case recDelete:
			again = appendDelete(nil, r.id)
		default:
			t.Fatalf("%x decoded with kind %d", payload, r.kind)
		}
		r2, err := decodeRecord(again[frameHeader:])
		if err != nil || !reflect.DeepEqual(r2, r) {
			t.Fatalf("%x: %+v re-encodes as %x, which decodes to %+v (%v)", payload, r, again, r2, err)
		}
	})
}

// fixChecksums rewrites the checksum of every whole frame in log, so the
// fuzzer's lengths and payloads reach the decoder rather than stopping at a
// checksum; what follows the last whole frame is left as it is, a tear.
func fixChecksums(log []byte) {
	for off := 0; off+frameHeader <= len(log); {
		n := int(binary.LittleEndian.Uint32(log[off:]))
		if n == 0 || n > maxPayload || off+frameHeader+n > len(log) {
			return
		}
		binary.LittleEndian.PutUint32(log[off+4:], crc32.ChecksumIEEE(log[off+frameHeader:off+frameHeader+n]))
		off += frameHeader + n
	}
}

// FuzzReplayLog opens a store on a session log of fuzzed frames (with
// right checksums). Open either refuses the directory or serves only
// sessions that pass Validate and are live; and the next open serves the
// same, with a session created after the replay (after any torn tail was
// cut, so it does not follow garbage).
func FuzzReplayLog(f *testing.F) {
	var all []byte
	for _, fr := range seedRecords(f) {
		f.Add(fr)
		all = append(all, fr...)
	}
	f.Add(all)
	f.Add(all[:len(all)-3])                 // torn tail
	f.Add(append(all, 0, 0, 0, 0, 0, 0, 0)) // half a header
	f.Add([]byte{})
	clk := incidentClock()
	f.Fuzz(func(t *testing.T, log []byte) {
		log = append([]byte(nil), log...)
		fixChecksums(log)
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, logName(1)), append([]byte(logMagic), log...), 0o600); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for off := 0; off+frameHeader <= len(log); {
			n := int(binary.LittleEndian.Uint32(log[off:]))
			if n == 0 || off+frameHeader+n > len(log) {
				break
			}
			if r, err := decodeRecord(log[off+frameHeader : off+frameHeader+n]); err == nil {
				ids = append(ids, r.id)
			}
			off += frameHeader + n
		}
		opts := Options{Dir: dir, Clock: clk, PruneEvery: -1}
		s, err := Open(ctx, opts)
		if err != nil {
			return
		}
		for _, id := range ids {
			got, err := s.Get(ctx, id)
			if errors.Is(err, session.ErrNotFound) {
				continue
			}
			if err != nil || got.Validate() != nil || !got.Live(clk.Now()) {
				t.Fatalf("replay serves %+v (%v)", got, err)
			}
		}
		now := clk.Now()
		fresh := session.Session{ID: "after-replay", Subject: "alice", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := s.Create(ctx, fresh); err != nil && !errors.Is(err, session.ErrAlreadyExists) {
			t.Fatalf("create after replay: %v", err)
		}
		after := dump(t, s, append(ids, fresh.ID))
		s.Close()

		s, err = Open(ctx, opts)
		if err != nil {
			t.Fatalf("a directory opened once does not open again: %v", err)
		}
		defer s.Close()
		sameState(t, dump(t, s, append(ids, fresh.ID)), after)
	})
}
