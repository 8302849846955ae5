package scrub

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/scrub/clock"
	"github.com/rempart/rempart/internal/scrub/pow"
	"github.com/rempart/rempart/internal/scrub/ratelimit"
)

// Options configure a Scrubber. The zero value works: local limits, a random
// signing key, no trusted proxies. Partners are not configured here: the
// gateway authenticates them and names them in request.Info.Partner, and
// the scrubber lets those requests straight through.
type Options struct {
	// Key signs challenges and clearances (HMAC-SHA-256), at least 32 bytes.
	// Gateways behind one load balancer must share it, or a clearance minted
	// by one is refused by the others. Empty: a random key per process, so
	// clearances do not survive a restart.
	Key []byte

	// TrustedProxies are the peers (load balancers, CDNs) whose forwarding
	// header is believed. A request from any other peer is attributed to the
	// peer itself, whatever headers it carries.
	TrustedProxies []netip.Prefix
	// ClientIPHeader is the one header the trusted proxies write:
	// "X-Forwarded-For" (default) or "Forwarded" (RFC 7239). Only that one is
	// read, so a client cannot smuggle the other through a proxy that passes
	// unknown headers on.
	ClientIPHeader string

	// LoginRoutes are the routes where passwords are checked. Under attack
	// their unknown clients (no device cookie, no clearance) solve
	// proof-of-work before the request reaches the identity provider.
	LoginRoutes []string
	// LoginStartRoutes begin a login before any account is named (the
	// authorization request, the login page). A valid device cookie makes
	// its holder known there: the customer's own phone starts its login
	// through an attack, and the account it then logs in to is checked
	// against the cookie's on the LoginRoutes. Nothing is spent or moved on
	// these routes, so a copied cookie gains the start of a login, no more.
	LoginStartRoutes []string

	// Limits apply to clients that are not known (no session, clearance or
	// device cookie): as they are in a flash crowd, scaled up by
	// NormalFactor in the normal state, and under attack they bound how
	// often an address is challenged. Zero fields take the defaults: Address 2/s burst 10,
	// Prefix 50/s burst 200, Account 1/s burst 10, App off (the bank's own
	// apps would otherwise share one budget).
	Limits Limits
	// NormalFactor multiplies Limits in the normal state (default 4): only
	// abuse is limited in peacetime.
	NormalFactor float64
	// KnownAddress limits known clients per address in every state (default
	// 20/s, burst 100): generous, since many customers may share a NAT.
	KnownAddress ratelimit.Limit
	// SteadyAfter is how long an unknown address must keep sending, with no
	// pause longer than SteadyGap, for the normal state to limit it like a
	// known client (KnownAddress) instead of like a stranger (Limits ×
	// NormalFactor): a calm stream from one address is not an attack.
	// Defaults 1 minute and 10 s; SteadyCapacity (default 16,384) bounds
	// the addresses followed. A negative SteadyAfter turns it off.
	SteadyAfter, SteadyGap time.Duration
	SteadyCapacity         int

	// Baselines seed the learned rate baseline per route, in requests per
	// second (from yesterday's metrics, say). A route without one learns
	// from its first 30 seconds of traffic and declares no surge meanwhile,
	// so an attack already under way at start-up is caught only by its
	// login failures or by an operator setting the mode.
	Baselines map[string]float64

	// Login sets the credential-stuffing budgets; see LoginLimits.
	Login LoginLimits
	// Detection sets the thresholds of the route states; see Detection.
	Detection Detection
	// PoW sets the proof-of-work difficulty; see PoW.
	PoW PoW

	// ClearanceTTL is how long a clearance lasts (default 15m).
	ClearanceTTL time.Duration
	// ChallengeTTL is how long a challenge may be solved (default 2m).
	ChallengeTTL time.Duration
	// InsecureCookies drops the Secure attribute of the clearance cookie,
	// for plain-HTTP development only.
	InsecureCookies bool

	// AppHeader names the header carrying the client app (for App limits),
	// default "Rempart-Client-App". Values longer than 64 bytes count as one
	// app, "invalid".
	AppHeader string
	// Account, when set, returns the account a request acts for, for the
	// Account limit of unknown clients ("" when none). The gateway may read
	// it from a header or a path; the scrubber never reads bodies.
	Account func(*http.Request) string
	// Device, when set, returns the account a valid device cookie on the
	// request was issued to ("" when none); the identity provider supplies
	// it. A device cookie makes its holder a known client only on a login
	// route, and only for a login to the cookie's own account (see
	// LoginAccount): it spares a customer's own browser the challenges of an
	// attack on their account and vouches for nothing else, so a copied
	// cookie earns nothing on other routes or for other accounts.
	Device func(*http.Request) string
	// LoginAccount, when set, returns the account a request on a login
	// route is an attempt for ("" when none), compared exactly with the
	// device cookie's; the identity provider supplies it, reading the
	// request as its login handlers do. It is asked only for requests that
	// carry a valid device cookie.
	LoginAccount func(route string, r *http.Request) string

	// Limiter decides rate limits. Nil: a local limiter. For a cluster pass
	// ratelimit.NewShared(ratelimit.NewRedis(client, "rempart:scrub:"), ...)
	// so every gateway spends from one budget and falls back to local limits
	// when Redis is lost.
	Limiter ratelimit.Limiter

	// MaxRoutes bounds the routes tracked (default 256); requests of routes
	// beyond it share the route "other".
	MaxRoutes int
	// SeenCapacity is how many addresses one generation of the seen-address
	// Bloom filter holds (default 1<<20, 1.2 MB at 1 % false positives);
	// SeenMaxAge is when a generation is retired at the latest (default 24h).
	// An address is remembered for one to two generations.
	SeenCapacity int
	SeenMaxAge   time.Duration
	// MaxListEntries bounds each CIDR list (default 100000).
	MaxListEntries int

	// Clock tells the time (default the wall clock).
	Clock clock.Clock
	// Logger receives state transitions with their evidence.
	Logger *slog.Logger
	// Registerer, when set, receives the rempart_scrub_* metrics.
	Registerer prometheus.Registerer
}

