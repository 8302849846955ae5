package scrub

import (
	"context"
	"fmt"
	"hash/maphash"
	"html/template"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/scrub/clock"
	"github.com/rempart/rempart/internal/scrub/ratelimit"
)

// Scrubber is the traffic scrubbing middleware for every route. Build it
// with New; it is safe for concurrent use.
type Scrubber struct {
	opts    Options
	clock   clock.Clock
	log     *slog.Logger
	sign    *signer
	used    usedSet
	seen    *seenSet
	steady  *steadySet // nil when Options.SteadyAfter is negative
	limiter ratelimit.Limiter
	seed    maphash.Seed

	trusted prefixSet
	block   *cidrList
	allow   *cidrList
	login   map[string]bool
	start   map[string]bool // login start routes

	routesMu sync.Mutex
	routes   atomic.Pointer[map[string]*route]

	metrics *metrics
	page    *template.Template
	blocked []byte
	fixed   fixedHeaders
}

// overflowRoute collects the requests of routes beyond Options.MaxRoutes.
const overflowRoute = "other"

// New builds a Scrubber.
func New(opts Options) (*Scrubber, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	now := opts.Clock.Now()
	s := &Scrubber{
		opts:    opts,
		clock:   opts.Clock,
		log:     opts.Logger,
		sign:    newSigner(opts.Key),
		used:    usedSet{max: 1 << 18, until: map[string]int64{}},
		seen:    newSeenSet(opts.SeenCapacity, opts.SeenMaxAge, now),
		limiter: opts.Limiter,
		seed:    maphash.MakeSeed(),
		trusted: prefixSet(opts.TrustedProxies),
		block:   newCIDRList(opts.MaxListEntries),
		allow:   newCIDRList(opts.MaxListEntries),
		login:   map[string]bool{},
		start:   map[string]bool{},
		page:    challengePage(),
		blocked: blockedBody(),
		fixed:   newFixedHeaders(),
	}
	if opts.SteadyAfter > 0 {
		s.steady = newSteadySet(opts.SteadyAfter, opts.SteadyGap, opts.SteadyCapacity)
	}
	if s.limiter == nil {
		s.limiter = ratelimit.NewLocal(opts.Clock, ratelimit.LocalOptions{})
	}
	for _, r := range opts.LoginRoutes {
		s.login[r] = true
	}
	for _, r := range opts.LoginStartRoutes {
		s.start[r] = true
	}
	empty := map[string]*route{}
	s.routes.Store(&empty)
	m, err := newMetrics(s, opts.Registerer)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	for name := range opts.Baselines {
		s.route(name)
	}
	for _, name := range opts.LoginRoutes {
		s.route(name)
	}
	return s, nil
}

// route returns the detector of a route, creating it on first use.
func (s *Scrubber) route(name string) *route {
	if r, ok := (*s.routes.Load())[name]; ok {
		return r
	}
	s.routesMu.Lock()
	defer s.routesMu.Unlock()
	old := *s.routes.Load()
	if r, ok := old[name]; ok {
		return r
	}
	if len(old) >= s.opts.MaxRoutes {
		if r, ok := old[overflowRoute]; ok {
			return r
		}
		name = overflowRoute
	}
	r := &route{name: name, login: s.login[name]}
	if b, ok := s.opts.Baselines[name]; ok && b >= 0 {
		r.baseline, r.learned = b, warmUp(&s.opts.Detection)
	}
	r.since = s.clock.Now()
	r.bits.Store(int32(s.opts.PoW.BaseBits))
	r.m = s.metrics.forRoute(name)
	next := make(map[string]*route, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[name] = r
	s.routes.Store(&next)
	return r
}

// Middleware wraps the handler of every route. It reads the route from the
// request's *request.Info (the gateway puts it there, with Info.Partner for
// an authenticated partner), sets Info.Client and Info.Cleared, and either passes the request on or answers
// it: 403 for blocked networks, 429 with a proof-of-work challenge for
// unknown clients under attack, 429 with Retry-After and RateLimit headers
// over a limit.
func (s *Scrubber) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.serve(w, r, next)
	})
}

