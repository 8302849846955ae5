package journal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Errors returned by every Store; test for them with errors.Is.
var (
	// ErrNotFound means no entry has the key.
	ErrNotFound = errors.New("journal entry not found")
	// ErrAlreadyExists means an entry already has the key; Append returns
	// that entry with it, so the caller can answer as it answered then.
	ErrAlreadyExists = errors.New("journal entry already exists")
	// ErrInvalid means the entry or the filter cannot be used as given.
	ErrInvalid = errors.New("invalid journal argument")
	// ErrClosed means the store has been closed.
	ErrClosed = errors.New("journal closed")
)

// Kinds of entry written by the gateway's fallbacks.
const (
	// KindStandIn is a card or ATM decision taken by stand-in processing.
	KindStandIn = "standin"
	// KindOutbox is an instant transfer accepted for later execution.
	KindOutbox = "outbox"
)

// Limits on what an entry may hold. Entries come from requests, so their
// size must not be the client's choice.
const (
	// MaxKeyLen bounds Key, as the ledger bounds its idempotency keys.
	MaxKeyLen = 128
	// MaxFieldLen bounds Kind, Upstream, Method, ContentType and Path.
	MaxFieldLen = 2048
	// MaxBodyLen bounds Request.Body, Decision and Result.Body.
	MaxBodyLen = 1 << 20
	// MaxListLimit bounds Filter.Limit.
	MaxListLimit = 10_000
)

// State is where an entry stands in its replay.
type State string

const (
	// Pending entries are still to be delivered to the upstream.
	Pending State = "pending"
	// Done entries were delivered (Result holds the upstream's answer) or
	// never needed to be (a stand-in decline).
	Done State = "done"
)

// Entry is one decision or acceptance the gateway made for the upstream.
type Entry struct {
	// Seq is assigned by Append and grows with each append; List orders by
	// it. With several writers (PostgreSQL) an entry may commit after one
	// with a higher Seq.
	Seq int64
	// Key is the client's Idempotency-Key: 1 to MaxKeyLen visible ASCII
	// characters, unique in the journal.
	Key string
	// Kind says which fallback wrote the entry (KindStandIn, KindOutbox).
	Kind string
	// Upstream names the upstream the entry is to be replayed to.
	Upstream string
	// Request is the original request, re-sent as it was on replay.
	Request Request
	// Decision is what the gateway answered the client, in the writer's own
	// encoding; a repeated request is answered from it. Opaque to the store.
	Decision []byte
	// State is Pending or Done; Append takes Pending when empty.
	State State
	// Created is when the gateway decided; required.
	Created time.Time
	// Completed is when the entry became Done (zero while Pending).
	Completed time.Time
	// Result is the upstream's answer to the replay; zero until Done, and
	// zero for an entry appended Done.
	Result Result
}

// Request is a request as the client sent it, minus the headers the
// replayer sets itself (Idempotency-Key from Entry.Key).
type Request struct {
	Method      string
	Path        string // path and query, e.g. /v1/cards/authorize
	ContentType string
	Body        []byte
}

// Result is an upstream's answer to a replayed request.
type Result struct {
	Status      int
	ContentType string
	Body        []byte
}

// Filter selects entries for List. The zero value of each field selects all.
type Filter struct {
	State    State     // Pending or Done
	Kind     string    // e.g. KindStandIn
	Upstream string    // e.g. "estate"
	Since    time.Time // Created at or after
	After    int64     // Seq greater than: a cursor for paging
	// Limit is how many entries at most, 1 to MaxListLimit; required.
	Limit int
}

// Lease is a claim on entries by one replayer (Store.Claim). Instants come
// from the claimer's clock: nodes' clocks must agree to well within a lease.
type Lease struct {
	// Owner names the claimer, unique among the nodes sharing the journal.
	Owner string
	// Now is the claimer's present: leases that ended before it are free.
	Now time.Time
	// Until is when the claimed entries' lease ends, after Now.
	Until time.Time
}

// Validate reports, wrapping ErrInvalid, why l cannot be used with f.
func (l Lease) Validate(f Filter) error {
	if err := f.Validate(); err != nil {
		return err
	}
	switch {
	case f.State == Done:
		return fmt.Errorf("done entries are never claimed: %w", ErrInvalid)
	case l.Owner == "" || len(l.Owner) > MaxFieldLen || !text(l.Owner):
		return fmt.Errorf("lease owner %q: %w", l.Owner, ErrInvalid)
	case !inNanoRange(l.Now) || !inNanoRange(l.Until) || !l.Until.After(l.Now):
		return fmt.Errorf("lease from %v until %v: %w", l.Now, l.Until, ErrInvalid)
	}
	return nil
}

// Counts is how many entries a journal holds, by state and kind.
type Counts struct {
	Pending map[string]int // by Kind
	Done    map[string]int // by Kind
}