// Limits are the per-key limits of unknown clients. IPv6 addresses are
// limited per /64 (one host usually holds a whole /64); prefixes are /24 for
// IPv4 and /48 for IPv6.
type Limits struct {
	Address ratelimit.Limit `json:"address"`
	Prefix  ratelimit.Limit `json:"prefix"`
	Account ratelimit.Limit `json:"account"`
	App     ratelimit.Limit `json:"app"`
}

// LoginLimits are the credential-stuffing budgets, in failed logins. Each is a
// GCRA: Burst failures at once, refilled at Rate per second.
type LoginLimits struct {
	// Account is the failure budget of an account for devices without a
	// device cookie (default 5, one back every 3 minutes).
	Account ratelimit.Limit
	// Device is the failure budget of an account for its device-cookie
	// holders (default 10, one back every minute). Bots have no device
	// cookie, so they cannot spend it: the owner is never locked out.
	Device ratelimit.Limit
	// Address is the failure budget of an address for devices without a
	// device cookie (default 20, one back every 30 seconds).
	Address ratelimit.Limit

	// Once an account's unknown-device budget is spent (five failures in a
	// row, PSD2's limit), its password is no longer checked for a browser
	// without a device cookie on demand: each attempt must carry a proof of
	// work bound to the account and the browser's network, and takes a
	// turn. Nobody is locked out; every guess costs more than the last.
	//
	// Stepped counts the failures made that way (default 6, one back every
	// 3 minutes); each one adds a bit to the next challenge, from StepBits
	// (default 16, about 65,000 hashes: a second or two in a browser) to
	// StepMaxBits (default PoW.MaxBits).
	Stepped     ratelimit.Limit
	StepBits    int
	StepMaxBits int
	// Turn paces stepped attempts per account and network prefix (default
	// one every 30 seconds): an attacker's networks do not spend the turns
	// of the owner's.
	Turn ratelimit.Limit

	// Codes caps the wrong SMS codes an account takes a day from browsers
	// without its device cookie (default 10); DeviceCodes is the device
	// holders' own cap (default 10). Past it the code step answers "try
	// later" instead of checking: six digits are not guessed at 10 a day.
	Codes       ratelimit.Limit
	DeviceCodes ratelimit.Limit
	// Resends caps the login codes sent again (not a login's first code)
	// to an account's phone a day (default 10), so a known password does
	// not turn into an SMS flood on the customer's phone.
	Resends ratelimit.Limit
}

