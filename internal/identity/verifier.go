package identity

import (
	"container/list"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Errors of Verify; every one wraps ErrInvalidToken, so a caller that only
// needs yes or no tests for that.
var (
	ErrInvalidToken = errors.New("invalid access token")
	ErrExpired      = fmt.Errorf("token expired: %w", ErrInvalidToken)
	ErrNotYetValid  = fmt.Errorf("token not yet valid: %w", ErrInvalidToken)
	ErrRevoked      = fmt.Errorf("token revoked: %w", ErrInvalidToken)
)

// Claims are what a verified access token says, as plain values.
type Claims struct {
	Subject  string    // the customer, or the client for client credentials
	ClientID string    // the OAuth client the token was issued to
	Scopes   []string  // granted scopes
	Expiry   time.Time // the token is refused from this instant
	IssuedAt time.Time
	ID       string   // jti
	Grant    string   // the grant (sid) it was minted from; empty for client credentials
	AMR      []string // how the customer authenticated (pwd, otp, mfa)
	// AuthTime is when the customer authenticated (the login, kept across
	// refreshes); zero for client credentials.
	AuthTime time.Time
}

// HasScope reports whether the token grants scope.
func (c Claims) HasScope(scope string) bool { return slices.Contains(c.Scopes, scope) }

// KeySource finds the public key a token names in its "kid" header.
type KeySource interface {
	PublicKey(ctx context.Context, kid string) (ed25519.PublicKey, error)
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Issuer must equal the token's iss.
	Issuer string
	// Audience must be one of the token's aud.
	Audience string
	// Keys finds verification keys.
	Keys KeySource
	// Revocations is the list checked on every call (cached or not); nil
	// makes a private one.
	Revocations *Revocations
	// CacheSize bounds the verified-token cache; zero means 100,000 entries
	// (about 300 bytes each), negative disables the cache.
	CacheSize int
	// Leeway tolerates clock skew on exp and nbf; zero means none.
	Leeway time.Duration
	// Now tells the time; nil means time.Now.
	Now func() time.Time
}

// Verifier checks access tokens without a round trip to the provider or a
// database. It is safe for concurrent use.
type Verifier struct {
	cfg    VerifierConfig
	revs   *Revocations
	shards []*lruShard
}

const verifierShards = 16

// NewVerifier builds a Verifier.
func NewVerifier(cfg VerifierConfig) *Verifier {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = 100_000
	}
	v := &Verifier{cfg: cfg, revs: cfg.Revocations}
	if v.revs == nil {
		v.revs = NewRevocations(cfg.Now)
	}
	if cfg.CacheSize > 0 {
		per := max(1, cfg.CacheSize/verifierShards)
		for range verifierShards {
			v.shards = append(v.shards, &lruShard{cap: per, m: map[[32]byte]*list.Element{}, l: list.New()})
		}
	}
	return v
}

// Revocations returns the list the verifier checks.
func (v *Verifier) Revocations() *Revocations { return v.revs }

// FromRequest verifies the bearer token of r's Authorization header.
func (v *Verifier) FromRequest(r *http.Request) (Claims, error) {
	auth := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return Claims{}, fmt.Errorf("no bearer token: %w", ErrInvalidToken)
	}
	return v.Verify(r.Context(), tok)
}

// Verify checks token and returns its claims. A token seen before is
// answered from the cache after a hash and a revocation check; a new one
// costs one Ed25519 verification.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	now := v.cfg.Now()
	var key [32]byte
	if v.shards != nil {
		key = tokenHash(token)
		if c, ok := v.shard(key).get(key); ok {
			return v.live(c, now)
		}
	}
	c, err := v.verify(ctx, token, now)
	if err != nil {
		return Claims{}, err
	}
	if v.shards != nil {
		v.shard(key).put(key, c)
	}
	return v.live(c, now)
}

// live checks what can change after a token was verified: time and revocation.
func (v *Verifier) live(c Claims, now time.Time) (Claims, error) {
	if !now.Before(c.Expiry.Add(v.cfg.Leeway)) {
		return Claims{}, ErrExpired
	}
	if v.revs.Revoked(c.ID) || (c.Grant != "" && v.revs.Revoked(c.Grant)) {
		return Claims{}, ErrRevoked
	}
	return c, nil
}

