package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
)

// Report is the outcome of Check.
type Report struct {
	Accounts   int   `json:"accounts"`    // materialised accounts
	Transfers  int   `json:"transfers"`   // executed transfers
	Declined   int   `json:"declined"`    // declined transfers (stored, no money moved)
	Sum        int64 `json:"sum"`         // sum of all balances
	OpeningSum int64 `json:"opening_sum"` // sum of the opening balances of materialised accounts
	// Missing are acknowledged keys the ledger does not hold: acknowledged
	// and lost.
	Missing []string `json:"missing,omitempty"`
	// Duplicated are acknowledged keys the ledger holds more than once:
	// acknowledged and applied twice.
	Duplicated []string `json:"duplicated,omitempty"`
	// Problems describe broken invariants, at most maxProblems per kind.
	Problems []string `json:"problems,omitempty"`
	OK       bool     `json:"ok"`
}

// maxProblems caps the problems listed per invariant: one corrupted ledger
// could otherwise produce a report as large as itself.
const maxProblems = 10

// Check verifies the ledger's invariants on one consistent snapshot, taken
// without blocking writers:
//
//   - money is conserved: the sum of all balances equals the sum of opening
//     balances of the materialised accounts;
//   - each balance equals its opening balance plus the sum of its entries;
//   - each executed transfer has exactly two entries, -amount on From and
//     +amount on To, and each declined one has none; no entry is orphaned;
//   - no customer account is below zero;
//   - each acknowledged key is held exactly once (else Missing/Duplicated).
//
// Check reads every row, so it is for drills and audits, not request paths.
func (l *Ledger) Check(ctx context.Context, acknowledged []string) (Report, error) {
	tx, err := l.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Report{}, fmt.Errorf("check: %w", err)
	}
	defer tx.Rollback()

	var rep Report
	if err := tx.QueryRowContext(ctx,
		`SELECT COUNT(*), COALESCE(SUM(balance), 0), COALESCE(SUM(opening), 0) FROM accounts`,
	).Scan(&rep.Accounts, &rep.Sum, &rep.OpeningSum); err != nil {
		return Report{}, fmt.Errorf("check: sum balances: %w", err)
	}
	if err := tx.QueryRowContext(ctx,
		`SELECT COALESCE(SUM(executed), 0), COALESCE(SUM(NOT executed), 0) FROM transfers`,
	).Scan(&rep.Transfers, &rep.Declined); err != nil {
		return Report{}, fmt.Errorf("check: count transfers: %w", err)
	}
	if rep.Sum != rep.OpeningSum {
		rep.Problems = append(rep.Problems, fmt.Sprintf(
			"money not conserved: balances sum to %d, opening balances to %d", rep.Sum, rep.OpeningSum))
	}

	checks := []struct {
		name  string
		query string
		args  []any
	}{{
		name: "balance does not match its entries",
		query: `SELECT 'account ' || a.id || ': balance ' || a.balance || ', opening ' || a.opening ||
				' + entries ' || COALESCE(e.total, 0)
			FROM accounts a LEFT JOIN (
				SELECT account, SUM(amount) AS total FROM entries GROUP BY account
			) e ON e.account = a.id
			WHERE a.balance != a.opening + COALESCE(e.total, 0)
			ORDER BY a.id`,
	}, {
		name: "transfer entries do not match the transfer",
		query: `SELECT 'transfer ' || t.id || ' (key ' || t.key || ', executed ' || t.executed || '): ' ||
				COALESCE(e.n, 0) || ' entries summing to ' || COALESCE(e.total, 0)
			FROM transfers t LEFT JOIN (
				SELECT e.transfer_id AS id, COUNT(*) AS n, SUM(e.amount) AS total,
					SUM((e.account = x.from_account AND e.amount = -x.amount) OR
						(e.account = x.to_account AND e.amount = x.amount)) AS legs
				FROM entries e JOIN transfers x ON x.id = e.transfer_id
				GROUP BY e.transfer_id
			) e ON e.id = t.id
			WHERE (t.executed AND (COALESCE(e.n, 0) != 2 OR e.total != 0 OR e.legs != 2))
				OR (NOT t.executed AND COALESCE(e.n, 0) != 0)
			ORDER BY t.id`,
	}, {
		name: "orphan entry",
		query: `SELECT 'entry of transfer ' || e.transfer_id || ' on account ' || e.account
			FROM entries e
			WHERE NOT EXISTS (SELECT 1 FROM transfers t WHERE t.id = e.transfer_id)
				OR NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = e.account)
			ORDER BY e.transfer_id`,
	}, {
		name: "customer account below zero",
		query: `SELECT 'account ' || id || ': balance ' || balance FROM accounts
			WHERE balance < 0 AND id NOT IN (?, ?) ORDER BY id`,
		args: []any{SysMerchants, SysATMCash},
	}}
	for _, c := range checks {
		found, err := listProblems(ctx, tx, c.name, c.query, c.args...)
		if err != nil {
			return Report{}, fmt.Errorf("check: %s: %w", c.name, err)
		}
		rep.Problems = append(rep.Problems, found...)
	}

	if err := checkAcknowledged(ctx, tx, acknowledged, &rep); err != nil {
		return Report{}, fmt.Errorf("check: acknowledged keys: %w", err)
	}

	rep.OK = len(rep.Problems) == 0 && len(rep.Missing) == 0 && len(rep.Duplicated) == 0
	return rep, nil
}

// listProblems runs a query returning one description per violation and
// keeps the first maxProblems, summarising the rest.
func listProblems(ctx context.Context, tx *sql.Tx, name, query string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	n := 0
	for rows.Next() {
		n++
		if n > maxProblems {
			continue
		}
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, name+": "+s)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if n > maxProblems {
		out = append(out, fmt.Sprintf("%s: %d more", name, n-maxProblems))
	}
	return out, nil
}

// checkAcknowledged counts each distinct acknowledged key in the ledger. A
// key acknowledged twice by a client is one key (the second was a replay),
// so the list is deduplicated first.
func checkAcknowledged(ctx context.Context, tx *sql.Tx, acknowledged []string, rep *Report) error {
	if len(acknowledged) == 0 {
		return nil
	}
	keys := slices.Clone(acknowledged)
	slices.Sort(keys)
	keys = slices.Compact(keys)

	stmt, err := tx.PrepareContext(ctx, `SELECT COUNT(*) FROM transfers WHERE key = ?`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, k := range keys {
		var n int
		if err := stmt.QueryRowContext(ctx, k).Scan(&n); err != nil {
			return err
		}
		switch {
		case n == 0:
			rep.Missing = append(rep.Missing, k)
		case n > 1:
			rep.Duplicated = append(rep.Duplicated, k)
		}
	}
	return nil
}