// Store is a durable journal. Every method is safe for concurrent use. An
// acknowledged Append or Complete survives a crash of the process (SIGKILL);
// the PostgreSQL backend and the SQLite one (which fsyncs every commit) also
// survive a power loss. Backends keep Request.Body, Decision and Result.Body
// sealed (see Sealer), never in clear.
type Store interface {
	// Append records e. If an entry already has e.Key it changes nothing and
	// returns the stored entry with ErrAlreadyExists.
	Append(ctx context.Context, e Entry) (Entry, error)
	// Get returns the entry with key, or ErrNotFound.
	Get(ctx context.Context, key string) (Entry, error)
	// List returns the entries f selects, by increasing Seq.
	List(ctx context.Context, f Filter) ([]Entry, error)
	// Claim leases to l.Owner, until l.Until, at most f.Limit pending
	// entries that f selects and whose lease is free, ended before l.Now or
	// already l.Owner's, and returns them by increasing Seq. While a lease
	// lasts no other owner claims the entry, so nodes sharing a journal do
	// not replay the same entries; once it ends (its owner died) another
	// owner takes the entry over. A Done entry is never claimed. f.State
	// must be empty or Pending.
	Claim(ctx context.Context, f Filter, l Lease) ([]Entry, error)
	// Complete marks the entry Done with the upstream's result, at time at,
	// and returns it. Completing a Done entry changes nothing (the first
	// result stays) and is not an error; an unknown key is ErrNotFound.
	Complete(ctx context.Context, key string, res Result, at time.Time) (Entry, error)
	// Counts returns how many entries there are by state and kind.
	Counts(ctx context.Context) (Counts, error)
	// Purge deletes the Done entries completed before the given instant and
	// returns how many it deleted. Pending entries are never purged: they
	// are still owed to the upstream.
	Purge(ctx context.Context, before time.Time) (int, error)
	// Close releases the store. Acknowledged writes are already durable.
	Close() error
}

// Validate reports, wrapping ErrInvalid, why e cannot be appended.
func (e Entry) Validate() error {
	if err := ValidKey(e.Key); err != nil {
		return err
	}
	switch {
	case e.Kind == "" || len(e.Kind) > MaxFieldLen:
		return fmt.Errorf("kind %q: %w", e.Kind, ErrInvalid)
	case len(e.Upstream) > MaxFieldLen || len(e.Request.ContentType) > MaxFieldLen:
		return fmt.Errorf("field longer than %d bytes: %w", MaxFieldLen, ErrInvalid)
	case !text(e.Kind) || !text(e.Upstream) || !text(e.Request.Method) || !text(e.Request.Path) || !text(e.Request.ContentType):
		// PostgreSQL's text type holds neither NUL nor invalid UTF-8.
		return fmt.Errorf("text field not UTF-8 or holding NUL: %w", ErrInvalid)
	case e.Request.Method == "" || len(e.Request.Method) > MaxFieldLen:
		return fmt.Errorf("method %q: %w", e.Request.Method, ErrInvalid)
	case !strings.HasPrefix(e.Request.Path, "/") || len(e.Request.Path) > MaxFieldLen:
		return fmt.Errorf("path %q must start with / and be at most %d bytes: %w", e.Request.Path, MaxFieldLen, ErrInvalid)
	case len(e.Request.Body) > MaxBodyLen || len(e.Decision) > MaxBodyLen || len(e.Result.Body) > MaxBodyLen:
		return fmt.Errorf("body longer than %d bytes: %w", MaxBodyLen, ErrInvalid)
	case e.State != "" && e.State != Pending && e.State != Done:
		return fmt.Errorf("state %q: %w", e.State, ErrInvalid)
	case !inNanoRange(e.Created):
		// Backends keep instants as Unix nanoseconds.
		return fmt.Errorf("created %v missing or outside years 1678-2262: %w", e.Created, ErrInvalid)
	}
	return nil
}

// Validate reports, wrapping ErrInvalid, why f cannot be used.
func (f Filter) Validate() error {
	switch {
	case f.Limit < 1 || f.Limit > MaxListLimit:
		return fmt.Errorf("limit %d outside 1..%d: %w", f.Limit, MaxListLimit, ErrInvalid)
	case f.State != "" && f.State != Pending && f.State != Done:
		return fmt.Errorf("state %q: %w", f.State, ErrInvalid)
	case !f.Since.IsZero() && !inNanoRange(f.Since):
		return fmt.Errorf("since %v outside years 1678-2262: %w", f.Since, ErrInvalid)
	}
	return nil
}

// ValidCompletion reports, wrapping ErrInvalid, why Complete cannot take
// these arguments.
func ValidCompletion(key string, res Result, at time.Time) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	switch {
	case len(res.Body) > MaxBodyLen:
		return fmt.Errorf("result body longer than %d bytes: %w", MaxBodyLen, ErrInvalid)
	case len(res.ContentType) > MaxFieldLen || !text(res.ContentType):
		return fmt.Errorf("result content type longer than %d bytes, not UTF-8 or holding NUL: %w", MaxFieldLen, ErrInvalid)
	case !inNanoRange(at):
		return fmt.Errorf("completion time %v missing or outside years 1678-2262: %w", at, ErrInvalid)
	}
	return nil
}

// ValidPurge reports, wrapping ErrInvalid, why Purge cannot take before.
func ValidPurge(before time.Time) error {
	if !inNanoRange(before) {
		return fmt.Errorf("purge before %v missing or outside years 1678-2262: %w", before, ErrInvalid)
	}
	return nil
}

// ValidKey accepts 1 to MaxKeyLen visible ASCII characters. Space is refused
// too: HTTP header parsing trims it, which would make two keys one.
func ValidKey(key string) error {
	if len(key) == 0 || len(key) > MaxKeyLen {
		return fmt.Errorf("key length %d outside 1..%d: %w", len(key), MaxKeyLen, ErrInvalid)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("key has byte %#x at %d: %w", c, i, ErrInvalid)
		}
	}
	return nil
}

func text(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

var (
	minNano = time.Unix(0, -1<<63)
	maxNano = time.Unix(0, 1<<63-1)
)

func inNanoRange(t time.Time) bool {
	return !t.IsZero() && !t.Before(minNano) && !t.After(maxNano)
}
