package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/rempart/rempart/internal/identity/keys"
)

// storage is the provider's op.Storage: clients, logins in progress, grants
// in the session store, keys. It is unexported so op's many methods stay out
// of the Provider's API.
type storage struct{ p *Provider }

var (
	_ op.Storage                   = storage{}
	_ op.ClientCredentialsStorage  = storage{}
	_ op.CanSetUserinfoFromRequest = storage{}
)

var errUnknownClient = errors.New("unknown client")

func (s storage) client(id string) (*client, error) {
	c, ok := s.p.clients[id]
	if !ok {
		return nil, errUnknownClient
	}
	return c, nil
}

// CreateAuthRequest stores a validated authorization request. PKCE with S256
// is required of every client: a request without a challenge, or with the
// plain method, is refused here, before any login starts.
func (s storage) CreateAuthRequest(ctx context.Context, r *oidc.AuthRequest, hintSubject string) (op.AuthRequest, error) {
	if r.ResponseType != oidc.ResponseTypeCode {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("only response_type=code is supported")
	}
	if r.CodeChallenge == "" {
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge required: PKCE with S256")
	}
	if r.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	}
	if len(r.State) > 512 || len(r.Nonce) > 512 {
		return nil, oidc.ErrInvalidRequest().WithDescription("state or nonce too long")
	}
	flow, _ := ctx.Value(flowKey{}).(string)
	if flow == "" {
		return nil, oidc.ErrServerError().WithDescription("authorization request not bound to a browser")
	}
	a := &authRequest{
		id:           "ar_" + randomID(24),
		clientID:     r.ClientID,
		redirectURI:  r.RedirectURI,
		scopes:       cloneStrings(r.Scopes),
		state:        r.State,
		nonce:        r.Nonce,
		responseType: r.ResponseType,
		responseMode: r.ResponseMode,
		challenge:    &oidc.CodeChallenge{Challenge: r.CodeChallenge, Method: r.CodeChallengeMethod},
		created:      s.p.cfg.Now(),
		flow:         flowHash(flow),
		hintSubject:  hintSubject,
	}
	client, _ := ctx.Value(clientKey{}).(netip.Addr)
	a.source, a.prefix = sourceOf(client)
	// op has already refused prompt=none with anything else, and turned
	// prompt=login into max_age=0.
	a.promptNone = slices.Contains(r.Prompt, oidc.PromptNone)
	if r.MaxAge != nil {
		a.hasMaxAge, a.maxAge = true, time.Duration(*r.MaxAge)*time.Second
		a.forceLogin = *r.MaxAge == 0
	}
	a.forceLogin = a.forceLogin || slices.Contains(r.Prompt, oidc.PromptLogin)
	if len(r.UILocales) > 0 {
		a.lang = r.UILocales[0].String()
	}
	if err := s.p.pending.add(ctx, a); err != nil {
		return nil, oidc.ErrServerError().WithDescription("too many logins in progress, retry later")
	}
	c := *a
	return &c, nil
}

func (s storage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	return s.p.pending.get(ctx, id)
}

