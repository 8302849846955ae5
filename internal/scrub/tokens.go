package scrub

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rempart/rempart/internal/scrub/pow"
)

// Errors of challenge and clearance verification.
var (
	errMalformed = errors.New("malformed token")
	errExpired   = errors.New("token expired")
	errPrefix    = errors.New("token bound to another network")
	errMAC       = errors.New("token signature mismatch")
	errWork      = errors.New("not enough work")
	errReplayed  = errors.New("solution already used")
)

// Domain separation: one key signs two kinds of token, and neither can be
// passed off as the other.
const (
	macChallenge = "rempart-pow\x00"
	// macLogin signs the challenges of one account's stepped logins: the
	// account is part of what is signed, so a solution spends only the
	// account it was issued for.
	macLogin     = "rempart-login-pow\x00"
	macClearance = "rempart-clearance\x00"
)

// clearanceVersion starts every clearance token.
const clearanceVersion = "c1"

// clearanceMACSize: 128 bits resist forgery for a token that lives minutes.
const clearanceMACSize = 16

// signer computes HMAC-SHA-256 with one key. Hash states are pooled: the
// clearance check runs on every request and should not allocate one.
type signer struct {
	pool sync.Pool
}

func newSigner(key []byte) *signer {
	k := append([]byte(nil), key...)
	s := &signer{}
	s.pool.New = func() any { return hmac.New(sha256.New, k) }
	return s
}

// sum returns the MAC of the concatenated parts in out.
func (s *signer) sum(out *[sha256.Size]byte, parts ...[]byte) {
	h := s.pool.Get().(hash.Hash)
	h.Reset()
	for _, p := range parts {
		h.Write(p)
	}
	h.Sum(out[:0])
	s.pool.Put(h)
}

// issueChallenge returns a fresh challenge for a client of prefix p.
func (s *Scrubber) issueChallenge(p netip.Prefix, bits int, now time.Time) pow.Challenge {
	return s.issueBound(p, bits, now, []byte(macChallenge))
}

// issueBound returns a fresh challenge whose signature covers domain (the
// kind of challenge and what else it is bound to) besides its payload.
func (s *Scrubber) issueBound(p netip.Prefix, bits int, now time.Time, domain []byte) pow.Challenge {
	c := pow.Challenge{Bits: bits, Expires: now.Add(s.opts.ChallengeTTL).Unix(), Prefix: p}
	rand.Read(c.Nonce[:])
	s.sign.sum(&c.MAC, domain, []byte(c.Payload()))
	return c
}

// verifySolution checks a solution token for a client of prefix p: format,
// expiry, binding, signature, work, then that it was not used before.
func (s *Scrubber) verifySolution(sol string, p netip.Prefix, now time.Time) (pow.Challenge, error) {
	return s.verifyBound(sol, p, now, []byte(macChallenge))
}

// verifyBound checks a solution to a challenge issued by issueBound with
// the same domain.
func (s *Scrubber) verifyBound(sol string, p netip.Prefix, now time.Time, domain []byte) (pow.Challenge, error) {
	chs, _, err := pow.ParseSolution(sol)
	if err != nil {
		return pow.Challenge{}, errMalformed
	}
	c, err := pow.ParseChallenge(chs)
	if err != nil {
		return c, errMalformed
	}
	if now.Unix() >= c.Expires {
		return c, errExpired
	}
	if c.Prefix != p {
		return c, errPrefix
	}
	var mac [sha256.Size]byte
	s.sign.sum(&mac, domain, []byte(chs[:strings.LastIndexByte(chs, '.')]))
	if !hmac.Equal(mac[:], c.MAC[:]) {
		return c, errMAC
	}
	if !pow.Enough(sol, c.Bits) {
		return c, errWork
	}
	if !s.used.add(string(c.Nonce[:]), time.Unix(c.Expires, 0), now) {
		return c, errReplayed
	}
	return c, nil
}

// clearanceBinding is what a clearance is bound to: the client's prefix and
// the fingerprint of its user agent.
func clearanceBinding(p netip.Prefix, fp uint64) []byte {
	var b [1 + 16 + 8]byte
	b[0] = byte(p.Bits())
	a := p.Addr().As16()
	copy(b[1:], a[:])
	binary.BigEndian.PutUint64(b[17:], fp)
	return b[:]
}

// mintClearance returns a clearance token valid until exp:
//
//	c1.<expires unix seconds>.<base64url(HMAC(key, domain | "c1.<expires>" | binding))[:16 bytes]>
//
// The binding is not in the token: the verifier recomputes it from the
// request, so a clearance carried to another network or another browser
// fails its MAC check.
func (s *Scrubber) mintClearance(p netip.Prefix, fp uint64, exp time.Time) string {
	head := clearanceVersion + "." + strconv.FormatInt(exp.Unix(), 10)
	var mac [sha256.Size]byte
	s.sign.sum(&mac, []byte(macClearance), []byte(head), clearanceBinding(p, fp))
	return head + "." + base64.RawURLEncoding.EncodeToString(mac[:clearanceMACSize])
}

