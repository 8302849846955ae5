package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"net/netip"
	"net/url"
	"path/filepath"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rempart/rempart/internal/config"
	"github.com/rempart/rempart/internal/console"
	"github.com/rempart/rempart/internal/estate"
	"github.com/rempart/rempart/internal/estate/customer"
	"github.com/rempart/rempart/internal/gateway"
	"github.com/rempart/rempart/internal/identity"
	"github.com/rempart/rempart/internal/identity/admin"
	"github.com/rempart/rempart/internal/identity/revocation"
	"github.com/rempart/rempart/internal/identity/users"
	"github.com/rempart/rempart/internal/journal"
	"github.com/rempart/rempart/internal/proxy"
	"github.com/rempart/rempart/internal/scrub"
	"github.com/rempart/rempart/internal/session"
	"github.com/rempart/rempart/internal/session/memory"
	sessionredis "github.com/rempart/rempart/internal/session/redis"
	"github.com/rempart/rempart/internal/status"
	"github.com/rempart/rempart/internal/telemetry"
	"github.com/rempart/rempart/internal/tier"
	"github.com/rempart/rempart/internal/waitroom"
)

// stack is everything rempart serve runs, built from a config. Backends are
// chosen here, explicitly, and nowhere else.
type stack struct {
	cfg     *config.Config
	log     *slog.Logger
	metrics *telemetry.Metrics
	sched   *telemetry.SchedLatency // how long goroutines wait for a processor
	estate  *estate.Estate
	// remoteEstate is a remote `rempart estate`'s ops listener
	// (estate.ops_url), when the bank is not in process.
	remoteEstate *url.URL
	sessions     session.Store
	users        *users.Memory
	identity     *identity.Provider
	scrubber     *scrub.Scrubber
	admins       *admin.Admins
	room         *waitroom.Room
	board        *status.Board
	// routeUpstream names each route's upstream, for the status page.
	routeUpstream map[string]string
	journal       journal.Store
	guards        map[string]*protection // by upstream name
	routes        []gateway.Route
	trust         *trust
	ops           *http.ServeMux
	closers       []func() error
	// background runs for as long as the server does (journal replayers).
	background []func(ctx context.Context)
	// checks are the status page's synthetic checks, by channel.
	checks map[string]check
}

func (s *stack) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	return errors.Join(errs...)
}

