package memory

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/rempart/rempart/internal/session"
)

// Files in the directory, by generation G:
//
//	log-G       records appended since snapshot G was started
//	snapshot-G  every session at the moment log-G began, give or take
//	            records that log-G also holds (replaying them is harmless:
//	            each record sets, touches or deletes one whole session)
//	*.tmp       a snapshot being written; removed on open
//	LOCK        held while a process uses the directory
//
// Opening loads the newest snapshot and replays the logs from its
// generation on.

// parseGen returns G for a name "<prefix>-G" with G in 16 hex digits.
func parseGen(name, prefix string) (uint64, bool) {
	hex, ok := strings.CutPrefix(name, prefix+"-")
	if !ok || len(hex) != 16 {
		return 0, false
	}
	g, err := strconv.ParseUint(hex, 16, 64)
	return g, err == nil
}

// load restores the sessions in s.dir and opens the log for appending.
func (s *Store) load(ctx context.Context) error {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("read session directory: %w", err)
	}
	var snaps, logs []uint64
	for _, de := range des {
		name := de.Name()
		if strings.HasSuffix(name, ".tmp") {
			if err := os.Remove(filepath.Join(s.dir, name)); err != nil {
				return fmt.Errorf("remove unfinished snapshot: %w", err)
			}
		} else if g, ok := parseGen(name, "snapshot"); ok {
			snaps = append(snaps, g)
		} else if g, ok := parseGen(name, "log"); ok {
			logs = append(logs, g)
		}
	}
	slices.Sort(snaps)
	slices.Sort(logs)

	var base uint64
	if len(snaps) > 0 {
		base = snaps[len(snaps)-1]
		if err := s.loadSnapshot(ctx, base); err != nil {
			return err
		}
	}
	gen := max(base, 1)
	for i, g := range logs {
		if g < base {
			continue
		}
		gen = g
		end, err := s.replayLog(ctx, g)
		if errors.Is(err, errTorn) && i == len(logs)-1 {
			// The last write before a crash: it was never acknowledged.
			// Cut it off so new records do not follow garbage.
			if err := truncate(filepath.Join(s.dir, logName(g)), end); err != nil {
				return err
			}
			s.logger.Warn("dropped torn record at the end of the session log", "file", logName(g), "offset", end)
		} else if err != nil {
			return fmt.Errorf("replay %s at byte %d: %w", logName(g), end, err)
		}
	}
	// Files a finished snapshot made obsolete, left by a crash before their
	// removal.
	if err := s.removeBefore(base); err != nil {
		return err
	}
	s.log, err = openWAL(s.dir, gen)
	return err
}

func truncate(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("truncate session log: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("truncate session log: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("truncate session log: %w", err)
	}
	return nil
}

// readFile checks a file's magic and hands each record to apply. It returns
// the offset after the last whole record.
func (s *Store) readFile(ctx context.Context, name, magic string, apply func(record) error) (int64, error) {
	f, err := os.Open(filepath.Join(s.dir, name))
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", name, err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	hdr := make([]byte, len(magic))
	if _, err := io.ReadFull(r, hdr); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, errTorn // created, header never written
		}
		return 0, fmt.Errorf("read %s: %w", name, err)
	}
	if string(hdr) != magic {
		return 0, fmt.Errorf("%s is not a session file of this version", name)
	}
	n := 0
	return readFrames(r, int64(len(magic)), func(payload []byte) error {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rec, err := decodeRecord(payload)
		if err != nil {
			// The checksum held, so this is not a torn write but a bug or
			// a foreign file: stop rather than guess.
			return err
		}
		return apply(rec)
	})
}

func (s *Store) loadSnapshot(ctx context.Context, gen uint64) error {
	end, err := s.readFile(ctx, snapshotName(gen), snapshotMagic, func(r record) error {
		if r.kind != recCreate {
			return fmt.Errorf("record kind %d in a snapshot", r.kind)
		}
		return s.restore(r.sess)
	})
	if err != nil {
		// Snapshots are renamed into place only once complete, so even a
		// torn one is corruption.
		return fmt.Errorf("load %s at byte %d: %w", snapshotName(gen), end, err)
	}
	return nil
}

func (s *Store) replayLog(ctx context.Context, gen uint64) (int64, error) {
	return s.readFile(ctx, logName(gen), logMagic, func(r record) error {
		switch r.kind {
		case recCreate:
			return s.restore(r.sess)
		case recTouch:
			h := s.hash(r.id)
			is := s.idShard(h)
			is.mu.Lock()
			if e := is.ids.get(h, r.id); e != nil {
				e.lastSeen = min(max(e.lastSeen, r.lastSeen), e.expires)
			}
			is.mu.Unlock()
		case recDelete:
			h := s.hash(r.id)
			is := s.idShard(h)
			is.mu.Lock()
			e := is.ids.get(h, r.id)
			if e != nil {
				is.remove(h, e)
			}
			is.mu.Unlock()
			if e != nil {
				s.unlink(e)
			}
		}
		return nil
	})
}

// restore puts a session from the disk in the store, replacing any with its
// ID. It neither logs nor enforces the bound: the log already holds the
// evictions that followed.
func (s *Store) restore(in session.Session) error {
	if err := in.Validate(); err != nil {
		return err
	}
	e, err := s.newEntry(in)
	if err != nil {
		return err
	}
	sh, idh := s.hash(in.Subject), s.hash(in.ID)
	ss, is := s.subjectShard(sh), s.idShard(idh)
	ss.mu.Lock()
	is.mu.Lock()
	old := is.ids.get(idh, in.ID)
	if old != nil {
		is.remove(idh, old)
	}
	is.add(idh, e)
	is.mu.Unlock()
	ss.linkLocked(sh, e)
	ss.mu.Unlock()
	if old != nil {
		s.unlink(old)
	}
	return nil
}

// Snapshot writes every session to a new snapshot and removes the log it
// supersedes. The background loop calls it when the log grows past
// Options.SnapshotAfter; it is exported for shutdown hooks and tests. Writes
// continue meanwhile; each ID shard is read-locked only while its sessions
// are encoded.
func (s *Store) Snapshot(ctx context.Context) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if s.log == nil {
		return nil
	}
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	gen, err := s.log.rotate()
	if err != nil {
		return err
	}
	final := filepath.Join(s.dir, snapshotName(gen))
	tmp := final + ".tmp"
	if err := s.writeSnapshot(ctx, tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("install snapshot: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("install snapshot: %w", err)
	}
	return s.removeBefore(gen)
}

func (s *Store) writeSnapshot(ctx context.Context, path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create snapshot: %w", err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := w.WriteString(snapshotMagic); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	now := s.now()
	var buf []byte
	for i := range s.ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		is := &s.ids[i]
		buf = buf[:0]
		is.mu.RLock()
		is.ids.each(func(e *entry) {
			if e.live(now) {
				buf = s.appendCreate(buf, e)
			}
		})
		is.mu.RUnlock()
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync snapshot: %w", err)
	}
	return nil
}

// removeBefore deletes the logs and snapshots older than generation gen.
func (s *Store) removeBefore(gen uint64) error {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("read session directory: %w", err)
	}
	removed := false
	for _, de := range des {
		g, ok := parseGen(de.Name(), "log")
		if !ok {
			g, ok = parseGen(de.Name(), "snapshot")
		}
		if ok && g < gen {
			if err := os.Remove(filepath.Join(s.dir, de.Name())); err != nil {
				return fmt.Errorf("remove obsolete session file: %w", err)
			}
			removed = true
		}
	}
	if removed {
		return syncDir(s.dir)
	}
	return nil
}
