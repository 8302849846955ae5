// Package postgres is the keys.Store a cluster shares: one row in a
// PostgreSQL table holding the sealed key set and its version, updated with
// a compare-and-swap on the version.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/rempart/rempart/internal/identity/keys"
)

// Options configure a Store.
type Options struct {
	// Schema holds the table, created with it if missing. Default public.
	Schema string
	// Table is the table's name. Default signing_keys.
	Table string
}

// Store is a keys.Store in PostgreSQL. It holds one connection, made again
// after it breaks: the set is read once a minute and written once a day.
type Store struct {
	cfg   *pgx.ConnConfig
	table string
	mu    sync.Mutex
	conn  *pgx.Conn
}

var _ keys.Store = (*Store)(nil)

// schemaLock serialises table creation between nodes starting together:
// CREATE ... IF NOT EXISTS is not safe against a concurrent CREATE.
const schemaLock = 0x72656d6b // "remk"

// Open connects to the database at url and creates the table if missing.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.Schema == "" {
		opts.Schema = "public"
	}
	if opts.Table == "" {
		opts.Table = "signing_keys"
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open key store: %w", err)
	}
	s := &Store{cfg: cfg, table: pgx.Identifier{opts.Schema, opts.Table}.Sanitize()}
	c, err := s.acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("open key store: %w", err)
	}
	err = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		for _, q := range []string{
			fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d)`, schemaLock),
			`CREATE SCHEMA IF NOT EXISTS ` + pgx.Identifier{opts.Schema}.Sanitize(),
			`CREATE TABLE IF NOT EXISTS ` + s.table + ` (
				id      SMALLINT    PRIMARY KEY CHECK (id = 1),
				version BIGINT      NOT NULL,
				data    BYTEA       NOT NULL,
				updated TIMESTAMPTZ NOT NULL DEFAULT now())`,
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	s.release(c, err)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open key store: prepare table: %w", err)
	}
	return s, nil
}

// acquire returns the connection, holding the store's lock until release.
func (s *Store) acquire(ctx context.Context) (*pgx.Conn, error) {
	s.mu.Lock()
	if s.conn != nil && !s.conn.IsClosed() {
		return s.conn, nil
	}
	c, err := pgx.ConnectConfig(ctx, s.cfg)
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("connect: %w", err)
	}
	s.conn = c
	return c, nil
}

// release gives the connection back; after an error it is dropped, since
// pgx leaves a connection whose query was interrupted unusable.
func (s *Store) release(c *pgx.Conn, err error) {
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		c.Close(context.Background())
		s.conn = nil
	}
	s.mu.Unlock()
}

// Load implements keys.Store.
func (s *Store) Load(ctx context.Context) (keys.Record, error) {
	c, err := s.acquire(ctx)
	if err != nil {
		return keys.Record{}, err
	}
	var r keys.Record
	var v int64
	err = c.QueryRow(ctx, `SELECT version, data FROM `+s.table+` WHERE id = 1`).Scan(&v, &r.Data)
	s.release(c, err)
	if errors.Is(err, pgx.ErrNoRows) {
		return keys.Record{}, keys.ErrNotFound
	}
	if err != nil {
		return keys.Record{}, fmt.Errorf("load key set: %w", err)
	}
	r.Version = uint64(v)
	return r, nil
}

// Update implements keys.Store.
func (s *Store) Update(ctx context.Context, prev uint64, data []byte) error {
	c, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	var n int64
	if prev == 0 {
		tag, e := c.Exec(ctx, `INSERT INTO `+s.table+` (id, version, data) VALUES (1, 1, $1)
			ON CONFLICT (id) DO NOTHING`, data)
		n, err = tag.RowsAffected(), e
	} else {
		tag, e := c.Exec(ctx, `UPDATE `+s.table+` SET version = version + 1, data = $1, updated = now()
			WHERE id = 1 AND version = $2`, data, int64(prev))
		n, err = tag.RowsAffected(), e
	}
	s.release(c, err)
	if err != nil {
		return fmt.Errorf("update key set: %w", err)
	}
	if n == 0 {
		return keys.ErrConflict
	}
	return nil
}

// Close closes the connection.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		err := s.conn.Close(context.Background())
		s.conn = nil
		return err
	}
	return nil
}
