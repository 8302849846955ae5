package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

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

type op struct {
	ctx      context.Context
	complete bool          // Complete; otherwise Append
	entry    journal.Entry // Append: the entry; Complete: Key, Result, Completed
	done     chan reply    // buffered: the writer never blocks on a caller that left
}

type reply struct {
	e   journal.Entry
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
		if o.complete {
			r.e, r.err = complete(ctx, tx, o.entry)
		} else {
			r.e, r.err = insert(ctx, tx, o.entry)
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

func insert(ctx context.Context, tx *sql.Tx, e journal.Entry) (journal.Entry, error) {
	var completed int64
	if !e.Completed.IsZero() {
		completed = e.Completed.UnixNano()
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO journal (key, kind, upstream, method, path, content_type,
			body, decision, state, created, completed, result_status, result_type, result_body)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING`,
		e.Key, e.Kind, e.Upstream, e.Request.Method, e.Request.Path, e.Request.ContentType,
		orEmpty(e.Request.Body), orEmpty(e.Decision), string(e.State), e.Created.UnixNano(), completed,
		e.Result.Status, e.Result.ContentType, orEmpty(e.Result.Body))
	if err != nil {
		return journal.Entry{}, fmt.Errorf("append %s: %w", e.Key, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return journal.Entry{}, fmt.Errorf("append %s: %w", e.Key, err)
	} else if n == 0 {
		old, err := scanEntry(tx.QueryRowContext(ctx, `SELECT `+columns+` FROM journal WHERE key = ?`, e.Key))
		if err != nil {
			return journal.Entry{}, fmt.Errorf("append %s: read existing: %w", e.Key, err)
		}
		return old, fmt.Errorf("append %s: %w", e.Key, journal.ErrAlreadyExists)
	}
	return scanEntry(tx.QueryRowContext(ctx, `SELECT `+columns+` FROM journal WHERE key = ?`, e.Key))
}

func complete(ctx context.Context, tx *sql.Tx, c journal.Entry) (journal.Entry, error) {
	_, err := tx.ExecContext(ctx, `UPDATE journal SET state = 'done', completed = ?,
			result_status = ?, result_type = ?, result_body = ?
		WHERE key = ? AND state = 'pending'`,
		c.Completed.UnixNano(), c.Result.Status, c.Result.ContentType, orEmpty(c.Result.Body), c.Key)
	if err != nil {
		return journal.Entry{}, fmt.Errorf("complete %s: %w", c.Key, err)
	}
	e, err := scanEntry(tx.QueryRowContext(ctx, `SELECT `+columns+` FROM journal WHERE key = ?`, c.Key))
	if errors.Is(err, sql.ErrNoRows) {
		return journal.Entry{}, fmt.Errorf("complete %s: %w", c.Key, journal.ErrNotFound)
	}
	if err != nil {
		return journal.Entry{}, fmt.Errorf("complete %s: %w", c.Key, err)
	}
	return e, nil
}
