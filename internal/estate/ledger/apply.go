package ledger

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"fmt"
	"time"
	"unicode/utf8"
)

// MaxAmount is the largest single movement, in cents (one million euros):
// beyond it a request is a bug or an attack, not a payment.
const MaxAmount = 1_000_000_00

// Kinds of transfer, one per critical channel.
const (
	KindCard    = "card"
	KindATM     = "atm"
	KindInstant = "instant"
)

// ReasonInsufficientFunds is Result.Reason when a customer account would go
// below zero.
const ReasonInsufficientFunds = "insufficient_funds"

// Limits on caller-supplied strings, so that a hostile client cannot grow the
// ledger with arbitrary text.
const (
	maxKeyLen       = 128
	maxAccountLen   = 64
	maxReferenceLen = 140 // the SEPA remittance-information limit
)

// Transfer asks to move Amount cents from one account to another.
type Transfer struct {
	// Key is the caller's idempotency key: 1 to 128 visible ASCII characters.
	Key       string `json:"key"`
	From      string `json:"from"`
	To        string `json:"to"`
	Amount    int64  `json:"amount"` // cents, 1..MaxAmount
	Kind      string `json:"kind"`   // KindCard, KindATM or KindInstant
	Reference string `json:"reference,omitempty"`
}

// Result is the ledger's decision on a transfer, as stored under its key.
type Result struct {
	ID          int64     `json:"id"`
	Key         string    `json:"key"`
	Executed    bool      `json:"executed"`
	Reason      string    `json:"reason,omitempty"` // ReasonInsufficientFunds when declined
	Amount      int64     `json:"amount"`
	FromBalance int64     `json:"from_balance"` // balance of From right after the decision
	At          time.Time `json:"at"`
	// Replayed is set when this Apply found the key already decided and
	// returned that earlier decision without moving money.
	Replayed bool `json:"replayed,omitempty"`
}

// Apply decides a transfer exactly once per key. A new key is executed, or
// declined with ReasonInsufficientFunds when a customer account would go
// below zero, and the decision is stored. A key already decided returns the
// stored decision with Replayed set, provided the transfer is the same;
// otherwise ErrKeyReused. Invalid input is ErrInvalid and an unknown account
// ErrUnknownAccount; neither is stored, so nothing changes.
//
// Apply returns once the decision is committed. If ctx ends first, Apply
// returns ctx's error and the transfer may or may not have been decided:
// apply it again with the same key (or Lookup the key) to find out.
func (l *Ledger) Apply(ctx context.Context, t Transfer) (Result, error) {
	if err := t.validate(); err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("apply %s: %w", t.Key, err)
	}
	req := &request{ctx: ctx, t: t, fp: t.fingerprint(), done: make(chan reply, 1)}
	select {
	case l.queue <- req:
	case <-l.closing:
		return Result{}, fmt.Errorf("apply %s: %w", t.Key, ErrClosed)
	case <-ctx.Done():
		return Result{}, fmt.Errorf("apply %s: %w", t.Key, ctx.Err())
	}
	select {
	case r := <-req.done:
		return r.res, r.err
	case <-ctx.Done():
		select {
		case r := <-req.done: // decided just in time: say so rather than "unknown"
			return r.res, r.err
		default:
		}
		return Result{}, fmt.Errorf("apply %s: outcome unknown: %w", t.Key, ctx.Err())
	}
}

// scanResult reads a transferByKey row; Key is left for the caller to set.
func scanResult(row *sql.Row) (Result, []byte, error) {
	var (
		res Result
		fp  []byte
		at  int64
	)
	if err := row.Scan(&res.ID, &fp, &res.Executed, &res.Reason, &res.Amount, &res.FromBalance, &at); err != nil {
		return Result{}, nil, err
	}
	res.At = time.Unix(0, at).UTC()
	return res, fp, nil
}

func (t Transfer) validate() error {
	if err := validKey(t.Key); err != nil {
		return err
	}
	switch {
	case t.Amount < 1 || t.Amount > MaxAmount:
		return fmt.Errorf("amount %d outside 1..%d: %w", t.Amount, MaxAmount, ErrInvalid)
	case t.From == "" || t.To == "" || len(t.From) > maxAccountLen || len(t.To) > maxAccountLen:
		return fmt.Errorf("accounts %q -> %q: %w", t.From, t.To, ErrInvalid)
	case t.From == t.To:
		return fmt.Errorf("transfer from %q to itself: %w", t.From, ErrInvalid)
	case t.Kind != KindCard && t.Kind != KindATM && t.Kind != KindInstant:
		return fmt.Errorf("kind %q: %w", t.Kind, ErrInvalid)
	case len(t.Reference) > maxReferenceLen || !utf8.ValidString(t.Reference):
		return fmt.Errorf("reference longer than %d bytes or not UTF-8: %w", maxReferenceLen, ErrInvalid)
	}
	return nil
}

// validKey accepts 1 to 128 visible ASCII characters. Space is refused too:
// HTTP header parsing trims it, which would make two keys one.
func validKey(key string) error {
	if len(key) == 0 || len(key) > maxKeyLen {
		return fmt.Errorf("idempotency key length %d outside 1..%d: %w", len(key), maxKeyLen, ErrInvalid)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("idempotency key has byte %#x at %d: %w", c, i, ErrInvalid)
		}
	}
	return nil
}

// fingerprint identifies a transfer's content, so that a replayed key can be
// told from a reused one. Fields are length-prefixed so that no two
// transfers encode alike.
func (t Transfer) fingerprint() [sha256.Size]byte {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, s := range []string{t.From, t.To, t.Kind, t.Reference} {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	h.Write(n[:binary.PutVarint(n[:], t.Amount)])
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
