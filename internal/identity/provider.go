package identity

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/rempart/rempart/internal/identity/keys"
	"github.com/rempart/rempart/internal/identity/users"
	"github.com/rempart/rempart/internal/session"
	"github.com/rempart/rempart/internal/session/memory"
)

// Provider is rempart's OpenID provider.
type Provider struct {
	cfg       Config
	log       *slog.Logger
	keys      *keys.Set
	clients   map[string]*client
	pending   *pending
	grants    *grants
	sessions  session.Store
	closeSess bool
	logins    session.Store // logins in progress (Config.Logins)
	closeLog  bool
	users     UserDirectory
	verifier  *Verifier
	revs      *Revocations
	deviceKey []byte
	refKey    []byte                 // MAC key of in-process token references (token.go)
	passkeys  *passkeys              // nil when passkeys are off (passkey.go)
	backup    *backup                // the directory's breaker and the snapshots (backup.go)
	dirWrites *prometheus.CounterVec // directory writes by kind and outcome (dirwrites.go)
	hashing   chan struct{}
	op        *op.Provider
	handler   http.Handler
}

// Endpoint paths, relative to the issuer.
const (
	PathDiscovery  = "/.well-known/openid-configuration"
	PathKeys       = "/keys"
	PathAuthorize  = "/oauth/authorize"
	PathToken      = "/oauth/token"
	PathIntrospect = "/oauth/introspect"
	PathUserinfo   = "/oauth/userinfo"
	PathRevoke     = "/oauth/revoke"
	PathEndSession = "/oauth/end_session"
	PathLogin      = "/login"
)