// ClientAddr returns the real client address of r: the peer, or what the
// configured header says when the peer is a trusted proxy.
func (s *Scrubber) ClientAddr(r *http.Request) netip.Addr {
	return resolveClient(peerAddr(r.RemoteAddr), r.Header.Values(s.opts.ClientIPHeader),
		s.opts.ClientIPHeader == "Forwarded", s.trusted.contains)
}

func (s *Scrubber) hashAddr(a netip.Addr) uint64 {
	b := a.As16()
	return maphash.Bytes(s.seed, b[:])
}

func (s *Scrubber) hashPrefix(p netip.Prefix) uint64 {
	b := p.Addr().As16()
	return maphash.Bytes(s.seed, b[:]) ^ uint64(p.Bits())
}

func (s *Scrubber) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	now := s.clock.Now()
	info := request.From(r.Context())
	if info == nil {
		info = &request.Info{Route: "unrouted"}
		r = r.WithContext(request.With(r.Context(), info))
	}
	client := s.ClientAddr(r)
	info.Client = client
	rt := s.route(info.Route)

	if info.Partner != "" {
		// The gateway authenticated a partner network (client certificate
		// or partner client token); its source address proves nothing, so
		// that is the only exemption. Partners are not counted either: card
		// and ATM traffic is not the route's customer traffic, and must not
		// dilute or trip detection.
		rt.m.decisions[decPartner].Inc()
		next.ServeHTTP(w, r)
		return
	}

	prefix := clientPrefix(client)
	agent := agentFingerprint(r.Header)
	obs := observation{
		addr:    s.hashAddr(client),
		prefix:  s.hashPrefix(prefix),
		fp:      headerFingerprint(r.Header, agent),
		session: info.Session,
		fresh:   !s.seen.has(client),
	}
	if e, ok := s.block.lookup(client, now); ok {
		rt.observe(now, obs, s)
		rt.m.decisions[decBlocked].Inc()
		s.refuseBlocked(w, e)
		return
	}

	cleared, solved := false, false
	if tok := presented(r, HeaderClearance, CookieClearance); tok != "" {
		cleared = s.verifyClearance(tok, prefix, agent, now) == nil
	}
	if !cleared {
		if sol := presented(r, HeaderSolution, CookieSolution); sol != "" {
			if _, err := s.verifySolution(sol, prefix, now); err == nil {
				cleared, solved = true, true
				rt.m.decisions[decSolved].Inc()
			} else {
				rt.m.badSolutions.Inc()
			}
		}
	}
	info.Cleared = cleared
	device := (rt.login || s.start[info.Route]) && s.ownDevice(r, info.Route)
	// A session does not make a client known on a login route: logging in is
	// what clients without one do there.
	known := cleared || device || info.Session && !rt.login
	obs.known = known
	if s.allow.size.Load() > 0 {
		if _, ok := s.allow.lookup(client, now); ok {
			// An operator's known-good network is exempt, and, like a
			// partner's traffic, not counted: it must neither dilute nor
			// trip the detection of the route's own customers.
			rt.m.decisions[decAllowed].Inc()
			next.ServeHTTP(w, r)
			return
		}
	}
	obs.capped = !known
	state, bits, admitted := rt.observe(now, obs, s)
	if known || state == Normal {
		// Peacetime traffic and known clients teach the seen set; traffic
		// during a surge of strangers does not.
		s.seen.add(client, now)
	}

	ctx := r.Context()
	switch {
	case known:
		if d, ok := s.spend(ctx, "k:", limitAddr(client).String(), "known-address", s.opts.KnownAddress); !ok {
			rt.m.decisions[decLimited].Inc()
			s.refuseLimited(w, d)
			return
		}
	case state == Attack:
		// Challenges are cheap to issue but not free: an address that keeps
		// asking is limited like any other unknown client.
		if d, ok := s.limitUnknown(ctx, r, client, prefix, 1); !ok {
			rt.m.decisions[decLimited].Inc()
			s.refuseLimited(w, d)
			return
		}
		rt.m.decisions[decChallenged].Inc()
		s.challenge(w, r, prefix, bits, now)
		return
	case !admitted:
		// A surge of strangers not yet classified: the route's cap.
		rt.m.decisions[decSurgeCapped].Inc()
		s.refuseLimited(w, rt.surgeDecision(s))
		return
	case state == Normal && s.steady != nil && s.steady.see(limitAddr(client).Addr(), now):
		// A steady source in peacetime: a known client's limit (steady.go).
		if d, ok := s.spend(ctx, "k:", limitAddr(client).String(), "steady-address", s.opts.KnownAddress); !ok {
			rt.m.decisions[decLimited].Inc()
			s.refuseLimited(w, d)
			return
		}
	default:
		factor := 1.0
		if state == Normal {
			factor = s.opts.NormalFactor
		}
		if d, ok := s.limitUnknown(ctx, r, client, prefix, factor); !ok {
			rt.m.decisions[decLimited].Inc()
			s.refuseLimited(w, d)
			return
		}
	}

	rt.m.decisions[decPassed].Inc()
	if solved || info.Session && !cleared {
		s.setClearance(w, s.mintClearance(prefix, agent, now.Add(s.opts.ClearanceTTL)), solved)
		info.Cleared = true
	}
	if info.Session || cleared {
		next.ServeHTTP(w, r)
		return
	}
	// The token verifier may run after us: if the request turns out to
	// carry a session, grant a clearance with the response and correct the
	// window's session count.
	gw := &grantWriter{ResponseWriter: w, s: s, info: info, prefix: prefix, agent: agent, now: now}
	next.ServeHTTP(gw, r)
	if info.Session {
		rt.lateSession(now, known)
	}
}