func buildStack(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *stack, err error) {
	s := &stack{cfg: cfg, log: log, metrics: telemetry.NewMetrics(), ops: http.NewServeMux()}
	// How long goroutines wait for a processor: the first thing to look at
	// when every route is slow at once.
	sched := telemetry.NewSchedLatency(ctx, time.Second)
	s.sched = sched
	s.metrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rempart_sched_latency_p90_seconds",
		Help: "90th percentile of the time goroutines waited for a processor over the last second: the process's CPU saturation.",
	}, func() float64 { return sched.P90().Seconds() }))
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	if cfg.EstateEnabled() {
		if s.estate, err = estate.New(ctx, estateConfig(cfg, log)); err != nil {
			return nil, err
		}
		s.closers = append(s.closers, s.estate.Close)
		s.metrics.Registry.MustRegister(s.estate.Collectors()...)
		s.ops.Handle("/ops/estate/", s.estate.OpsHandler())
	} else if cfg.Estate.OpsURL != "" {
		// A remote estate: its ops API behind this node's admin login,
		// so every node's /ops/estate/* is the one bank's.
		if s.remoteEstate, err = url.Parse(cfg.Estate.OpsURL); err != nil {
			return nil, fmt.Errorf("estate.ops_url: %w", err)
		}
		s.ops.Handle("/ops/estate/", httputil.NewSingleHostReverseProxy(s.remoteEstate))
	}

	if s.trust, err = buildTrust(cfg); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	if cfg.ScrubEnabled() {
		if err := s.buildScrubber(); err != nil {
			return nil, fmt.Errorf("scrub: %w", err)
		}
	}
	// The journal first: the fallbacks write to it, and so do logins (what
	// they write to the directory waits there for it).
	if s.journal, err = s.openJournal(ctx); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	s.closers = append(s.closers, s.journal.Close)
	if cfg.IdentityEnabled() {
		if err := s.buildIdentity(ctx); err != nil {
			return nil, err
		}
	}

	if err := s.buildAdmin(); err != nil {
		return nil, fmt.Errorf("ops admin: %w", err)
	}

	upstreams := map[string]http.Handler{}
	s.guards = map[string]*protection{}
	for _, u := range cfg.Upstreams {
		var up http.Handler
		// A proxied upstream stops when its request's context ends (the
		// transport aborts the exchange): its breaker calls it on the
		// request's own goroutine. The in-process estate may not (its
		// core's lock convoy ignores cancellation).
		cancellable := u.URL != config.InProcess
		if u.URL == config.InProcess {
			if s.estate == nil {
				return nil, fmt.Errorf("upstream %s is in-process but the estate is disabled", u.Name)
			}
			up = s.estate.Handler()
		} else {
			base, err := url.Parse(u.URL)
			if err != nil {
				return nil, fmt.Errorf("upstream %s: %w", u.Name, err)
			}
			up = proxy.New(base, 0, log)
		}
		upstreams[u.Name] = up
		if s.guards[u.Name], err = s.newProtection(ctx, u.Name, up, u.Timeout, cancellable); err != nil {
			return nil, fmt.Errorf("upstream %s: %w", u.Name, err)
		}
	}
	if s.identity != nil {
		// The room starts at half the password checks this machine can do a
		// second (the other half is the bank's), and learns from there: a
		// room starting at its floor needs seconds of a surge to climb, and
		// in those seconds it turns away customers the provider could serve.
		initial := users.HashesPerSecond(s.users.Params(), runtime.GOMAXPROCS(0)) / 2
		s.log.Info("login waiting room", slog.Float64("initial_rate", initial))
		// A password check takes a few milliseconds to a few tens: one that
		// takes half a second means the machine is saturated, and the CPU
		// the room gives logins is taken from customers' reads and payments
		// in the same process (measured in the full drill with a 1 s target:
		// returning customers' balance p99 at 582 ms through the retry storm).
		// Tickets are bound to the client's /24 (/48): a place copied to
		// another network is worthless, while a phone that changes address
		// inside its carrier's NAT keeps it.
		opts := waitroom.Options{ID: "login", InitialRate: initial, LatencyTarget: 500 * time.Millisecond,
			BindClient: true, Registerer: s.metrics.Registry}
		if m := s.cfg.Identity.MaxLoginRate; m > 0 {
			opts.MaxRate, opts.MinRate = m, min(m, 5) // 5: the room's default floor
		}
		s.room = waitroom.New(opts)
	}
	if s.routes, err = s.buildRoutes(upstreams); err != nil {
		return nil, err
	}
	if err := s.buildBoard(); err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	s.buildConsole()
	return s, nil
}

