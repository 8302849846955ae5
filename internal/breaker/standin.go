package breaker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/journal"
	"github.com/rempart/rempart/internal/problem"
	"github.com/rempart/rempart/internal/telemetry"
)

// StandInRequest is what stand-in processing needs to know of a card
// authorisation or an ATM withdrawal.
type StandInRequest struct {
	Card   string // the card the limits apply to
	Amount int64  // euro cents, positive
	Kind   string // e.g. "card" or "atm"
}

// StandInDecision is a stand-in answer. It is what the journal keeps and
// what Encode turns into the channel's wire format.
type StandInDecision struct {
	Key      string    `json:"key"` // the Idempotency-Key
	Kind     string    `json:"kind"`
	Card     string    `json:"card"`
	Amount   int64     `json:"amount"`
	Approved bool      `json:"approved"`
	Reason   string    `json:"reason,omitempty"` // one of the Reason* constants when declined
	At       time.Time `json:"at"`
	// Replayed is set when the decision answers a repeated request with
	// the same Idempotency-Key: it is the first decision, not a second one.
	Replayed bool `json:"-"`
}

// StandInConfig configures a StandIn. Zero fields take the defaults below.
type StandInConfig struct {
	// Journal records every decision before it is answered. Required.
	Journal journal.Store
	// Upstream names the upstream whose replayer delivers the approvals.
	// Required.
	Upstream string
	// Limits bound what is approved, across every node.
	Limits Limits
	// Shared, if set, counts the approvals of every node against Limits
	// (a RedisCounter), so that a cluster approves no more than one node
	// would. When it fails or is slow the node decides on its share of the
	// limits (see Nodes) and tries it again after SharedBackoff.
	Shared Counter
	// Nodes is how many gateways take stand-in decisions against Limits.
	// A node's share is Limits.PerCardPerDay and Limits.Exposure divided by
	// Nodes (PerTransaction whole): what it approves on its own, counting
	// all it approved, while Shared is unset or unreachable; never the
	// whole limit. Default 1.
	Nodes int
	// SharedTimeout bounds each call to Shared. Default 50ms: a stand-in
	// decision is a card payment waiting at a terminal.
	SharedTimeout time.Duration
	// SharedBackoff is how long decisions stay on the node's share after
	// Shared failed, before it is called again. Default 1s.
	SharedBackoff time.Duration
	// Decode reads a request of the channel; body is its body (r.Body is
	// spent). A *problem.Details error is sent as it is, another as a 400.
	// Required.
	Decode func(r *http.Request, body []byte) (StandInRequest, error)
	// Encode writes a decision in the channel's wire format, as JSON.
	// Required.
	Encode func(StandInDecision) (status int, body []byte)
	// Location is where a day starts and ends for Limits.PerCardPerDay.
	// Default UTC.
	Location *time.Location
	// JournalTimeout bounds the write of a decision; past it the request is
	// answered 503, undecided. Default 2s, within what a card network waits.
	JournalTimeout time.Duration
	// RecallTimeout bounds the journal lookup each request makes before it
	// goes to the core (a repeated key is answered from the journal). If the
	// journal does not answer in time the request goes on. Default 100ms.
	RecallTimeout time.Duration
	// Now tells the time; nil means time.Now.
	Now func() time.Time
	// Logger receives journal failures; nil discards.
	Logger *slog.Logger
	// Registerer receives rempart_breaker_standin_* metrics; nil registers none.
	Registerer prometheus.Registerer
}

// StandIn is the fallback of card authorisation and ATM withdrawal: it
// approves within Limits and declines above them, journals each decision
// (fsynced) before answering, and answers a repeated Idempotency-Key with
// the decision it already gave. Approvals stay pending in the journal until
// the replayer has delivered them to the core; Settle ends their exposure.
type StandIn struct {
	cfg    StandInConfig
	limits Limits   // whole, as Shared checks them
	share  Limits   // this node's part, as lim checks them
	lim    *limiter // what this node approved
	log    *slog.Logger
	// sharedDown is when Shared may be called again after a failure (unix
	// nanoseconds), 0 while it answers.
	sharedDown atomic.Int64
	fallbacks  prometheus.Counter

	decisions *prometheus.CounterVec // kind, decision, reason
	approvals *prometheus.CounterVec // route
	exposure  prometheus.Gauge
}

