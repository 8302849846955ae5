package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
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

const schema = `
CREATE TABLE IF NOT EXISTS journal (
	seq           INTEGER PRIMARY KEY,
	key           TEXT    NOT NULL UNIQUE,
	kind          TEXT    NOT NULL,
	upstream      TEXT    NOT NULL,
	method        TEXT    NOT NULL,
	path          TEXT    NOT NULL,
	content_type  TEXT    NOT NULL,
	body          BLOB    NOT NULL,
	decision      BLOB    NOT NULL,
	state         TEXT    NOT NULL CHECK (state IN ('pending', 'done')),
	created       INTEGER NOT NULL,
	completed     INTEGER NOT NULL DEFAULT 0,
	result_status INTEGER NOT NULL DEFAULT 0,
	result_type   TEXT    NOT NULL DEFAULT '',
	result_body   BLOB    NOT NULL DEFAULT x''
);
CREATE INDEX IF NOT EXISTS journal_state ON journal (state, seq);
CREATE INDEX IF NOT EXISTS journal_created ON journal (created);
`

// columns is the select list every read scans with scanEntry.
const columns = `seq, key, kind, upstream, method, path, content_type, body, decision,
	state, created, completed, result_status, result_type, result_body`

// Store is a journal.Store on one SQLite file. Only one process may write a
// file at a time; a second one waits on the file lock (busyTimeout) and fails.
type Store struct {
	// w has exactly one connection; the writer goroutine owns it. Its
	// transactions begin IMMEDIATE and commit with synchronous=FULL, so a
	// commit is fsynced before Append returns.
	w *sql.DB
	// r is a pool of read-only connections reading committed snapshots
	// under WAL without waiting for the writer.
	r   *sql.DB
	get *sql.Stmt

	queue     chan *op // to the writer; unbuffered
	closing   chan struct{}
	stopped   chan struct{}
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

var _ journal.Store = (*Store)(nil)

// Open opens (creating if need be) the journal in the SQLite file at path.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, ":memory:") || strings.HasPrefix(path, "file:") {
		// Reads and writes go through two pools on one file; an in-memory
		// database would give each connection its own.
		return nil, fmt.Errorf("journal path %q must be a plain file name: %w", path, journal.ErrInvalid)
	}
	busy := fmt.Sprint(busyTimeout.Milliseconds())
	w, err := sql.Open("sqlite", path+"?"+url.Values{
		"_busy_timeout": {busy},
		"_journal_mode": {"WAL"},
		"_synchronous":  {"FULL"},
		"_txlock":       {"immediate"},
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
	s := &Store{w: w, r: r, get: get,
		queue: make(chan *op), closing: make(chan struct{}), stopped: make(chan struct{})}
	go s.write()
	return s, nil
}

// Append implements journal.Store.
func (s *Store) Append(ctx context.Context, e journal.Entry) (journal.Entry, error) {
	if err := e.Validate(); err != nil {
		return journal.Entry{}, err
	}
	if e.State == "" {
		e.State = journal.Pending
	}
	return s.submit(ctx, &op{ctx: ctx, entry: e, done: make(chan reply, 1)})
}

// Complete implements journal.Store.
func (s *Store) Complete(ctx context.Context, key string, res journal.Result, at time.Time) (journal.Entry, error) {
	if err := journal.ValidCompletion(key, res, at); err != nil {
		return journal.Entry{}, err
	}
	return s.submit(ctx, &op{ctx: ctx, complete: true, entry: journal.Entry{Key: key, Result: res, Completed: at},
		done: make(chan reply, 1)})
}

func (s *Store) submit(ctx context.Context, o *op) (journal.Entry, error) {
	select {
	case s.queue <- o:
	case <-s.closing:
		return journal.Entry{}, journal.ErrClosed
	case <-ctx.Done():
		return journal.Entry{}, fmt.Errorf("journal %s: %w", o.entry.Key, ctx.Err())
	}
	select {
	case r := <-o.done:
		return r.e, r.err
	case <-ctx.Done():
		return journal.Entry{}, fmt.Errorf("journal %s: outcome unknown: %w", o.entry.Key, ctx.Err())
	}
}

// Get implements journal.Store.
func (s *Store) Get(ctx context.Context, key string) (journal.Entry, error) {
	if s.closed.Load() {
		return journal.Entry{}, journal.ErrClosed
	}
	e, err := scanEntry(s.get.QueryRowContext(ctx, key))
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
	where, args := []string{"seq > ?"}, []any{f.After}
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
	rows, err := s.r.QueryContext(ctx, `SELECT `+columns+` FROM journal WHERE `+
		strings.Join(where, " AND ")+` ORDER BY seq LIMIT ?`, append(args, f.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	defer rows.Close()
	var out []journal.Entry
	for rows.Next() {
		e, err := scanEntry(rows)
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

func scanEntry(row scanner) (journal.Entry, error) {
	var (
		e                  journal.Entry
		state              string
		created, completed int64
	)
	err := row.Scan(&e.Seq, &e.Key, &e.Kind, &e.Upstream, &e.Request.Method, &e.Request.Path,
		&e.Request.ContentType, &e.Request.Body, &e.Decision, &state, &created, &completed,
		&e.Result.Status, &e.Result.ContentType, &e.Result.Body)
	if err != nil {
		return journal.Entry{}, err
	}
	e.State = journal.State(state)
	e.Created = time.Unix(0, created).UTC()
	if completed != 0 {
		e.Completed = time.Unix(0, completed).UTC()
	}
	e.Request.Body, e.Decision, e.Result.Body = orNil(e.Request.Body), orNil(e.Decision), orNil(e.Result.Body)
	return e, nil
}

// orNil gives every backend the same answer for an empty byte field.
func orNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// orEmpty stores a nil byte field as an empty BLOB, not NULL.
func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
