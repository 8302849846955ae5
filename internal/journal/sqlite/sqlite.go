package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/rempart/rempart/internal/journal"
)

// busyTimeout bounds how long a connection waits for a lock held by another
// process on the same file (an operator's sqlite3 shell, a replayer being
// replaced). In-process writers never wait on it: they queue for the single
// write connection instead.
const busyTimeout = 5 * time.Second

// schema is the current layout. The byte fields are sealed (see
// journal.Sealer); a journal from before sealing is migrated by Open.
const schema = `
CREATE TABLE IF NOT EXISTS journal (
	seq             INTEGER PRIMARY KEY,
	key             TEXT    NOT NULL UNIQUE,
	kind            TEXT    NOT NULL,
	upstream        TEXT    NOT NULL,
	method          TEXT    NOT NULL,
	path            TEXT    NOT NULL,
	content_type    TEXT    NOT NULL,
	request_sealed  BLOB    NOT NULL,
	decision_sealed BLOB    NOT NULL,
	state           TEXT    NOT NULL CHECK (state IN ('pending', 'done')),
	created         INTEGER NOT NULL,
	completed       INTEGER NOT NULL DEFAULT 0,
	result_status   INTEGER NOT NULL DEFAULT 0,
	result_type     TEXT    NOT NULL DEFAULT '',
	result_sealed   BLOB    NOT NULL DEFAULT x'',
	lease_owner     TEXT    NOT NULL DEFAULT '',
	lease_until     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS journal_state ON journal (state, seq);
CREATE INDEX IF NOT EXISTS journal_created ON journal (created);
`

// columns is the select list every read scans with scanEntry.
const columns = `seq, key, kind, upstream, method, path, content_type, request_sealed, decision_sealed,
	state, created, completed, result_status, result_type, result_sealed`

// purgeBatch bounds the entries one purge transaction deletes, so a purge of
// a long outage's backlog does not hold the writer from stand-in decisions.
const purgeBatch = 1000

