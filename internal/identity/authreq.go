package identity

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/rempart/rempart/internal/identity/users"
	"github.com/rempart/rempart/internal/session"
)

// authRequest is one authorization request and the login that answers it.
// It lives in the logins store (Config.Logins) as one record, rewritten
// through the store's atomic Update at every step, so any node of a cluster
// serves any step and two nodes serving one login at once (two codes typed
// in two tabs) lose no attempt. Grants live in the session store.
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

	// pk is the passkey step, when the customer has a passkey (passkey.go).
	pk *pkCeremony
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
//
// The bounds are per node: each node counts the requests it created, from
// creation until it deletes them or they expire as far as it can tell
// (unshownTTL unless it served their page itself). A login that moves to
// another node after the redirect is therefore counted by its first node
// for at most unshownTTL, then not at all; a script that never opens the
// page is counted the full minute wherever it lands. Exact cluster-wide
// counts would cost every login three more store writes to a per-network
// record that a botnet's network would make the hottest key in the store.
type PendingLimits struct {
	Max, PerSource, PerPrefix int
}

// Store records of a login, all with their own id as subject so that the
// store's per-subject bound never evicts one: "lr:" + request id, the
// request; "ac:" + hash of a code, the request it was issued for; "au:" +
// hash of a code, the grant its exchange created (the code is spent).
const (
	loginPrefix    = "lr:"
	codePrefix     = "ac:"
	usedCodePrefix = "au:"
	attrRequest    = "j" // the request as JSON (authRecord)
	attrRequestID  = "r"
	attrGrant      = "g"
)

// pending holds logins in progress and their codes in the logins store, and
// this node's admission table in front of it.
type pending struct {
	store session.Store
	now   func() time.Time
	lim   PendingLimits
	mu    sync.Mutex
	// reqs are the live requests this node created, by id; sources and
	// prefixes count them per client address and network; unshown and
	// shown list ids in creation and showing order, the eviction
	// candidates (stale ids are skipped and dropped).
	reqs     map[string]*admitted
	sources  map[netip.Prefix]int
	prefixes map[netip.Prefix]int
	unshown  []string
	shown    []string
	adds     int
}

// admitted is what the admission table keeps of a request.
type admitted struct {
	source, prefix netip.Prefix
	created        time.Time
	shown          bool
}

func newPending(store session.Store, now func() time.Time, lim PendingLimits) *pending {
	return &pending{store: store, now: now, lim: lim, reqs: map[string]*admitted{},
		sources: map[netip.Prefix]int{}, prefixes: map[netip.Prefix]int{}}
}

// live reports whether a is within its time to live at now.
func (a *authRequest) live(now time.Time) bool {
	return now.Before(a.deadline())
}

// deadline is when a dies: unshownTTL after its creation until its page is
// served, pendingTTL after it then.
func (a *authRequest) deadline() time.Time {
	if !a.shown {
		return a.created.Add(unshownTTL)
	}
	return a.created.Add(pendingTTL)
}

func (x *admitted) live(now time.Time) bool {
	ttl := pendingTTL
	if !x.shown {
		ttl = unshownTTL
	}
	return now.Sub(x.created) < ttl
}

func (p *pending) add(ctx context.Context, a *authRequest) error {
	if err := p.admit(ctx, a); err != nil {
		return err
	}
	rec, err := a.record()
	if err == nil {
		err = p.store.Create(ctx, rec)
	}
	if err != nil {
		p.mu.Lock()
		p.drop(a.id)
		p.mu.Unlock()
		return fmt.Errorf("store login: %w", err)
	}
	return nil
}

// admit enters a in the node's admission table, within the bounds.
func (p *pending) admit(ctx context.Context, a *authRequest) error {
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
	if len(p.reqs) >= p.lim.Max && !p.evict(ctx) {
		return errTooManyLogins
	}
	p.reqs[a.id] = &admitted{source: a.source, prefix: a.prefix, created: a.created}
	p.sources[a.source]++
	p.prefixes[a.prefix]++
	p.unshown = append(p.unshown, a.id)
	return nil
}

