package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rempart/rempart/internal/journal"
)

// Group commit. One goroutine owns the single write connection. It takes the
// writes that arrived while the previous commit was running and commits them
// in one transaction, so concurrent stand-in decisions share one fsync
// instead of queueing for one each (see BenchmarkAppendParallel). Each write
// is still decided inside the transaction that stores it, in arrival order,
// so one key is appended once however many callers race on it.

// maxBatch bounds a group commit, and so the latency the last write of a
// batch adds to the first.
const maxBatch = 128

type opKind int

const (
	opAppend opKind = iota
	opComplete
	opPurge
	opClaim
)

type op struct {
	ctx  context.Context
	kind opKind
	// Append: the entry; Complete: Key, Result, Completed; Purge: Completed
	// is the instant before which done entries go.
	entry journal.Entry
	// Claim: what to claim, and for whom.
	filter journal.Filter
	lease  journal.Lease
	done   chan reply // buffered: the writer never blocks on a caller that left
}

type reply struct {
	e   journal.Entry
	n   int             // Purge: entries deleted
	es  []journal.Entry // Claim: entries claimed
	err error
}

// write is the writer goroutine; it runs until closing is closed. The queue
// is unbuffered, so once write has returned no op can be left in it.
func (s *Store) write() {
	defer close(s.stopped)
	batch := make([]*op, 0, maxBatch)
	for {
		select {
		case o := <-s.queue:
			batch = append(batch[:0], o)
		case <-s.closing:
			return
		}
	gather:
		for len(batch) < maxBatch {
			select {
			case o := <-s.queue:
				batch = append(batch, o)
			default:
				break gather
			}
		}
		s.commit(batch)
		clear(batch)
	}
}

// commit runs a batch in one transaction and answers every op. An op refused
// for its own reason (duplicate key, unknown key) writes nothing and does not
// disturb the others; any other failure rolls back the whole batch and all of
// it is answered with the error, unacknowledged and therefore safe to retry.
func (s *Store) commit(batch []*op) {
	replies := make([]reply, len(batch))
	err := s.commitTx(batch, replies)
	for i, o := range batch {
		if err != nil {
			replies[i] = reply{err: fmt.Errorf("journal %s: %w", o.entry.Key, err)}
		}
		o.done <- replies[i]
	}
}

func (s *Store) commitTx(batch []*op, replies []reply) error {
	// Not a caller's context: the transaction serves the whole batch, and a
	// caller that gives up must not roll back the others.
	ctx := context.Background()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	for i, o := range batch {
		if err := o.ctx.Err(); err != nil {
			// The caller left before its turn: write nothing for it.
			replies[i] = reply{err: fmt.Errorf("journal %s: %w", o.entry.Key, err)}
			continue
		}
		var r reply
		switch o.kind {
		case opComplete:
			r.e, r.err = s.complete(ctx, tx, o.entry)
		case opPurge:
			r.n, r.err = purge(ctx, tx, o.entry.Completed)
		case opClaim:
			r.es, r.err = s.claim(ctx, tx, o.filter, o.lease)
		default:
			r.e, r.err = s.insert(ctx, tx, o.entry)
		}
		if r.err != nil && !errors.Is(r.err, journal.ErrAlreadyExists) && !errors.Is(r.err, journal.ErrNotFound) {
			return r.err
		}
		replies[i] = r
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (s *Store) insert(ctx context.Context, tx *sql.Tx, e journal.Entry) (journal.Entry, error) {
	var completed int64
	if !e.Completed.IsZero() {
		completed = e.Completed.UnixNano()
	}
	sealed := s.seal.SealEntry(e)
	res, err := tx.ExecContext(ctx, `INSERT INTO journal (key, kind, upstream, method, path, content_type,
			request_sealed, decision_sealed, state, created, completed, result_status, result_type, result_sealed)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING`,
		e.Key, e.Kind, e.Upstream, e.Request.Method, e.Request.Path, e.Request.ContentType,
		orEmpty(sealed.Request), orEmpty(sealed.Decision), string(e.State), e.Created.UnixNano(), completed,
		e.Result.Status, e.Result.ContentType, orEmpty(sealed.Result))
	if err != nil {
		return journal.Entry{}, fmt.Errorf("append %s: %w", e.Key, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return journal.Entry{}, fmt.Errorf("append %s: %w", e.Key, err)
	} else if n == 0 {
		old, err := s.scanEntry(tx.QueryRowContext(ctx, `SELECT `+columns+` FROM journal WHERE key = ?`, e.Key))
		if err != nil {
			return journal.Entry{}, fmt.Errorf("append %s: read existing: %w", e.Key, err)
		}
		return old, fmt.Errorf("append %s: %w", e.Key, journal.ErrAlreadyExists)
	}
	return s.scanEntry(tx.QueryRowContext(ctx, `SELECT `+columns+` FROM journal WHERE key = ?`, e.Key))
}

func (s *Store) complete(ctx context.Context, tx *sql.Tx, c journal.Entry) (journal.Entry, error) {
	_, err := tx.ExecContext(ctx, `UPDATE journal SET state = 'done', completed = ?,
			result_status = ?, result_type = ?, result_sealed = ?
		WHERE key = ? AND state = 'pending'`,
		c.Completed.UnixNano(), c.Result.Status, c.Result.ContentType,
		orEmpty(s.seal.Seal(c.Key, journal.FieldResult, c.Result.Body)), c.Key)
	if err != nil {
		return journal.Entry{}, fmt.Errorf("complete %s: %w", c.Key, err)
	}
	e, err := s.scanEntry(tx.QueryRowContext(ctx, `SELECT `+columns+` FROM journal WHERE key = ?`, c.Key))
	if errors.Is(err, sql.ErrNoRows) {
		return journal.Entry{}, fmt.Errorf("complete %s: %w", c.Key, journal.ErrNotFound)
	}
	if err != nil {
		return journal.Entry{}, fmt.Errorf("complete %s: %w", c.Key, err)
	}
	return e, nil
}

// claim leases the entries f selects that are free, expired or already
// l.Owner's.
func (s *Store) claim(ctx context.Context, tx *sql.Tx, f journal.Filter, l journal.Lease) ([]journal.Entry, error) {
	f.State = journal.Pending
	where, args := selection(f, []string{"(lease_owner = ? OR lease_until < ?)", "seq > ?"},
		[]any{l.Owner, l.Now.UnixNano(), f.After})
	rows, err := tx.QueryContext(ctx, `SELECT `+columns+` FROM journal WHERE `+strings.Join(where, " AND ")+
		` ORDER BY seq LIMIT ?`, args...)
	if err != nil {
		return nil, err
	}
	var out []journal.Entry
	for rows.Next() {
		e, err := s.scanEntry(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, e := range out {
		if _, err := tx.ExecContext(ctx, `UPDATE journal SET lease_owner = ?, lease_until = ? WHERE seq = ?`,
			l.Owner, l.Until.UnixNano(), e.Seq); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// purge deletes up to purgeBatch done entries completed before before.
func purge(ctx context.Context, tx *sql.Tx, before time.Time) (int, error) {
	res, err := tx.ExecContext(ctx, `DELETE FROM journal WHERE seq IN (
		SELECT seq FROM journal WHERE state = 'done' AND completed < ? ORDER BY seq LIMIT ?)`,
		before.UnixNano(), purgeBatch)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
