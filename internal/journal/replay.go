package journal

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/ratelimiter"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/telemetry"
	"github.com/rempart/rempart/internal/tier"
)

// ReplayerConfig configures a Replayer. Zero fields take the defaults below.
type ReplayerConfig struct {
	// Store is the journal to drain. Required.
	Store Store
	// Upstream names the upstream whose entries this replayer delivers;
	// entries for other upstreams are left to their own replayer. Empty
	// delivers every entry to Handler.
	Upstream string
	// Handler is the upstream as the routes reach it, behind the same
	// circuit breaker: replays then wait while the breaker is open and are
	// its probes when it half-opens. Required.
	Handler http.Handler
	// Rate bounds replays per second, so the backlog of an outage does not
	// stampede a core that is just recovering. Default 50.
	Rate float64
	// Workers is how many replays may be in flight at once. Default 2.
	Workers int
	// Batch is how many pending entries are read at a time. Default 100.
	Batch int
	// Poll is how long Run waits when nothing is pending or after the
	// upstream refused. Default 1s.
	Poll time.Duration
	// Timeout bounds one replayed call. Default 10s.
	Timeout time.Duration
	// Owner names this replayer in the leases it takes on entries (see
	// Store.Claim): unique among the nodes sharing the journal. Default the
	// host name, the process id and a random suffix.
	Owner string
	// Lease is how long the entries of a pass stay this replayer's alone;
	// if the node dies, another one takes them over once it ends. A replay
	// starts only while its entry's lease has Timeout left, so it must be
	// at least twice Timeout. Default 30s.
	Lease time.Duration
	// OnComplete, if set, is called with each entry this replayer marked
	// Done, e.g. to release the stand-in exposure it held.
	OnComplete func(Entry)
	// Verdict, if set, reads the upstream's answer to a replayed stand-in
	// approval (Result of the Done entry): the journal does not know the
	// channels' wire format. A declined approval is counted in
	// rempart_standin_declined_on_replay_total and logged at WARN.
	Verdict func(Entry) Verdict
	// Now tells the time; nil means time.Now.
	Now func() time.Time
	// Logger receives replay failures; nil discards.
	Logger *slog.Logger
	// Registerer receives the rempart_journal_* metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Verdict is what the upstream's answer to a replayed stand-in approval
// means for the bank.
type Verdict struct {
	// Declined is set when the core refused what stand-in approved: the
	// bank advanced the money and the account did not have it.
	Declined bool
	// Route names the channel, e.g. card-authorize: the metric's label.
	Route string
	// Reason is the core's, e.g. insufficient_funds.
	Reason string
	// CardLast4 is the last four digits of the card, the only part of a
	// card number the replayer ever logs.
	CardLast4 string
}

// maxConsecutiveFailures stops a pass: past it the upstream is down again
// (or its breaker open), and every further call would fail the same way.
const maxConsecutiveFailures = 3

// Replayer delivers pending entries to the upstream. It re-sends each
// original request with its Idempotency-Key; the upstream decides a key once,
// so a replay of an entry already applied (a crash between sending and
// marking done) returns the first result and moves no money twice. Nodes
// sharing a journal do not replay the same entries: each pass claims its
// entries with a lease (Store.Claim), and a dead node's are taken over
// when their lease ends.
type Replayer struct {
	cfg     ReplayerConfig
	log     *slog.Logger
	limiter ratelimiter.RateLimiter[any]
	m       *metrics

	replayed, failures atomic.Int64
	mu                 sync.Mutex // guards the fields below
	pending            map[string]int
	lastPass           time.Time
	lastErr            string
}

// NewReplayer returns a replayer; Run starts it.
func NewReplayer(cfg ReplayerConfig) (*Replayer, error) {
	if cfg.Store == nil || cfg.Handler == nil {
		return nil, fmt.Errorf("replayer needs a store and a handler: %w", ErrInvalid)
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 50
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 100
	}
	cfg.Batch = min(cfg.Batch, MaxListLimit)
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.Lease < 2*cfg.Timeout {
		return nil, fmt.Errorf("replay lease %v shorter than twice the replay timeout %v: %w", cfg.Lease, cfg.Timeout, ErrInvalid)
	}
	if cfg.Owner == "" {
		host, _ := os.Hostname()
		cfg.Owner = fmt.Sprintf("%s/%d/%s", host, os.Getpid(), rand.Text()[:8])
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("replayer metrics: %w", err)
	}
	for _, k := range []string{KindStandIn, KindOutbox} {
		m.pending.WithLabelValues(k) // dashboards show both from the start
	}
	return &Replayer{
		cfg:     cfg,
		log:     log.With("component", "journal-replay", "upstream", cfg.Upstream),
		limiter: ratelimiter.NewSmoothWithMaxRate[any](time.Duration(float64(time.Second) / cfg.Rate)),
		m:       m,
		pending: map[string]int{},
	}, nil
}

// Run replays pending entries until ctx ends, then returns nil.
func (r *Replayer) Run(ctx context.Context) error {
	for {
		p, err := r.Drain(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			r.log.Warn("replay pass failed", "err", err)
		}
		if err == nil && !p.Stopped && p.Replayed > 0 {
			// Entries may have arrived during the pass: look again at once.
			continue
		}
		select {
		case <-time.After(r.cfg.Poll):
		case <-ctx.Done():
			return nil
		}
	}
}

// Pass is what one Drain did.
type Pass struct {
	Replayed int  // entries marked done
	Failed   int  // replays that got no final answer and stay pending
	Stopped  bool // the pass gave up: the upstream kept failing
}

// Drain makes one pass over the entries pending now, replaying each once
// (at the configured rate), and stops early when the upstream keeps failing.
func (r *Replayer) Drain(ctx context.Context) (Pass, error) {
	var (
		p           Pass
		replayed    atomic.Int64
		failed      atomic.Int64
		consecutive atomic.Int64
		after       int64
	)
	defer func() {
		r.refresh(ctx)
		r.mu.Lock()
		r.lastPass = r.cfg.Now()
		r.mu.Unlock()
	}()
	for !p.Stopped {
		now := r.cfg.Now()
		lease := Lease{Owner: r.cfg.Owner, Now: now, Until: now.Add(r.cfg.Lease)}
		page, err := r.cfg.Store.Claim(ctx, Filter{State: Pending, Upstream: r.cfg.Upstream, After: after, Limit: r.cfg.Batch}, lease)
		if err != nil {
			r.setErr(err)
			return p, fmt.Errorf("claim pending: %w", err)
		}
		// Past this instant a call could outlast the lease and meet another
		// node's replay of the same entry: what is left waits for the next
		// claim, which renews this replayer's own leases.
		last := lease.Until.Add(-r.cfg.Timeout)
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].Seq
		work := make(chan Entry)
		var wg sync.WaitGroup
		for range min(r.cfg.Workers, len(page)) {
			wg.Go(func() {
				for e := range work {
					if consecutive.Load() >= maxConsecutiveFailures || ctx.Err() != nil {
						continue
					}
					if err := r.limiter.AcquirePermit(ctx); err != nil {
						continue
					}
					if !r.cfg.Now().Before(last) {
						continue
					}
					if r.replay(ctx, e) {
						replayed.Add(1)
						consecutive.Store(0)
					} else {
						failed.Add(1)
						consecutive.Add(1)
					}
				}
			})
		}
		for _, e := range page {
			work <- e
		}
		close(work)
		wg.Wait()
		p.Stopped = consecutive.Load() >= maxConsecutiveFailures
		if ctx.Err() != nil {
			break
		}
	}
	p.Replayed, p.Failed = int(replayed.Load()), int(failed.Load())
	return p, ctx.Err()
}

