package ledger

import (
	"context"
	"fmt"
	"time"
)

// Entry is one leg of an executed transfer, as seen from Account.
type Entry struct {
	TransferID   int64     `json:"transfer_id"`
	Account      string    `json:"account"`
	Amount       int64     `json:"amount"` // signed cents: negative leaves Account
	Kind         string    `json:"kind"`
	Reference    string    `json:"reference,omitempty"`
	Counterparty string    `json:"counterparty"`
	At           time.Time `json:"at"`
}

// History limits: the default page, and the most one call returns.
const (
	defaultHistory = 50
	maxHistory     = 1000
)

// Balance returns the balance of account in cents. An account never written
// has its opening balance; reading it does not materialise it.
func (l *Ledger) Balance(ctx context.Context, account string) (int64, error) {
	var bal int64
	err := l.rs.balance.QueryRowContext(ctx, account).Scan(&bal)
	switch {
	case err == nil:
		return bal, nil
	case !isNoRows(err):
		return 0, fmt.Errorf("balance of %q: %w", account, err)
	}
	bal, err = l.opening(account)
	if err != nil {
		return 0, fmt.Errorf("balance: %w", err)
	}
	return bal, nil
}

// History returns up to limit entries of account, newest first. limit <= 0
// means 50; more than 1000 is capped.
func (l *Ledger) History(ctx context.Context, account string, limit int) ([]Entry, error) {
	if limit <= 0 {
		limit = defaultHistory
	}
	limit = min(limit, maxHistory)
	rows, err := l.rs.history.QueryContext(ctx, account, limit)
	if err != nil {
		return nil, fmt.Errorf("history of %q: %w", account, err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e := Entry{Account: account}
		var at int64
		if err := rows.Scan(&e.TransferID, &e.Amount, &e.Counterparty, &e.Kind, &e.Reference, &at); err != nil {
			return nil, fmt.Errorf("history of %q: %w", account, err)
		}
		e.At = time.Unix(0, at).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history of %q: %w", account, err)
	}
	if len(out) == 0 {
		// No entries: tell an account that simply has none from one that
		// does not exist.
		if _, err := l.Balance(ctx, account); err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
	}
	return out, nil
}

// Lookup returns the stored decision for key, or ErrNotFound. Replayed is
// not set: nothing was applied.
func (l *Ledger) Lookup(ctx context.Context, key string) (Result, error) {
	if err := validKey(key); err != nil {
		return Result{}, fmt.Errorf("lookup: %w", err)
	}
	res, _, err := scanResult(l.rs.transferByKey.QueryRowContext(ctx, key))
	switch {
	case isNoRows(err):
		return Result{}, fmt.Errorf("lookup %s: %w", key, ErrNotFound)
	case err != nil:
		return Result{}, fmt.Errorf("lookup %s: %w", key, err)
	}
	res.Key = key
	return res, nil
}
