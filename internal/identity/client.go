package identity

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/url"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// client is a registered OAuth client.
type client struct {
	id           string
	secretHash   []byte // SHA-256 of the secret; nil for public clients
	redirectURIs []string
	postLogout   []string
	appType      op.ApplicationType
	authMethod   oidc.AuthMethod
	responses    []oidc.ResponseType
	grants       []oidc.GrantType
	scopes       []string // scopes beyond the OIDC standard ones
	idTTL        time.Duration
}

var _ op.Client = (*client)(nil)

// demoClients are the clients the embedded defaults ship: a public app
// (authorization code with PKCE) and a confidential service (client
// credentials). The app's web redirects are derived from the issuer, so a
// provider at https://bank.example sends codes and logouts nowhere else;
// its native redirects are the loopback ones of RFC 8252 section 7.3 (any
// port, the app listening on the customer's own machine; the drill uses
// http://127.0.0.1/callback), which never leave that machine.
func demoClients(issuer string, idTTL time.Duration) map[string]*client {
	sum := sha256.Sum256([]byte(DemoServiceSecret))
	app := &client{
		id: DemoAppClient,
		redirectURIs: []string{
			issuer + "/demo/callback",
			"http://localhost/callback",
			"http://127.0.0.1/callback",
		},
		postLogout: []string{issuer + "/demo/"},
		appType:    op.ApplicationTypeNative,
		authMethod: oidc.AuthMethodNone,
		responses:  []oidc.ResponseType{oidc.ResponseTypeCode},
		grants:     []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken},
		scopes:     []string{"payments", "accounts"},
		idTTL:      idTTL,
	}
	svc := &client{
		id:         DemoServiceClient,
		secretHash: sum[:],
		appType:    op.ApplicationTypeWeb,
		authMethod: oidc.AuthMethodBasic,
		grants:     []oidc.GrantType{oidc.GrantTypeClientCredentials},
		scopes:     []string{"payments", "accounts", "introspect"},
		idTTL:      idTTL,
	}
	return map[string]*client{app.id: app, svc.id: svc}
}

// checkSecret compares in constant time: both sides are hashed first so
// neither the length nor a prefix of the secret leaks through timing.
func (c *client) checkSecret(secret string) bool {
	if c.secretHash == nil {
		return false
	}
	sum := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(sum[:], c.secretHash) == 1
}

func (c *client) public() bool { return c.authMethod == oidc.AuthMethodNone }

func (c *client) GetID() string                       { return c.id }
func (c *client) RedirectURIs() []string              { return c.redirectURIs }
func (c *client) PostLogoutRedirectURIs() []string    { return c.postLogout }
func (c *client) ApplicationType() op.ApplicationType { return c.appType }
func (c *client) AuthMethod() oidc.AuthMethod         { return c.authMethod }
func (c *client) ResponseTypes() []oidc.ResponseType  { return c.responses }
func (c *client) GrantTypes() []oidc.GrantType        { return c.grants }
func (c *client) LoginURL(id string) string           { return "/login?id=" + url.QueryEscape(id) }

// AccessTokenType is "bearer" for op's sake only: the provider's Crypto
// turns the token id op hands it into a signed RFC 9068 JWT (see crypto.go),
// because op's own JWT access tokens carry typ "JWT" rather than "at+jwt".
func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration      { return c.idTTL }
func (c *client) DevMode() bool                       { return false }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) IsScopeAllowed(scope string) bool     { return slices.Contains(c.scopes, scope) }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }
