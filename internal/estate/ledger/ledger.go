package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Errors returned by the ledger, to be checked with errors.Is.
var (
	// ErrUnknownAccount: an account is neither materialised, nor known to the
	// AccountSource, nor a system account.
	ErrUnknownAccount = errors.New("unknown account")
	// ErrKeyReused: an idempotency key already names a different transfer.
	ErrKeyReused = errors.New("idempotency key reused for a different transfer")
	// ErrNotFound: no transfer carries the key.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: a malformed argument (key, amount, accounts, kind, options).
	ErrInvalid = errors.New("invalid argument")
	// ErrClosed: Apply was called on a closed ledger; nothing was decided.
	ErrClosed = errors.New("ledger closed")
)

// System accounts are the bank's own side of card payments and cash
// withdrawals. They open at 0 and may go negative: a merchant settlement or an
// ATM's cash is not a customer balance.
const (
	SysMerchants = "SYS-MERCHANTS"
	SysATMCash   = "SYS-ATM-CASH"
)

// AccountSource knows the customer accounts and their opening balances.
// customer.Population implements it.
type AccountSource interface {
	// OpeningBalance returns the opening balance of account in cents, or false
	// if there is no such account.
	OpeningBalance(account string) (int64, bool)
}

// Options tune a Ledger. The zero value is ready to use.
type Options struct {
	// Sync is how far a commit is pushed towards the disk before Apply
	// returns. "normal" (the default): the write-ahead log is written but not
	// fsynced at every commit, so an acknowledged transfer survives a process
	// crash or SIGKILL, not a power loss. "full": fsync at every commit, so it
	// also survives power loss, at a cost in throughput.
	Sync string
	// Now stamps transfers; nil means time.Now. Tests pass a fake clock.
	Now func() time.Time
}

// busyTimeout bounds how long a connection waits for a lock held by another
// process on the same file (a drill's inspector, an operator's sqlite3
// shell). In-process writers never wait on it: they queue for the single
// write connection instead.
const busyTimeout = 5 * time.Second

// Ledger is an open ledger. It is safe for concurrent use.
type Ledger struct {
	src AccountSource
	now func() time.Time

	// w has exactly one connection, used only by the writer goroutine
	// (writer.go), and its transactions begin IMMEDIATE, taking SQLite's
	// write lock up front: an idempotency check and the write it guards can
	// never interleave with another writer's, in this process or another.
	w *sql.DB
	// r is a pool of read-only connections; under WAL they read a committed
	// snapshot without ever waiting for the writer.
	r *sql.DB

	ws writeStmts
	rs readStmts

	queue     chan *request // to the writer goroutine; unbuffered
	closing   chan struct{} // closed by Close
	stopped   chan struct{} // closed when the writer has returned
	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if need be) the ledger stored in the SQLite file at
// path. src supplies the opening balances of customer accounts.
func Open(ctx context.Context, path string, src AccountSource, opts Options) (*Ledger, error) {
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, ":memory:") || strings.HasPrefix(path, "file:") {
		// Reads and writes go through two pools on one file; an in-memory
		// database would give each connection its own.
		return nil, fmt.Errorf("ledger path %q must be a plain file name: %w", path, ErrInvalid)
	}
	if src == nil {
		return nil, fmt.Errorf("ledger needs an account source: %w", ErrInvalid)
	}
	var syncMode string
	switch opts.Sync {
	case "", "normal":
		syncMode = "NORMAL"
	case "full":
		syncMode = "FULL"
	default:
		return nil, fmt.Errorf("ledger sync %q is not normal or full: %w", opts.Sync, ErrInvalid)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}

	busy := fmt.Sprint(busyTimeout.Milliseconds())
	wq := url.Values{
		"_busy_timeout": {busy},
		"_foreign_keys": {"on"},
		"_journal_mode": {"WAL"},
		"_synchronous":  {syncMode},
		"_txlock":       {"immediate"},
	}
	w, err := sql.Open("sqlite", path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("open ledger %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	l := &Ledger{src: src, now: now, w: w}
	if err := l.migrate(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open ledger %s: %w", path, err)
	}

	// Readers are opened after the writer has switched the file to WAL, a
	// persistent setting they then inherit.
	rq := url.Values{
		"_busy_timeout": {busy},
		"_foreign_keys": {"on"},
		"_query_only":   {"1"},
	}
	r, err := sql.Open("sqlite", path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open ledger %s: %w", path, err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	l.r = r

	if err := l.prepare(ctx); err != nil {
		l.shut()
		return nil, fmt.Errorf("open ledger %s: %w", path, err)
	}
	l.queue = make(chan *request)
	l.closing = make(chan struct{})
	l.stopped = make(chan struct{})
	go l.write()
	return l, nil
}

// Close waits for the transfers being decided, refuses new ones and releases
// the ledger's connections. Acknowledged transfers are already on disk; Close
// adds no durability. Calling Close again returns the first result.
func (l *Ledger) Close() error {
	l.closeOnce.Do(func() {
		close(l.closing)
		<-l.stopped
		l.closeErr = l.shut()
	})
	return l.closeErr
}

// shut closes statements and pools.
func (l *Ledger) shut() error {
	l.ws.close()
	l.rs.close()
	var errs []error
	if l.r != nil {
		errs = append(errs, l.r.Close())
	}
	errs = append(errs, l.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close ledger: %w", err)
	}
	return nil
}

// isSystem reports whether account is one of the bank's own accounts.
func isSystem(account string) bool {
	return account == SysMerchants || account == SysATMCash
}

// opening is the balance an account starts with when it is materialised.
func (l *Ledger) opening(account string) (int64, error) {
	if isSystem(account) {
		return 0, nil
	}
	if v, ok := l.src.OpeningBalance(account); ok {
		return v, nil
	}
	return 0, fmt.Errorf("account %q: %w", account, ErrUnknownAccount)
}
