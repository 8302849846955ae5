package breaker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rempart/rempart/internal/journal"
	"github.com/rempart/rempart/internal/problem"
)

// OutboxConfig configures an Outbox. Zero fields take the defaults below.
type OutboxConfig struct {
	// Journal keeps the accepted transfers. Required.
	Journal journal.Store
	// Upstream names the upstream whose replayer executes them. Required.
	Upstream string
	// StatusPath prefixes the status URL given in Location: StatusPath
	// followed by the escaped key. Route GET StatusPath+"{key}" to
	// StatusHandler. Default "/v1/transfers/outbox/".
	StatusPath string
	// Validate, if set, checks a transfer before it is accepted, so that one
	// the core would refuse as malformed is refused now (4xx) rather than
	// accepted and declined later. A *problem.Details error is sent as it
	// is, another as a 400.
	Validate func(r *http.Request, body []byte) error
	// Outcome reads the core's answer to an executed transfer: "executed" or
	// "declined". Default: the "status" member of a 2xx JSON answer when it
	// is one of those, else "executed" for a 2xx and "declined" otherwise.
	Outcome func(status int, body []byte) string
	// JournalTimeout bounds the write of an acceptance. Default 2s.
	JournalTimeout time.Duration
	// RecallTimeout bounds the journal lookup before each call (see
	// StandInConfig.RecallTimeout). Default 100ms.
	RecallTimeout time.Duration
	// Now tells the time; nil means time.Now.
	Now func() time.Time
	// Logger receives journal failures; nil discards.
	Logger *slog.Logger
}

// Outbox is the fallback of instant transfers: when the core cannot take a
// transfer now it is accepted into the durable journal under its
// Idempotency-Key and answered 202 with a status URL; the replayer executes
// it exactly once later, and the status URL then tells the core's result.
type Outbox struct {
	cfg OutboxConfig
	log *slog.Logger
}

var _ Recaller = (*Outbox)(nil)

// Outbox statuses.
const (
	OutboxPending  = "pending"
	OutboxExecuted = "executed"
	OutboxDeclined = "declined"
)

// OutboxStatus is the document the outbox answers with: on acceptance, to a
// repeated request and at the status URL.
type OutboxStatus struct {
	Key         string          `json:"key"`
	Status      string          `json:"status"` // pending, executed or declined
	StatusURL   string          `json:"status_url"`
	AcceptedAt  time.Time       `json:"accepted_at"`
	CompletedAt time.Time       `json:"completed_at,omitzero"`
	Result      json.RawMessage `json:"result,omitempty"` // the core's answer, once executed or declined
}

