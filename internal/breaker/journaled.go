package breaker

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/rempart/rempart/internal/journal"
	"github.com/rempart/rempart/internal/problem"
)

// What the journal-backed fallbacks (StandIn, Outbox) share.

// lookup finds the journal entry of r's Idempotency-Key within timeout. It
// fails open: when the journal cannot answer in time the request goes on to
// the upstream, which decides a key once and answers a repeat with its first
// decision, so the ledger stays right (only the answer may differ from the
// journaled one).
func lookup(r *http.Request, j journal.Store, timeout time.Duration, log *slog.Logger) (journal.Entry, bool) {
	key := r.Header.Get("Idempotency-Key")
	if journal.ValidKey(key) != nil {
		return journal.Entry{}, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	e, err := j.Get(ctx, key)
	if err != nil {
		if !errors.Is(err, journal.ErrNotFound) {
			log.Warn("journal lookup failed; sending the request on", "key", key, "err", err)
		}
		return journal.Entry{}, false
	}
	return e, true
}

// idempotencyKey returns r's Idempotency-Key, or answers 400 without one:
// nothing can be journaled, or answered again, without its key.
func idempotencyKey(w http.ResponseWriter, r *http.Request) (string, bool) {
	key := r.Header.Get("Idempotency-Key")
	if journal.ValidKey(key) != nil {
		problem.Write(w, problem.New(http.StatusBadRequest, "invalid-idempotency-key",
			"an Idempotency-Key of 1 to 128 visible ASCII characters is required").WithField("Idempotency-Key"))
		return "", false
	}
	return key, true
}

func writeDecodeError(w http.ResponseWriter, err error) {
	var pd *problem.Details
	if errors.As(err, &pd) {
		problem.Write(w, pd)
		return
	}
	problem.Error(w, http.StatusBadRequest, "invalid-request", err.Error())
}

func writeKeyReused(w http.ResponseWriter) {
	problem.Write(w, problem.New(http.StatusUnprocessableEntity, "idempotency-key-reused",
		"this Idempotency-Key was already used for a different request").WithField("Idempotency-Key"))
}