// parseClearance splits a clearance token into its signed head, expiry and
// MAC. It accepts only the canonical encoding.
func parseClearance(tok string) (head string, exp int64, mac [clearanceMACSize]byte, err error) {
	if len(tok) > 64 {
		return "", 0, mac, errMalformed
	}
	head, m, ok := strings.Cut(tok, ".")
	if !ok || head != clearanceVersion {
		return "", 0, mac, errMalformed
	}
	es, m, ok := strings.Cut(m, ".")
	if !ok || len(es) == 0 || len(es) > 12 || es[0] == '0' {
		return "", 0, mac, errMalformed
	}
	for i := 0; i < len(es); i++ {
		if es[i] < '0' || es[i] > '9' {
			return "", 0, mac, errMalformed
		}
	}
	exp, _ = strconv.ParseInt(es, 10, 64)
	if len(m) != base64.RawURLEncoding.EncodedLen(clearanceMACSize) {
		return "", 0, mac, errMalformed
	}
	if n, err := base64.RawURLEncoding.Strict().Decode(mac[:], []byte(m)); err != nil || n != clearanceMACSize {
		return "", 0, mac, errMalformed
	}
	return tok[:len(clearanceVersion)+1+len(es)], exp, mac, nil
}

// verifyClearance checks a clearance token for a client of prefix p and user
// agent fingerprint fp: one MAC and a constant-time compare.
func (s *Scrubber) verifyClearance(tok string, p netip.Prefix, fp uint64, now time.Time) error {
	head, exp, got, err := parseClearance(tok)
	if err != nil {
		return err
	}
	if now.Unix() >= exp {
		return errExpired
	}
	var mac [sha256.Size]byte
	s.sign.sum(&mac, []byte(macClearance), []byte(head), clearanceBinding(p, fp))
	if !hmac.Equal(mac[:clearanceMACSize], got[:]) {
		return errMAC
	}
	return nil
}

// Header and cookie names of the proof-of-work exchange.
const (
	HeaderChallenge = "Rempart-Challenge"
	HeaderSolution  = "Rempart-Solution"
	HeaderClearance = "Rempart-Clearance"
	CookieClearance = "rempart_clearance"
	CookieSolution  = "rempart_solution"
)

// presented returns the value of a header, or else of a cookie.
func presented(r *http.Request, header, cookie string) string {
	if v := r.Header.Get(header); v != "" {
		return v
	}
	if len(r.Header["Cookie"]) == 0 {
		return ""
	}
	if c, err := r.Cookie(cookie); err == nil {
		return c.Value
	}
	return ""
}

// setClearance hands a clearance to the client as a header (apps) and a
// cookie (browsers).
func (s *Scrubber) setClearance(w http.ResponseWriter, tok string, solved bool) {
	h := w.Header()
	h.Set(HeaderClearance, tok)
	c := &http.Cookie{Name: CookieClearance, Value: tok, Path: "/", MaxAge: int(s.opts.ClearanceTTL.Seconds()),
		HttpOnly: true, Secure: !s.opts.InsecureCookies, SameSite: http.SameSiteLaxMode}
	h.Add("Set-Cookie", c.String())
	if solved {
		gone := &http.Cookie{Name: CookieSolution, Value: "", Path: "/", MaxAge: -1,
			Secure: !s.opts.InsecureCookies, SameSite: http.SameSiteLaxMode}
		h.Add("Set-Cookie", gone.String())
	}
}

// usedSet remembers spent challenge nonces until their challenge expires, so
// one solution buys one clearance. It is bounded: when full of live nonces
// it forgets one at random, which at worst lets a client of that challenge's
// /24 replay its own work once more, rather than refuse every customer's
// solution until entries expire.
type usedSet struct {
	mu    sync.Mutex
	max   int
	until map[string]int64
}

// add records key until exp, reporting false if it was already there.
func (u *usedSet) add(key string, exp, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := now.Unix()
	if e, ok := u.until[key]; ok && n < e {
		return false
	}
	if len(u.until) >= u.max {
		// A bounded random sample (map order is random): expired
		// entries go, else the first one seen.
		scanned, freed := 0, 0
		var victim string
		for k, e := range u.until {
			if scanned == 0 {
				victim = k
			}
			if e <= n {
				delete(u.until, k)
				freed++
			}
			if scanned++; scanned == 64 {
				break
			}
		}
		if freed == 0 {
			delete(u.until, victim)
		}
	}
	u.until[key] = exp.Unix()
	return true
}