// NewOutbox returns an outbox on cfg.Journal.
func NewOutbox(cfg OutboxConfig) (*Outbox, error) {
	if cfg.Journal == nil || cfg.Upstream == "" {
		return nil, errors.New("outbox: journal and upstream are required")
	}
	if cfg.StatusPath == "" {
		cfg.StatusPath = "/v1/transfers/outbox/"
	}
	if !strings.HasPrefix(cfg.StatusPath, "/") || !strings.HasSuffix(cfg.StatusPath, "/") {
		return nil, errors.New("outbox: status path must start and end with /")
	}
	if cfg.Outcome == nil {
		cfg.Outcome = DefaultOutcome
	}
	if cfg.JournalTimeout <= 0 {
		cfg.JournalTimeout = 2 * time.Second
	}
	if cfg.RecallTimeout <= 0 {
		cfg.RecallTimeout = 100 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Outbox{cfg: cfg, log: log.With("component", "outbox")}, nil
}

// DefaultOutcome is OutboxConfig.Outcome's default.
func DefaultOutcome(status int, body []byte) string {
	if status/100 != 2 {
		return OutboxDeclined
	}
	var v struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(body, &v) == nil && (v.Status == OutboxExecuted || v.Status == OutboxDeclined) {
		return v.Status
	}
	return OutboxExecuted
}

// Recall implements Recaller: a transfer the outbox holds is answered with
// its status, not sent to the core a second time by the client's retry.
func (o *Outbox) Recall(w http.ResponseWriter, r *http.Request, body []byte) bool {
	e, ok := lookup(r, o.cfg.Journal, o.cfg.RecallTimeout, o.log)
	if ok {
		o.answerFrom(w, r, body, e)
	}
	return ok
}

// Answer implements Fallback.
func (o *Outbox) Answer(w http.ResponseWriter, r *http.Request, body []byte, out Outage) string {
	key, ok := idempotencyKey(w, r)
	if !ok {
		return AnswerRefused
	}
	if o.cfg.Validate != nil {
		if err := o.cfg.Validate(r, body); err != nil {
			writeDecodeError(w, err)
			return AnswerRefused
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), o.cfg.JournalTimeout)
	defer cancel()
	e, err := o.cfg.Journal.Append(ctx, journal.Entry{Key: key, Kind: journal.KindOutbox, Upstream: o.cfg.Upstream,
		Request: journal.Request{Method: r.Method, Path: r.URL.RequestURI(),
			ContentType: r.Header.Get("Content-Type"), Body: body},
		Created: o.cfg.Now()})
	switch {
	case errors.Is(err, journal.ErrAlreadyExists):
		o.answerFrom(w, r, body, e)
		return AnswerRecall
	case err != nil:
		o.log.Error("outbox could not journal a transfer; answering 503", "key", key, "err", err)
		WriteDegraded(w, out, "the core is unavailable and the outbox could not record the transfer")
		return AnswerDegraded
	}
	o.write(w, e)
	return AnswerOutbox
}

// answerFrom answers with the status of a journal entry, if the request is
// the one that entry was accepted for.
func (o *Outbox) answerFrom(w http.ResponseWriter, r *http.Request, body []byte, e journal.Entry) {
	if e.Kind != journal.KindOutbox || e.Request.Method != r.Method || e.Request.Path != r.URL.RequestURI() ||
		!bytes.Equal(e.Request.Body, body) {
		writeKeyReused(w)
		return
	}
	o.write(w, e)
}

// write answers 202 with Location while the transfer is pending, 200 once
// the core has decided it.
func (o *Outbox) write(w http.ResponseWriter, e journal.Entry) {
	st := o.status(e)
	b, _ := json.Marshal(st)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Cache-Control", "no-store")
	h.Set(HeaderOutbox, "true")
	h.Set("Location", st.StatusURL)
	code := http.StatusOK
	if st.Status == OutboxPending {
		code = http.StatusAccepted
	}
	w.WriteHeader(code)
	w.Write(b)
}

func (o *Outbox) status(e journal.Entry) OutboxStatus {
	st := OutboxStatus{Key: e.Key, Status: OutboxPending, StatusURL: o.cfg.StatusPath + url.PathEscape(e.Key),
		AcceptedAt: e.Created}
	if e.State == journal.Done {
		st.Status = o.cfg.Outcome(e.Result.Status, e.Result.Body)
		st.CompletedAt = e.Completed
		if json.Valid(e.Result.Body) {
			st.Result = e.Result.Body
		}
	}
	return st
}

// StatusHandler serves GET StatusPath{key}: the transfer's OutboxStatus, or
// 404 for a key the outbox does not hold. The key is the client's secret
// handle on its transfer, as it is for the core.
func (o *Outbox) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		if key == "" {
			k, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), o.cfg.StatusPath))
			if err == nil {
				key = k
			}
		}
		e, err := o.cfg.Journal.Get(r.Context(), key)
		switch {
		case err == nil && e.Kind == journal.KindOutbox:
			o.write(w, e)
		case err == nil || errors.Is(err, journal.ErrNotFound) || errors.Is(err, journal.ErrInvalid) || journal.ValidKey(key) != nil:
			problem.Error(w, http.StatusNotFound, "unknown-transfer", "the outbox holds no transfer with this key")
		default:
			o.log.Warn("outbox status lookup failed", "key", key, "err", err)
			problem.Error(w, http.StatusServiceUnavailable, "outbox-unavailable", "the outbox cannot be read now")
		}
	})
}