// AuthRequestByCode spends the code. A second use is refused and revokes the
// grant the first exchange created, so a stolen code replayed after the
// legitimate exchange takes the legitimate tokens down with it.
func (s storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	a, grantID, err := s.p.pending.redeem(ctx, code)
	if errors.Is(err, errCodeReplayed) {
		s.p.log.WarnContext(ctx, "authorization code replayed; revoking its grant", slog.String("grant", grantID))
		s.p.revokeGrant(ctx, grantID)
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (s storage) SaveAuthCode(ctx context.Context, id, code string) error {
	return s.p.pending.saveCode(ctx, id, code)
}

func (s storage) DeleteAuthRequest(ctx context.Context, id string) error {
	s.p.pending.remove(ctx, id)
	return nil
}

// CreateAccessToken returns the id op turns into an access token through the
// provider's Crypto (see crypto.go).
func (s storage) CreateAccessToken(ctx context.Context, r op.TokenRequest) (string, time.Time, error) {
	switch r := r.(type) {
	case *authRequest:
		// Every login gets a grant record, with or without a refresh token:
		// userinfo and revocation go through it.
		if _, err := s.p.grants.create(ctx, r, false); err != nil {
			return "", time.Time{}, err
		}
		return s.p.accessRef(r.subject, r.clientID, r.scopes, r.authTime, r.amr, r.grant)
	case *ccRequest:
		return s.p.accessRef(r.client, r.client, r.scopes, time.Time{}, nil, "")
	}
	return "", time.Time{}, fmt.Errorf("unsupported token request %T", r)
}

func (s storage) CreateAccessAndRefreshTokens(ctx context.Context, r op.TokenRequest, current string) (string, string, time.Time, error) {
	switch r := r.(type) {
	case *authRequest:
		rt, err := s.p.grants.create(ctx, r, true)
		if err != nil {
			return "", "", time.Time{}, err
		}
		id, exp, err := s.p.accessRef(r.subject, r.clientID, r.scopes, r.authTime, r.amr, r.grant)
		return id, rt, exp, err
	case *grant:
		rt, err := s.p.grants.rotate(ctx, r, current)
		if errors.Is(err, errReuse) {
			s.p.log.WarnContext(ctx, "refresh token reused; revoking its grant", slog.String("grant", r.id), slog.String("client", r.clientID))
			s.p.revokeGrant(ctx, r.id)
			return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("refresh token already used; grant revoked")
		}
		if err != nil {
			return "", "", time.Time{}, oidc.ErrInvalidGrant().WithParent(err)
		}
		id, exp, err := s.p.accessRef(r.subject, r.clientID, r.current, r.authTime, r.amr, r.id)
		return id, rt, exp, err
	}
	return "", "", time.Time{}, fmt.Errorf("unsupported token request %T", r)
}

func (s storage) TokenRequestByRefreshToken(ctx context.Context, tok string) (op.RefreshTokenRequest, error) {
	g, err := s.p.grants.lookup(ctx, tok)
	if errors.Is(err, errReuse) {
		id, _ := parseRefreshToken(tok)
		s.p.log.WarnContext(ctx, "refresh token reused; revoking its grant", slog.String("grant", id))
		s.p.revokeGrant(ctx, id)
		return nil, oidc.ErrInvalidGrant().WithDescription("refresh token already used; grant revoked")
	}
	if err != nil {
		return nil, err
	}
	return &g, nil
}

// TerminateSession ends the customer's browser sessions and revokes the
// client's grants (the customer logs out of that app everywhere). The
// provider's own end_session handler (logout.go) calls it; op does not.
func (s storage) TerminateSession(ctx context.Context, userID, clientID string) error {
	if userID == "" {
		return nil
	}
	list, err := s.p.sessions.ListSubject(ctx, userID)
	if err != nil {
		return err
	}
	for _, x := range list {
		switch {
		case strings.HasPrefix(x.ID, browserPrefix):
			_ = s.p.sessions.Delete(ctx, x.ID)
		case strings.HasPrefix(x.ID, grantPrefix) && x.ClientID == clientID:
			s.p.revokeGrant(ctx, strings.TrimPrefix(x.ID, grantPrefix))
		}
	}
	return nil
}

// RevokeToken revokes a refresh token's grant or puts an access token on the
// revocation list. Unknown tokens succeed, as RFC 7009 section 2.2 asks.
func (s storage) RevokeToken(ctx context.Context, tokenOrID, _, clientID string) *oidc.Error {
	ref, ok := s.p.decodeRef(tokenOrID)
	if !ok {
		return nil
	}
	switch ref.Kind {
	case "access":
		if ref.Claims.ClientID != clientID {
			return oidc.ErrUnauthorizedClient().WithDescription("token was issued to another client")
		}
		s.p.revs.Revoke(ref.Claims.ID, time.Unix(ref.Claims.Expiry, 0))
	case "refresh":
		if ref.Client != clientID {
			return oidc.ErrUnauthorizedClient().WithDescription("token was issued to another client")
		}
		s.p.revokeGrant(ctx, ref.Grant)
	}
	return nil
}

func (s storage) GetRefreshTokenInfo(ctx context.Context, _ string, tok string) (string, string, error) {
	id, ok := parseRefreshToken(tok)
	if !ok {
		return "", "", op.ErrInvalidRefreshToken
	}
	g, err := s.p.grants.get(ctx, id)
	if errors.Is(err, ErrGrantGone) {
		return "", "", op.ErrInvalidRefreshToken
	}
	if err != nil {
		return "", "", err
	}
	return g.subject, s.p.encodeRef(tokenRef{Kind: "refresh", Grant: g.id, Client: g.clientID, Sub: g.subject}), nil
}

// signingKey adapts keys.Key to op.SigningKey.
type signingKey struct{ k keys.Key }

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return keys.Algorithm }
func (k signingKey) Key() any                                    { return k.k.Private }
func (k signingKey) ID() string                                  { return k.k.ID }

// publicKey adapts keys.Key to op.Key.
type publicKey struct{ k keys.Key }

func (k publicKey) ID() string                         { return k.k.ID }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return keys.Algorithm }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return k.k.Public() }

func (s storage) SigningKey(context.Context) (op.SigningKey, error) {
	k, err := s.p.keys.Signing()
	if err != nil {
		return nil, err
	}
	return signingKey{k}, nil
}

func (s storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{keys.Algorithm}, nil
}

