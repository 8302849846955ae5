package memory

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/session"
	"github.com/rempart/rempart/internal/session/sessiontest"
)

var ctx = context.Background()

func incidentClock() *sessiontest.FakeClock {
	return sessiontest.NewFakeClock(time.Date(2025, time.December, 18, 7, 0, 0, 0, time.UTC))
}

// workload creates, touches and deletes sessions the way a morning of
// logins does, including evictions past the bound, and returns the IDs it
// used.
func workload(t *testing.T, s *Store, clk *sessiontest.FakeClock, prefix string) []string {
	t.Helper()
	var ids []string
	for i := range 60 {
		now := clk.Now()
		sess := session.Session{
			ID:          fmt.Sprintf("%s-%02d", prefix, i),
			Subject:     fmt.Sprintf("%s-customer-%d", prefix, i%4),
			ClientID:    []string{"bank-app", "web"}[i%2],
			DeviceID:    fmt.Sprintf("dev-%d", i),
			AMR:         [][]string{{"pwd", "otp"}, {"hwk"}, nil}[i%3],
			CreatedAt:   now,
			ExpiresAt:   now.Add(12 * time.Hour),
			IdleTimeout: 4 * time.Hour,
		}
		if i%7 == 0 {
			sess.Attrs = map[string]string{"acr": "sca", "n": fmt.Sprint(i)}
		}
		if err := s.Create(ctx, sess); err != nil {
			t.Fatalf("create: %v", err)
		}
		ids = append(ids, sess.ID)
		clk.Advance(time.Second)
		switch i % 5 {
		case 1:
			if err := s.Delete(ctx, sess.ID); err != nil {
				t.Fatalf("delete: %v", err)
			}
		case 2:
			clk.Advance(2 * time.Minute) // past a Touch boundary: logged
			if _, err := s.Touch(ctx, sess.ID); err != nil {
				t.Fatalf("touch: %v", err)
			}
		case 3:
			// An update is logged whole; replay must bring back the new
			// attributes and expiry, not the created ones.
			if _, err := s.Update(ctx, sess.ID, func(u *session.Session) error {
				u.Attrs = map[string]string{"step": fmt.Sprint(i)}
				u.ExpiresAt = u.ExpiresAt.Add(-time.Hour)
				return nil
			}); err != nil {
				t.Fatalf("update: %v", err)
			}
		}
	}
	if _, err := s.DeleteSubject(ctx, prefix+"-customer-3"); err != nil {
		t.Fatalf("delete subject: %v", err)
	}
	return ids
}

// dump is what a store holds for ids and their subjects, in a comparable form.
func dump(t *testing.T, s *Store, ids []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	subjects := map[string]bool{}
	for _, id := range ids {
		got, err := s.Get(ctx, id)
		if errors.Is(err, session.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		out[id] = fmt.Sprintf("%+v", got)
		subjects[got.Subject] = true
	}
	for sub := range subjects {
		list, err := s.ListSubject(ctx, sub)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		var order []string
		for _, l := range list {
			order = append(order, l.ID)
		}
		out["list "+sub] = fmt.Sprint(order)
	}
	return out
}

func sameState(t *testing.T, got, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("%s:\n got %s\nwant %s", k, g, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: came back from the dead: %s", k, g)
		}
	}
}

