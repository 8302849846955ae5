package breaker

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafehttp"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures the breaker of one upstream. Zero fields take the
// defaults below.
type Config struct {
	// Upstream names the upstream in metrics, logs and on the status page.
	// Required.
	Upstream string
	// FailureRate, between 0 and 1, opens the breaker when at least this
	// share of the calls in Window failed. Default 0.5.
	FailureRate float64
	// MinCalls is how many calls Window must hold before FailureRate is
	// judged, so that two failures on a quiet night do not open it.
	// Default 20.
	MinCalls uint
	// Window is the sliding period over which calls are counted. Default 10s.
	Window time.Duration
	// Delay is how long the breaker stays open before it lets probes
	// through; each opening varies it by ±20 % so that breakers that opened
	// together do not probe together. An upstream's Retry-After on a 429 or
	// 503 lengthens it, up to MaxDelay. Default 5s.
	Delay time.Duration
	// MaxDelay caps an upstream's Retry-After. Default 1m.
	MaxDelay time.Duration
	// Probes is how many trial calls the half-open breaker lets through at
	// once: all must succeed to close it, one failure opens it again.
	// Default 3.
	Probes uint
	// SlowCall is the duration past which a call counts as a failure even
	// though its answer is used: a core that answers in 3 s is failing the
	// card networks already. Default 2s.
	SlowCall time.Duration
	// Now tells the time for the status page; nil means time.Now. (The
	// breaker's own clock is failsafe-go's, which tests cannot replace.)
	Now func() time.Time
	// Logger receives state changes; nil discards.
	Logger *slog.Logger
}

// State is a breaker's state, ordered by severity: the value is what the
// rempart_breaker_state gauge shows.
type State int

const (
	Closed   State = 0 // calls go to the upstream
	HalfOpen State = 1 // a few probes go to the upstream, the rest to fallbacks
	Open     State = 2 // every call goes to the fallback
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// MarshalText implements encoding.TextMarshaler.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func fromFailsafe(s circuitbreaker.State) State {
	switch s {
	case circuitbreaker.OpenState:
		return Open
	case circuitbreaker.HalfOpenState:
		return HalfOpen
	}
	return Closed
}

// Breaker is the circuit breaker of one upstream. Its Middleware wraps each
// route to that upstream; the journal's replayer goes through it too.
type Breaker struct {
	cfg Config
	cb  circuitbreaker.CircuitBreaker[*http.Response]
	// exec runs calls through cb when they need failsafe's bookkeeping
	// (see guard.guarded); built once, not per call.
	exec failsafe.Executor[*http.Response]
	log  *slog.Logger
	m    *metrics
	// calls are rempart_breaker_calls_total's series of this upstream, by
	// outcome, looked up once rather than on every call.
	calls map[string]prometheus.Counter

	mu    sync.Mutex
	since time.Time // last state change
}

// New builds the breaker of one upstream; reg receives the
// rempart_breaker_* metrics (nil registers none). Breakers of several
// upstreams share the series.
func New(cfg Config, reg prometheus.Registerer) (*Breaker, error) {
	if cfg.Upstream == "" {
		return nil, errors.New("breaker: upstream name is required")
	}
	if cfg.FailureRate == 0 {
		cfg.FailureRate = 0.5
	}
	if !(cfg.FailureRate > 0 && cfg.FailureRate <= 1) {
		return nil, fmt.Errorf("breaker %s: failure rate %v outside (0, 1]", cfg.Upstream, cfg.FailureRate)
	}
	if cfg.MinCalls == 0 {
		cfg.MinCalls = 20
	}
	if cfg.Window <= 0 {
		cfg.Window = 10 * time.Second
	}
	if cfg.Delay <= 0 {
		cfg.Delay = 5 * time.Second
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = time.Minute
	}
	cfg.MaxDelay = max(cfg.MaxDelay, cfg.Delay)
	if cfg.Probes == 0 {
		cfg.Probes = 3
	}
	if cfg.SlowCall <= 0 {
		cfg.SlowCall = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("breaker %s: metrics: %w", cfg.Upstream, err)
	}
	b := &Breaker{cfg: cfg, log: log.With("component", "breaker", "upstream", cfg.Upstream), m: m, since: cfg.Now()}
	b.cb = circuitbreaker.NewBuilder[*http.Response]().
		HandleIf(isFailure).
		WithFailureRateThreshold(cfg.FailureRate, cfg.MinCalls, cfg.Window).
		WithSuccessThreshold(cfg.Probes).
		WithDelay(cfg.Delay).
		WithDelayFunc(b.delay).
		WithJitterFactor(0.2).
		OnStateChanged(b.changed).
		Build()
	b.exec = failsafe.With[*http.Response](b.cb)
	b.calls = map[string]prometheus.Counter{}
	for _, o := range outcomes {
		b.calls[o] = m.calls.WithLabelValues(cfg.Upstream, o)
	}
	m.state.WithLabelValues(cfg.Upstream).Set(float64(Closed))
	return b, nil
}

