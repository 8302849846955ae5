package memory

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rempart/rempart/internal/session"
)

// ErrClosed is returned by a Store's methods after Close.
var ErrClosed = errors.New("session store closed")

// Options configures a Store. The zero value is a volatile store with the
// defaults below.
type Options struct {
	// Dir, when set, makes the store durable: its log and snapshots live
	// there (created with mode 0700 if missing), an acknowledged Create or
	// Delete survives a crash or SIGKILL, and Open restores the sessions.
	// Only one process may use a directory at a time. Empty keeps sessions
	// in memory only.
	Dir string
	// MaxPerSubject is how many live sessions one subject may hold; Create
	// evicts the subject's oldest beyond it. Zero means
	// session.DefaultMaxPerSubject.
	MaxPerSubject int
	// Clock tells the time; nil means the system clock.
	Clock session.Clock
	// PruneEvery is how often the background loop removes expired and idle
	// sessions from memory, flushes coarse Touch records and checks whether
	// the log wants a snapshot. A session leaves memory at most this long
	// (plus a second of rounding) after its deadline. Zero means one
	// second; negative means no background loop, for tests that call Prune
	// themselves.
	PruneEvery time.Duration
	// SnapshotAfter is the log size in bytes past which the loop writes a
	// snapshot and starts a new log. Zero means 64 MiB, about 400,000
	// logins' worth of records, which replays in well under a second.
	SnapshotAfter int64
	// TouchEvery is the granularity at which Touch is logged (see the
	// package documentation); sessions with an idle timeout use a quarter
	// of it if that is shorter. Zero means 30 seconds.
	TouchEvery time.Duration
	// Logger receives errors from the background loop (log flushes and
	// snapshots); they are also returned by the next write. Nil discards.
	Logger *slog.Logger
}

const (
	shardBits = 6
	shards    = 1 << shardBits // enough that 2 cores contend rarely, few enough to walk cheaply

	defaultPruneEvery    = time.Second
	defaultSnapshotAfter = 64 << 20
	defaultTouchEvery    = 30 * time.Second

	// pruneBatch caps the entries one shard lock hold may prune, so a mass
	// expiry does not stall that shard's readers.
	pruneBatch = 4096
)

// Store is the embedded session.Store. Create one with Open.
type Store struct {
	clock      session.Clock
	max        int
	touchEvery int64
	snapAfter  int64
	logger     *slog.Logger
	seed       maphash.Seed

	ids      [shards]idShard
	subjects [shards]subjectShard
	clients  *interner[string]
	amrs     *interner[[]string]

	dir    string
	dirLck *os.File
	log    *wal // nil when volatile
	snapMu sync.Mutex

	closed atomic.Bool
	stop   chan struct{}
	done   chan struct{}
}

// idShard holds the sessions whose ID hashes to it.
type idShard struct {
	mu   sync.RWMutex
	ids  table
	heap deadlines
}

// subjectShard holds, for each subject hashing to it, that subject's
// oldest session; the rest follow through entry.next.
type subjectShard struct {
	mu    sync.RWMutex
	heads table
}

var _ session.Store = (*Store)(nil)