// replay delivers one entry and reports whether it is now Done.
func (r *Replayer) replay(ctx context.Context, e Entry) bool {
	res, err := r.send(ctx, e)
	if err == nil && !final(res.Status) {
		err = fmt.Errorf("upstream answered %d", res.Status)
	}
	if err != nil {
		r.failures.Add(1)
		r.m.failures.WithLabelValues(e.Kind, strconv.Itoa(res.Status)).Inc()
		r.setErr(fmt.Errorf("replay %s: %w", e.Key, err))
		r.log.Debug("replay failed, entry stays pending", "key", e.Key, "kind", e.Kind, "err", err)
		return false
	}
	// The answer is the upstream's decision on this key; recording it is
	// what must not be lost. If recording fails the entry stays pending and
	// the next pass sends it again, which the upstream answers with the same
	// decision.
	at := r.cfg.Now()
	done, err := r.cfg.Store.Complete(context.WithoutCancel(ctx), e.Key, res, at)
	if err != nil {
		r.failures.Add(1)
		r.m.failures.WithLabelValues(e.Kind, strconv.Itoa(res.Status)).Inc()
		r.setErr(fmt.Errorf("record replay of %s: %w", e.Key, err))
		r.log.Warn("replayed but could not record the result; will replay again", "key", e.Key, "err", err)
		return false
	}
	outcome := "applied"
	declined := r.declined(done, at)
	if res.Status >= 400 {
		outcome = "refused"
		if !declined {
			r.log.Warn("upstream refused a replayed entry", "key", e.Key, "kind", e.Kind, "status", res.Status)
		}
	}
	r.replayed.Add(1)
	r.m.replayed.WithLabelValues(e.Kind, outcome).Inc()
	if r.cfg.OnComplete != nil {
		r.cfg.OnComplete(done)
	}
	return true
}