// Detection holds the thresholds of the route states. Zero fields take the
// defaults shown.
type Detection struct {
	// SurgeFactor: a rate at least this multiple of the baseline is a surge
	// (default 3).
	SurgeFactor float64
	// MinRate: no surge below this many requests per second (default 20), so
	// a quiet route does not flap on a handful of requests.
	MinRate float64
	// MinSamples: composition signals count only over at least this many
	// requests in the last second (default 50).
	MinSamples float64
	// KnownShare: a surge in which at least this share of requests carry a
	// session, clearance or device cookie is a flash crowd (default 0.6).
	KnownShare float64
	// LoginFailRatio and MinLoginAttempts: at least this ratio of failed
	// logins over at least this many attempts in the last second is
	// credential stuffing, surge or not (defaults 0.5 and 20).
	LoginFailRatio   float64
	MinLoginAttempts float64
	// NewAddressShare: share of never-seen addresses that counts as an
	// indicator (default 0.5).
	NewAddressShare float64
	// TopPrefixShare: share of the busiest /24 (/48) that counts as an
	// indicator (default 0.2).
	TopPrefixShare float64
	// TopFingerprintShare: share of the most common header fingerprint that
	// counts as an indicator (default 0.6).
	TopFingerprintShare float64
	// MinEntropy: normalised address entropy below which sources count as
	// concentrated (default 0.5).
	MinEntropy float64
	// Indicators: in a surge that is not a flash crowd, this many indicators
	// make an attack (default 2; a low known share is one of them).
	Indicators int
	// CalmDown: how long the evidence must stay below the thresholds before
	// a route leaves attack or flash_crowd (default 30s).
	CalmDown time.Duration
	// EvalInterval: how often a route's state is re-evaluated (default
	// 100ms, about 30µs of work per route); onset to mitigation is about
	// this plus the time the sliding one-second window needs to cross the
	// thresholds, well under a second for a botnet at 10x the baseline.
	EvalInterval time.Duration
	// BaselineHalfLife: the half-life of the learned rate baseline (default
	// 10m). It learns in normal and flash_crowd states, never in attack.
	BaselineHalfLife time.Duration
	// WarmUp: how many seconds of traffic a route without a baseline learns
	// from before it declares any surge (default 30s). Whole seconds only.
	WarmUp time.Duration
}

// PoW sets the proof-of-work difficulty, in leading zero bits of SHA-256.
type PoW struct {
	// BaseBits is the difficulty of an attack at the surge threshold
	// (default 14, about 16,000 hashes).
	BaseBits int
	// MaxBits caps the difficulty however severe the attack (default 20,
	// about a million hashes: a fraction of a second in Go, a few seconds
	// in a browser).
	MaxBits int
}