func (s *stack) buildIdentity(ctx context.Context) error {
	cfg := s.cfg
	var err error
	switch cfg.Sessions.Backend {
	case "redis":
		st, err := sessionredis.Open(ctx, cfg.Sessions.RedisURL, sessionredis.Options{MaxPerSubject: cfg.Sessions.MaxPerCustomer})
		if err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		if err := s.checkPersistence(ctx, st); err != nil {
			st.Close()
			return err
		}
		s.sessions = st
	default:
		st, err := memory.Open(ctx, memory.Options{Dir: filepath.Join(cfg.DataDir, "sessions"),
			MaxPerSubject: cfg.Sessions.MaxPerCustomer, Logger: s.log.With("component", "sessions")})
		if err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		s.sessions = st
	}
	s.closers = append(s.closers, s.sessions.Close)

	if s.users, err = newUsers(cfg, s.estate, 0); err != nil {
		return fmt.Errorf("identity users: %w", err)
	}
	issuer := cfg.Identity.Issuer
	if issuer == "" {
		issuer = "http://" + cfg.Listen
	}
	var sms identity.SMSSender
	switch {
	case s.estate != nil:
		sms = outboxSender{s.estate.SMS()}
	case s.remoteEstate != nil:
		sms = remoteSMS{base: s.remoteEstate, client: &http.Client{Timeout: 2 * time.Second}}
	}
	keyStore, kek, err := s.openKeys(ctx)
	if err != nil {
		return err
	}
	icfg := identity.Config{
		Issuer: issuer, DataDir: cfg.DataDir, Sessions: s.sessions, Users: s.users,
		DerivedCustomers: cfg.Estate.Customers, SMS: sms, Logger: s.log.With("component", "identity"),
		Registerer: s.metrics.Registry, KeyStore: keyStore, KeyKEK: kek,
		DirectoryWrites: identity.NewJournalWrites(s.journal), PasswordResetURL: cfg.Identity.PasswordResetURL,
	}
	if cfg.Sessions.Backend == "redis" {
		// Clustered: a login's steps may reach any node. The embedded
		// store stays out of it: one process owns its directory, and
		// logins in progress need not wait for its fsyncs.
		icfg.Logins = s.sessions
	}
	if s.scrubber != nil {
		icfg.Observer, icfg.Limiter = s.scrubber, loginLimiter{s.scrubber}
	}
	s.identity, err = identity.New(ctx, icfg)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, s.identity.Close)
	if cfg.Sessions.Backend == "redis" {
		// Clustered: revocations reach every node through Redis pub/sub.
		rc, err := newRedis(cfg.Sessions.RedisURL, revocationRedisTimeout)
		if err != nil {
			return fmt.Errorf("revocations: %w", err)
		}
		br, err := revocation.Start(ctx, rc, s.identity.Verifier().Revocations(),
			revocation.Options{Logger: s.log.With("component", "revocations")})
		if err != nil {
			rc.Close()
			return fmt.Errorf("revocations: %w", err)
		}
		s.closers = append(s.closers, rc.Close, br.Close) // run in reverse: the bridge flushes first
	}
	// What logins wrote to the journal for the directory reaches it when it
	// answers: a short deadline per write (a stuck directory holds no
	// worker long) and a rate that drains an outage's backlog in seconds.
	rp, err := journal.NewReplayer(journal.ReplayerConfig{Store: s.journal, Upstream: identity.DirectoryUpstream,
		Handler: s.identity.DirectoryEventsHandler(s.users), Rate: directoryReplayRate, Timeout: directoryReplayTimeout,
		Lease: s.cfg.Journal.Lease, Owner: replayOwner(s.cfg.Listen), Registerer: s.metrics.Registry,
		Logger: s.log.With("component", "replay", "upstream", identity.DirectoryUpstream)})
	if err != nil {
		return fmt.Errorf("directory writes: %w", err)
	}
	s.background = append(s.background, func(ctx context.Context) { rp.Run(ctx) })
	faults := identity.FaultsHandler(s.users.Stuck, s.users.SetStuck, s.log)
	s.ops.Handle("GET /ops/identity/faults", faults)
	s.ops.Handle("PUT /ops/identity/faults", faults)
	s.ops.Handle("PUT /ops/identity/users/{id}", identity.DirectoryHandler(s.users, s.log))
	s.ops.Handle("GET /ops/identity/users/{id}", identity.DirectoryActivityHandler(s.users))
	return nil
}

// checkPersistence says, at start, what a restart of the sessions' Redis
// would lose: a Redis without appendonly restarts empty, logging every
// customer out and forgetting every revoked grant. With
// sessions.require_persistence it refuses to start instead.
func (s *stack) checkPersistence(ctx context.Context, st *sessionredis.Store) error {
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	p, err := st.Persistence(cctx)
	loss := ""
	if err != nil {
		loss = "unknown: " + err.Error()
	} else {
		loss = p.Loss()
	}
	switch {
	case loss == "":
		return nil
	case s.cfg.Sessions.RequirePersistence:
		return fmt.Errorf("sessions.require_persistence: the sessions' Redis would lose %s; set appendonly yes and appendfsync always on it", loss)
	}
	s.log.Error("sessions: a restart of their Redis loses "+loss, slog.Bool("appendonly", p.AOF), slog.String("appendfsync", p.Fsync),
		slog.String("fix", "appendonly yes, appendfsync always; sessions.require_persistence refuses to start without them"))
	return nil
}