// New builds a provider. It opens (or creates) the signing keys and the
// device-cookie key in cfg.DataDir.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	p := &Provider{cfg: cfg, log: cfg.Logger, sessions: cfg.Sessions, users: cfg.Users}
	var err error
	keyDir := ""
	if cfg.DataDir != "" {
		keyDir = filepath.Join(cfg.DataDir, "identity")
	}
	// A retired key stays published as long as anything it signed can live,
	// plus a minute for verifiers' clocks.
	retain := max(cfg.AccessTokenTTL, cfg.IDTokenTTL) + time.Minute
	// The device-cookie key lives in the key set; a device.key of an older
	// rempart is kept, so its device cookies stay valid.
	legacyDevice, err := readSecret(keyDir, "device.key")
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if p.keys, err = keys.Open(ctx, keys.Options{Store: cfg.KeyStore, Dir: keyDir, KEK: cfg.KeyKEK,
		Shared: cfg.KeyStore != nil, DeviceKey: legacyDevice, RotateEvery: cfg.KeyRotateEvery,
		RetainFor: retain, Clock: clockFunc(cfg.Now), Logger: cfg.Logger.With("component", "keys")}); err != nil {
		return nil, fmt.Errorf("identity: signing keys: %w", err)
	}
	p.deviceKey = p.keys.DeviceKey()
	if p.refKey, err = loadSecret("", ""); err != nil {
		return nil, err
	}
	if p.passkeys, err = newPasskeys(cfg, keyDir); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if p.sessions == nil {
		m, err := memory.Open(ctx, memory.Options{})
		if err != nil {
			return nil, fmt.Errorf("identity: session store: %w", err)
		}
		p.sessions, p.closeSess = m, true
	}
	if p.users == nil {
		m, err := users.NewMemory(users.Options{Params: cfg.PasswordParams, Derived: cfg.DerivedCustomers})
		if err != nil {
			return nil, fmt.Errorf("identity: users: %w", err)
		}
		p.users = m
	}
	p.backup = newBackup(cfg, p.log)
	p.dirWrites = newDirWritesMetric(cfg.Registerer, p.log)
	p.hashing = make(chan struct{}, runtime.GOMAXPROCS(0))
	if w, ok := p.users.(DirectoryWatcher); ok {
		// A change to a customer's password, phone or status in the
		// directory ends their backup path at once.
		w.Watch(p.dropSnapshots)
	}
	p.clients = demoClients(cfg.Issuer, cfg.IDTokenTTL)
	if p.logins = cfg.Logins; p.logins == nil {
		// The process's own, on the provider's clock: a single node's
		// logins need neither sharing nor durability.
		m, err := memory.Open(ctx, memory.Options{Clock: clockFunc(cfg.Now)})
		if err != nil {
			return nil, fmt.Errorf("identity: logins store: %w", err)
		}
		p.logins, p.closeLog = m, true
	}
	p.pending = newPending(p.logins, cfg.Now, PendingLimits{Max: cfg.MaxPendingLogins, PerSource: cfg.MaxPendingPerSource, PerPrefix: cfg.MaxPendingPerPrefix})
	p.grants = &grants{store: p.sessions, now: cfg.Now, ttl: cfg.GrantTTL, idle: cfg.GrantIdle}
	p.revs = NewRevocations(cfg.Now)
	p.verifier = NewVerifier(VerifierConfig{
		Issuer: cfg.Issuer, Audience: cfg.Audience, Keys: localKeys{p.keys},
		Revocations: p.revs, CacheSize: cfg.VerifierCacheSize, Now: cfg.Now,
	})

	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		return nil, err
	}
	opCfg := &op.Config{
		CryptoKey:             cryptoKey,
		CodeMethodS256:        true,
		AuthMethodPost:        true,
		GrantTypeRefreshToken: true,
		SupportedUILocales:    []language.Tag{language.French, language.English},
		SupportedScopes: []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, oidc.ScopePhone,
			oidc.ScopeOfflineAccess, "payments", "accounts"},
		SupportedClaims: []string{"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "amr", "at_hash",
			"c_hash", "azp", "client_id", "name", "preferred_username", "email", "phone_number", "phone_number_verified"},
	}
	opts := []op.Option{
		op.WithCrypto(tokenCrypto{p}),
		op.WithCustomAuthEndpoint(op.NewEndpoint(strings.TrimPrefix(PathAuthorize, "/"))),
		op.WithCustomTokenEndpoint(op.NewEndpoint(strings.TrimPrefix(PathToken, "/"))),
		op.WithCustomIntrospectionEndpoint(op.NewEndpoint(strings.TrimPrefix(PathIntrospect, "/"))),
		op.WithCustomUserinfoEndpoint(op.NewEndpoint(strings.TrimPrefix(PathUserinfo, "/"))),
		op.WithCustomRevocationEndpoint(op.NewEndpoint(strings.TrimPrefix(PathRevoke, "/"))),
		op.WithCustomEndSessionEndpoint(op.NewEndpoint(strings.TrimPrefix(PathEndSession, "/"))),
		op.WithCustomKeysEndpoint(op.NewEndpoint(strings.TrimPrefix(PathKeys, "/"))),
		// op's hint verifier defaults to RS256; the provider signs with
		// EdDSA only, so without this every id_token_hint (logout,
		// authorize) is refused.
		op.WithIDTokenHintVerifierOpts(op.WithSupportedIDTokenHintSigningAlgorithms(string(keys.Algorithm))),
	}
	if strings.HasPrefix(cfg.Issuer, "http://") {
		opts = append(opts, op.WithAllowInsecure())
	}
	if p.op, err = op.NewProvider(opCfg, storage{p}, op.StaticIssuer(cfg.Issuer), opts...); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	p.handler = p.routes()
	return p, nil
}

type clockFunc func() time.Time

func (f clockFunc) Now() time.Time { return f() }