// outcomes are the values of rempart_breaker_calls_total's outcome label.
var outcomes = []string{"success", "failure", "slow", "timeout", "shed", "deadline", "canceled", "rejected"}

// outcome is the calls counter of this upstream for outcome o.
func (b *Breaker) outcome(o string) prometheus.Counter {
	if c, ok := b.calls[o]; ok {
		return c
	}
	return b.m.calls.WithLabelValues(b.cfg.Upstream, o)
}

// delay honours an upstream's Retry-After within [Delay, MaxDelay]; -1 lets
// the breaker use Delay.
func (b *Breaker) delay(exec failsafe.ExecutionAttempt[*http.Response]) time.Duration {
	d := failsafehttp.DelayFunc(exec)
	if d < 0 {
		return -1
	}
	return min(max(d, b.cfg.Delay), b.cfg.MaxDelay)
}

func (b *Breaker) changed(ev circuitbreaker.StateChangedEvent) {
	from, to := fromFailsafe(ev.OldState), fromFailsafe(ev.NewState)
	b.mu.Lock()
	b.since = b.cfg.Now()
	b.mu.Unlock()
	b.m.state.WithLabelValues(b.cfg.Upstream).Set(float64(to))
	level := slog.LevelInfo
	if to == Open {
		level = slog.LevelWarn
	}
	b.log.Log(ev.Context(), level, "circuit breaker "+to.String(), "from", from.String(),
		"failure_rate", ev.Metrics().FailureRate(), "calls", ev.Metrics().Executions())
}

// Upstream returns the name of the upstream.
func (b *Breaker) Upstream() string { return b.cfg.Upstream }

// State returns the breaker's state.
func (b *Breaker) State() State { return fromFailsafe(b.cb.State()) }

// Stats is a snapshot of a breaker, for the status page.
type Stats struct {
	Upstream string    `json:"upstream"`
	State    State     `json:"state"`
	Since    time.Time `json:"since"` // last state change
	// FailureRate and Calls are over the window while closed, over the
	// probes while half-open, and as they were when it opened while open.
	FailureRate float64 `json:"failure_rate"`
	Calls       uint    `json:"calls"`
	// RetryIn is how long an open breaker waits before it probes.
	RetryIn time.Duration `json:"retry_in,omitempty"`
}

// Stats returns a snapshot of the breaker.
func (b *Breaker) Stats() Stats {
	m := b.cb.Metrics()
	b.mu.Lock()
	since := b.since
	b.mu.Unlock()
	return Stats{Upstream: b.cfg.Upstream, State: b.State(), Since: since,
		FailureRate: m.FailureRate(), Calls: m.Executions(), RetryIn: b.cb.RemainingDelay()}
}

// isFailure is what the breaker counts against the upstream: a 5xx answer,
// no answer (transport error, time-out) or a slow one. A 4xx is the
// caller's fault and a caller that left (context canceled) says nothing
// about the upstream.
//
// A 503 marked with HeaderShed was given by the admission layer inside the
// breaker, not by the upstream: counting it would open the breaker on
// overload and turn partial shedding into a total outage of the route.
func isFailure(resp *http.Response, err error) bool {
	if err != nil {
		return !isCanceled(err) && !errors.Is(err, ErrDeadline)
	}
	return resp != nil && resp.StatusCode >= 500 && resp.Header.Get(HeaderShed) == ""
}