func TestReopenKeepsSessions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// between runs after the first workload and before the second.
		between func(t *testing.T, s *Store)
	}{
		{"log only", func(*testing.T, *Store) {}},
		{"snapshot", func(t *testing.T, s *Store) {
			if err := s.Snapshot(ctx); err != nil {
				t.Fatalf("snapshot: %v", err)
			}
		}},
		{"rotated, crashed before the snapshot", func(t *testing.T, s *Store) {
			if _, err := s.log.rotate(); err != nil {
				t.Fatalf("rotate: %v", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, clk := t.TempDir(), incidentClock()
			s := mustOpen(t, Options{Dir: dir, Clock: clk, PruneEvery: -1, TouchEvery: time.Minute})
			ids := workload(t, s, clk, "a")
			tc.between(t, s)
			ids = append(ids, workload(t, s, clk, "b")...)
			want := dump(t, s, ids)
			if len(want) < 40 {
				t.Fatalf("workload left only %d keys", len(want))
			}
			if err := s.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			s = mustOpen(t, Options{Dir: dir, Clock: clk, PruneEvery: -1})
			defer s.Close()
			sameState(t, dump(t, s, ids), want)
			// And it keeps working.
			ids = append(ids, workload(t, s, clk, "c")...)
			want = dump(t, s, ids)
			s.Close()
			s = mustOpen(t, Options{Dir: dir, Clock: clk, PruneEvery: -1})
			defer s.Close()
			sameState(t, dump(t, s, ids), want)
		})
	}
}

func TestSnapshotRemovesOldFiles(t *testing.T) {
	t.Parallel()
	dir, clk := t.TempDir(), incidentClock()
	s := mustOpen(t, Options{Dir: dir, Clock: clk, PruneEvery: -1})
	defer s.Close()
	workload(t, s, clk, "a")
	for range 3 {
		if err := s.Snapshot(ctx); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*-*"))
	for i := range files {
		files[i] = filepath.Base(files[i])
	}
	if want := []string{logName(4), snapshotName(4)}; !slices.Equal(files, want) {
		t.Fatalf("files %q, want %q", files, want)
	}
}

func TestTornTailIgnored(t *testing.T) {
	t.Parallel()
	// Each tear is what a crash mid-write can leave after the last whole record.
	tears := []struct {
		name string
		tail func(frame []byte) []byte
	}{
		{"half a header", func(f []byte) []byte { return f[:5] }},
		{"header only", func(f []byte) []byte { return f[:frameHeader] }},
		{"half a payload", func(f []byte) []byte { return f[:len(f)-3] }},
		{"bad checksum", func(f []byte) []byte { g := slices.Clone(f); g[len(g)-1] ^= 0xff; return g }},
		{"zeros", func(f []byte) []byte { return make([]byte, len(f)) }},
	}
	for _, tc := range tears {
		t.Run(tc.name, func(t *testing.T) {
			dir, clk := t.TempDir(), incidentClock()
			s := mustOpen(t, Options{Dir: dir, Clock: clk, PruneEvery: -1})
			ids := workload(t, s, clk, "a")
			want := dump(t, s, ids)
			s.Close()

			frame := appendDelete(nil, "a-00") // would delete a live session if it counted
			f, err := os.OpenFile(filepath.Join(dir, logName(1)), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(tc.tail(frame)); err != nil {
				t.Fatal(err)
			}
			f.Close()

			s = mustOpen(t, Options{Dir: dir, Clock: clk, PruneEvery: -1})
			sameState(t, dump(t, s, ids), want)
			// Records written after the cut are not lost behind the tear.
			ids = append(ids, workload(t, s, clk, "b")...)
			want = dump(t, s, ids)
			s.Close()
			s = mustOpen(t, Options{Dir: dir, Clock: clk, PruneEvery: -1})
			defer s.Close()
			sameState(t, dump(t, s, ids), want)
		})
	}
}

func TestCorruptOlderLogRefused(t *testing.T) {
	t.Parallel()
	dir, clk := t.TempDir(), incidentClock()
	s := mustOpen(t, Options{Dir: dir, Clock: clk, PruneEvery: -1})
	workload(t, s, clk, "a")
	if _, err := s.log.rotate(); err != nil {
		t.Fatal(err)
	}
	workload(t, s, clk, "b")
	s.Close()
	// A tear in a log that was followed by another cannot come from a
	// crash: opening must not silently drop what came after it.
	path := filepath.Join(dir, logName(1))
	data, _ := os.ReadFile(path)
	data[len(data)/2] ^= 0xff
	os.WriteFile(path, data, 0o600)
	if s, err := Open(ctx, Options{Dir: dir, Clock: clk, PruneEvery: -1}); err == nil {
		s.Close()
		t.Fatal("open succeeded over a corrupt log")
	}
}

func TestTouchLoggedCoarsely(t *testing.T) {
	t.Parallel()
	dir, clk := t.TempDir(), incidentClock()
	s := mustOpen(t, Options{Dir: dir, Clock: clk, PruneEvery: -1, TouchEvery: time.Minute})
	start := clk.Now()
	sess := session.Session{ID: "t", Subject: "c", CreatedAt: start, ExpiresAt: start.Add(time.Hour), IdleTimeout: 20 * time.Minute}
	if err := s.Create(ctx, sess); err != nil {
		t.Fatal(err)
	}
	size := s.log.logSize()
	// Within one minute of the last logged LastSeen: nothing written.
	for range 5 {
		clk.Advance(10 * time.Second)
		if _, err := s.Touch(ctx, "t"); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.log.logSize(); got != size {
		t.Fatalf("touches within the grain grew the log by %d bytes", got-size)
	}
	clk.Advance(10 * time.Second) // crosses the minute
	last, err := s.Touch(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(20 * time.Second) // not logged
	latest, _ := s.Touch(ctx, "t")
	s.Close()

	s = mustOpen(t, Options{Dir: dir, Clock: clk, PruneEvery: -1})
	defer s.Close()
	got, err := s.Get(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastSeen.Equal(last.LastSeen) {
		t.Fatalf("last_seen after reopen %v, want the last logged %v", got.LastSeen, last.LastSeen)
	}
	if lag := latest.LastSeen.Sub(got.LastSeen); lag >= time.Minute {
		t.Fatalf("last_seen lags by %v, more than the grain", lag)
	}
}

func TestExpiredDroppedOnOpen(t *testing.T) {
	t.Parallel()
	dir, clk := t.TempDir(), incidentClock()
	s := mustOpen(t, Options{Dir: dir, Clock: clk, PruneEvery: -1})
	ids := workload(t, s, clk, "a")
	s.Close()
	clk.Advance(13 * time.Hour)
	s = mustOpen(t, Options{Dir: dir, Clock: clk, PruneEvery: -1})
	defer s.Close()
	if n := s.Len(); n != 0 {
		t.Fatalf("%d expired sessions loaded into memory", n)
	}
	if got := dump(t, s, ids); len(got) != 0 {
		t.Fatalf("expired sessions visible: %v", got)
	}
}

func TestDirectoryLocked(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, Options{Dir: dir, PruneEvery: -1})
	if s2, err := Open(ctx, Options{Dir: dir, PruneEvery: -1}); err == nil {
		s2.Close()
		t.Fatal("second open of one directory succeeded")
	}
	s.Close()
	s = mustOpen(t, Options{Dir: dir, PruneEvery: -1})
	s.Close()
}

func TestClosed(t *testing.T) {
	s := mustOpen(t, Options{Dir: t.TempDir()})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	now := time.Now()
	err := s.Create(ctx, session.Session{ID: "x", Subject: "y", CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("create after close: %v, want ErrClosed", err)
	}
	if _, err := s.Get(ctx, "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("get after close: %v, want ErrClosed", err)
	}
}