// How the directory writes of logins are replayed (see buildIdentity).
const (
	directoryReplayRate    = 500
	directoryReplayTimeout = 2 * time.Second
)

// newUsers builds the embedded customer directory: the estate's derived
// customers, with the estate's phones and the configured hash cost, at most
// maxHashes password checks at once (0: one per processor).
func newUsers(cfg *config.Config, e *estate.Estate, maxHashes int) (*users.Memory, error) {
	opts := users.Options{Derived: cfg.Estate.Customers, MaxHashes: maxHashes}
	if ph := cfg.Identity.PasswordHash; ph.MemoryKiB != 0 || ph.Time != 0 {
		opts.Params = users.OWASP
		if ph.MemoryKiB != 0 {
			opts.Params.MemoryKiB = ph.MemoryKiB
		}
		if ph.Time != 0 {
			opts.Params.Time = ph.Time
		}
	}
	// The estate's phones, where login codes go: the in-process one's, or
	// the same arithmetic a remote estate of this seed and size does.
	pop := customer.New(cfg.Estate.Seed, cfg.Estate.Customers)
	if e != nil {
		pop = e.Population()
	}
	opts.Phone = func(n int) string { return pop.Nth(n).Phone }
	return users.NewMemory(opts)
}

// buildAdmin puts phishing-proof admin login (WebAuthn only) in front of the
// ops API, with a file-held automation token for scripts and drills.
// machineDenied are the ops paths the automation token does not reach: the
// SMS outbox, whose login codes would let a script log in as anyone, unless
// the configuration asks for it (demos, drills).
func machineDenied(cfg *config.Config) []string {
	if cfg.OpsTokenSMS {
		return nil
	}
	return []string{"/ops/estate/sms"}
}

func (s *stack) buildAdmin() error {
	rp, origins, err := admin.DefaultRP(s.cfg.OpsListen)
	if err != nil {
		return err
	}
	if s.cfg.OpsAuth == "none" {
		s.log.Warn("ops API has no authentication (ops_auth: none): anyone who reaches the ops listener can switch faults and read SMS codes")
	}
	s.admins, err = admin.Open(filepath.Join(s.cfg.DataDir, "admin"), admin.Options{
		Required: s.cfg.OpsAuth != "none", RPID: rp, Origins: origins, MachineToken: true,
		MachineDenied: machineDenied(s.cfg), Home: console.Path, Logger: s.log.With("component", "admin"),
	})
	if err != nil {
		return err
	}
	s.ops.Handle(admin.PathPrefix, s.admins.Handler())
	// Go's profiler, behind the same admin login as the rest of the ops
	// API: where a saturated gateway spends its CPU is the first question
	// of an incident review.
	s.ops.Handle("/ops/debug/pprof/", http.StripPrefix("/ops", http.HandlerFunc(pprof.Index)))
	s.ops.Handle("/ops/debug/pprof/profile", http.StripPrefix("/ops", http.HandlerFunc(pprof.Profile)))
	return nil
}

// outboxSender delivers login codes through the estate's simulated SMS
// gateway, the same one 3-D Secure uses.
// remoteSMS delivers login codes through a remote estate's SMS gateway
// (POST /ops/estate/sms on its ops listener).
type remoteSMS struct {
	base   *url.URL
	client *http.Client
}

func (r remoteSMS) Send(ctx context.Context, phone, text string) error {
	body, err := json.Marshal(map[string]string{"to": phone, "text": text})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base.JoinPath("/ops/estate/sms").String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("remote estate sms: %w", err)
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
	if res.StatusCode != http.StatusAccepted {
		return fmt.Errorf("remote estate sms: %s", res.Status)
	}
	return nil
}

