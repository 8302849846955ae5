package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rempart/rempart/internal/journal"
)

// Options configures a Store. The zero value uses the defaults below.
type Options struct {
	// Schema holds the journal table, created with it if missing. Default
	// "public". Tests give each run its own schema.
	Schema string
	// Conns is how many connections the store keeps. Default 4: appends
	// from stand-in and outbox, the replayer's reads and completions.
	Conns int
}

// Store is a journal.Store in a PostgreSQL table.
type Store struct {
	pool   *pool
	table  string // quoted schema.journal
	closed atomic.Bool
	once   sync.Once
	err    error
}

var _ journal.Store = (*Store)(nil)

// columns is the select list every read scans with scanEntry.
const columns = `seq, key, kind, upstream, method, path, content_type, body, decision,
	state, created, completed, result_status, result_type, result_body`

// schemaLock serialises schema creation between processes starting together:
// CREATE ... IF NOT EXISTS is not safe against a concurrent CREATE.
const schemaLock = 0x72656d70 // "remp"

// Open connects to the database at url (a PostgreSQL URL or DSN) and creates
// the journal table in opts.Schema if it is missing.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.Schema == "" {
		opts.Schema = "public"
	}
	if opts.Conns <= 0 {
		opts.Conns = 4
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	schema := pgx.Identifier{opts.Schema}.Sanitize()
	table := pgx.Identifier{opts.Schema, "journal"}.Sanitize()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open journal: connect: %w", err)
	}
	defer conn.Close(ctx)
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		stmts := []string{
			fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d)`, schemaLock),
			`CREATE SCHEMA IF NOT EXISTS ` + schema,
			`CREATE TABLE IF NOT EXISTS ` + table + ` (
				seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
				key           TEXT    NOT NULL UNIQUE,
				kind          TEXT    NOT NULL,
				upstream      TEXT    NOT NULL,
				method        TEXT    NOT NULL,
				path          TEXT    NOT NULL,
				content_type  TEXT    NOT NULL,
				body          BYTEA   NOT NULL,
				decision      BYTEA   NOT NULL,
				state         TEXT    NOT NULL CHECK (state IN ('pending', 'done')),
				created       BIGINT  NOT NULL,
				completed     BIGINT  NOT NULL DEFAULT 0,
				result_status INTEGER NOT NULL DEFAULT 0,
				result_type   TEXT    NOT NULL DEFAULT '',
				result_body   BYTEA   NOT NULL DEFAULT ''::bytea)`,
			`CREATE INDEX IF NOT EXISTS journal_state ON ` + table + ` (state, seq)`,
			`CREATE INDEX IF NOT EXISTS journal_created ON ` + table + ` (created)`,
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open journal: create schema: %w", err)
	}
	return &Store{pool: newPool(cfg, opts.Conns), table: table}, nil
}

// with runs fn on a pooled connection.
func (s *Store) with(ctx context.Context, fn func(*pgx.Conn) error) error {
	if s.closed.Load() {
		return journal.ErrClosed
	}
	c, err := s.pool.acquire(ctx)
	if err != nil {
		return err
	}
	defer s.pool.release(c)
	return fn(c)
}

// Append implements journal.Store.
func (s *Store) Append(ctx context.Context, e journal.Entry) (journal.Entry, error) {
	if err := e.Validate(); err != nil {
		return journal.Entry{}, err
	}
	if e.State == "" {
		e.State = journal.Pending
	}
	var completed int64
	if !e.Completed.IsZero() {
		completed = e.Completed.UnixNano()
	}
	var out journal.Entry
	err := s.with(ctx, func(c *pgx.Conn) error {
		var err error
		out, err = scanEntry(c.QueryRow(ctx, `INSERT INTO `+s.table+` (key, kind, upstream, method, path,
				content_type, body, decision, state, created, completed, result_status, result_type, result_body)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
			ON CONFLICT (key) DO NOTHING RETURNING `+columns,
			e.Key, e.Kind, e.Upstream, e.Request.Method, e.Request.Path, e.Request.ContentType,
			orEmpty(e.Request.Body), orEmpty(e.Decision), string(e.State), e.Created.UnixNano(), completed,
			e.Result.Status, e.Result.ContentType, orEmpty(e.Result.Body)))
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		// The key exists: no row was inserted. Entries are never deleted,
		// so the existing one is there to read.
		out, err = scanEntry(c.QueryRow(ctx, `SELECT `+columns+` FROM `+s.table+` WHERE key = $1`, e.Key))
		if err != nil {
			return fmt.Errorf("read existing: %w", err)
		}
		return journal.ErrAlreadyExists
	})
	if err != nil {
		return out, fmt.Errorf("append %s: %w", e.Key, err)
	}
	return out, nil
}

// Get implements journal.Store.
func (s *Store) Get(ctx context.Context, key string) (journal.Entry, error) {
	var e journal.Entry
	err := s.with(ctx, func(c *pgx.Conn) (err error) {
		e, err = scanEntry(c.QueryRow(ctx, `SELECT `+columns+` FROM `+s.table+` WHERE key = $1`, key))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
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
	where, args := []string{"seq > $1"}, []any{f.After}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.State != "" {
		add("state = $%d", string(f.State))
	}
	if f.Kind != "" {
		add("kind = $%d", f.Kind)
	}
	if f.Upstream != "" {
		add("upstream = $%d", f.Upstream)
	}
	if !f.Since.IsZero() {
		add("created >= $%d", f.Since.UnixNano())
	}
	args = append(args, f.Limit)
	q := fmt.Sprintf(`SELECT %s FROM %s WHERE %s ORDER BY seq LIMIT $%d`,
		columns, s.table, strings.Join(where, " AND "), len(args))
	var out []journal.Entry
	err := s.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanEntry(rows)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	return out, nil
}

// Complete implements journal.Store.
func (s *Store) Complete(ctx context.Context, key string, res journal.Result, at time.Time) (journal.Entry, error) {
	if err := journal.ValidCompletion(key, res, at); err != nil {
		return journal.Entry{}, err
	}
	var e journal.Entry
	err := s.with(ctx, func(c *pgx.Conn) error {
		// One statement, so a concurrent Complete of the same key either
		// finds it pending and loses the update race (and reads the winner's
		// result) or finds it done.
		var err error
		e, err = scanEntry(c.QueryRow(ctx, `UPDATE `+s.table+` SET state = 'done', completed = $2,
				result_status = $3, result_type = $4, result_body = $5
			WHERE key = $1 AND state = 'pending' RETURNING `+columns,
			key, at.UnixNano(), res.Status, res.ContentType, orEmpty(res.Body)))
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		e, err = scanEntry(c.QueryRow(ctx, `SELECT `+columns+` FROM `+s.table+` WHERE key = $1`, key))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return journal.Entry{}, fmt.Errorf("complete %s: %w", key, journal.ErrNotFound)
	}
	if err != nil {
		return journal.Entry{}, fmt.Errorf("complete %s: %w", key, err)
	}
	return e, nil
}

// Counts implements journal.Store.
func (s *Store) Counts(ctx context.Context) (journal.Counts, error) {
	cs := journal.Counts{Pending: map[string]int{}, Done: map[string]int{}}
	err := s.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `SELECT state, kind, COUNT(*) FROM `+s.table+` GROUP BY state, kind`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				state, kind string
				n           int64
			)
			if err := rows.Scan(&state, &kind, &n); err != nil {
				return err
			}
			if journal.State(state) == journal.Pending {
				cs.Pending[kind] = int(n)
			} else {
				cs.Done[kind] = int(n)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return journal.Counts{}, fmt.Errorf("counts: %w", err)
	}
	return cs, nil
}

// Close waits for the operations in flight and closes the connections.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.closed.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.pool.close(ctx); err != nil {
			s.err = fmt.Errorf("close journal: %w", err)
		}
	})
	return s.err
}

func scanEntry(row pgx.Row) (journal.Entry, error) {
	var (
		e                  journal.Entry
		state              string
		created, completed int64
		status             int32
	)
	err := row.Scan(&e.Seq, &e.Key, &e.Kind, &e.Upstream, &e.Request.Method, &e.Request.Path,
		&e.Request.ContentType, &e.Request.Body, &e.Decision, &state, &created, &completed,
		&status, &e.Result.ContentType, &e.Result.Body)
	if err != nil {
		return journal.Entry{}, err
	}
	e.State = journal.State(state)
	e.Result.Status = int(status)
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

// orEmpty stores a nil byte field as an empty bytea, not NULL.
func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
