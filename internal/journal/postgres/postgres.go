package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
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
	// Key seals the byte fields of entries (journal.KeySize bytes).
	// Required, and the same on every node sharing the table: a node with
	// another key cannot read what the others wrote, and Open refuses it.
	Key []byte
}

// Store is a journal.Store in a PostgreSQL table.
type Store struct {
	pool   *pool
	table  string // quoted schema.journal
	seal   *journal.Sealer
	closed atomic.Bool
	once   sync.Once
	err    error
}

var _ journal.Store = (*Store)(nil)

// columns is the select list every read scans with scanEntry.
const columns = `seq, key, kind, upstream, method, path, content_type, request_sealed, decision_sealed,
	state, created, completed, result_status, result_type, result_sealed`

// purgeBatch bounds the entries one purge statement deletes, so a purge of a
// long outage's backlog holds no long lock.
const purgeBatch = 1000

// schemaLock serialises schema creation between processes starting together:
// CREATE ... IF NOT EXISTS is not safe against a concurrent CREATE.
const schemaLock = 0x72656d70 // "remp"

// Open connects to the database at url (a PostgreSQL URL or DSN) and creates
// the journal table in opts.Schema if it is missing. A table written before
// sealing is migrated: every entry is sealed and the clear columns dropped,
// so nodes of an older rempart fail on it instead of replaying ciphertext.
// PostgreSQL keeps the old row versions until the table is vacuumed, so Open
// runs VACUUM FULL on it after a migration.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	sealer, err := journal.NewSealer(opts.Key)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
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
	var migrated bool
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
				request_sealed  BYTEA NOT NULL,
				decision_sealed BYTEA NOT NULL,
				state         TEXT    NOT NULL CHECK (state IN ('pending', 'done')),
				created       BIGINT  NOT NULL,
				completed     BIGINT  NOT NULL DEFAULT 0,
				result_status INTEGER NOT NULL DEFAULT 0,
				result_type   TEXT    NOT NULL DEFAULT '',
				result_sealed BYTEA   NOT NULL DEFAULT ''::bytea)`,
			// The replay lease (Claim): a table of an older rempart gets
			// the columns free, as if never claimed.
			`ALTER TABLE ` + table + ` ADD COLUMN IF NOT EXISTS lease_owner TEXT NOT NULL DEFAULT ''`,
			`ALTER TABLE ` + table + ` ADD COLUMN IF NOT EXISTS lease_until BIGINT NOT NULL DEFAULT 0`,
			`CREATE INDEX IF NOT EXISTS journal_state ON ` + table + ` (state, seq)`,
			`CREATE INDEX IF NOT EXISTS journal_created ON ` + table + ` (created)`,
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return err
			}
		}
		var err error
		migrated, err = migrate(ctx, tx, opts.Schema, table, sealer)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open journal: prepare table: %w", err)
	}
	if migrated {
		if _, err := conn.Exec(ctx, `VACUUM FULL `+table); err != nil {
			return nil, fmt.Errorf("open journal: vacuum after sealing: %w", err)
		}
	}
	return &Store{pool: newPool(cfg, opts.Conns), table: table, seal: sealer}, nil
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
	sealed := s.seal.SealEntry(e)
	var out journal.Entry
	err := s.with(ctx, func(c *pgx.Conn) error {
		// Twice at most: the existing entry may be purged between the
		// insert that met it and the read of it, and then the key is free.
		for range 2 {
			var err error
			out, err = s.scanEntry(c.QueryRow(ctx, `INSERT INTO `+s.table+` (key, kind, upstream, method, path,
					content_type, request_sealed, decision_sealed, state, created, completed, result_status,
					result_type, result_sealed)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
				ON CONFLICT (key) DO NOTHING RETURNING `+columns,
				e.Key, e.Kind, e.Upstream, e.Request.Method, e.Request.Path, e.Request.ContentType,
				orEmpty(sealed.Request), orEmpty(sealed.Decision), string(e.State), e.Created.UnixNano(), completed,
				e.Result.Status, e.Result.ContentType, orEmpty(sealed.Result)))
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			// The key exists: no row was inserted.
			out, err = s.scanEntry(c.QueryRow(ctx, `SELECT `+columns+` FROM `+s.table+` WHERE key = $1`, e.Key))
			if errors.Is(err, pgx.ErrNoRows) {
				continue
			}
			if err != nil {
				return fmt.Errorf("read existing: %w", err)
			}
			return journal.ErrAlreadyExists
		}
		return errors.New("key taken and purged twice in a row")
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
		e, err = s.scanEntry(c.QueryRow(ctx, `SELECT `+columns+` FROM `+s.table+` WHERE key = $1`, key))
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
	where, args := selection(f, []string{"seq > $1"}, []any{f.After})
	q := fmt.Sprintf(`SELECT %s FROM %s WHERE %s ORDER BY seq LIMIT $%d`,
		columns, s.table, strings.Join(where, " AND "), len(args))
	out, err := s.query(ctx, q, args)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	return out, nil
}

// Claim implements journal.Store in one statement, its own transaction: the
// inner SELECT locks the rows it picks and skips those another claimer has
// locked (FOR UPDATE SKIP LOCKED), and a row claimed by a transaction that
// committed meanwhile is checked again against its new lease, so two nodes
// claiming at once never get the same entry.
func (s *Store) Claim(ctx context.Context, f journal.Filter, l journal.Lease) ([]journal.Entry, error) {
	if err := l.Validate(f); err != nil {
		return nil, err
	}
	f.State = journal.Pending
	where, args := selection(f, []string{"(lease_owner = $1 OR lease_until < $3)", "seq > $4"},
		[]any{l.Owner, l.Until.UnixNano(), l.Now.UnixNano(), f.After})
	q := fmt.Sprintf(`UPDATE %[1]s SET lease_owner = $1, lease_until = $2 WHERE seq IN (
		SELECT seq FROM %[1]s WHERE %[2]s ORDER BY seq LIMIT $%[3]d FOR UPDATE SKIP LOCKED)
		RETURNING %[4]s`, s.table, strings.Join(where, " AND "), len(args), columns)
	out, err := s.query(ctx, q, args)
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	// RETURNING keeps no order.
	slices.SortFunc(out, func(a, b journal.Entry) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

// selection adds to where and args the conditions of f other than After,
// then f.Limit as the last argument.
func selection(f journal.Filter, where []string, args []any) ([]string, []any) {
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
	return where, append(args, f.Limit)
}

// query runs q and reads the entries it returns.
func (s *Store) query(ctx context.Context, q string, args []any) ([]journal.Entry, error) {
	var out []journal.Entry
	err := s.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := s.scanEntry(rows)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	return out, err
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
		e, err = s.scanEntry(c.QueryRow(ctx, `UPDATE `+s.table+` SET state = 'done', completed = $2,
				result_status = $3, result_type = $4, result_sealed = $5
			WHERE key = $1 AND state = 'pending' RETURNING `+columns,
			key, at.UnixNano(), res.Status, res.ContentType, orEmpty(s.seal.Seal(key, journal.FieldResult, res.Body))))
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		e, err = s.scanEntry(c.QueryRow(ctx, `SELECT `+columns+` FROM `+s.table+` WHERE key = $1`, key))
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

// Purge implements journal.Store, in statements of at most purgeBatch rows.
func (s *Store) Purge(ctx context.Context, before time.Time) (int, error) {
	if err := journal.ValidPurge(before); err != nil {
		return 0, err
	}
	total := 0
	for {
		var n int64
		err := s.with(ctx, func(c *pgx.Conn) error {
			tag, err := c.Exec(ctx, `DELETE FROM `+s.table+` WHERE seq IN (SELECT seq FROM `+s.table+`
				WHERE state = 'done' AND completed < $1 ORDER BY seq LIMIT $2)`, before.UnixNano(), purgeBatch)
			n = tag.RowsAffected()
			return err
		})
		total += int(n)
		if err != nil {
			return total, fmt.Errorf("purge: %w", err)
		}
		if n < purgeBatch {
			return total, nil
		}
	}
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

// scanEntry reads a row of columns and opens its sealed fields.
func (s *Store) scanEntry(row pgx.Row) (journal.Entry, error) {
	var (
		e                  journal.Entry
		stored             journal.Sealed
		state              string
		created, completed int64
		status             int32
	)
	err := row.Scan(&e.Seq, &e.Key, &e.Kind, &e.Upstream, &e.Request.Method, &e.Request.Path,
		&e.Request.ContentType, &stored.Request, &stored.Decision, &state, &created, &completed,
		&status, &e.Result.ContentType, &stored.Result)
	if err != nil {
		return journal.Entry{}, err
	}
	if err := s.seal.OpenEntry(&e, stored); err != nil {
		return journal.Entry{}, err
	}
	e.State = journal.State(state)
	e.Result.Status = int(status)
	e.Created = time.Unix(0, created).UTC()
	if completed != 0 {
		e.Completed = time.Unix(0, completed).UTC()
	}
	return e, nil
}

// orEmpty stores a nil byte field as an empty bytea, not NULL.
func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