func (s storage) KeySet(context.Context) ([]op.Key, error) {
	var out []op.Key
	for _, k := range s.p.keys.Published() {
		out = append(out, publicKey{k})
	}
	return out, nil
}

func (s storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	return s.client(id)
}

func (s storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	c, err := s.client(id)
	if err != nil || !c.checkSecret(secret) {
		return errors.New("invalid client credentials")
	}
	return nil
}

func (s storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills ID-token claims from the login or the grant,
// never from the user directory.
func (s storage) SetUserinfoFromRequest(_ context.Context, ui *oidc.UserInfo, r op.IDTokenRequest, scopes []string) error {
	switch r := r.(type) {
	case *authRequest:
		fillUserinfo(ui, r.subject, r.profile, scopes)
	case *grant:
		fillUserinfo(ui, r.subject, r.profile, scopes)
	}
	return nil
}

func fillUserinfo(ui *oidc.UserInfo, sub string, profile map[string]string, scopes []string) {
	ui.Subject = sub
	for _, sc := range scopes {
		switch sc {
		case oidc.ScopeProfile:
			ui.Name = profile[attrName]
			ui.PreferredUsername = sub
		case oidc.ScopeEmail:
			ui.Email = profile[attrEmail]
		case oidc.ScopePhone:
			ui.PhoneNumber = profile[attrPhone]
			ui.PhoneNumberVerified = profile[attrPhone] != ""
		}
	}
}

// SetUserinfoFromToken answers userinfo from the token's grant.
func (s storage) SetUserinfoFromToken(ctx context.Context, ui *oidc.UserInfo, tokenID, _, _ string) error {
	ref, ok := s.p.decodeRef(tokenID)
	if !ok || ref.Kind != "access" || ref.Claims.Grant == "" {
		return errors.New("not a customer access token")
	}
	scopes := strings.Fields(ref.Claims.Scope)
	if !containsString(scopes, oidc.ScopeOpenID) {
		return errors.New("token lacks the openid scope")
	}
	g, err := s.p.grants.get(ctx, ref.Claims.Grant)
	if err != nil {
		return err
	}
	fillUserinfo(ui, g.subject, g.profile, scopes)
	return nil
}

// SetIntrospectionFromToken answers RFC 7662 introspection. The token was
// already verified (and checked against the revocation list) by Decrypt.
func (s storage) SetIntrospectionFromToken(ctx context.Context, r *oidc.IntrospectionResponse, tokenID, _, _ string) error {
	ref, ok := s.p.decodeRef(tokenID)
	if !ok {
		return errors.New("unknown token")
	}
	switch ref.Kind {
	case "access":
		c := ref.Claims
		r.Scope = strings.Fields(c.Scope)
		r.ClientID = c.ClientID
		r.TokenType = oidc.BearerToken
		r.Expiration = oidc.FromTime(time.Unix(c.Expiry, 0))
		r.IssuedAt = oidc.FromTime(time.Unix(c.IssuedAt, 0))
		r.Subject = c.Subject
		r.Audience = c.Audience
		r.Issuer = c.Issuer
		r.JWTID = c.ID
		r.AuthenticationMethodsReferences = c.AMR
		if c.AuthTime != 0 {
			r.AuthTime = oidc.FromTime(time.Unix(c.AuthTime, 0))
		}
	case "refresh":
		r.Scope = strings.Fields(ref.Scope)
		r.ClientID = ref.Client
		r.TokenType = "refresh_token"
		r.Expiration = oidc.FromTime(time.Unix(ref.Exp, 0))
		r.Subject = ref.Sub
		r.Issuer = s.p.cfg.Issuer
	}
	return nil
}

func (s storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("private_key_jwt is not supported")
}

func (s storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("the JWT profile grant is not supported")
}

func (s storage) Health(context.Context) error { return nil }

func (s storage) ClientCredentials(_ context.Context, id, secret string) (op.Client, error) {
	c, err := s.client(id)
	if err != nil || !c.checkSecret(secret) {
		return nil, errors.New("invalid client credentials")
	}
	return c, nil
}

// ccRequest is a client-credentials token request.
type ccRequest struct {
	client string
	scopes []string
}

func (r *ccRequest) GetSubject() string    { return r.client }
func (r *ccRequest) GetAudience() []string { return []string{r.client} }
func (r *ccRequest) GetScopes() []string   { return r.scopes }

func (s storage) ClientCredentialsTokenRequest(_ context.Context, id string, scopes []string) (op.TokenRequest, error) {
	c, err := s.client(id)
	if err != nil {
		return nil, err
	}
	for _, sc := range scopes {
		if !c.IsScopeAllowed(sc) {
			return nil, oidc.ErrInvalidScope().WithDescription("scope not allowed for this client")
		}
	}
	return &ccRequest{client: id, scopes: scopes}, nil
}

func containsString(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