// declined counts and logs a stand-in approval the core declined at replay,
// and reports whether it was one. Only the replayer whose Complete recorded
// the result counts it: when two nodes replay one entry, the second finds it
// done at the first one's time.
func (r *Replayer) declined(done Entry, at time.Time) bool {
	if r.cfg.Verdict == nil || done.Kind != KindStandIn {
		return false
	}
	v := r.cfg.Verdict(done)
	if !v.Declined {
		return false
	}
	if !done.Completed.Equal(at) {
		return true
	}
	r.m.declined.WithLabelValues(v.Route).Inc()
	r.log.Warn("the core declined a stand-in approval at replay; the bank carries the amount",
		"key", done.Key, "route", v.Route, "reason", v.Reason, "card_last4", v.CardLast4, "status", done.Result.Status)
	return true
}

// final reports whether an upstream status is its last word on a request:
// a success, or a refusal that sending again cannot change. 408, 425 and 429
// ask to come back later; 5xx is the upstream failing, or its breaker open.
func final(status int) bool {
	switch {
	case status >= 200 && status < 300:
		return true
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly, status == http.StatusTooManyRequests:
		return false
	case status >= 400 && status < 500 && status != 499:
		return true
	}
	return false
}

// send re-sends the entry's request to the handler and captures its answer.
func (r *Replayer) send(ctx context.Context, e Entry) (res Result, err error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	id := telemetry.NewRequestID()
	deadline, _ := ctx.Deadline()
	// The replay is critical traffic in kind but runs at the lowest
	// priority: live card payments go first, the backlog fills what is left.
	ctx = request.With(ctx, &request.Info{ID: id, Trace: telemetry.NewTrace(), Route: "journal-replay",
		Tier: tier.Critical, Priority: tier.Sheddable, Deadline: deadline})
	req, err := http.NewRequestWithContext(ctx, e.Request.Method, e.Request.Path, bytes.NewReader(e.Request.Body))
	if err != nil {
		return Result{}, err
	}
	req.RequestURI = e.Request.Path
	req.Header.Set("Idempotency-Key", e.Key)
	req.Header.Set("X-Request-Id", id)
	if e.Request.ContentType != "" {
		req.Header.Set("Content-Type", e.Request.ContentType)
	}
	rec := &recorder{header: http.Header{}}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("upstream handler panicked: %v", p)
		}
	}()
	r.cfg.Handler.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if ctx.Err() != nil && !final(rec.status) {
		return Result{Status: rec.status}, ctx.Err()
	}
	return Result{Status: rec.status, ContentType: rec.header.Get("Content-Type"), Body: rec.body.Bytes()}, nil
}

// refresh updates the pending gauge from the store.
func (r *Replayer) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	c, err := r.cfg.Store.Counts(ctx)
	if err != nil {
		r.setErr(fmt.Errorf("counts: %w", err))
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// A kind with nothing pending is absent from c.Pending; its gauge must
	// still fall to zero.
	for _, kinds := range []map[string]int{r.pending, c.Done, c.Pending} {
		for k := range kinds {
			r.m.pending.WithLabelValues(k).Set(float64(c.Pending[k]))
		}
	}
	r.pending = c.Pending
}

func (r *Replayer) setErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastErr = err.Error()
}

// ReplayStats is a snapshot of a replayer, for the status page.
type ReplayStats struct {
	Upstream  string         `json:"upstream,omitempty"`
	Pending   map[string]int `json:"pending"` // by kind, as of the last pass
	Replayed  int64          `json:"replayed"`
	Failures  int64          `json:"failures"`
	LastPass  time.Time      `json:"last_pass,omitzero"`
	LastError string         `json:"last_error,omitempty"`
}

// Stats returns a snapshot of the replayer.
func (r *Replayer) Stats() ReplayStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	pending := maps.Clone(r.pending)
	return ReplayStats{Upstream: r.cfg.Upstream, Pending: pending, Replayed: r.replayed.Load(),
		Failures: r.failures.Load(), LastPass: r.lastPass, LastError: r.lastErr}
}

// recorder captures a handler's answer. Upstream answers are small JSON
// documents; the gateway's body limits bound what the estate returns.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.body.Len()+len(b) > MaxBodyLen {
		return 0, errors.New("upstream answer larger than the journal keeps")
	}
	return w.body.Write(b)
}
