package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/rempart/rempart/internal/journal"
)

// Journals written before sealing kept the byte fields in clear, in columns
// body, decision and result_body. Rather than read them forever, Open seals
// them once: it adds the sealed columns, seals every entry, drops the clear
// ones and vacuums, all before the journal is used.

// legacyColumns are the clear columns of the first layout.
var legacyColumns = []string{"body", "decision", "result_body"}

// migrate seals a journal of the first layout, or checks that a sealed one
// opens with this key.
func migrate(ctx context.Context, db *sql.DB, sealer *journal.Sealer) error {
	var legacy int
	if err := db.QueryRowContext(ctx,
		`SELECT COUNT(*) FROM pragma_table_info('journal') WHERE name = 'body'`).Scan(&legacy); err != nil {
		return fmt.Errorf("read layout: %w", err)
	}
	if err := addLease(ctx, db); err != nil {
		return err
	}
	if legacy == 0 {
		return checkKey(ctx, db, sealer)
	}
	if err := sealLegacy(ctx, db, sealer); err != nil {
		return err
	}
	// Rewrite the file without the free pages that held the clear rows, and
	// empty the WAL that saw them go.
	if _, err := db.ExecContext(ctx, `VACUUM`); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// addLease gives a journal of an older rempart the replay lease columns,
// every entry free.
func addLease(ctx context.Context, db *sql.DB) error {
	var has int
	if err := db.QueryRowContext(ctx,
		`SELECT COUNT(*) FROM pragma_table_info('journal') WHERE name = 'lease_owner'`).Scan(&has); err != nil {
		return fmt.Errorf("read layout: %w", err)
	}
	if has > 0 {
		return nil
	}
	for _, c := range []string{`lease_owner TEXT NOT NULL DEFAULT ''`, `lease_until INTEGER NOT NULL DEFAULT 0`} {
		if _, err := db.ExecContext(ctx, `ALTER TABLE journal ADD COLUMN `+c); err != nil {
			return fmt.Errorf("add lease column: %w", err)
		}
	}
	return nil
}

func sealLegacy(ctx context.Context, db *sql.DB, sealer *journal.Sealer) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, c := range []string{"request_sealed", "decision_sealed", "result_sealed"} {
		if _, err := tx.ExecContext(ctx, `ALTER TABLE journal ADD COLUMN `+c+` BLOB NOT NULL DEFAULT x''`); err != nil {
			return fmt.Errorf("add %s: %w", c, err)
		}
	}
	for after := int64(-1 << 63); ; {
		rows, err := tx.QueryContext(ctx, `SELECT seq, key, body, decision, result_body FROM journal
			WHERE seq > ? ORDER BY seq LIMIT 1000`, after)
		if err != nil {
			return err
		}
		var page []journal.Entry
		for rows.Next() {
			var e journal.Entry
			if err := rows.Scan(&e.Seq, &e.Key, &e.Request.Body, &e.Decision, &e.Result.Body); err != nil {
				rows.Close()
				return err
			}
			page = append(page, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			sealed := sealer.SealEntry(e)
			if _, err := tx.ExecContext(ctx, `UPDATE journal SET request_sealed = ?, decision_sealed = ?,
				result_sealed = ? WHERE seq = ?`, orEmpty(sealed.Request), orEmpty(sealed.Decision),
				orEmpty(sealed.Result), e.Seq); err != nil {
				return fmt.Errorf("seal %s: %w", e.Key, err)
			}
		}
		after = page[len(page)-1].Seq
	}
	for _, c := range legacyColumns {
		if _, err := tx.ExecContext(ctx, `ALTER TABLE journal DROP COLUMN `+c); err != nil {
			return fmt.Errorf("drop %s: %w", c, err)
		}
	}
	return tx.Commit()
}

// checkKey refuses a key that does not open the newest entry: a journal
// key lost or swapped would otherwise surface as one failed read per entry,
// and pending entries would never be replayed.
func checkKey(ctx context.Context, db *sql.DB, sealer *journal.Sealer) error {
	e := journal.Entry{}
	var stored journal.Sealed
	err := db.QueryRowContext(ctx, `SELECT key, request_sealed, decision_sealed, result_sealed
		FROM journal ORDER BY seq DESC LIMIT 1`).Scan(&e.Key, &stored.Request, &stored.Decision, &stored.Result)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check key: %w", err)
	}
	if err := sealer.OpenEntry(&e, stored); err != nil {
		return fmt.Errorf("the journal was sealed with another key than %s holds: %w", journal.KeyFile, err)
	}
	return nil
}