type outboxSender struct{ o *estate.Outbox }

func (o outboxSender) Send(_ context.Context, phone, text string) error {
	o.o.Send(phone, text, time.Now())
	return nil
}

// loginLimiter gives the identity provider the scrubber's login budgets.
type loginLimiter struct{ *scrub.Scrubber }

func (l loginLimiter) GateLogin(account string, client netip.Addr, device bool, solution string) identity.LoginGate {
	v := l.Scrubber.GateLogin(account, client, device, solution)
	return identity.LoginGate{Allowed: v.Allowed, RetryAfter: v.RetryAfter, Challenge: v.Challenge, Bits: v.Bits}
}

// outboxStatusUpstream names the built-in handler of outbox status URLs.
const outboxStatusUpstream = "outbox-status"

// The routes where a login starts, before any account is named: the
// scrubber lets a device cookie vouch for its holder there.
const (
	routeAuthorize = "oidc-authorize"
	routeLoginPage = "login"
	// routeCallback ends a login: the provider's redirect back to the app,
	// which needs the flow cookie of a login that passed both factors. A
	// device cookie vouches for it like for the start of the login, or an
	// attack on the OAuth endpoints would challenge customers on their own
	// phone at the very last step.
	routeCallback = "oidc-callback"
	// routeToken is the token endpoint. A retry storm of apps exchanging
	// codes and refreshing looks like an attack to the scrubber (a surge
	// with no sessions it can see: they are in the bodies); a device cookie
	// vouches for the app that holds one there too, so customers on their
	// own phone are not sent proof-of-work at the code exchange.
	routeToken = "oidc-token"
)

// identityRoutes are the provider's endpoints and their tiers: token refresh
// and discovery are IMPORTANT (existing sessions keep working), new logins are
// SHEDDABLE (they wait in line during a surge).
func identityRoutes() []config.Route {
	up := config.IdentityUpstream
	return []config.Route{
		{Name: "oidc-discovery", Match: "GET /.well-known/openid-configuration", Tier: "important", Upstream: up},
		{Name: "oidc-keys", Match: "GET /keys", Tier: "important", Upstream: up},
		{Name: routeToken, Match: "POST /oauth/token", Tier: "important", Upstream: up},
		{Name: routeAuthorize, Match: "/oauth/authorize", Tier: "sheddable", Upstream: up},
		{Name: routeCallback, Match: "GET /oauth/authorize/callback", Tier: "sheddable", Upstream: up},
		{Name: "oidc-endpoints", Match: "/oauth/", Tier: "important", Upstream: up},
		{Name: routeLoginPage, Match: "GET /login", Tier: "sheddable", Upstream: up},
		{Name: identity.RouteLoginPassword, Match: "POST /login/password", Tier: "sheddable", Upstream: up},
		{Name: identity.RouteLoginOTP, Match: "POST /login/otp", Tier: "sheddable", Upstream: up},
		// A new SMS code, or the code instead of a passkey: an SMS, not a
		// hash, bounded per login and per account by the provider.
		{Name: "login-sms", Match: "POST /login/sms", Tier: "sheddable", Upstream: up},
		// Giving up a login, and how to get a new password: no hash, no SMS.
		{Name: "login-cancel", Match: "POST /login/cancel", Tier: "sheddable", Upstream: up},
		{Name: "login-forgot", Match: "GET /login/forgot", Tier: "sheddable", Upstream: up},
		// Passkey login and registration: a signature check, not a
		// password hash, so not behind the waiting room.
		{Name: "login-passkey", Match: "/login/passkey/", Tier: "sheddable", Upstream: up},
		{Name: "demo-app", Match: "/demo/", Tier: "sheddable", Upstream: up},
	}
}