// Store is a journal.Store on one SQLite file. Only one process may write a
// file at a time; a second one waits on the file lock (busyTimeout) and fails.
type Store struct {
	// w has exactly one connection; the writer goroutine owns it. Its
	// transactions begin IMMEDIATE and commit with synchronous=FULL, so a
	// commit is fsynced before Append returns.
	w *sql.DB
	// r is a pool of read-only connections reading committed snapshots
	// under WAL without waiting for the writer.
	r    *sql.DB
	get  *sql.Stmt
	seal *journal.Sealer

	queue     chan *op // to the writer; unbuffered
	closing   chan struct{}
	stopped   chan struct{}
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

var _ journal.Store = (*Store)(nil)

// Open opens (creating if need be) the journal in the SQLite file at path.
// Its byte fields are sealed under the key in journal.KeyFile beside it,
// created on first start. The file and its -wal and -shm companions are
// made readable by their owner only (0600).
//
// A journal written before sealing is migrated in place on the first Open:
// every entry is sealed, the clear columns dropped and the file vacuumed, so
// no card number remains in it. An older rempart cannot use the journal
// afterwards (its columns are gone: it fails instead of replaying ciphertext).
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, ":memory:") || strings.HasPrefix(path, "file:") {
		// Reads and writes go through two pools on one file; an in-memory
		// database would give each connection its own.
		return nil, fmt.Errorf("journal path %q must be a plain file name: %w", path, journal.ErrInvalid)
	}
	key, err := journal.LoadOrCreateKey(filepath.Join(filepath.Dir(path), journal.KeyFile))
	if err != nil {
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	sealer, err := journal.NewSealer(key)
	if err != nil {
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	if err := ownerOnly(path); err != nil {
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	busy := fmt.Sprint(busyTimeout.Milliseconds())
	w, err := sql.Open("sqlite", path+"?"+url.Values{
		"_busy_timeout": {busy},
		"_journal_mode": {"WAL"},
		"_synchronous":  {"FULL"},
		"_txlock":       {"immediate"},
		// Deleted and rewritten rows (a purge, the migration) are zeroed in
		// the file instead of lingering in free pages.
		"_pragma": {"secure_delete(1)"},
	}.Encode())
	if err != nil {
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if _, err := w.ExecContext(ctx, schema); err != nil {
		w.Close()
		return nil, fmt.Errorf("open journal %s: create schema: %w", path, err)
	}
	if err := migrate(ctx, w, sealer); err != nil {
		w.Close()
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	// Readers are opened after the writer has switched the file to WAL, a
	// persistent setting they then inherit.
	r, err := sql.Open("sqlite", path+"?"+url.Values{
		"_busy_timeout": {busy},
		"_query_only":   {"1"},
	}.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	get, err := r.PrepareContext(ctx, `SELECT `+columns+` FROM journal WHERE key = ?`)
	if err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	s := &Store{w: w, r: r, get: get, seal: sealer,
		queue: make(chan *op), closing: make(chan struct{}), stopped: make(chan struct{})}
	go s.write()
	return s, nil
}

// ownerOnly creates the journal file 0600 if it is missing, and narrows an
// existing one and its companions to 0600. SQLite creates -wal and -shm with
// the mode of the database file, so they follow.
func ownerOnly(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Append implements journal.Store.
func (s *Store) Append(ctx context.Context, e journal.Entry) (journal.Entry, error) {
	if err := e.Validate(); err != nil {
		return journal.Entry{}, err
	}
	if e.State == "" {
		e.State = journal.Pending
	}
	return s.submit(ctx, &op{ctx: ctx, kind: opAppend, entry: e, done: make(chan reply, 1)})
}

// Claim implements journal.Store. One process owns the file, so leases only
// keep that process's replayers apart; the claim is still a turn of the
// writer, read and leased in one transaction, as the contract asks.
func (s *Store) Claim(ctx context.Context, f journal.Filter, l journal.Lease) ([]journal.Entry, error) {
	if err := l.Validate(f); err != nil {
		return nil, err
	}
	r, err := s.submitOp(ctx, &op{ctx: ctx, kind: opClaim, filter: f, lease: l, done: make(chan reply, 1)})
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	return r.es, nil
}

// Complete implements journal.Store.
func (s *Store) Complete(ctx context.Context, key string, res journal.Result, at time.Time) (journal.Entry, error) {
	if err := journal.ValidCompletion(key, res, at); err != nil {
		return journal.Entry{}, err
	}
	return s.submit(ctx, &op{ctx: ctx, kind: opComplete, entry: journal.Entry{Key: key, Result: res, Completed: at},
		done: make(chan reply, 1)})
}

func (s *Store) submit(ctx context.Context, o *op) (journal.Entry, error) {
	r, err := s.submitOp(ctx, o)
	return r.e, err
}

func (s *Store) submitOp(ctx context.Context, o *op) (reply, error) {
	select {
	case s.queue <- o:
	case <-s.closing:
		return reply{}, journal.ErrClosed
	case <-ctx.Done():
		return reply{}, fmt.Errorf("journal %s: %w", o.entry.Key, ctx.Err())
	}
	select {
	case r := <-o.done:
		return r, r.err
	case <-ctx.Done():
		return reply{}, fmt.Errorf("journal %s: outcome unknown: %w", o.entry.Key, ctx.Err())
	}
}

// Get implements journal.Store.
func (s *Store) Get(ctx context.Context, key string) (journal.Entry, error) {
	if s.closed.Load() {
		return journal.Entry{}, journal.ErrClosed
	}
	e, err := s.scanEntry(s.get.QueryRowContext(ctx, key))
	if errors.Is(err, sql.ErrNoRows) {
		return journal.Entry{}, fmt.Errorf("get %s: %w", key, journal.ErrNotFound)
	}
	if err != nil {
		return journal.Entry{}, fmt.Errorf("get %s: %w", key, err)
	}
	return e, nil
}

// List implements journal.Store.
func (s *Store) List(ctx context.Context, f journal.Filter) ([]journal.Entry, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if s.closed.Load() {
		return nil, journal.ErrClosed
	}
	where, args := selection(f, []string{"seq > ?"}, []any{f.After})
	rows, err := s.r.QueryContext(ctx, `SELECT `+columns+` FROM journal WHERE `+
		strings.Join(where, " AND ")+` ORDER BY seq LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	defer rows.Close()
	var out []journal.Entry
	for rows.Next() {
		e, err := s.scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("list: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	return out, nil
}

// selection adds to where and args the conditions of f other than After,
// then f.Limit as the last argument.
func selection(f journal.Filter, where []string, args []any) ([]string, []any) {
	if f.State != "" {
		where, args = append(where, "state = ?"), append(args, string(f.State))
	}
	if f.Kind != "" {
		where, args = append(where, "kind = ?"), append(args, f.Kind)
	}
	if f.Upstream != "" {
		where, args = append(where, "upstream = ?"), append(args, f.Upstream)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "created >= ?"), append(args, f.Since.UnixNano())
	}
	return where, append(args, f.Limit)
}

// Counts implements journal.Store.
func (s *Store) Counts(ctx context.Context) (journal.Counts, error) {
	if s.closed.Load() {
		return journal.Counts{}, journal.ErrClosed
	}
	rows, err := s.r.QueryContext(ctx, `SELECT state, kind, COUNT(*) FROM journal GROUP BY state, kind`)
	if err != nil {
		return journal.Counts{}, fmt.Errorf("counts: %w", err)
	}
	defer rows.Close()
	c := journal.Counts{Pending: map[string]int{}, Done: map[string]int{}}
	for rows.Next() {
		var (
			state, kind string
			n           int
		)
		if err := rows.Scan(&state, &kind, &n); err != nil {
			return journal.Counts{}, fmt.Errorf("counts: %w", err)
		}
		if journal.State(state) == journal.Pending {
			c.Pending[kind] = n
		} else {
			c.Done[kind] = n
		}
	}
	if err := rows.Err(); err != nil {
		return journal.Counts{}, fmt.Errorf("counts: %w", err)
	}
	return c, nil
}

// Purge implements journal.Store. It deletes in batches of purgeBatch, each
// its own turn of the writer, so stand-in decisions are not held behind it.
func (s *Store) Purge(ctx context.Context, before time.Time) (int, error) {
	if err := journal.ValidPurge(before); err != nil {
		return 0, err
	}
	total := 0
	for {
		o := &op{ctx: ctx, kind: opPurge, entry: journal.Entry{Completed: before}, done: make(chan reply, 1)}
		r, err := s.submitOp(ctx, o)
		total += r.n
		if err != nil {
			return total, fmt.Errorf("purge: %w", err)
		}
		if r.n < purgeBatch {
			return total, nil
		}
	}
}

// Close waits for the writes being committed, refuses new ones and releases
// the connections. Calling Close again returns the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.closing)
		<-s.stopped
		s.get.Close()
		if err := errors.Join(s.r.Close(), s.w.Close()); err != nil {
			s.closeErr = fmt.Errorf("close journal: %w", err)
		}
	})
	return s.closeErr
}

type scanner interface{ Scan(dest ...any) error }

// scanEntry reads a row of columns and opens its sealed fields.
func (s *Store) scanEntry(row scanner) (journal.Entry, error) {
	var (
		e                  journal.Entry
		stored             journal.Sealed
		state              string
		created, completed int64
	)
	err := row.Scan(&e.Seq, &e.Key, &e.Kind, &e.Upstream, &e.Request.Method, &e.Request.Path,
		&e.Request.ContentType, &stored.Request, &stored.Decision, &state, &created, &completed,
		&e.Result.Status, &e.Result.ContentType, &stored.Result)
	if err != nil {
		return journal.Entry{}, err
	}
	if err := s.seal.OpenEntry(&e, stored); err != nil {
		return journal.Entry{}, err
	}
	e.State = journal.State(state)
	e.Created = time.Unix(0, created).UTC()
	if completed != 0 {
		e.Completed = time.Unix(0, completed).UTC()
	}
	return e, nil
}

// orEmpty stores a nil byte field as an empty BLOB, not NULL.
func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
