package identity

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// AccessTokenType is the JOSE "typ" of access tokens (RFC 9068, section 2.1).
const AccessTokenType = "at+jwt"

// accessClaims are the claims of an RFC 9068 access token.
type accessClaims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  []string `json:"aud"`
	ClientID  string   `json:"client_id"`
	Scope     string   `json:"scope,omitempty"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf,omitempty"`
	Expiry    int64    `json:"exp"`
	ID        string   `json:"jti"`
	AuthTime  int64    `json:"auth_time,omitempty"`
	AMR       []string `json:"amr,omitempty"`
	// Grant is the grant (refresh family) the token was minted from, so that
	// revoking the grant reaches its access tokens at every verifier.
	Grant string `json:"sid,omitempty"`
}

// jwsHeader is the protected header this package writes and accepts.
type jwsHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

var b64 = base64.RawURLEncoding

// signJWT signs claims as a compact JWS with EdDSA.
func signJWT(kid string, key ed25519.PrivateKey, typ string, claims any) (string, error) {
	h, err := json.Marshal(jwsHeader{Alg: "EdDSA", Kid: kid, Typ: typ})
	if err != nil {
		return "", err
	}
	p, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.Grow(b64.EncodedLen(len(h)) + b64.EncodedLen(len(p)) + b64.EncodedLen(ed25519.SignatureSize) + 2)
	b.WriteString(b64.EncodeToString(h))
	b.WriteByte('.')
	b.WriteString(b64.EncodeToString(p))
	sig := ed25519.Sign(key, []byte(b.String()))
	b.WriteByte('.')
	b.WriteString(b64.EncodeToString(sig))
	return b.String(), nil
}

// maxTokenLen bounds what the parsers look at: a hostile header cannot make
// them decode megabytes.
const maxTokenLen = 8 << 10

// splitJWS parses a compact JWS without verifying it.
func splitJWS(token string) (h jwsHeader, signed string, payload, sig []byte, err error) {
	if len(token) > maxTokenLen {
		return h, "", nil, nil, errors.New("token too long")
	}
	i := strings.IndexByte(token, '.')
	j := strings.LastIndexByte(token, '.')
	if i < 0 || i == j {
		return h, "", nil, nil, errors.New("not a compact JWS")
	}
	hb, err := b64.DecodeString(token[:i])
	if err != nil {
		return h, "", nil, nil, fmt.Errorf("header: %w", err)
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return h, "", nil, nil, fmt.Errorf("header: %w", err)
	}
	if payload, err = b64.DecodeString(token[i+1 : j]); err != nil {
		return h, "", nil, nil, fmt.Errorf("payload: %w", err)
	}
	if sig, err = b64.DecodeString(token[j+1:]); err != nil {
		return h, "", nil, nil, fmt.Errorf("signature: %w", err)
	}
	return h, token[:j], payload, sig, nil
}

// randomID returns n random bytes, base64url-encoded.
func randomID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return b64.EncodeToString(b)
}

// tokenHash is the key a token is cached or stored under: the token itself
// never leaves the request that carried it.
func tokenHash(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// Refresh tokens are opaque: "rt1." + grant id + "." + secret. The grant id
// finds the family; the store keeps only a hash of the whole token.
const refreshPrefix = "rt1."

func newRefreshToken(grant string) string { return refreshPrefix + grant + "." + randomID(32) }

// parseRefreshToken returns the grant id of a well-formed refresh token.
func parseRefreshToken(tok string) (grant string, ok bool) {
	rest, ok := strings.CutPrefix(tok, refreshPrefix)
	if !ok || len(tok) > 256 {
		return "", false
	}
	grant, secret, ok := strings.Cut(rest, ".")
	if !ok || len(grant) != 22 || len(secret) != 43 {
		return "", false
	}
	if _, err := b64.DecodeString(grant); err != nil {
		return "", false
	}
	if _, err := b64.DecodeString(secret); err != nil {
		return "", false
	}
	return grant, true
}

// tokenRef is what the op package calls a token id: the provider's
// Encrypt/Decrypt pass it between op's handlers and the storage, so it
// carries the claims the storage needs (see crypto.go).
type tokenRef struct {
	Kind   string        `json:"k"` // "access" or "refresh"
	Claims *accessClaims `json:"c,omitempty"`
	Grant  string        `json:"g,omitempty"`
	Client string        `json:"cl,omitempty"`
	Sub    string        `json:"s,omitempty"`
	Scope  string        `json:"sc,omitempty"`
	Exp    int64         `json:"e,omitempty"`
	Token  string        `json:"t,omitempty"` // refresh token itself, for revocation
}

const refPrefix = "ref."

// encodeRef serialises r with a MAC under a key that never leaves the
// process. op hands a client's raw token to RevokeToken when it cannot
// decode it, so without the MAC a client could forge a reference to someone
// else's grant and revoke it.
func (p *Provider) encodeRef(r tokenRef) string {
	b, _ := json.Marshal(r)
	body := b64.EncodeToString(b)
	return refPrefix + body + "." + b64.EncodeToString(p.refMAC(body))
}

func (p *Provider) refMAC(body string) []byte {
	m := hmac.New(sha256.New, p.refKey)
	m.Write([]byte(body))
	return m.Sum(nil)[:16]
}

func (p *Provider) decodeRef(s string) (tokenRef, bool) {
	rest, ok := strings.CutPrefix(s, refPrefix)
	if !ok || len(rest) > 4*maxTokenLen {
		return tokenRef{}, false
	}
	body, mac, ok := strings.Cut(rest, ".")
	if !ok {
		return tokenRef{}, false
	}
	got, err := b64.DecodeString(mac)
	if err != nil || !hmac.Equal(got, p.refMAC(body)) {
		return tokenRef{}, false
	}
	b, err := b64.DecodeString(body)
	if err != nil {
		return tokenRef{}, false
	}
	var r tokenRef
	if json.Unmarshal(b, &r) != nil || (r.Kind != "access" && r.Kind != "refresh") || (r.Kind == "access" && r.Claims == nil) {
		return tokenRef{}, false
	}
	return r, true
}

func unix(t time.Time) int64 { return t.Unix() }