// readSecret reads a 32-byte secret from dir/name; nil when there is none.
func readSecret(dir, name string) ([]byte, error) {
	if dir == "" {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(b) != 32) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

// loadSecret reads a 32-byte secret from dir/name, creating it (mode 0600)
// when missing; with no dir the secret lives in memory only.
func loadSecret(dir, name string) ([]byte, error) {
	if dir == "" {
		b := make([]byte, 32)
		_, err := rand.Read(b)
		return b, err
	}
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	if err == nil && len(b) == 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	return b, os.Rename(tmp, path)
}

// Handler serves the provider's endpoints, to mount at / on the public
// listener: discovery, /keys, /oauth/*, /login*. Anything else is 404,
// including op's device-authorization and health routes, which rempart does
// not offer here.
func (p *Provider) Handler() http.Handler { return p.handler }

// Verifier returns the in-process access-token verifier: the provider's own
// keys, its revocation list, no I/O.
func (p *Provider) Verifier() *Verifier { return p.verifier }

// Issuer returns the issuer identifier.
func (p *Provider) Issuer() string { return p.cfg.Issuer }

// Keys returns the signing key set (to rotate it from an ops endpoint).
func (p *Provider) Keys() *keys.Set { return p.keys }

// Close releases the session store when the provider opened it.
func (p *Provider) Close() error {
	p.keys.Close()
	if p.closeLog {
		p.logins.Close()
	}
	if p.closeSess {
		return p.sessions.Close()
	}
	return nil
}

func (p *Provider) routes() http.Handler {
	mux := http.NewServeMux()
	for _, path := range []string{PathKeys, PathIntrospect, PathUserinfo, PathRevoke} {
		mux.Handle(path, p.op)
	}
	mux.Handle(PathToken, p.storeOutage(p.op))
	mux.Handle(PathAuthorize, p.bindBrowser(p.op))
	mux.HandleFunc(PathAuthorize+"/callback", p.authorizeCallback)
	mux.HandleFunc(PathEndSession, p.endSession)
	mux.HandleFunc("GET "+PathDiscovery, p.discovery)
	mux.HandleFunc("GET "+PathLogin, p.loginPage)
	mux.HandleFunc("POST "+PathLogin+"/password", p.loginPassword)
	mux.HandleFunc("POST "+PathLogin+"/otp", p.loginOTP)
	mux.HandleFunc("POST "+PathLogin+"/cancel", p.loginCancel)
	mux.HandleFunc("GET "+PathLogin+"/forgot", p.loginForgot)
	p.passkeyRoutes(mux)
	mux.HandleFunc("GET /demo/{$}", p.demoPage)
	mux.HandleFunc("GET /demo/callback", p.demoPage)
	return mux
}

// discovery publishes only what rempart really supports: op's generic
// document also lists implicit flows, the device flow, the JWT bearer grant
// and private_key_jwt, none of which this provider accepts.
func (p *Provider) discovery(w http.ResponseWriter, r *http.Request) {
	ctx := op.ContextWithIssuer(r.Context(), p.cfg.Issuer)
	d := op.CreateDiscoveryConfig(ctx, p.op, storage{p})
	d.DeviceAuthorizationEndpoint = ""
	d.CheckSessionIframe = ""
	d.ResponseTypesSupported = []string{string(oidc.ResponseTypeCode)}
	d.ResponseModesSupported = []string{"query"}
	d.GrantTypesSupported = []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeClientCredentials}
	d.TokenEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodNone, oidc.AuthMethodBasic, oidc.AuthMethodPost}
	d.TokenEndpointAuthSigningAlgValuesSupported = nil
	d.IntrospectionEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost}
	d.IntrospectionEndpointAuthSigningAlgValuesSupported = nil
	d.RevocationEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodNone, oidc.AuthMethodBasic, oidc.AuthMethodPost}
	d.RevocationEndpointAuthSigningAlgValuesSupported = nil
	d.RequestObjectSigningAlgValuesSupported = nil
	d.RequestParameterSupported = false
	d.CodeChallengeMethodsSupported = []oidc.CodeChallengeMethod{oidc.CodeChallengeMethodS256}
	b, err := json.Marshal(d)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var doc map[string]any
	_ = json.Unmarshal(b, &doc)
	// Their defaults (true) would claim support rempart lacks.
	doc["request_uri_parameter_supported"] = false
	doc["claims_parameter_supported"] = false
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_ = json.NewEncoder(w).Encode(doc)
}

// revokeGrant revokes a grant in the store and on the revocation list, so
// the access tokens minted from it stop at every verifier at once.
func (p *Provider) revokeGrant(ctx context.Context, id string) {
	if id == "" {
		return
	}
	p.revs.Revoke(id, p.cfg.Now().Add(p.cfg.AccessTokenTTL+time.Minute))
	if err := p.grants.revoke(ctx, id); err != nil {
		p.log.ErrorContext(ctx, "revoke grant", slog.String("grant", id), slog.Any("err", err))
	}
}