// Open returns a store. With Options.Dir set it first restores the sessions
// kept there, which takes time proportional to their number.
func Open(ctx context.Context, opts Options) (*Store, error) {
	s := &Store{
		clock:      opts.Clock,
		max:        opts.MaxPerSubject,
		touchEvery: int64(opts.TouchEvery),
		snapAfter:  opts.SnapshotAfter,
		logger:     opts.Logger,
		seed:       maphash.MakeSeed(),
		clients:    newInterner[string]("client ids"),
		amrs:       newInterner[[]string]("amr lists"),
		dir:        opts.Dir,
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	if s.clock == nil {
		s.clock = session.SystemClock{}
	}
	if s.max <= 0 {
		s.max = session.DefaultMaxPerSubject
	}
	if s.touchEvery <= 0 {
		s.touchEvery = int64(defaultTouchEvery)
	}
	if s.snapAfter <= 0 {
		s.snapAfter = defaultSnapshotAfter
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	for i := range s.ids {
		s.ids[i].ids.seed = s.seed
		s.subjects[i].heads = table{seed: s.seed, bySubject: true}
	}
	if s.dir != "" {
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			return nil, fmt.Errorf("create session directory: %w", err)
		}
		lck, err := lockDir(ctx, s.dir)
		if err != nil {
			return nil, err
		}
		s.dirLck = lck
		if err := s.load(ctx); err != nil {
			lck.Close()
			return nil, err
		}
	}
	s.Prune(s.clock.Now())
	every := opts.PruneEvery
	if every == 0 {
		every = defaultPruneEvery
	}
	if every > 0 {
		go s.run(every)
	} else {
		close(s.done)
	}
	return s, nil
}

func (s *Store) now() int64 { return s.clock.Now().UnixNano() }

func (s *Store) hash(key string) uint64 { return maphash.String(s.seed, key) }

// Shards are chosen by the hash's top bits; tables use its low bits.
func (s *Store) idShard(h uint64) *idShard           { return &s.ids[h>>(64-shardBits)] }
func (s *Store) subjectShard(h uint64) *subjectShard { return &s.subjects[h>>(64-shardBits)] }

// check is the preamble of every operation.
func (s *Store) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// locate is the preamble of the one-session operations: the ID's hash and
// shard, and the time.
func (s *Store) locate(ctx context.Context, id string) (uint64, *idShard, int64, error) {
	if err := s.check(ctx); err != nil {
		return 0, nil, 0, err
	}
	h := s.hash(id)
	return h, s.idShard(h), s.now(), nil
}

// Create implements session.Store.
func (s *Store) Create(ctx context.Context, in session.Session) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if err := in.Validate(); err != nil {
		return err
	}
	e, err := s.newEntry(in)
	if err != nil {
		return err
	}
	now := s.now()
	sh, idh := s.hash(in.Subject), s.hash(in.ID)
	ss, is := s.subjectShard(sh), s.idShard(idh)

	ss.mu.Lock()
	is.mu.Lock()
	old := is.ids.get(idh, in.ID)
	err = nil
	if old != nil && old.live(now) {
		err = session.ErrAlreadyExists
	} else if s.log != nil {
		err = s.log.failed()
	}
	if err != nil {
		is.mu.Unlock()
		ss.mu.Unlock()
		return err
	}
	if old != nil {
		// Dead but not yet pruned: it needs no record, replay finds it
		// dead too.
		is.remove(idh, old)
	}
	is.add(idh, e)
	var seq uint64
	if s.log != nil {
		seq = s.log.add(func(b []byte) []byte { return s.appendCreate(b, e) })
	}
	is.mu.Unlock()

	var orphan *entry
	if old != nil {
		if oh := s.hash(old.subject()); s.subjectShard(oh) == ss {
			ss.unlinkLocked(oh, old)
		} else {
			// Its list is behind another subject lock, which must not be
			// taken while holding this one.
			orphan = old
		}
	}
	if last := s.evictLocked(ss, sh, in.Subject, now); last > 0 {
		seq = last
	}
	ss.linkLocked(sh, e)
	ss.mu.Unlock()

	if orphan != nil {
		s.unlink(orphan)
	}
	if s.log == nil {
		return nil
	}
	// Wait for the disk with no lock held: this is where concurrent
	// Creates pile up and share one fsync.
	return s.log.sync(seq)
}

// evictLocked makes room for one more session of subject: it drops the
// subject's dead sessions from its list, then evicts the oldest live ones
// until fewer than the bound remain. It returns the sequence number of the
// last eviction record, or 0. The caller holds ss.mu.
//
// Its records follow the new session's in the log and the Create waits for
// them, but a group commit may cut between the two: a crash there brings
// the subject back one session over its bound (never losing an acknowledged
// one), and the subject's next Create trims it.
func (s *Store) evictLocked(ss *subjectShard, sh uint64, subject string, now int64) uint64 {
	live := 0
	var next *entry
	for x := ss.heads.get(sh, subject); x != nil; x = next {
		next = x.next
		xh := s.hash(x.id())
		xs := s.idShard(xh)
		xs.mu.Lock()
		gone := x.hidx < 0
		if !gone && !x.live(now) {
			xs.remove(xh, x)
			gone = true
		}
		xs.mu.Unlock()
		if gone {
			ss.unlinkLocked(sh, x)
		} else {
			live++
		}
	}
	var seq uint64
	for x := ss.heads.get(sh, subject); x != nil && live >= s.max; x = next {
		next = x.next
		xh := s.hash(x.id())
		xs := s.idShard(xh)
		xs.mu.Lock()
		if x.hidx >= 0 { // a concurrent Delete may have beaten us to it
			xs.remove(xh, x)
			if s.log != nil {
				seq = s.log.add(func(b []byte) []byte { return appendDelete(b, x.id()) })
			}
		}
		xs.mu.Unlock()
		ss.unlinkLocked(sh, x)
		live--
	}
	return seq
}

// Get implements session.Store.
func (s *Store) Get(ctx context.Context, id string) (session.Session, error) {
	h, is, now, err := s.locate(ctx, id)
	if err != nil {
		return session.Session{}, err
	}
	is.mu.RLock()
	defer is.mu.RUnlock()
	e := is.ids.get(h, id)
	if e == nil || !e.live(now) {
		return session.Session{}, session.ErrNotFound
	}
	return s.session(e), nil
}

