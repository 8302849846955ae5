package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/rempart/rempart/internal/journal"
)

// Tables written before sealing kept the byte fields in clear, in columns
// body, decision and result_body. migrate seals them once, inside the
// transaction (and under the advisory lock) that creates the schema, so
// nodes starting together migrate once and none reads a half-sealed table.

// migrate seals a table of the first layout and reports whether it did; on
// a sealed table it checks that the key opens the newest entry.
func migrate(ctx context.Context, tx pgx.Tx, schema, table string, sealer *journal.Sealer) (bool, error) {
	var legacy bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = 'journal' AND column_name = 'body')`, schema).Scan(&legacy)
	if err != nil {
		return false, fmt.Errorf("read layout: %w", err)
	}
	if !legacy {
		return false, checkKey(ctx, tx, table, sealer)
	}
	for _, c := range []string{"request_sealed", "decision_sealed", "result_sealed"} {
		if _, err := tx.Exec(ctx, `ALTER TABLE `+table+` ADD COLUMN `+c+` BYTEA NOT NULL DEFAULT ''::bytea`); err != nil {
			return false, fmt.Errorf("add %s: %w", c, err)
		}
	}
	for after := int64(-1 << 63); ; {
		rows, err := tx.Query(ctx, `SELECT seq, key, body, decision, result_body FROM `+table+`
			WHERE seq > $1 ORDER BY seq LIMIT 1000`, after)
		if err != nil {
			return false, err
		}
		page, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (journal.Entry, error) {
			var e journal.Entry
			err := r.Scan(&e.Seq, &e.Key, &e.Request.Body, &e.Decision, &e.Result.Body)
			return e, err
		})
		if err != nil {
			return false, err
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			sealed := sealer.SealEntry(e)
			if _, err := tx.Exec(ctx, `UPDATE `+table+` SET request_sealed = $1, decision_sealed = $2,
				result_sealed = $3 WHERE seq = $4`, orEmpty(sealed.Request), orEmpty(sealed.Decision),
				orEmpty(sealed.Result), e.Seq); err != nil {
				return false, fmt.Errorf("seal %s: %w", e.Key, err)
			}
		}
		after = page[len(page)-1].Seq
	}
	for _, c := range []string{"body", "decision", "result_body"} {
		if _, err := tx.Exec(ctx, `ALTER TABLE `+table+` DROP COLUMN `+c); err != nil {
			return false, fmt.Errorf("drop %s: %w", c, err)
		}
	}
	return true, nil
}

// checkKey refuses a key that does not open the newest entry: a node with
// another key than its peers would fail every read of what they wrote.
func checkKey(ctx context.Context, tx pgx.Tx, table string, sealer *journal.Sealer) error {
	var (
		e      journal.Entry
		stored journal.Sealed
	)
	err := tx.QueryRow(ctx, `SELECT key, request_sealed, decision_sealed, result_sealed FROM `+table+`
		ORDER BY seq DESC LIMIT 1`).Scan(&e.Key, &stored.Request, &stored.Decision, &stored.Result)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check key: %w", err)
	}
	if err := sealer.OpenEntry(&e, stored); err != nil {
		return fmt.Errorf("the journal was sealed with another key: every node needs the same one: %w", err)
	}
	return nil
}
