package ledger_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/rempart/rempart/internal/estate/ledger"
)

// TestCheckDetects tampers with the file behind the ledger's back and
// expects Check to notice.
func TestCheckDetects(t *testing.T) {
	tests := []struct {
		name    string
		tamper  []string // raw SQL
		acked   []string
		problem []string // substrings expected among Problems
		missing []string
		dup     []string
	}{{
		name:  "untouched",
		acked: []string{"t1", "t2", "t3", "t1"},
	}, {
		name:    "tampered balance",
		tamper:  []string{`UPDATE accounts SET balance = balance + 1 WHERE id = 'A1'`},
		acked:   []string{"t1"},
		problem: []string{"money not conserved", "balance does not match its entries: account A1"},
	}, {
		name:    "money moved without a transfer",
		tamper:  []string{`UPDATE accounts SET balance = balance + 5 WHERE id = 'A1'`, `UPDATE accounts SET balance = balance - 5 WHERE id = 'A2'`},
		problem: []string{"account A1", "account A2"},
	}, {
		name:    "lost entry",
		tamper:  []string{`DELETE FROM entries WHERE transfer_id = 1 AND amount > 0`},
		problem: []string{"transfer entries do not match the transfer: transfer 1", "account A2"},
	}, {
		name:    "entry on a declined transfer",
		tamper:  []string{`INSERT INTO entries VALUES (3, 'A1', 0, 'A2')`},
		problem: []string{"transfer 3 (key t3, executed 0)"},
	}, {
		name:    "orphan entry",
		tamper:  []string{`INSERT INTO entries VALUES (99, 'A1', 0, 'A2')`},
		problem: []string{"orphan entry: entry of transfer 99"},
	}, {
		name: "customer below zero",
		tamper: []string{`UPDATE accounts SET opening = opening - 10000, balance = balance - 10000 WHERE id = 'A2'`,
			`UPDATE accounts SET opening = opening + 10000, balance = balance + 10000 WHERE id = 'A1'`},
		problem: []string{"customer account below zero: account A2"},
	}, {
		name:    "acknowledged and lost",
		acked:   []string{"t1", "never-applied", "t2"},
		missing: []string{"never-applied"},
	}, {
		name: "acknowledged and applied twice",
		tamper: []string{`DROP INDEX transfers_key`,
			`INSERT INTO transfers (key, fingerprint, from_account, to_account, amount, kind, reference, executed, reason, from_balance, at)
			 SELECT key, fingerprint, from_account, to_account, amount, kind, reference, 0, 'x', from_balance, at FROM transfers WHERE key = 't2'`},
		acked: []string{"t1", "t2"},
		dup:   []string{"t2"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			path := dbPath(t)
			l := open(t, path, fakeSource{"A1": 100_00, "A2": 50_00})
			for _, tr := range []ledger.Transfer{
				{Key: "t1", From: "A1", To: "A2", Amount: 30_00, Kind: ledger.KindInstant},
				{Key: "t2", From: "A2", To: ledger.SysMerchants, Amount: 70_00, Kind: ledger.KindCard},
				{Key: "t3", From: "A1", To: "A2", Amount: 90_00, Kind: ledger.KindInstant}, // declined
			} {
				if _, err := l.Apply(ctx, tr); err != nil {
					t.Fatal(err)
				}
			}
			db := rawDB(t, path)
			for _, q := range tt.tamper {
				if _, err := db.Exec(q); err != nil {
					t.Fatalf("tamper %q: %v", q, err)
				}
			}

			rep := mustCheck(t, l, tt.acked...)
			wantOK := len(tt.problem)+len(tt.missing)+len(tt.dup) == 0
			if rep.OK != wantOK {
				t.Errorf("OK = %v, want %v; report %+v", rep.OK, wantOK, rep)
			}
			for _, p := range tt.problem {
				if !slices.ContainsFunc(rep.Problems, func(s string) bool { return strings.Contains(s, p) }) {
					t.Errorf("no problem mentions %q; got %q", p, rep.Problems)
				}
			}
			if !slices.Equal(rep.Missing, tt.missing) || !slices.Equal(rep.Duplicated, tt.dup) {
				t.Errorf("Missing %q, Duplicated %q; want %q, %q", rep.Missing, rep.Duplicated, tt.missing, tt.dup)
			}
			if len(tt.tamper) == 0 && (rep.Accounts != 3 || rep.Transfers != 2 || rep.Declined != 1 ||
				rep.Sum != 150_00 || rep.OpeningSum != 150_00) {
				t.Errorf("report of the untouched ledger = %+v", rep)
			}
		})
	}
}
