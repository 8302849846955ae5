package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// schemaVersion is stored in PRAGMA user_version; a file written by a newer
// ledger is refused rather than misread.
const schemaVersion = 1

// Amounts and balances are integer cents; times are Unix nanoseconds (UTC),
// which sort and compare without any driver time conversion.
//
// entries are keyed for History (an account's newest first). There is
// deliberately no index by transfer: only Check needs that order, and it can
// sort, whereas every Apply would pay for the index.
//
// transfers holds every decided key, declines included, which is what makes
// a replayed decline answer the same. Key uniqueness is a named index that a
// damaged or hand-edited file can lose, so Check counts keys rather than
// trusting it (and the tests drop it to prove Check notices).
const schema = `
CREATE TABLE IF NOT EXISTS accounts (
	id      TEXT PRIMARY KEY,
	opening INTEGER NOT NULL,
	balance INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS transfers (
	id           INTEGER PRIMARY KEY,
	key          TEXT NOT NULL,
	fingerprint  BLOB NOT NULL,
	from_account TEXT NOT NULL REFERENCES accounts(id),
	to_account   TEXT NOT NULL REFERENCES accounts(id),
	amount       INTEGER NOT NULL,
	kind         TEXT NOT NULL,
	reference    TEXT NOT NULL,
	executed     INTEGER NOT NULL,
	reason       TEXT NOT NULL,
	from_balance INTEGER NOT NULL,
	at           INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS transfers_key ON transfers(key);

CREATE TABLE IF NOT EXISTS entries (
	transfer_id  INTEGER NOT NULL REFERENCES transfers(id),
	account      TEXT NOT NULL REFERENCES accounts(id),
	amount       INTEGER NOT NULL,
	counterparty TEXT NOT NULL,
	PRIMARY KEY (account, transfer_id)
) STRICT, WITHOUT ROWID;
`

func (l *Ledger) migrate(ctx context.Context) error {
	var v int
	if err := l.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v > schemaVersion {
		return fmt.Errorf("schema version %d is newer than %d", v, schemaVersion)
	}
	var mode string
	if err := l.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if mode != "wal" {
		return fmt.Errorf("journal mode is %q, want wal", mode)
	}
	tx, err := l.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("set schema version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	return nil
}

// writeStmts are prepared once on the single write connection.
type writeStmts struct {
	transferByKey *sql.Stmt
	balance       *sql.Stmt
	newAccount    *sql.Stmt
	newTransfer   *sql.Stmt
	addBalance    *sql.Stmt
	newEntry      *sql.Stmt
}

// readStmts are prepared on the read pool, lazily per connection by
// database/sql.
type readStmts struct {
	transferByKey *sql.Stmt
	balance       *sql.Stmt
	history       *sql.Stmt
}

const (
	sqlTransferByKey = `SELECT id, fingerprint, executed, reason, amount, from_balance, at
		FROM transfers WHERE key = ?`
	sqlBalance     = `SELECT balance FROM accounts WHERE id = ?`
	sqlNewAccount  = `INSERT INTO accounts (id, opening, balance) VALUES (?1, ?2, ?2)`
	sqlNewTransfer = `INSERT INTO transfers
		(key, fingerprint, from_account, to_account, amount, kind, reference, executed, reason, from_balance, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	// Single-row statements on purpose: a two-row UPDATE or INSERT makes
	// SQLite open a statement journal (and, for IN, an ephemeral table),
	// which cost more than the extra round trip (BenchmarkApply).
	sqlAddBalance = `UPDATE accounts SET balance = balance + ? WHERE id = ?`
	sqlNewEntry   = `INSERT INTO entries (transfer_id, account, amount, counterparty) VALUES (?, ?, ?, ?)`
	sqlHistory    = `SELECT e.transfer_id, e.amount, e.counterparty, t.kind, t.reference, t.at
		FROM entries e JOIN transfers t ON t.id = e.transfer_id
		WHERE e.account = ? ORDER BY e.transfer_id DESC LIMIT ?`
)

func (l *Ledger) prepare(ctx context.Context) error {
	var err error
	prep := func(db *sql.DB, q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var s *sql.Stmt
		s, err = db.PrepareContext(ctx, q)
		return s
	}
	l.ws = writeStmts{
		transferByKey: prep(l.w, sqlTransferByKey),
		balance:       prep(l.w, sqlBalance),
		newAccount:    prep(l.w, sqlNewAccount),
		newTransfer:   prep(l.w, sqlNewTransfer),
		addBalance:    prep(l.w, sqlAddBalance),
		newEntry:      prep(l.w, sqlNewEntry),
	}
	l.rs = readStmts{
		transferByKey: prep(l.r, sqlTransferByKey),
		balance:       prep(l.r, sqlBalance),
		history:       prep(l.r, sqlHistory),
	}
	if err != nil {
		return fmt.Errorf("prepare statements: %w", err)
	}
	return nil
}

func (s *writeStmts) close() {
	closeAll(s.transferByKey, s.balance, s.newAccount, s.newTransfer, s.addBalance, s.newEntry)
}

func (s *readStmts) close() {
	closeAll(s.transferByKey, s.balance, s.history)
}

func closeAll(stmts ...*sql.Stmt) {
	for _, s := range stmts {
		if s != nil {
			s.Close()
		}
	}
}

// isNoRows is errors.Is(err, sql.ErrNoRows), named for readability.
func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
