package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rempart/rempart/client"
	"github.com/rempart/rempart/internal/admission"
	"github.com/rempart/rempart/internal/breaker"
	"github.com/rempart/rempart/internal/estate"
	"github.com/rempart/rempart/internal/journal"
	"github.com/rempart/rempart/internal/journal/postgres"
	"github.com/rempart/rempart/internal/journal/sqlite"
	"github.com/rempart/rempart/internal/problem"
	"github.com/rempart/rempart/internal/proxy"
)

// protection is what stands between the routes and one upstream: the
// fallbacks its routes may switch to, and a breaker per route. Breakers are
// per route, not per upstream, because one upstream hides several back ends:
// an upstream-wide breaker tripped by a dead core would also cut 3-D Secure,
// which does not use the core — the cascade of the incident.
type protection struct {
	s        *stack
	upstream string
	breakers map[string]*breaker.Breaker // by route
	standIn  *breaker.StandIn
	outbox   *breaker.Outbox
	stale    *breaker.Stale
	timeout  time.Duration
	// cancellable says the upstream stops when its request's context ends
	// (breaker.Route.Cancellable).
	cancellable bool
	// replay answers a retried write from its first attempt's result;
	// retrier makes the gateway's own bounded retries. They share one
	// retry budget, so retries stay within 10 % of the load.
	replay  *proxy.ReplayCache
	retrier *proxy.Retrier
	// admits are the upstream's adaptive admission controllers, one per
	// pool of routes that share a back end (see routePool): each learns its
	// back end's capacity and serves tiers in order, with a share kept for
	// CRITICAL. One controller per upstream would let slots held by the
	// core's lock convoy starve 3-D Secure, which never touches the core.
	// capacity and serves tiers in order, with a share kept for CRITICAL.
	admits map[string]*admission.Controller
}

// journalKeyEnv holds the journal key of a PostgreSQL journal, base64.
const journalKeyEnv = "REMPART_JOURNAL_KEY"

// openJournal opens the configured journal and starts purging its done
// entries past their retention.
func (s *stack) openJournal(ctx context.Context) (journal.Store, error) {
	var (
		j   journal.Store
		err error
	)
	switch s.cfg.Journal.Backend {
	case "postgres":
		var key []byte
		if key, err = sharedJournalKey(os.Getenv(journalKeyEnv), filepath.Join(s.cfg.DataDir, journal.KeyFile)); err != nil {
			return nil, err
		}
		j, err = postgres.Open(ctx, s.cfg.Journal.DatabaseURL, postgres.Options{Key: key})
	default:
		// The key beside the file, created on first start.
		j, err = sqlite.Open(ctx, filepath.Join(s.cfg.DataDir, "journal.db"))
	}
	if err != nil {
		return nil, err
	}
	p, err := journal.NewPurger(journal.PurgerConfig{Store: j, Retention: s.cfg.Journal.Retention,
		Logger: s.log, Registerer: s.metrics.Registry})
	if err != nil {
		j.Close()
		return nil, err
	}
	s.background = append(s.background, p.Run)
	return j, nil
}

// sharedJournalKey is the key of a journal several nodes share: from the
// environment, else from the key file. It is never created here: a node
// making its own would seal what its peers cannot read.
func sharedJournalKey(env, file string) ([]byte, error) {
	if env != "" {
		key, err := journal.ParseKey(env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", journalKeyEnv, err)
		}
		return key, nil
	}
	key, err := journal.LoadKey(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("backend postgres needs the key every node shares: set %s (base64 of 32 random bytes, "+
			"e.g. head -c 32 /dev/urandom | base64) or put those 32 bytes in %s, mode 0600: %w", journalKeyEnv, file, journal.ErrKey)
	}
	return key, err
}