// defaultRoutes routes every estate channel with its own tier (customer
// channels accept an optional session token), plus the identity endpoints.
func (s *stack) defaultRoutes() []config.Route {
	var out []config.Route
	if s.estate != nil || s.remoteEstate != nil {
		up := "estate"
		found := false
		for _, u := range s.cfg.Upstreams {
			if u.URL == config.InProcess {
				up, found = u.Name, true
				break
			}
		}
		if !found {
			up = s.cfg.Upstreams[0].Name
		}
		for _, c := range estate.Channels() {
			auth, scope, owner, sca := channelAccess(c.Name)
			out = append(out, config.Route{Name: c.Name, Match: c.Pattern, Tier: c.Tier.String(), Upstream: up,
				Auth: auth, Scope: scope, Owner: owner, SCAMaxAge: sca,
				Fallback: channelFallback(c.Name), Pool: channelPool(c.Name), Timeout: channelTimeout(c.Name)})
		}
		// Outbox keys are the scheme's idempotency keys: only the scheme
		// reads their status (a customer's own outbox entries are not
		// listed by owner yet).
		out = append(out, config.Route{Name: "outbox-status", Match: "GET /v1/transfers/outbox/{key}",
			Tier: "critical", Upstream: outboxStatusUpstream, Auth: "partner"})
	}
	if s.identity != nil {
		out = append(out, identityRoutes()...)
	}
	return out
}

func (s *stack) buildRoutes(upstreams map[string]http.Handler) ([]gateway.Route, error) {
	cfgRoutes := s.cfg.Routes
	if len(cfgRoutes) == 0 {
		cfgRoutes = s.defaultRoutes()
	}
	if err := s.trust.checkPartnerRoutes(s.cfg, cfgRoutes); err != nil {
		return nil, err
	}
	authz := &gateway.Authorizer{Partners: s.trust.partners, Logger: s.log.With("component", "authz"),
		MaxBodyBytes: s.cfg.MaxBodyBytes}
	if s.identity != nil {
		authz.Verifier = verifierAdapter{s.identity.Verifier()}
	}
	if s.estate != nil {
		authz.Owners = s.estate.Population()
	} else {
		// A remote `rempart estate` with the same seed and size derives
		// the same customers: who owns what is arithmetic, not a lookup.
		authz.Owners = customer.New(s.cfg.Estate.Seed, s.cfg.Estate.Customers)
	}
	var routes []gateway.Route
	s.routeUpstream = map[string]string{}
	for _, r := range cfgRoutes {
		s.routeUpstream[statusChannel(r.Name)] = r.Upstream
		t, err := tier.Parse(r.Tier)
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", r.Name, err)
		}
		pol, err := s.trust.policy(r)
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", r.Name, err)
		}
		var h http.Handler
		switch {
		case r.Upstream == outboxStatusUpstream:
			h = s.guards[s.cfg.Upstreams[0].Name].outbox.StatusHandler()
		case r.Upstream == config.IdentityUpstream:
			if s.identity == nil {
				return nil, fmt.Errorf("route %s: the identity provider is disabled", r.Name)
			}
			h = s.identity.Handler()
			// The line is in front of the password check only: it is the step
			// that costs (a memory-hard hash), so it is what the room measures
			// and meters. A customer queues once per login, not once per page
			// of the flow (the authorization request, the form and the SMS
			// code are cheap and pass straight through).
			if s.room != nil && r.Name == identity.RouteLoginPassword {
				h = s.room.Middleware(h)
			}
		default:
			up, ok := upstreams[r.Upstream]
			if !ok {
				return nil, fmt.Errorf("route %s: upstream %q is not available", r.Name, r.Upstream)
			}
			pool := r.Pool
			if pool == "" {
				pool = r.Upstream
			}
			if h, err = s.guards[r.Upstream].wrap(r.Name, pool, r.Fallback, r.Timeout, up); err != nil {
				return nil, fmt.Errorf("route %s: %w", r.Name, err)
			}
			s.addCheck(r, t, h, up)
		}
		if s.scrubber != nil {
			h = s.scrubber.Middleware(h)
		}
		h = authz.Middleware(pol)(h)
		routes = append(routes, gateway.Route{Name: r.Name, Pattern: r.Match, Tier: t, Upstream: h})
	}
	return routes, nil
}