// show marks the request's login page served: it lives pendingTTL from its
// creation instead of unshownTTL.
func (p *pending) show(ctx context.Context, a *authRequest) {
	id, now := a.id, p.now()
	if !a.shown {
		_ = p.update(ctx, id, func(a *authRequest) error {
			a.shown = true
			return nil
		})
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if x, ok := p.reqs[id]; ok && !x.shown && x.live(now) {
		x.shown = true
		p.shown = append(p.shown, id)
	}
}

// evict drops the oldest request whose page was never served, or else the
// oldest nobody has typed a right password into; false when every request
// in the table is a customer past the password. Whether a request is past
// the password is in the store (another node may have checked it), so a
// full table reads the store under mu: only when it is full, where
// admission is meant to be slow. The caller holds mu.
func (p *pending) evict(ctx context.Context) bool {
	for _, q := range []*[]string{&p.unshown, &p.shown} {
		for len(*q) > 0 {
			id := (*q)[0]
			*q = (*q)[1:]
			x, ok := p.reqs[id]
			if !ok || q == &p.unshown && x.shown {
				continue // gone, or moved to the shown list
			}
			a, err := p.get(ctx, id)
			if err == nil && (a.user != nil || a.done) {
				continue // a customer past the password is never evicted
			}
			if err == nil {
				_ = p.store.Delete(ctx, loginPrefix+id)
			}
			p.drop(id)
			return true
		}
	}
	return false
}

// drop deletes a request from the admission table; the caller holds mu.
func (p *pending) drop(id string) {
	x, ok := p.reqs[id]
	if !ok {
		return
	}
	delete(p.reqs, id)
	for _, c := range []struct {
		m map[netip.Prefix]int
		k netip.Prefix
	}{{p.sources, x.source}, {p.prefixes, x.prefix}} {
		if c.m[c.k]--; c.m[c.k] <= 0 {
			delete(c.m, c.k)
		}
	}
}

// sweep drops expired entries of the admission table (the store expires
// its records itself); the caller holds mu.
func (p *pending) sweep() {
	now := p.now()
	for id, x := range p.reqs {
		if !x.live(now) {
			p.drop(id)
		}
	}
	keep := func(q []string, shown bool) []string {
		out := q[:0]
		for _, id := range q {
			if x, ok := p.reqs[id]; ok && x.shown == shown {
				out = append(out, id)
			}
		}
		return slices.Clip(out)
	}
	p.unshown, p.shown = keep(p.unshown, false), keep(p.shown, true)
}

// get returns the request, a copy of its record, safe to hand to op.
func (p *pending) get(ctx context.Context, id string) (*authRequest, error) {
	s, err := p.store.Get(ctx, loginPrefix+id)
	if errors.Is(err, session.ErrNotFound) {
		return nil, errUnknownRequest
	}
	if err != nil {
		return nil, fmt.Errorf("load login: %w", err)
	}
	a, err := decodeRequest(s)
	if err != nil {
		return nil, err
	}
	if !a.live(p.now()) {
		return nil, errUnknownRequest
	}
	return a, nil
}

// update applies f to the stored request atomically (session.Store's
// Update): of two nodes changing one request at once, neither loses the
// other's change. f may run more than once, so it sets what it learns
// rather than accumulating it.
func (p *pending) update(ctx context.Context, id string, f func(a *authRequest) error) error {
	_, err := p.store.Update(ctx, loginPrefix+id, func(s *session.Session) error {
		a, err := decodeRequest(*s)
		if err != nil {
			return err
		}
		if !a.live(p.now()) {
			return errUnknownRequest
		}
		if err := f(a); err != nil {
			return err
		}
		return a.encodeInto(s)
	})
	if errors.Is(err, session.ErrNotFound) {
		return errUnknownRequest
	}
	return err
}

func (p *pending) saveCode(ctx context.Context, id, code string) error {
	a, err := p.get(ctx, id)
	if err != nil {
		return err
	}
	h := codeHash(code)
	exp := a.created.Add(pendingTTL)
	return p.store.Create(ctx, session.Session{ID: codePrefix + h, Subject: codePrefix + h,
		CreatedAt: p.now(), ExpiresAt: exp, Attrs: map[string]string{attrRequestID: id}})
}

// redeem spends a code: the first call returns its request, every later one
// errCodeReplayed together with the grant the first exchange created, so the
// caller can revoke it (RFC 6749, section 4.1.2). The spent marker is
// created, not updated: of two exchanges of one code on two nodes at once,
// the store lets exactly one Create it, and the other is the replay.
func (p *pending) redeem(ctx context.Context, code string) (*authRequest, string, error) {
	h := codeHash(code)
	c, err := p.store.Get(ctx, codePrefix+h)
	if errors.Is(err, session.ErrNotFound) {
		return p.spent(ctx, h)
	}
	if err != nil {
		return nil, "", fmt.Errorf("load code: %w", err)
	}
	a, err := p.get(ctx, c.Attrs[attrRequestID])
	if errors.Is(err, errUnknownRequest) {
		// The first exchange may have spent the code and deleted the
		// request since this one read the code.
		return p.spent(ctx, h)
	}
	if err != nil {
		return nil, "", err
	}
	if !a.done {
		return nil, "", errUnknownRequest
	}
	err = p.store.Create(ctx, session.Session{ID: usedCodePrefix + h, Subject: usedCodePrefix + h,
		CreatedAt: p.now(), ExpiresAt: c.ExpiresAt, Attrs: map[string]string{attrGrant: a.grant}})
	if errors.Is(err, session.ErrAlreadyExists) {
		return p.spent(ctx, h)
	}
	if err != nil {
		return nil, "", fmt.Errorf("spend code: %w", err)
	}
	// Spent; the code record only lets a late replay find the marker
	// faster, and dies with the request anyway.
	_ = p.store.Delete(ctx, codePrefix+h)
	return a, "", nil
}

// spent answers a code that is not live: errCodeReplayed with the grant of
// its exchange if it was spent, else errUnknownRequest.
func (p *pending) spent(ctx context.Context, h string) (*authRequest, string, error) {
	u, err := p.store.Get(ctx, usedCodePrefix+h)
	switch {
	case errors.Is(err, session.ErrNotFound):
		return nil, "", errUnknownRequest
	case err != nil:
		return nil, "", fmt.Errorf("load spent code: %w", err)
	}
	return nil, u.Attrs[attrGrant], errCodeReplayed
}

func (p *pending) remove(ctx context.Context, id string) {
	_ = p.store.Delete(ctx, loginPrefix+id)
	p.mu.Lock()
	p.drop(id)
	p.mu.Unlock()
}

// codeHash is what the store keeps of an authorization code: a copy of the
// store (a Redis dump) holds no code to exchange.
func codeHash(code string) string {
	h := tokenHash(code)
	return b64.EncodeToString(h[:])
}

// authRecord is an authRequest as the logins store keeps it (JSON in the
// record's attrRequest attribute). The customer's password verifier is in
// it from the password step on, as in a backup snapshot: the code step
// takes the snapshot, on whichever node it runs.
type authRecord struct {
	ClientID     string              `json:"client"`
	RedirectURI  string              `json:"redirect"`
	Scopes       []string            `json:"scopes,omitempty"`
	State        string              `json:"state,omitempty"`
	Nonce        string              `json:"nonce,omitempty"`
	ResponseType oidc.ResponseType   `json:"rt"`
	ResponseMode oidc.ResponseMode   `json:"rm,omitempty"`
	Challenge    *oidc.CodeChallenge `json:"pkce,omitempty"`
	Created      time.Time           `json:"created"`
	Lang         string              `json:"lang,omitempty"`
	PromptNone   bool                `json:"prompt_none,omitempty"`
	ForceLogin   bool                `json:"force_login,omitempty"`
	MaxAge       time.Duration       `json:"max_age,omitempty"`
	HasMaxAge    bool                `json:"has_max_age,omitempty"`
	HintSubject  string              `json:"hint,omitempty"`
	Source       netip.Prefix        `json:"source"`
	Prefix       netip.Prefix        `json:"prefix"`
	Shown        bool                `json:"shown,omitempty"`
	Flow         []byte              `json:"flow"`
	User         *userRecord         `json:"user,omitempty"`
	Device       bool                `json:"device,omitempty"`
	OTPHash      []byte              `json:"otp,omitempty"`
	OTPExpiry    time.Time           `json:"otp_exp"`
	OTPAttempts  int                 `json:"otp_attempts,omitempty"`
	SentAt       time.Time           `json:"sent_at"`
	Resends      int                 `json:"resends,omitempty"`
	Backup       bool                `json:"backup,omitempty"`
	ACR          string              `json:"acr,omitempty"`
	Done         bool                `json:"done,omitempty"`
	Subject      string              `json:"sub,omitempty"`
	AuthTime     time.Time           `json:"auth_time"`
	AMR          []string            `json:"amr,omitempty"`
	Profile      map[string]string   `json:"profile,omitempty"`
	Grant        string              `json:"grant,omitempty"`
	Passkey      *pkRecord           `json:"pk,omitempty"`
}

// userRecord is a users.User with the fields its own JSON form leaves out.
type userRecord struct {
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
	Phone    string `json:"phone,omitempty"`
	Email    string `json:"email,omitempty"`
	Verifier string `json:"verifier,omitempty"`
	Version  uint64 `json:"version,omitempty"`
	Blocked  bool   `json:"blocked,omitempty"`
}

// record is the store record of a new request.
func (a *authRequest) record() (session.Session, error) {
	s := session.Session{ID: loginPrefix + a.id, Subject: loginPrefix + a.id, CreatedAt: a.created}
	return s, a.encodeInto(&s)
}

// encodeInto writes a into its store record, with the expiry it has now.
func (a *authRequest) encodeInto(s *session.Session) error {
	r := authRecord{
		ClientID: a.clientID, RedirectURI: a.redirectURI, Scopes: a.scopes, State: a.state, Nonce: a.nonce,
		ResponseType: a.responseType, ResponseMode: a.responseMode, Challenge: a.challenge, Created: a.created,
		Lang: a.lang, PromptNone: a.promptNone, ForceLogin: a.forceLogin, MaxAge: a.maxAge, HasMaxAge: a.hasMaxAge,
		HintSubject: a.hintSubject, Source: a.source, Prefix: a.prefix, Shown: a.shown, Flow: a.flow[:],
		Device: a.device, OTPExpiry: a.otpExpiry, OTPAttempts: a.otpAttempts,
		SentAt: a.sentAt, Resends: a.resends, Backup: a.backup, ACR: a.acr, Done: a.done, Subject: a.subject,
		AuthTime: a.authTime, AMR: a.amr, Profile: a.profile, Grant: a.grant, Passkey: a.pk.record(),
	}
	if a.otpHash != ([32]byte{}) {
		r.OTPHash = a.otpHash[:]
	}
	if u := a.user; u != nil {
		r.User = &userRecord{ID: u.ID, Name: u.Name, Phone: u.Phone, Email: u.Email,
			Verifier: u.Verifier, Version: u.Version, Blocked: u.Blocked}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode login: %w", err)
	}
	s.Attrs = map[string]string{attrRequest: string(b)}
	s.ExpiresAt = a.deadline()
	return nil
}

func decodeRequest(s session.Session) (*authRequest, error) {
	var r authRecord
	if err := json.Unmarshal([]byte(s.Attrs[attrRequest]), &r); err != nil {
		return nil, fmt.Errorf("decode login %s: %w", s.ID, err)
	}
	a := &authRequest{
		id: strings.TrimPrefix(s.ID, loginPrefix), clientID: r.ClientID, redirectURI: r.RedirectURI,
		scopes: r.Scopes, state: r.State, nonce: r.Nonce, responseType: r.ResponseType,
		responseMode: r.ResponseMode, challenge: r.Challenge, created: r.Created, lang: r.Lang,
		promptNone: r.PromptNone, forceLogin: r.ForceLogin, maxAge: r.MaxAge, hasMaxAge: r.HasMaxAge,
		hintSubject: r.HintSubject, source: r.Source, prefix: r.Prefix, shown: r.Shown,
		device: r.Device, otpExpiry: r.OTPExpiry, otpAttempts: r.OTPAttempts,
		sentAt: r.SentAt, resends: r.Resends, backup: r.Backup, acr: r.ACR, done: r.Done, subject: r.Subject,
		authTime: r.AuthTime, amr: r.AMR, profile: r.Profile, grant: r.Grant, pk: r.Passkey.ceremony(),
	}
	copy(a.flow[:], r.Flow)
	copy(a.otpHash[:], r.OTPHash)
	if u := r.User; u != nil {
		a.user = &users.User{ID: u.ID, Name: u.Name, Phone: u.Phone, Email: u.Email,
			Verifier: u.Verifier, Version: u.Version, Blocked: u.Blocked}
	}
	return a, nil
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

// redirectOrigin is the CSP source of the app's redirect URI: the login
// page's forms end in a redirect to it (the code, or access_denied), and
// browsers hold redirects after a form submission to form-action.
// Redirect URIs are the registered clients' own, matched exactly.
func (a *authRequest) redirectOrigin() string {
	u, err := url.Parse(a.redirectURI)
	switch {
	case err != nil || u.Scheme == "":
		return ""
	case u.Scheme == "http" || u.Scheme == "https":
		return u.Scheme + "://" + u.Host
	}
	return u.Scheme + ":" // an app's own scheme, e.g. com.bank.app:
}