func (v *Verifier) verify(ctx context.Context, token string, now time.Time) (Claims, error) {
	h, signed, payload, sig, err := splitJWS(token)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	// Only EdDSA: "none", HMAC and RSA are refused before any key is looked
	// up, so no key can be used with an algorithm it was not made for.
	if h.Alg != "EdDSA" {
		return Claims{}, fmt.Errorf("%w: algorithm %q not accepted", ErrInvalidToken, h.Alg)
	}
	if !strings.EqualFold(h.Typ, AccessTokenType) && !strings.EqualFold(h.Typ, "application/"+AccessTokenType) {
		return Claims{}, fmt.Errorf("%w: typ %q is not an access token", ErrInvalidToken, h.Typ)
	}
	pub, err := v.cfg.Keys.PublicKey(ctx, h.Kid)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, []byte(signed), sig) {
		return Claims{}, fmt.Errorf("%w: bad signature", ErrInvalidToken)
	}
	var ac struct {
		accessClaims
		Audience audience `json:"aud"`
	}
	if err := json.Unmarshal(payload, &ac); err != nil {
		return Claims{}, fmt.Errorf("%w: claims: %w", ErrInvalidToken, err)
	}
	switch {
	case ac.Issuer != v.cfg.Issuer:
		return Claims{}, fmt.Errorf("%w: wrong issuer", ErrInvalidToken)
	case !slices.Contains(ac.Audience, v.cfg.Audience):
		return Claims{}, fmt.Errorf("%w: wrong audience", ErrInvalidToken)
	case ac.Subject == "" || ac.ClientID == "" || ac.ID == "" || ac.Expiry == 0:
		return Claims{}, fmt.Errorf("%w: missing claim", ErrInvalidToken)
	case ac.NotBefore != 0 && now.Add(v.cfg.Leeway).Before(time.Unix(ac.NotBefore, 0)):
		return Claims{}, ErrNotYetValid
	case ac.IssuedAt != 0 && now.Add(v.cfg.Leeway).Before(time.Unix(ac.IssuedAt, 0)):
		return Claims{}, ErrNotYetValid
	}
	return Claims{
		Subject:  ac.Subject,
		ClientID: ac.ClientID,
		Scopes:   strings.Fields(ac.Scope),
		Expiry:   time.Unix(ac.Expiry, 0),
		IssuedAt: time.Unix(ac.IssuedAt, 0),
		ID:       ac.ID,
		Grant:    ac.Grant,
		AMR:      ac.AMR,
		AuthTime: unixOrZero(ac.AuthTime),
	}, nil
}

func unixOrZero(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0)
}

// audience accepts aud as a string or an array (RFC 7519, section 4.1.3).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*a = audience{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	*a = l
	return nil
}

func (v *Verifier) shard(k [32]byte) *lruShard { return v.shards[int(k[0])%len(v.shards)] }

type lruShard struct {
	mu  sync.Mutex
	cap int
	m   map[[32]byte]*list.Element
	l   *list.List
}

type lruEntry struct {
	key [32]byte
	c   Claims
}

func (s *lruShard) get(k [32]byte) (Claims, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if !ok {
		return Claims{}, false
	}
	s.l.MoveToFront(e)
	return e.Value.(*lruEntry).c, true
}

func (s *lruShard) put(k [32]byte, c Claims) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[k]; ok {
		s.l.MoveToFront(e)
		return
	}
	s.m[k] = s.l.PushFront(&lruEntry{k, c})
	for s.l.Len() > s.cap {
		old := s.l.Back()
		s.l.Remove(old)
		delete(s.m, old.Value.(*lruEntry).key)
	}
}

// Revocations is the list of revoked token and grant ids, each kept until
// the last token it could match has expired. Every verifier of the process
// shares the provider's list, so a revocation takes effect on the next
// request; Subscribe lets a transport (Redis pub/sub, say) carry it to other
// nodes.
type Revocations struct {
	now  func() time.Time
	mu   sync.RWMutex
	m    map[string]time.Time
	subs []func(id string, until time.Time)
}

// NewRevocations returns an empty list.
func NewRevocations(now func() time.Time) *Revocations {
	if now == nil {
		now = time.Now
	}
	return &Revocations{now: now, m: map[string]time.Time{}}
}

// Revoke adds id (a jti or a grant id) until the instant given.
func (r *Revocations) Revoke(id string, until time.Time) {
	if id == "" {
		return
	}
	now := r.now()
	r.mu.Lock()
	if old, ok := r.m[id]; !ok || until.After(old) {
		r.m[id] = until
	}
	if len(r.m)%1024 == 0 {
		for k, u := range r.m {
			if !now.Before(u) {
				delete(r.m, k)
			}
		}
	}
	subs := r.subs
	r.mu.Unlock()
	for _, f := range subs {
		f(id, until)
	}
}

// Revoked reports whether id is on the list.
func (r *Revocations) Revoked(id string) bool {
	r.mu.RLock()
	until, ok := r.m[id]
	r.mu.RUnlock()
	return ok && r.now().Before(until)
}

// Subscribe calls f after every Revoke, for propagation to other nodes.
func (r *Revocations) Subscribe(f func(id string, until time.Time)) {
	r.mu.Lock()
	r.subs = append(r.subs, f)
	r.mu.Unlock()
}
