package identity

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// tokenCrypto is the provider's op.Crypto. op calls Encrypt with
// "<token id>:<subject>" to make a bearer access token and with an
// authorization request id to make a code; it calls Decrypt on a presented
// token at userinfo, introspection and revocation. Here the token id is a
// tokenRef carrying the claims, Encrypt signs them as an RFC 9068 JWT
// (typ at+jwt, which op's own JWT access tokens lack), codes are random, and
// Decrypt verifies a JWT (or looks up a refresh token) and hands the claims
// back the same way.
type tokenCrypto struct{ p *Provider }

var _ op.Crypto = tokenCrypto{}

func (c tokenCrypto) Encrypt(s string) (string, error) {
	if strings.HasPrefix(s, refPrefix) {
		id, _, _ := strings.Cut(s, ":")
		ref, ok := c.p.decodeRef(id)
		if !ok || ref.Kind != "access" {
			return "", errors.New("malformed access token reference")
		}
		k, err := c.p.keys.Signing()
		if err != nil {
			return "", err
		}
		return signJWT(k.ID, k.Private, AccessTokenType, ref.Claims)
	}
	// An authorization request id: the code is a fresh random value that
	// SaveAuthCode ties to the request; nothing ever decrypts it.
	return randomID(32), nil
}

func (c tokenCrypto) Decrypt(s string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if id, ok := parseRefreshToken(s); ok {
		g, err := c.p.grants.lookup(ctx, s)
		if err != nil {
			return "", err
		}
		return c.p.encodeRef(tokenRef{Kind: "refresh", Grant: id, Client: g.clientID, Sub: g.subject,
			Scope: strings.Join(g.scopes, " "), Exp: g.expires.Unix()}) + ":" + g.subject, nil
	}
	cl, err := c.p.verifier.Verify(ctx, s)
	if err != nil {
		return "", err
	}
	ac := &accessClaims{
		Issuer: c.p.cfg.Issuer, Subject: cl.Subject, Audience: []string{c.p.cfg.Audience}, ClientID: cl.ClientID,
		Scope: strings.Join(cl.Scopes, " "), IssuedAt: cl.IssuedAt.Unix(), Expiry: cl.Expiry.Unix(), ID: cl.ID,
		AMR: cl.AMR, Grant: cl.Grant,
	}
	if !cl.AuthTime.IsZero() {
		ac.AuthTime = cl.AuthTime.Unix()
	}
	return c.p.encodeRef(tokenRef{Kind: "access", Claims: ac}) + ":" + cl.Subject, nil
}

// accessRef builds the claims of a new access token and returns them as the
// token id op passes to Encrypt.
func (p *Provider) accessRef(sub, clientID string, scopes []string, authTime time.Time, amr []string, grant string) (string, time.Time, error) {
	if strings.Contains(sub, ":") {
		return "", time.Time{}, errors.New("subject must not contain ':'")
	}
	now := p.cfg.Now()
	exp := now.Add(p.cfg.AccessTokenTTL)
	c := &accessClaims{
		Issuer: p.cfg.Issuer, Subject: sub, Audience: []string{p.cfg.Audience}, ClientID: clientID,
		Scope: strings.Join(scopes, " "), IssuedAt: now.Unix(), Expiry: exp.Unix(), ID: randomID(16),
		AMR: amr, Grant: grant,
	}
	if !authTime.IsZero() {
		c.AuthTime = authTime.Unix()
	}
	return p.encodeRef(tokenRef{Kind: "access", Claims: c}), exp, nil
}