// ownDevice reports whether r, on a login route, carries a valid device
// cookie of the account it logs in to; on a login start route, a valid
// device cookie at all (no account is named yet).
func (s *Scrubber) ownDevice(r *http.Request, route string) bool {
	if s.opts.Device == nil {
		return false
	}
	acct := s.opts.Device(r)
	if acct == "" {
		return false
	}
	if s.start[route] {
		return true
	}
	return s.opts.LoginAccount != nil && s.opts.LoginAccount(route, r) == acct
}

// decision is the outcome of a limit check that refused.
type decision struct {
	policy string
	limit  ratelimit.Limit
	result ratelimit.Result
}

// spend takes one event from key under l; ok is false when over the limit.
func (s *Scrubber) spend(ctx context.Context, kind, key, policy string, l ratelimit.Limit) (decision, bool) {
	if !l.Enabled() {
		return decision{}, true
	}
	res, err := s.limiter.Allow(ctx, kind+key, l, 1)
	if err != nil {
		// Only a misconfigured limiter fails (Shared answers locally when
		// Redis is lost): let the request through rather than refuse
		// everyone.
		s.log.Error("scrub: rate limiter failed", "key", kind+key, "err", err)
		return decision{}, true
	}
	return decision{policy: policy, limit: l, result: res}, res.Allowed
}

// surgeDecision describes a refusal by the surge cap: a quota of the surge
// threshold per one-second window, spent.
func (r *route) surgeDecision(s *Scrubber) decision {
	r.mu.Lock()
	th := r.thresholdLocked(s)
	r.mu.Unlock()
	return decision{policy: "route-surge", limit: ratelimit.Limit{Rate: th, Burst: int(math.Ceil(th))},
		result: ratelimit.Result{RetryAfter: time.Second}}
}

