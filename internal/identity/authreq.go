package identity

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/rempart/rempart/internal/identity/users"
	"github.com/rempart/rempart/internal/session"
)

// authRequest is one authorization request and the login that answers it.
// Logins in progress live only in memory: a restart loses them, and the
// customer simply starts again, whereas grants live in the session store.
type authRequest struct {
	id           string
	clientID     string
	redirectURI  string
	scopes       []string
	state, nonce string
	responseType oidc.ResponseType
	responseMode oidc.ResponseMode
	challenge    *oidc.CodeChallenge
	created      time.Time
	lang         string

	// What the app asked of the login (OpenID Connect Core 1.0, section
	// 3.1.2.1): promptNone forbids any page, so no SSO session means
	// login_required; forceLogin (prompt=login or max_age=0) refuses SSO;
	// maxAge refuses an SSO session whose login is older; hintSubject, from
	// a verified id_token_hint, refuses another customer's SSO session.
	promptNone  bool
	forceLogin  bool
	maxAge      time.Duration
	hasMaxAge   bool
	hintSubject string

	// source and prefix are the client's address (IPv6: its /64) and
	// network (/24, /48), for the pending table's per-source bounds;
	// shown is set once the login page was served for the request.
	source netip.Prefix
	prefix netip.Prefix
	shown  bool

	// flow binds the login to the browser that started it: the hash of the
	// flow cookie set on its answer to /oauth/authorize, so nobody else can
	// type into, finish or collect this login.
	flow [32]byte
	// user is set once the password is right.
	user *users.User
	// device is whether the password step came with a valid device cookie.
	device      bool
	otpHash     [32]byte
	otpExpiry   time.Time
	otpAttempts int
	// sentAt is when the last code was sent; resends counts the codes sent
	// again on request (at most maxResends, resendEvery apart). Neither a
	// resend nor its new code gives the wrong-code attempts back.
	sentAt  time.Time
	resends int

	// backup: the password was checked against the device's snapshot, the
	// directory being unavailable; acr says so in the ID token.
	backup bool
	acr    string

	done     bool
	subject  string
	authTime time.Time
	amr      []string
	profile  map[string]string
	// grant is the id of the grant a code exchange will create, decided at
	// login so a replayed code can revoke what the first exchange issued.
	grant string
}

var _ op.AuthRequest = (*authRequest)(nil)

// allowsSSO reports whether the browser session s may answer this request
// without the form at time now.
func (a *authRequest) allowsSSO(s session.Session, now time.Time) bool {
	if a.forceLogin || a.hintSubject != "" && s.Subject != a.hintSubject {
		return false
	}
	if !a.hasMaxAge {
		return true
	}
	at, err := strconv.ParseInt(s.Attrs[attrAuthTime], 10, 64)
	return err == nil && now.Sub(time.Unix(at, 0)) <= a.maxAge
}

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return a.acr }
func (a *authRequest) GetAMR() []string                      { return a.amr }
func (a *authRequest) GetAudience() []string                 { return []string{a.clientID} }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.challenge }
func (a *authRequest) GetNonce() string                      { return a.nonce }
func (a *authRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a *authRequest) GetScopes() []string                   { return a.scopes }
func (a *authRequest) GetState() string                      { return a.state }
func (a *authRequest) GetSubject() string                    { return a.subject }
func (a *authRequest) Done() bool                            { return a.done }

// Errors of the pending-login table.
var (
	errUnknownRequest = errors.New("unknown or expired authorization request")
	errCodeReplayed   = errors.New("authorization code already used")
	errTooManyLogins  = errors.New("too many logins in progress")
)

// pendingTTL is how long a login may take from the authorization request to
// the code exchange; codes die with their request. unshownTTL is how long
// an authorization request lives before its login page is served: a
// browser follows the redirect at once, a script filling the table does not.
const (
	pendingTTL = 10 * time.Minute
	unshownTTL = time.Minute
)

// PendingLimits bound the logins in progress: Max in all, PerSource per
// client address (IPv6: per /64), PerPrefix per /24 (IPv6: /48). Defaults
// 100,000, 64 and 1,024: a company's NAT gets sixty-four logins at once, a
// botnet needs a hundred networks to fill the table, and when it is full a
// new login evicts the oldest one nobody has typed a right password into.
type PendingLimits struct {
	Max, PerSource, PerPrefix int
}

// pending holds logins in progress and their codes.
type pending struct {
	now func() time.Time
	lim PendingLimits
	mu  sync.Mutex
	// reqs by id; sources and prefixes count them per client address and
	// network; unshown and shown list ids in creation and showing order,
	// the eviction candidates (stale ids are skipped and dropped).
	reqs     map[string]*authRequest
	sources  map[netip.Prefix]int
	prefixes map[netip.Prefix]int
	unshown  []string
	shown    []string
	// codes maps a live code to its request; used maps a spent code to the
	// grant its exchange created, until the request would have expired.
	codes map[string]string
	used  map[string]usedCode
	adds  int
}

type usedCode struct {
	grant   string
	expires time.Time
}

func newPending(now func() time.Time, lim PendingLimits) *pending {
	return &pending{now: now, lim: lim, reqs: map[string]*authRequest{},
		sources: map[netip.Prefix]int{}, prefixes: map[netip.Prefix]int{},
		codes: map[string]string{}, used: map[string]usedCode{}}
}