// protect builds the breaker and fallbacks of one upstream, and the replayer
// that delivers its journal once the upstream recovers.
func (s *stack) newProtection(ctx context.Context, name string, up http.Handler, timeout time.Duration, cancellable bool) (*protection, error) {
	reg := s.metrics.Registry
	budget := client.NewRetryBudget(client.BudgetConfig{})
	p := &protection{s: s, upstream: name, breakers: map[string]*breaker.Breaker{},
		stale: breaker.NewStale(breaker.StaleConfig{}), timeout: timeout, cancellable: cancellable,
		replay:  proxy.NewReplayCache(proxy.ReplayOptions{Budget: budget, Registerer: reg}),
		retrier: proxy.NewRetrier(proxy.RetryOptions{Budget: budget, Registerer: reg})}
	var err error
	p.admits = map[string]*admission.Controller{}
	shared, err := s.standInCounter(ctx, name)
	if err != nil {
		return nil, err
	}
	p.standIn, err = breaker.NewStandIn(ctx, breaker.StandInConfig{
		Journal: s.journal, Upstream: name, Decode: s.decodeStandIn, Encode: encodeStandIn,
		Shared: shared, Nodes: s.cfg.StandIn.Nodes,
		Logger: s.log.With("component", "standin"), Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	p.outbox, err = breaker.NewOutbox(breaker.OutboxConfig{Journal: s.journal, Upstream: name,
		Validate: validateTransfer, Logger: s.log.With("component", "outbox")})
	if err != nil {
		return nil, err
	}
	// The replayer has its own breaker: a recovering core is probed by a
	// few replays, not stampeded by all of them.
	br, err := p.breaker("journal-replay")
	if err != nil {
		return nil, err
	}
	rp, err := journal.NewReplayer(journal.ReplayerConfig{Store: s.journal, Upstream: name,
		Handler: br.Middleware(breaker.Route{Timeout: timeout, Cancellable: cancellable})(up), Rate: s.cfg.Journal.ReplayRate,
		Lease: s.cfg.Journal.Lease, Owner: replayOwner(s.cfg.Listen),
		OnComplete: p.standIn.Settle, Verdict: standInVerdict, Registerer: reg, Logger: s.log.With("component", "replay")})
	if err != nil {
		return nil, err
	}
	s.background = append(s.background, func(ctx context.Context) { rp.Run(ctx) })
	return p, nil
}

// standInCounter opens the Redis counters the nodes share the stand-in
// limits of upstream through (standin.redis_url, else the sessions' Redis),
// or returns nil: each node then keeps to its share.
func (s *stack) standInCounter(ctx context.Context, upstream string) (breaker.Counter, error) {
	url := s.cfg.StandIn.RedisURL
	if url == "" && s.cfg.Sessions.Backend == "redis" {
		url = s.cfg.Sessions.RedisURL
	}
	if url == "" {
		return nil, nil
	}
	var cardKey []byte
	if s.cfg.Journal.Backend == "postgres" {
		// Every node has the shared journal's key: card names in Redis are
		// keyed by it, so Redis holds no card number.
		key, err := sharedJournalKey(os.Getenv(journalKeyEnv), filepath.Join(s.cfg.DataDir, journal.KeyFile))
		if err != nil {
			return nil, err
		}
		cardKey = key
	}
	c, err := breaker.OpenRedisCounter(url, breaker.RedisOptions{Prefix: "rempart:standin:" + upstream + ":", CardKey: cardKey})
	if err != nil {
		return nil, fmt.Errorf("standin.redis_url: %w", err)
	}
	s.closers = append(s.closers, c.Close)
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := c.Warm(wctx); err != nil {
		// Not fatal: the node starts on its share and tries Redis again.
		s.log.Warn("stand-in: shared limits unreachable at start", "err", err)
	}
	return c, nil
}

// replayOwner names this node in its journal leases: the same across a
// restart, so a restarted node takes its own leases back at once, and
// distinct between nodes on one host by their listen address.
func replayOwner(listen string) string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	return host + "/" + listen
}

func (p *protection) breaker(route string) (*breaker.Breaker, error) {
	if b, ok := p.breakers[route]; ok {
		return b, nil
	}
	cfg := breaker.Config{Upstream: p.upstream + "/" + route,
		Logger: p.s.log.With("component", "breaker", "route", route)}
	if f := channelFallback(route); f == "standin" || f == "outbox" {
		// The card, ATM and transfer paths judge the core on the last 5 s,
		// not 10: a core that deadlocks after a good minute keeps a 10 s
		// window under half failures for seconds, and every payment waits
		// out its time-out meanwhile (measured in the full drill: card p50
		// 852 ms in the lock-contention phase).
		cfg.Window = 5 * time.Second
	}
	b, err := breaker.New(cfg, p.s.metrics.Registry)
	if err != nil {
		return nil, err
	}
	p.breakers[route] = b
	return b, nil
}

// wrap puts a route behind its own breaker with the named fallback.
func (p *protection) admit(pool string) (*admission.Controller, error) {
	if c, ok := p.admits[pool]; ok {
		return c, nil
	}
	// The gateway's own run-queue delay is not the upstream's: told it, the
	// limiter does not cut a healthy back end for the gateway's own CPU.
	opts := admission.Options{Name: p.upstream + "/" + pool, Registerer: p.s.metrics.Registry, Noise: p.s.sched.P90}
	if (pool == "core" || pool == "core-reads") && p.s.estate != nil {
		// The in-process core's worker pool is known: never admit fewer
		// than half of it, so a core that merely got slower is not read as
		// one that can take only a handful of calls.
		opts.MinLimit = max(1, p.s.cfg.Estate.Core.Workers/2)
		opts.InitialLimit = max(opts.MinLimit, 20)
	}
	c, err := admission.New(opts)
	if err != nil {
		return nil, err
	}
	p.admits[pool] = c
	return c, nil
}

func (p *protection) wrap(route, pool, fallback string, timeout time.Duration, next http.Handler) (http.Handler, error) {
	if timeout == 0 {
		timeout = p.timeout
	}
	br, err := p.breaker(route)
	if err != nil {
		return nil, err
	}
	ad, err := p.admit(pool)
	if err != nil {
		return nil, err
	}
	rt := breaker.Route{Timeout: timeout, Cancellable: p.cancellable}
	switch fallback {
	case "standin":
		rt.Fallback = p.standIn
	case "outbox":
		rt.Fallback = p.outbox
	case "stale":
		rt.Fallback = p.stale
	}
	// Outside in: replay cache (a retry costs nothing); breaker with its
	// fallback; admission (shed before the upstream pays); own retries. The
	// breaker sits outside admission so that a request admission sheds is
	// answered by the route's fallback (stand-in, outbox, stale read)
	// instead of a 503: a shed card payment is stood in for, not refused.
	return p.replay.Middleware(br.Middleware(rt)(ad.Middleware(p.retrier.Middleware(next)))), nil
}

// decodeStandIn reads a card authorisation or ATM withdrawal exactly as the
// channel would, so stand-in never approves what the core would refuse as
// malformed, and refuses cards the bank does not know.
func (s *stack) decodeStandIn(r *http.Request, body []byte) (breaker.StandInRequest, error) {
	var card, kind string
	var amount int64
	switch r.URL.Path {
	case estate.PathCardAuthorize:
		v, p := estate.ParseCardAuthorization(body)
		if p != nil {
			return breaker.StandInRequest{}, p
		}
		card, amount, kind = v.Card, v.Amount, "card"
	case estate.PathATMWithdraw:
		v, p := estate.ParseATMWithdrawal(body)
		if p != nil {
			return breaker.StandInRequest{}, p
		}
		card, amount, kind = v.Card, v.Amount, "atm"
	default:
		return breaker.StandInRequest{}, problem.New(http.StatusNotFound, "no-stand-in",
			fmt.Sprintf("%s has no stand-in processing", r.URL.Path))
	}
	if s.estate != nil {
		if _, ok := s.estate.Population().ByCard(card); !ok {
			return breaker.StandInRequest{}, problem.New(http.StatusNotFound, "unknown-card",
				"no account holds this card").WithField("card")
		}
	}
	return breaker.StandInRequest{Card: card, Amount: amount, Kind: kind}, nil
}

// standInDecision is the channel's Decision with the stand-in marker, so a
// terminal or an app can tell the bank answered without its core.
type standInDecision struct {
	estate.Decision
	// Balance is unknown without the core: hide the embedded zero.
	Balance *int64 `json:"balance,omitempty"`
	StandIn bool   `json:"stand_in"`
}

func encodeStandIn(d breaker.StandInDecision) (int, []byte) {
	b, _ := json.Marshal(standInDecision{estate.Decision{Approved: d.Approved, Reason: d.Reason,
		Amount: d.Amount, At: d.At, Replayed: d.Replayed}, nil, true})
	return http.StatusOK, b
}

// standInVerdict reads the core's answer to a replayed stand-in approval:
// a decision that is not an approval, or a refusal (4xx), is a decline.
func standInVerdict(e journal.Entry) journal.Verdict {
	var v journal.Verdict
	path, _, _ := strings.Cut(e.Request.Path, "?")
	var card string
	switch path {
	case estate.PathCardAuthorize:
		v.Route = "card-authorize"
		if a, p := estate.ParseCardAuthorization(e.Request.Body); p == nil {
			card = a.Card
		}
	case estate.PathATMWithdraw:
		v.Route = "atm-withdraw"
		if a, p := estate.ParseATMWithdrawal(e.Request.Body); p == nil {
			card = a.Card
		}
	default:
		v.Route = "other"
	}
	if len(card) >= 4 {
		v.CardLast4 = card[len(card)-4:]
	}
	if e.Result.Status >= 300 {
		v.Declined, v.Reason = true, fmt.Sprintf("http_%d", e.Result.Status)
		return v
	}
	var d estate.Decision
	if err := json.Unmarshal(e.Result.Body, &d); err != nil {
		// Not a decision: nothing says the core declined.
		return v
	}
	v.Declined, v.Reason = !d.Approved, d.Reason
	return v
}

func validateTransfer(_ *http.Request, body []byte) error {
	if _, p := estate.ParseInstantTransfer(body); p != nil {
		return p
	}
	return nil
}

// channelPool is the admission pool of each estate channel: the back end it
// really uses. Card, ATM and transfer writes share the legacy core; account
// reads use it too but take no locks; 3-D Secure runs on the ACS beside it;
// documents and parcels on their own systems.
func channelPool(name string) string {
	switch name {
	case "3ds-challenge", "3ds-verify":
		return "acs"
	case "documents", "parcel":
		return "services"
	case "accounts", "balance", "transactions":
		// Reads take no locks: writers stuck in the core's lock convoy must
		// not hold the slots that balance and history reads need.
		return "core-reads"
	}
	return "core"
}

// channelTimeout is how long a channel waits for the core before its
// fallback answers. Card and ATM networks time an issuer out after a few
// seconds and then decline or stand in themselves, so the bank's own
// stand-in must answer well before, inside the partners' 1 s p99 objective of
// the incident scenario: 800 ms. Zero keeps the upstream's timeout.
func channelTimeout(name string) time.Duration {
	switch channelFallback(name) {
	case "standin", "outbox":
		// A core answers a payment in milliseconds; past half a second the
		// scheme's own time-out (1-2 s) is near and the stand-in answers.
		return 500 * time.Millisecond
	case "stale":
		return 2 * time.Second
	}
	return 0
}

// channelFallback is the fallback each estate channel gets by default.
func channelFallback(name string) string {
	switch name {
	case "card-authorize", "atm-withdraw":
		return "standin"
	case "instant-transfer":
		return "outbox"
	case "accounts", "balance", "transactions", "documents", "parcel":
		return "stale"
	}
	return "none"
}
