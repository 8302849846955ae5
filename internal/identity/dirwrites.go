package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/identity/users"
	"github.com/rempart/rempart/internal/journal"
	"github.com/rempart/rempart/internal/problem"
)

// What a login writes to the directory (the customer's last login, wrong
// passwords and codes, the devices logged in from) never waits for it: each
// write is appended to a durable queue before the login answers, and a
// replayer applies the queue to the directory when it answers, each write
// once (users.Event.ID is the journal key and the directory's idempotency
// key). A directory stuck behind a deadlock then costs no login its time,
// and a node killed between a login and the replay loses none of its writes.

// DirectoryWriter queues the directory writes of logins; Write returns once
// the write is durable. The wiring gives the provider a journal-backed one
// (NewJournalWrites); nil writes nothing.
type DirectoryWriter interface {
	Write(ctx context.Context, e users.Event) error
}

// EventApplier is the directory the queue is drained into; users.Memory is
// one. Apply reports whether the event was new.
type EventApplier interface {
	Apply(ctx context.Context, e users.Event) (bool, error)
}

// Where directory writes go in the journal and how they are replayed.
const (
	// KindDirectory is the journal kind of a directory write.
	KindDirectory = "directory"
	// DirectoryUpstream is the journal upstream of directory writes: the
	// replayer draining them is the only one that takes them.
	DirectoryUpstream = "directory"
	// PathDirectoryEvents is the path the replayer sends each write to.
	PathDirectoryEvents = "/directory/events"
)

// NewJournalWrites queues directory writes in j.
func NewJournalWrites(j journal.Store) DirectoryWriter { return journalWrites{j} }

type journalWrites struct{ j journal.Store }

func (w journalWrites) Write(ctx context.Context, e users.Event) error {
	if err := e.Validate(); err != nil {
		return err
	}
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = w.j.Append(ctx, journal.Entry{Key: e.ID, Kind: KindDirectory, Upstream: DirectoryUpstream, Created: e.At,
		Request: journal.Request{Method: http.MethodPost, Path: PathDirectoryEvents, ContentType: "application/json", Body: body}})
	if errors.Is(err, journal.ErrAlreadyExists) {
		return nil // the same write, queued already
	}
	return err
}

// DirectoryEventsHandler applies the queue's writes to d: 204 when applied
// (or applied before: the same id counts once), 404 for a customer the
// directory does not have, 400 for an event it cannot take (both final: the
// entry is done), 503 while the directory does not answer or its breaker is
// open (the entry stays queued). The wiring serves it to the replayer
// in process only: no caller outside the node reaches it.
func (p *Provider) DirectoryEventsHandler(d EventApplier) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e users.Event
		dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			problem.Write(w, problem.New(http.StatusBadRequest, "malformed-json", "a directory event: "+err.Error()))
			return
		}
		if key := r.Header.Get("Idempotency-Key"); key != "" && key != e.ID {
			problem.Write(w, problem.New(http.StatusBadRequest, "invalid-field", "the event's id is not its Idempotency-Key").WithField("id"))
			return
		}
		// Behind the directory's breaker, as logins are: while it is open
		// the queue waits without calling, and once its delay is over a
		// replayed write may be the probe that closes it, with no login
		// needed to find the directory back.
		b := p.backup
		if b.window >= 0 && !b.cb.TryAcquirePermit() {
			w.Header().Set("Retry-After", "2")
			problem.Write(w, problem.New(http.StatusServiceUnavailable, "directory-unavailable", "the user directory's breaker is open"))
			return
		}
		applied, err := d.Apply(r.Context(), e)
		if b.window >= 0 {
			if err == nil || errors.Is(err, users.ErrNotFound) || errors.Is(err, users.ErrInvalidEvent) {
				b.cb.RecordSuccess()
			} else {
				b.cb.RecordFailure()
			}
		}
		switch {
		case errors.Is(err, users.ErrInvalidEvent):
			problem.Write(w, problem.New(http.StatusBadRequest, "invalid-event", err.Error()))
		case errors.Is(err, users.ErrNotFound):
			problem.Write(w, problem.New(http.StatusNotFound, "no-such-customer", "no customer "+e.Account))
		case err != nil:
			w.Header().Set("Retry-After", "2")
			problem.Write(w, problem.New(http.StatusServiceUnavailable, "directory-unavailable", err.Error()))
		default:
			if !applied {
				p.dirWrites.WithLabelValues(e.Kind, "duplicate").Inc()
			} else {
				p.dirWrites.WithLabelValues(e.Kind, "applied").Inc()
			}
			w.WriteHeader(http.StatusNoContent)
		}
	})
}

func newDirWritesMetric(reg prometheus.Registerer, log *slog.Logger) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rempart_identity_directory_writes_total",
		Help: "Directory writes of logins by kind and outcome: queued (durable, the login answered), failed (could not be queued: lost, and logged), applied (by the replay), duplicate (delivered again, counted once).",
	}, []string{"kind", "outcome"})
	if reg != nil {
		if err := reg.Register(c); err != nil {
			log.Warn("identity metrics", slog.Any("err", err))
		}
	}
	return c
}

// dirWriteTimeout bounds queueing one directory write.
const dirWriteTimeout = time.Second

// writeDirectory queues one write of the login id (the authorization
// request's, or the passkey ceremony's): step tells writes of one login
// apart, so each is its own event, applied once however often it is sent.
func (p *Provider) writeDirectory(ctx context.Context, kind, account, login, step, method, deviceNonce string) {
	if p.cfg.DirectoryWrites == nil {
		return
	}
	e := users.Event{ID: "dir:" + login + ":" + step, Kind: kind, Account: account, At: p.cfg.Now(), Method: method}
	if deviceNonce != "" {
		sum := sha256.Sum256([]byte("rempart device\x00" + deviceNonce))
		e.Device = hex.EncodeToString(sum[:8])
	}
	// The write is the login's, not the request's: a customer closing the
	// page as it answers does not take it back. Bounded all the same: a
	// journal that does not take it within dirWriteTimeout (a stalled
	// PostgreSQL) costs the login that long, then the write is counted
	// failed and logged, and the login goes on.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dirWriteTimeout)
	defer cancel()
	if err := p.cfg.DirectoryWrites.Write(wctx, e); err != nil {
		p.dirWrites.WithLabelValues(kind, "failed").Inc()
		p.log.ErrorContext(ctx, "directory write not queued", slog.String("kind", kind), slog.String("account", account), slog.Any("err", err))
		return
	}
	p.dirWrites.WithLabelValues(kind, "queued").Inc()
}