var _ Recaller = (*StandIn)(nil)

// NewStandIn returns a StandIn whose running totals are rebuilt from the
// journal: today's approvals per card and the approvals still pending.
func NewStandIn(ctx context.Context, cfg StandInConfig) (*StandIn, error) {
	if cfg.Journal == nil || cfg.Decode == nil || cfg.Encode == nil || cfg.Upstream == "" {
		return nil, errors.New("stand-in: journal, upstream, Decode and Encode are required")
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
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
	if cfg.Nodes <= 0 {
		cfg.Nodes = 1
	}
	if cfg.SharedTimeout <= 0 {
		cfg.SharedTimeout = 50 * time.Millisecond
	}
	if cfg.SharedBackoff <= 0 {
		cfg.SharedBackoff = time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	limits := cfg.Limits.withDefaults()
	s := &StandIn{cfg: cfg, limits: limits, share: limits.share(cfg.Nodes), lim: newLimiter(cfg.Location),
		log: log.With("component", "standin"),
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rempart_breaker_standin_shared_fallbacks_total",
			Help: "Stand-in decisions taken on this node's share of the limits because the shared counters failed or were slow.",
		}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rempart_breaker_standin_decisions_total",
			Help: "Decisions taken by stand-in processing while the core was away, by kind, decision (approved, declined) and reason.",
		}, []string{"kind", "decision", "reason"}),
		approvals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rempart_standin_approvals_total",
			Help: "Approvals given by stand-in processing without the core, by route; set against rempart_standin_declined_on_replay_total.",
		}, []string{"route"}),
		exposure: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rempart_breaker_standin_exposure_euros",
			Help: "Amount approved by stand-in and not yet confirmed by the core.",
		}),
	}
	var err error
	if s.decisions, err = telemetry.Register(cfg.Registerer, s.decisions); err != nil {
		return nil, fmt.Errorf("stand-in metrics: %w", err)
	}
	if s.approvals, err = telemetry.Register(cfg.Registerer, s.approvals); err != nil {
		return nil, fmt.Errorf("stand-in metrics: %w", err)
	}
	if s.exposure, err = telemetry.Register(cfg.Registerer, s.exposure); err != nil {
		return nil, fmt.Errorf("stand-in metrics: %w", err)
	}
	if cfg.Shared != nil {
		if s.fallbacks, err = telemetry.Register(cfg.Registerer, s.fallbacks); err != nil {
			return nil, fmt.Errorf("stand-in metrics: %w", err)
		}
	}
	if err := s.rebuild(ctx); err != nil {
		return nil, fmt.Errorf("stand-in: rebuild limits from the journal: %w", err)
	}
	return s, nil
}

// rebuild restores the limiter from the journal after a restart.
func (s *StandIn) rebuild(ctx context.Context) error {
	today := s.lim.midnight(s.cfg.Now())
	s.lim.roll(today)
	// The shared counters are not rebuilt: the nodes that approved counted
	// there already. This node's own totals hold every approval the journal
	// has, its peers' too when they share it, which only narrows its share.
	restore := func(f journal.Filter, keep func(journal.Entry) bool) error {
		for {
			page, err := s.cfg.Journal.List(ctx, f)
			if err != nil {
				return err
			}
			for _, e := range page {
				var d StandInDecision
				if err := json.Unmarshal(e.Decision, &d); err != nil {
					return fmt.Errorf("entry %s: %w", e.Key, err)
				}
				if d.Approved && keep(e) {
					s.lim.restore(e.Key, d.Card, d.Amount, d.At, e.State == journal.Pending)
				}
			}
			if len(page) < f.Limit {
				return nil
			}
			f.After = page[len(page)-1].Seq
		}
	}
	if err := restore(journal.Filter{Kind: journal.KindStandIn, Since: today, Limit: 1000},
		func(journal.Entry) bool { return true }); err != nil {
		return err
	}
	// Older approvals still pending count towards the exposure only.
	if err := restore(journal.Filter{Kind: journal.KindStandIn, State: journal.Pending, Limit: 1000},
		func(e journal.Entry) bool { return e.Created.Before(today) }); err != nil {
		return err
	}
	s.gauge()
	return nil
}

// Recall implements Recaller: a key the journal holds is answered with its
// first decision.
func (s *StandIn) Recall(w http.ResponseWriter, r *http.Request, body []byte) bool {
	e, ok := lookup(r, s.cfg.Journal, s.cfg.RecallTimeout, s.log)
	if ok {
		s.answerFrom(w, r, body, e)
	}
	return ok
}

// Answer implements Fallback.
func (s *StandIn) Answer(w http.ResponseWriter, r *http.Request, body []byte, o Outage) string {
	key, ok := idempotencyKey(w, r)
	if !ok {
		return AnswerRefused
	}
	req, err := s.cfg.Decode(r, body)
	if err != nil {
		writeDecodeError(w, err)
		return AnswerRefused
	}
	if req.Card == "" || req.Amount <= 0 {
		problem.Error(w, http.StatusBadRequest, "invalid-request", "a card and a positive amount are required")
		return AnswerRefused
	}
	now := s.cfg.Now()
	d := StandInDecision{Key: key, Kind: req.Kind, Card: req.Card, Amount: req.Amount, At: now}
	h := Hold{Key: key, Card: req.Card, Amount: req.Amount, Day: s.lim.midnight(now)}
	reason, shared := s.reserve(r.Context(), h)
	d.Approved, d.Reason = reason == "", reason
	release := func() {
		if d.Approved {
			s.release(r.Context(), h, shared)
		}
	}
	rec, err := json.Marshal(d)
	if err != nil {
		release()
		problem.Error(w, http.StatusInternalServerError, "internal", "could not encode the decision")
		return AnswerRefused
	}
	e := journal.Entry{Key: key, Kind: journal.KindStandIn, Upstream: s.cfg.Upstream,
		Request: journal.Request{Method: r.Method, Path: r.URL.RequestURI(),
			ContentType: r.Header.Get("Content-Type"), Body: body},
		Decision: rec, Created: now}
	if !d.Approved {
		// A decline moves no money: there is nothing to tell the core.
		e.State, e.Completed = journal.Done, now
	}
	// The request's context: a client gone before its decision is recorded
	// gets none, and none is replayed.
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.JournalTimeout)
	defer cancel()
	stored, err := s.cfg.Journal.Append(ctx, e)
	switch {
	case errors.Is(err, journal.ErrAlreadyExists):
		// A concurrent request with the same key decided first.
		release()
		s.answerFrom(w, r, body, stored)
		return AnswerRecall
	case err != nil:
		release()
		s.log.Error("stand-in could not journal a decision; answering 503", "key", key, "err", err)
		WriteDegraded(w, o, "the core is unavailable and stand-in could not record a decision")
		return AnswerDegraded
	}
	s.count(d)
	if d.Approved {
		route := routeName(r)
		s.approvals.WithLabelValues(route).Inc()
		// The bank carries this amount until the core confirms it: every
		// approval is on record, with the card's last four digits only.
		s.log.Warn("stand-in approved without the core", "route", route, "key", key, "kind", d.Kind,
			"amount", d.Amount, "card_last4", lastFour(d.Card), "cause", o.Cause)
	}
	s.write(w, d)
	return AnswerStandIn
}

// reserve decides h: on the shared counters when they answer in time, else
// on this node's share. It reports the reason of a decline, and whether the
// shared counters hold an approval.
func (s *StandIn) reserve(ctx context.Context, h Hold) (reason string, shared bool) {
	if h.Amount > s.limits.PerTransaction {
		return ReasonAmountLimit, false
	}
	if s.cfg.Shared != nil {
		if down := s.sharedDown.Load(); down == 0 || s.cfg.Now().UnixNano() >= down {
			// Not the client's context: a client leaving is not Redis failing.
			c, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.SharedTimeout)
			reason, err := s.cfg.Shared.Reserve(c, h, s.limits)
			cancel()
			if err == nil {
				s.sharedUp()
				if reason == "" {
					s.lim.count(h)
					return "", true
				}
				return reason, false
			}
			s.sharedFailed(err)
		}
		s.fallbacks.Inc()
	}
	reason, _ = s.lim.Reserve(ctx, h, s.share)
	return reason, false
}

// release undoes a reservation whose decision was never given. A shared
// counter that cannot be told keeps the amount: the cluster then approves
// less, never more.
func (s *StandIn) release(ctx context.Context, h Hold, shared bool) {
	s.lim.Release(ctx, h)
	if !shared {
		return
	}
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.SharedTimeout)
	defer cancel()
	if err := s.cfg.Shared.Release(c, h); err != nil {
		s.log.Warn("stand-in could not give back an approval to the shared limits; they stay counted",
			"key", h.Key, "amount", h.Amount, "err", err)
	}
}

// sharedFailed leaves the shared counters alone for SharedBackoff, and logs
// when they were answering until now.
func (s *StandIn) sharedFailed(err error) {
	if s.sharedDown.Swap(s.cfg.Now().Add(s.cfg.SharedBackoff).UnixNano()) == 0 {
		s.log.Warn("stand-in: shared limits unreachable; deciding on this node's share",
			"nodes", s.cfg.Nodes, "per_card_per_day", s.share.PerCardPerDay, "exposure", s.share.Exposure, "err", err)
	}
}

func (s *StandIn) sharedUp() {
	if s.sharedDown.Swap(0) != 0 {
		s.log.Info("stand-in: shared limits reachable again")
	}
}

// answerFrom answers with the decision in a journal entry, if the request
// is the one that entry was decided for.
func (s *StandIn) answerFrom(w http.ResponseWriter, r *http.Request, body []byte, e journal.Entry) {
	var d StandInDecision
	if e.Kind != journal.KindStandIn || e.Request.Method != r.Method || e.Request.Path != r.URL.RequestURI() ||
		json.Unmarshal(e.Decision, &d) != nil {
		writeKeyReused(w)
		return
	}
	req, err := s.cfg.Decode(r, body)
	if err != nil {
		writeDecodeError(w, err)
		return
	}
	if req.Card != d.Card || req.Amount != d.Amount || req.Kind != d.Kind {
		writeKeyReused(w)
		return
	}
	d.Replayed = true
	s.write(w, d)
}

func (s *StandIn) write(w http.ResponseWriter, d StandInDecision) {
	status, body := s.cfg.Encode(d)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set(HeaderStandIn, "true")
	w.WriteHeader(status)
	w.Write(body)
}

// lastFour is what of a card number may be logged.
func lastFour(card string) string {
	if len(card) <= 4 {
		return strings.Repeat("*", len(card))
	}
	return card[len(card)-4:]
}

func (s *StandIn) count(d StandInDecision) {
	decision := "approved"
	if !d.Approved {
		decision = "declined"
	}
	s.decisions.WithLabelValues(d.Kind, decision, d.Reason).Inc()
	s.gauge()
}

func (s *StandIn) gauge() {
	exposure, _, _ := s.lim.totals()
	s.exposure.Set(float64(exposure) / 100)
}

// Settle ends the exposure of a stand-in approval the core now has: give it
// as journal.ReplayerConfig.OnComplete. Other entries are ignored.
func (s *StandIn) Settle(e journal.Entry) {
	if e.Kind != journal.KindStandIn {
		return
	}
	s.lim.Settle(context.Background(), e.Key)
	if s.cfg.Shared != nil {
		// Whichever node replays the entry settles it there: the shared
		// counters know every node's approvals. If they cannot be told, the
		// amount stays counted: the cluster then approves less, never more.
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.SharedTimeout)
		defer cancel()
		if err := s.cfg.Shared.Settle(ctx, e.Key); err != nil {
			s.log.Warn("stand-in could not settle an approval in the shared limits; it stays counted",
				"key", e.Key, "err", err)
		}
	}
	s.gauge()
}

// StandInStats is a snapshot of stand-in processing, for the status page.
type StandInStats struct {
	// Exposure is the amount in cents approved by stand-in and not yet
	// confirmed by the core; Open counts those approvals.
	Exposure int64 `json:"exposure"`
	Open     int   `json:"open"`
	// CardsToday counts the cards with a stand-in approval today.
	CardsToday int    `json:"cards_today"`
	Limits     Limits `json:"limits"`
	// Share is this node's part of Limits, what it approves on its own
	// while the shared counters are unset or unreachable.
	Share Limits `json:"share"`
	// Shared is set while the shared counters decide.
	Shared bool `json:"shared"`
}

// Stats returns a snapshot of stand-in processing.
func (s *StandIn) Stats() StandInStats {
	exposure, open, cards := s.lim.totals()
	return StandInStats{Exposure: exposure, Open: open, CardsToday: cards, Limits: s.limits,
		Share: s.share, Shared: s.cfg.Shared != nil && s.sharedDown.Load() == 0}
}
