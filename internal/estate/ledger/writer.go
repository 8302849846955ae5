package ledger

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Group commit. One goroutine owns the single write connection. It takes the
// transfers that arrived while the previous commit was running and decides
// them all in one IMMEDIATE transaction, so concurrent callers share the cost
// of a commit (the WAL writes) instead of queueing for one each: see
// BenchmarkApply, where parallel callers reach about twice the serial rate,
// four times under Sync "full" where the commit is an fsync.
// Every decision is still taken inside the transaction that stores it, in
// arrival order, so a key is decided once however many callers race on it.

// maxBatch bounds a group commit, and so the latency the last transfer of a
// batch adds to the first.
const maxBatch = 128

type request struct {
	ctx  context.Context
	t    Transfer
	fp   [32]byte
	done chan reply // buffered: the writer never blocks on a caller that left
}

type reply struct {
	res Result
	err error
}

// write is the writer goroutine; it runs until closing is closed. The queue
// is unbuffered, so once write has returned no request can be left in it
// unanswered.
func (l *Ledger) write() {
	defer close(l.stopped)
	batch := make([]*request, 0, maxBatch)
	for {
		select {
		case r := <-l.queue:
			batch = append(batch[:0], r)
		case <-l.closing:
			return
		}
	gather:
		for len(batch) < maxBatch {
			select {
			case r := <-l.queue:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		l.commit(batch)
		clear(batch) // let finished requests be collected
	}
}

// commit decides a batch in one transaction and answers every request. A
// transfer refused for its own reasons (key reused, unknown account) writes
// nothing, so it does not disturb the others; any other failure rolls back
// the whole batch and all of it is answered with the error, unacknowledged
// and therefore safe to retry.
func (l *Ledger) commit(batch []*request) {
	replies := make([]reply, len(batch))
	err := l.commitTx(batch, replies)
	for i, r := range batch {
		if err != nil {
			replies[i] = reply{err: fmt.Errorf("apply %s: %w", r.t.Key, err)}
		}
		r.done <- replies[i]
	}
}

func (l *Ledger) commitTx(batch []*request, replies []reply) error {
	// Not a caller's context: the transaction serves the whole batch, and a
	// caller that gives up must not roll back the others.
	ctx := context.Background()
	tx, err := l.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	s := txStmts{
		transferByKey: tx.StmtContext(ctx, l.ws.transferByKey),
		balance:       tx.StmtContext(ctx, l.ws.balance),
		newAccount:    tx.StmtContext(ctx, l.ws.newAccount),
		newTransfer:   tx.StmtContext(ctx, l.ws.newTransfer),
		addBalance:    tx.StmtContext(ctx, l.ws.addBalance),
		newEntry:      tx.StmtContext(ctx, l.ws.newEntry),
	}
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			// The caller left before its turn: decide nothing for it.
			replies[i] = reply{err: fmt.Errorf("apply %s: %w", r.t.Key, err)}
			continue
		}
		res, err := l.decide(ctx, s, r)
		if err != nil && !errors.Is(err, ErrKeyReused) && !errors.Is(err, ErrUnknownAccount) {
			return err
		}
		replies[i] = reply{res: res, err: err}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// txStmts are the write statements bound to one batch's transaction.
type txStmts struct {
	transferByKey, balance, newAccount, newTransfer, addBalance, newEntry *sql.Stmt
}

// decide applies one transfer inside the batch transaction. It returns
// ErrKeyReused or ErrUnknownAccount before writing anything.
func (l *Ledger) decide(ctx context.Context, s txStmts, r *request) (Result, error) {
	t := r.t
	res, storedFP, err := scanResult(s.transferByKey.QueryRowContext(ctx, t.Key))
	switch {
	case err == nil:
		if !bytes.Equal(storedFP, r.fp[:]) {
			return Result{}, fmt.Errorf("apply %s: %w", t.Key, ErrKeyReused)
		}
		res.Key, res.Replayed = t.Key, true
		return res, nil
	case !isNoRows(err):
		return Result{}, fmt.Errorf("apply %s: %w", t.Key, err)
	}

	// Resolve both accounts before writing either, so that an unknown one
	// leaves no trace.
	fromBal, fromNew, err := l.account(ctx, s, t.From)
	if err != nil {
		return Result{}, fmt.Errorf("apply %s: %w", t.Key, err)
	}
	toBal, toNew, err := l.account(ctx, s, t.To)
	if err != nil {
		return Result{}, fmt.Errorf("apply %s: %w", t.Key, err)
	}
	for _, a := range [2]struct {
		id      string
		opening int64
		isNew   bool
	}{{t.From, fromBal, fromNew}, {t.To, toBal, toNew}} {
		if a.isNew {
			if _, err := s.newAccount.ExecContext(ctx, a.id, a.opening); err != nil {
				return Result{}, fmt.Errorf("apply %s: create account %q: %w", t.Key, a.id, err)
			}
		}
	}

	at := time.Unix(0, l.now().UnixNano()).UTC()
	res = Result{Key: t.Key, Executed: true, Amount: t.Amount, FromBalance: fromBal - t.Amount, At: at}
	if !isSystem(t.From) && fromBal < t.Amount {
		res.Executed, res.Reason, res.FromBalance = false, ReasonInsufficientFunds, fromBal
	}
	ins, err := s.newTransfer.ExecContext(ctx,
		t.Key, r.fp[:], t.From, t.To, t.Amount, t.Kind, t.Reference,
		res.Executed, res.Reason, res.FromBalance, at.UnixNano())
	if err != nil {
		return Result{}, fmt.Errorf("apply %s: record transfer: %w", t.Key, err)
	}
	if res.ID, err = ins.LastInsertId(); err != nil {
		return Result{}, fmt.Errorf("apply %s: record transfer: %w", t.Key, err)
	}
	if !res.Executed {
		return res, nil
	}
	for _, leg := range [2]struct {
		account, counterparty string
		amount                int64
	}{{t.From, t.To, -t.Amount}, {t.To, t.From, t.Amount}} {
		if _, err := s.addBalance.ExecContext(ctx, leg.amount, leg.account); err != nil {
			return Result{}, fmt.Errorf("apply %s: update %q: %w", t.Key, leg.account, err)
		}
		if _, err := s.newEntry.ExecContext(ctx, res.ID, leg.account, leg.amount, leg.counterparty); err != nil {
			return Result{}, fmt.Errorf("apply %s: entry on %q: %w", t.Key, leg.account, err)
		}
	}
	return res, nil
}

// account returns the balance of account and whether it still has to be
// materialised (in which case the balance is its opening balance).
func (l *Ledger) account(ctx context.Context, s txStmts, account string) (int64, bool, error) {
	var bal int64
	err := s.balance.QueryRowContext(ctx, account).Scan(&bal)
	switch {
	case err == nil:
		return bal, false, nil
	case !isNoRows(err):
		return 0, false, fmt.Errorf("read account %q: %w", account, err)
	}
	bal, err = l.opening(account)
	return bal, err == nil, err
}