// live reports whether a is within its time to live at now.
func (a *authRequest) live(now time.Time) bool {
	ttl := pendingTTL
	if !a.shown {
		ttl = unshownTTL
	}
	return now.Sub(a.created) <= ttl
}

func (p *pending) add(a *authRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.adds++
	if p.adds%256 == 0 || len(p.reqs) >= p.lim.Max {
		p.sweep()
	}
	if a.source.IsValid() && p.sources[a.source] >= p.lim.PerSource ||
		a.prefix.IsValid() && p.prefixes[a.prefix] >= p.lim.PerPrefix {
		return errTooManyLogins
	}
	if len(p.reqs) >= p.lim.Max && !p.evict() {
		return errTooManyLogins
	}
	p.reqs[a.id] = a
	p.sources[a.source]++
	p.prefixes[a.prefix]++
	p.unshown = append(p.unshown, a.id)
	return nil
}

// show marks the request's login page served: it lives pendingTTL from its
// creation instead of unshownTTL.
func (p *pending) show(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.reqs[id]; ok && !a.shown && a.live(p.now()) {
		a.shown = true
		p.shown = append(p.shown, id)
	}
}

// evict drops the oldest request whose page was never served, or else the
// oldest nobody has typed a right password into; false when every request
// in the table is a customer past the password. The caller holds mu.
func (p *pending) evict() bool {
	for _, q := range []*[]string{&p.unshown, &p.shown} {
		for len(*q) > 0 {
			id := (*q)[0]
			*q = (*q)[1:]
			a, ok := p.reqs[id]
			if !ok || q == &p.unshown && a.shown {
				continue // gone, or moved to the shown list
			}
			if a.user != nil || a.done {
				continue // a customer past the password is never evicted
			}
			p.drop(id)
			return true
		}
	}
	return false
}

// drop deletes a request and its counts; the caller holds mu.
func (p *pending) drop(id string) {
	a, ok := p.reqs[id]
	if !ok {
		return
	}
	delete(p.reqs, id)
	for _, c := range []struct {
		m map[netip.Prefix]int
		k netip.Prefix
	}{{p.sources, a.source}, {p.prefixes, a.prefix}} {
		if c.m[c.k]--; c.m[c.k] <= 0 {
			delete(c.m, c.k)
		}
	}
}

// sweep drops expired entries; the caller holds mu.
func (p *pending) sweep() {
	now := p.now()
	for id, a := range p.reqs {
		if !a.live(now) {
			p.drop(id)
		}
	}
	for c, id := range p.codes {
		if _, ok := p.reqs[id]; !ok {
			delete(p.codes, c)
		}
	}
	for c, u := range p.used {
		if now.After(u.expires) {
			delete(p.used, c)
		}
	}
	keep := func(q []string, shown bool) []string {
		out := q[:0]
		for _, id := range q {
			if a, ok := p.reqs[id]; ok && a.shown == shown {
				out = append(out, id)
			}
		}
		return slices.Clip(out)
	}
	p.unshown, p.shown = keep(p.unshown, false), keep(p.shown, true)
}

// get returns a copy of the request, safe to hand to op.
func (p *pending) get(id string) (*authRequest, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.reqs[id]
	if !ok || !a.live(p.now()) {
		return nil, errUnknownRequest
	}
	c := *a
	return &c, nil
}

// update applies f to the stored request under the lock.
func (p *pending) update(id string, f func(a *authRequest) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.reqs[id]
	if !ok || !a.live(p.now()) {
		return errUnknownRequest
	}
	return f(a)
}

func (p *pending) saveCode(id, code string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.reqs[id]; !ok {
		return errUnknownRequest
	}
	p.codes[code] = id
	return nil
}

// redeem spends a code: the first call returns its request, every later one
// errCodeReplayed together with the grant the first exchange created, so the
// caller can revoke it (RFC 6749, section 4.1.2).
func (p *pending) redeem(code string) (*authRequest, string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u, ok := p.used[code]; ok {
		return nil, u.grant, errCodeReplayed
	}
	id, ok := p.codes[code]
	if !ok {
		return nil, "", errUnknownRequest
	}
	delete(p.codes, code)
	a, ok := p.reqs[id]
	if !ok || !a.done {
		return nil, "", errUnknownRequest
	}
	p.used[code] = usedCode{grant: a.grant, expires: a.created.Add(pendingTTL)}
	c := *a
	return &c, "", nil
}

func (p *pending) remove(id string) {
	p.mu.Lock()
	p.drop(id)
	p.mu.Unlock()
}

// checkOTP compares a code with the stored hash in constant time.
func (a *authRequest) checkOTP(code string) bool {
	sum := sha256.Sum256([]byte(a.id + "\x00" + code))
	return subtle.ConstantTimeCompare(sum[:], a.otpHash[:]) == 1
}

func (a *authRequest) setOTP(code string, now, expiry time.Time) {
	a.otpHash = sha256.Sum256([]byte(a.id + "\x00" + code))
	a.otpExpiry, a.sentAt = expiry, now
}

// passwordChecked starts the second step for u afresh.
func (a *authRequest) passwordChecked(u users.User, device bool) {
	a.user, a.device = &u, device
	a.otpHash, a.otpAttempts, a.resends = [32]byte{}, 0, 0
}

func cloneStrings(s []string) []string { return slices.Clone(s) }