// limitUnknown applies the unknown-client limits scaled by factor: per
// address, per prefix, per account (when the Account hook names one) and per
// client app.
func (s *Scrubber) limitUnknown(ctx context.Context, r *http.Request, client netip.Addr, prefix netip.Prefix, factor float64) (decision, bool) {
	l := &s.opts.Limits
	if d, ok := s.spend(ctx, "a:", limitAddr(client).String(), "per-address", l.Address.Scale(factor)); !ok {
		return d, false
	}
	if d, ok := s.spend(ctx, "p:", prefix.String(), "per-prefix", l.Prefix.Scale(factor)); !ok {
		return d, false
	}
	if s.opts.Account != nil && l.Account.Enabled() {
		if acct := s.opts.Account(r); acct != "" {
			if d, ok := s.spend(ctx, "u:", accountKey(acct), "per-account", l.Account.Scale(factor)); !ok {
				return d, false
			}
		}
	}
	if l.App.Enabled() {
		app := r.Header.Get(s.opts.AppHeader)
		if len(app) > 64 {
			app = "invalid"
		}
		if d, ok := s.spend(ctx, "app:", app, "per-app", l.App.Scale(factor)); !ok {
			return d, false
		}
	}
	return decision{}, true
}

// GrantClearance gives the client of r a clearance with the response, as
// after a solved challenge. The identity provider calls it after a successful
// login so the customer's next requests pass at the cost of one MAC check.
func (s *Scrubber) GrantClearance(w http.ResponseWriter, r *http.Request) {
	now := s.clock.Now()
	client := s.ClientAddr(r)
	s.setClearance(w, s.mintClearance(clientPrefix(client), agentFingerprint(r.Header), now.Add(s.opts.ClearanceTTL)), false)
	s.seen.add(client, now)
}

// State returns the current state of a route.
func (s *Scrubber) State(route string) RouteState {
	return s.route(route).snapshot(s.clock.Now(), s)
}

// transition logs and counts a change of a route's effective state.
func (s *Scrubber) transition(r *route, from, to State, ev Evidence) {
	r.m.transitions(from, to)
	attrs := []any{"route", r.name, "from", from.String(), "to", to.String(), "mode", Mode(r.mode.Load()).String(),
		"reason", ev.Reason, "rate", round3(ev.Signals.Rate), "baseline", round3(ev.Signals.Baseline),
		"known_share", round3(ev.Signals.KnownShare), "new_address_share", round3(ev.Signals.NewAddressShare),
		"login_fail_ratio", round3(ev.Signals.LoginFailRatio), "address_entropy", round3(ev.Signals.AddressEntropy),
		"top_prefix_share", round3(ev.Signals.TopPrefixShare),
		"top_fingerprint_share", round3(ev.Signals.TopFingerprintShare), "difficulty_bits", r.bits.Load()}
	var fired []string
	for _, in := range ev.Indicators {
		if in.Fired {
			fired = append(fired, in.Name)
		}
	}
	attrs = append(attrs, "indicators", fmt.Sprint(fired))
	level := slog.LevelInfo
	if to == Attack {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "scrub: route state changed", attrs...)
}

// grantWriter adds a clearance to the response of a request that turned out
// to carry a session, before its first byte is written.
type grantWriter struct {
	http.ResponseWriter
	s      *Scrubber
	info   *request.Info
	prefix netip.Prefix
	agent  uint64
	now    time.Time
	done   bool
}

func (g *grantWriter) grant() {
	if g.done {
		return
	}
	g.done = true
	if g.info.Session && !g.info.Cleared {
		g.s.setClearance(g.ResponseWriter, g.s.mintClearance(g.prefix, g.agent, g.now.Add(g.s.opts.ClearanceTTL)), false)
		g.info.Cleared = true
	}
}

func (g *grantWriter) WriteHeader(code int) { g.grant(); g.ResponseWriter.WriteHeader(code) }

func (g *grantWriter) Write(b []byte) (int, error) { g.grant(); return g.ResponseWriter.Write(b) }

// Unwrap lets http.ResponseController reach the underlying writer.
func (g *grantWriter) Unwrap() http.ResponseWriter { return g.ResponseWriter }

// Flush forwards streaming flushes.
func (g *grantWriter) Flush() {
	g.grant()
	if f, ok := g.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