func (o *Options) setDefaults() error {
	if len(o.Key) == 0 {
		o.Key = make([]byte, 32)
		rand.Read(o.Key)
	} else if len(o.Key) < 32 {
		return errors.New("scrub: key shorter than 32 bytes")
	}
	switch o.ClientIPHeader {
	case "":
		o.ClientIPHeader = "X-Forwarded-For"
	case "X-Forwarded-For", "Forwarded":
	default:
		return fmt.Errorf("scrub: client ip header %q: want X-Forwarded-For or Forwarded", o.ClientIPHeader)
	}
	o.ClientIPHeader = http.CanonicalHeaderKey(o.ClientIPHeader)
	defLimit(&o.Limits.Address, ratelimit.Limit{Rate: 2, Burst: 10})
	defLimit(&o.Limits.Prefix, ratelimit.Limit{Rate: 50, Burst: 200})
	defLimit(&o.Limits.Account, ratelimit.Limit{Rate: 1, Burst: 10})
	defLimit(&o.KnownAddress, ratelimit.Limit{Rate: 20, Burst: 100})
	defLimit(&o.Login.Account, ratelimit.Limit{Rate: 1.0 / 180, Burst: 5})
	defLimit(&o.Login.Device, ratelimit.Limit{Rate: 1.0 / 60, Burst: 10})
	defLimit(&o.Login.Address, ratelimit.Limit{Rate: 1.0 / 30, Burst: 20})
	defLimit(&o.Login.Stepped, ratelimit.Limit{Rate: 1.0 / 180, Burst: 6})
	defLimit(&o.Login.Turn, ratelimit.Limit{Rate: 1.0 / 30, Burst: 1})
	const day = 24 * 60 * 60
	defLimit(&o.Login.Codes, ratelimit.Limit{Rate: 10.0 / day, Burst: 10})
	defLimit(&o.Login.DeviceCodes, ratelimit.Limit{Rate: 10.0 / day, Burst: 10})
	defLimit(&o.Login.Resends, ratelimit.Limit{Rate: 10.0 / day, Burst: 10})
	defFloat(&o.NormalFactor, 4)
	if o.SteadyAfter == 0 { // negative: off
		o.SteadyAfter = time.Minute
	}
	defDuration(&o.SteadyGap, 10*time.Second)
	if o.SteadyCapacity <= 0 {
		o.SteadyCapacity = 16_384
	}
	d := &o.Detection
	defFloat(&d.SurgeFactor, 3)
	defFloat(&d.MinRate, 20)
	defFloat(&d.MinSamples, 50)
	defFloat(&d.KnownShare, 0.6)
	defFloat(&d.LoginFailRatio, 0.5)
	defFloat(&d.MinLoginAttempts, 20)
	defFloat(&d.NewAddressShare, 0.5)
	defFloat(&d.TopPrefixShare, 0.2)
	defFloat(&d.TopFingerprintShare, 0.6)
	defFloat(&d.MinEntropy, 0.5)
	if d.Indicators <= 0 {
		d.Indicators = 2
	}
	defDuration(&d.CalmDown, 30*time.Second)
	defDuration(&d.EvalInterval, 100*time.Millisecond)
	defDuration(&d.BaselineHalfLife, 10*time.Minute)
	defDuration(&d.WarmUp, 30*time.Second)
	if o.PoW.BaseBits <= 0 {
		o.PoW.BaseBits = 14
	}
	if o.PoW.MaxBits <= 0 {
		o.PoW.MaxBits = 20
	}
	if o.Login.StepBits <= 0 {
		o.Login.StepBits = 16
	}
	if o.Login.StepMaxBits <= 0 {
		o.Login.StepMaxBits = o.PoW.MaxBits
	}
	o.Login.StepMaxBits = max(o.Login.StepMaxBits, o.Login.StepBits)
	if o.PoW.BaseBits > pow.MaxBits || o.PoW.MaxBits > pow.MaxBits || o.PoW.BaseBits > o.PoW.MaxBits {
		return fmt.Errorf("scrub: pow bits %d..%d: want 1 <= base <= max <= %d", o.PoW.BaseBits, o.PoW.MaxBits, pow.MaxBits)
	}
	defDuration(&o.ClearanceTTL, 15*time.Minute)
	defDuration(&o.ChallengeTTL, 2*time.Minute)
	if o.AppHeader == "" {
		o.AppHeader = "Rempart-Client-App"
	}
	if o.MaxRoutes <= 0 {
		o.MaxRoutes = 256
	}
	if o.SeenCapacity <= 0 {
		o.SeenCapacity = 1 << 20
	}
	defDuration(&o.SeenMaxAge, 24*time.Hour)
	if o.MaxListEntries <= 0 {
		o.MaxListEntries = 100000
	}
	if o.Clock == nil {
		o.Clock = clock.System{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func defLimit(l *ratelimit.Limit, d ratelimit.Limit) {
	if !l.Enabled() {
		*l = d
	}
}

func defFloat(f *float64, d float64) {
	if *f <= 0 {
		*f = d
	}
}

func defDuration(v *time.Duration, d time.Duration) {
	if *v <= 0 {
		*v = d
	}
}