// Touch implements session.Store.
func (s *Store) Touch(ctx context.Context, id string) (session.Session, error) {
	h, is, now, err := s.locate(ctx, id)
	if err != nil {
		return session.Session{}, err
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	e := is.ids.get(h, id)
	if e == nil || !e.live(now) {
		return session.Session{}, session.ErrNotFound
	}
	last := max(now, e.lastSeen) // a clock stepping back does not rewind it
	last = min(last, e.expires)
	prev := e.lastSeen
	e.lastSeen = last
	if s.log != nil {
		grain := s.touchEvery
		if e.idle > 0 {
			grain = max(1, min(grain, e.idle/4))
		}
		if prev/grain != last/grain {
			s.log.add(func(b []byte) []byte { return appendTouch(b, e.id(), last) })
		}
	}
	return s.session(e), nil
}

// Update implements session.Store. f runs under the ID shard's lock, which
// is what makes the read-modify-write atomic. The new state is logged as a
// whole-session record (replay's restore replaces the session with its ID),
// and Update waits for it like Create.
func (s *Store) Update(ctx context.Context, id string, f func(*session.Session) error) (session.Session, error) {
	h, is, now, err := s.locate(ctx, id)
	if err != nil {
		return session.Session{}, err
	}
	is.mu.Lock()
	e := is.ids.get(h, id)
	if e == nil || !e.live(now) {
		is.mu.Unlock()
		return session.Session{}, session.ErrNotFound
	}
	prev := s.session(e)
	next := s.session(e)
	if err := f(&next); err != nil {
		is.mu.Unlock()
		return session.Session{}, err
	}
	if err := session.CheckUpdate(prev, next); err != nil {
		is.mu.Unlock()
		return session.Session{}, err
	}
	if s.log != nil {
		if err := s.log.failed(); err != nil {
			is.mu.Unlock()
			return session.Session{}, err
		}
	}
	e.setAttrs(next.Attrs)
	if exp := next.ExpiresAt.UnixNano(); exp != e.expires {
		e.expires = exp
		// An earlier deadline must reach the heap's top in time; a later
		// one is re-keyed by Prune when the old key pops.
		if k := ceilSec(e.deadline()); k < e.heapKey {
			e.heapKey = k
			is.heap.up(int(e.hidx))
		}
	}
	var seq uint64
	if s.log != nil {
		seq = s.log.add(func(b []byte) []byte { return s.appendCreate(b, e) })
	}
	out := s.session(e)
	is.mu.Unlock()
	if s.log != nil {
		if err := s.log.sync(seq); err != nil {
			return session.Session{}, err
		}
	}
	return out, nil
}

// Delete implements session.Store.
func (s *Store) Delete(ctx context.Context, id string) error {
	h, is, now, err := s.locate(ctx, id)
	if err != nil {
		return err
	}
	is.mu.Lock()
	e := is.ids.get(h, id)
	if e == nil {
		is.mu.Unlock()
		return session.ErrNotFound
	}
	live := e.live(now)
	if live && s.log != nil {
		if err := s.log.failed(); err != nil {
			is.mu.Unlock()
			return err
		}
	}
	is.remove(h, e)
	var seq uint64
	if live && s.log != nil {
		seq = s.log.add(func(b []byte) []byte { return appendDelete(b, id) })
	}
	is.mu.Unlock()
	s.unlink(e)
	if !live {
		return session.ErrNotFound
	}
	if s.log != nil {
		return s.log.sync(seq)
	}
	return nil
}

// DeleteSubject implements session.Store.
func (s *Store) DeleteSubject(ctx context.Context, subject string) (int, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	now := s.now()
	sh := s.hash(subject)
	ss := s.subjectShard(sh)
	ss.mu.Lock()
	n := 0
	var seq uint64
	var next *entry
	for x := ss.heads.get(sh, subject); x != nil; x = next {
		next = x.next
		xh := s.hash(x.id())
		xs := s.idShard(xh)
		xs.mu.Lock()
		if x.hidx >= 0 {
			if x.live(now) {
				n++
				if s.log != nil {
					seq = s.log.add(func(b []byte) []byte { return appendDelete(b, x.id()) })
				}
			}
			xs.remove(xh, x)
		}
		xs.mu.Unlock()
		x.next = nil
	}
	ss.heads.del(sh, subject)
	ss.mu.Unlock()
	if seq > 0 {
		if err := s.log.sync(seq); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// ListSubject implements session.Store.
func (s *Store) ListSubject(ctx context.Context, subject string) ([]session.Session, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	now := s.now()
	sh := s.hash(subject)
	ss := s.subjectShard(sh)
	ss.mu.RLock()
	defer ss.mu.RUnlock()
	var out []session.Session
	for x := ss.heads.get(sh, subject); x != nil; x = x.next {
		xs := s.idShard(s.hash(x.id()))
		xs.mu.RLock()
		if x.hidx >= 0 && x.live(now) {
			out = append(out, s.session(x))
		}
		xs.mu.RUnlock()
	}
	return out, nil
}

// Len is the number of sessions held, including dead ones not yet pruned.
func (s *Store) Len() int {
	n := 0
	for i := range s.ids {
		is := &s.ids[i]
		is.mu.RLock()
		n += is.ids.n
		is.mu.RUnlock()
	}
	return n
}

// Prune removes every session dead at now (give or take a second of
// rounding) from memory and returns how many it removed. The background
// loop calls it; tests driving a fake clock call it directly.
func (s *Store) Prune(now time.Time) int {
	n := now.UnixNano()
	sec := floorSec(n)
	total := 0
	dead := make([]*entry, 0, 64)
	for i := range s.ids {
		is := &s.ids[i]
		for more := true; more; {
			dead = dead[:0]
			is.mu.Lock()
			ops := 0
			for len(is.heap) > 0 && is.heap[0].heapKey <= sec && ops < pruneBatch {
				ops++
				e := is.heap[0]
				if e.live(n) {
					// Touched since its key was set: re-key, it is not due.
					e.heapKey = ceilSec(e.deadline())
					is.heap.down(0)
					continue
				}
				is.remove(s.hash(e.id()), e)
				dead = append(dead, e)
			}
			more = ops == pruneBatch
			is.heap.shrink()
			is.mu.Unlock()
			for _, e := range dead {
				s.unlink(e)
			}
			total += len(dead)
		}
	}
	return total
}

// add puts e in the shard; the caller holds its lock.
func (is *idShard) add(h uint64, e *entry) {
	is.ids.put(h, e)
	e.heapKey = ceilSec(e.deadline())
	is.heap.push(e)
}

// remove takes e out of the shard and marks it gone; the caller holds the
// lock. Its subject list still links it until unlink.
func (is *idShard) remove(h uint64, e *entry) {
	is.ids.del(h, e.id())
	is.heap.remove(e)
}

// unlink takes e out of its subject's list.
func (s *Store) unlink(e *entry) {
	sh := s.hash(e.subject())
	ss := s.subjectShard(sh)
	ss.mu.Lock()
	ss.unlinkLocked(sh, e)
	ss.mu.Unlock()
}

// linkLocked inserts e into its subject's list after every session created
// no later than it. The caller holds ss.mu.
func (ss *subjectShard) linkLocked(sh uint64, e *entry) {
	head := ss.heads.get(sh, e.subject())
	switch {
	case head == nil:
		ss.heads.put(sh, e)
	case e.created < head.created:
		e.next = head
		ss.heads.replace(sh, e.subject(), e)
	default:
		p := head
		for p.next != nil && p.next.created <= e.created {
			p = p.next
		}
		e.next, p.next = p.next, e
	}
}

// unlinkLocked removes e from its subject's list if it is there. The caller
// holds ss.mu.
func (ss *subjectShard) unlinkLocked(sh uint64, e *entry) {
	head := ss.heads.get(sh, e.subject())
	if head == nil {
		return
	}
	if head == e {
		if e.next == nil {
			ss.heads.del(sh, e.subject())
		} else {
			ss.heads.replace(sh, e.subject(), e.next)
		}
		e.next = nil
		return
	}
	for p := head; p.next != nil; p = p.next {
		if p.next == e {
			p.next, e.next = e.next, nil
			return
		}
	}
}

// run is the background loop: prune, flush coarse records, snapshot.
func (s *Store) run(every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.Prune(s.clock.Now())
		if s.log == nil {
			continue
		}
		if err := s.log.syncAll(); err != nil {
			s.logger.Error("session log flush failed", "err", err)
			continue
		}
		if s.log.logSize() > s.snapAfter {
			if err := s.Snapshot(context.Background()); err != nil {
				s.logger.Error("session snapshot failed", "err", err)
			}
		}
	}
}

// Close stops the background loop and, for a durable store, makes every
// record durable and releases the directory.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(s.stop)
	<-s.done
	var err error
	if s.log != nil {
		s.snapMu.Lock() // let a snapshot in progress finish with the log open
		err = s.log.close()
		s.snapMu.Unlock()
	}
	if s.dirLck != nil {
		s.dirLck.Close()
	}
	return err
}
