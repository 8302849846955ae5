package identity

import (
	"context"
	"net/http"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// TestRealClients runs coreos/go-oidc and x/oauth2, unmodified, against the
// provider: discovery, a complete code+PKCE login through the HTML form, ID
// token verification, userinfo, a refresh, and client credentials.
func TestRealClients(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	prov, err := gooidc.NewProvider(ctx, e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	conf := oauth2.Config{
		ClientID:    DemoAppClient,
		Endpoint:    prov.Endpoint(),
		RedirectURL: e.issuer + "/demo/callback",
		Scopes:      []string{gooidc.ScopeOpenID, "profile", "phone", gooidc.ScopeOfflineAccess, "payments"},
	}
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier), gooidc.Nonce("n0nce"))
	b := e.browser(t)
	loc := e.loginForm(t, b, authURL, "alice", "alice-demo-2025")
	if loc.Query().Get("state") != "st4te" || loc.Query().Get("code") == "" {
		t.Fatalf("redirect %s lacks code or state", loc)
	}
	tok, err := conf.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	idTok, err := prov.Verifier(&gooidc.Config{ClientID: DemoAppClient}).Verify(ctx, rawID)
	if err != nil {
		t.Fatalf("go-oidc refused the ID token: %v", err)
	}
	if idTok.Subject != "alice" || idTok.Nonce != "n0nce" {
		t.Fatalf("id token sub %q nonce %q", idTok.Subject, idTok.Nonce)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token for offline_access")
	}
	claims, err := e.p.Verifier().Verify(ctx, tok.AccessToken)
	if err != nil {
		t.Fatalf("edge verifier refused the access token: %v", err)
	}
	if claims.Subject != "alice" || claims.ClientID != DemoAppClient || !claims.HasScope("payments") {
		t.Fatalf("claims %+v", claims)
	}
	ui, err := prov.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	var extra struct {
		Name  string `json:"name"`
		Phone string `json:"phone_number"`
	}
	if err := ui.Claims(&extra); err != nil || ui.Subject != "alice" || extra.Name != "Alice Martin" || extra.Phone == "" {
		t.Fatalf("userinfo %+v %+v %v", ui, extra, err)
	}

	// Refresh: force it by expiring the token locally.
	old := *tok
	stale := *tok
	stale.Expiry = stale.Expiry.Add(-24 * 3600e9)
	ts := conf.TokenSource(ctx, &stale)
	fresh, err := ts.Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if fresh.AccessToken == old.AccessToken || fresh.RefreshToken == old.RefreshToken || fresh.RefreshToken == "" {
		t.Fatal("refresh did not rotate both tokens")
	}
	if _, err := e.p.Verifier().Verify(ctx, fresh.AccessToken); err != nil {
		t.Fatalf("refreshed access token refused: %v", err)
	}

	// Client credentials.
	cc := clientcredentials.Config{ClientID: DemoServiceClient, ClientSecret: DemoServiceSecret,
		TokenURL: prov.Endpoint().TokenURL, Scopes: []string{"payments"}}
	svc, err := cc.Token(ctx)
	if err != nil {
		t.Fatalf("client credentials: %v", err)
	}
	sc, err := e.p.Verifier().Verify(ctx, svc.AccessToken)
	if err != nil || sc.Subject != DemoServiceClient || !sc.HasScope("payments") {
		t.Fatalf("service token %+v %v", sc, err)
	}
	_ = http.StatusOK
}

// TestDemoRedirectsFollowTheIssuer checks the demo app's redirects are the
// issuer's own (and RFC 8252 loopback ones), whatever the issuer.
func TestDemoRedirectsFollowTheIssuer(t *testing.T) {
	app := demoClients("https://bank.example", time.Minute)[DemoAppClient]
	for _, tc := range []struct {
		uri           string
		login, logout bool
	}{
		{"https://bank.example/demo/callback", true, false},
		{"https://bank.example/demo/", false, true},
		{"http://127.0.0.1:8080/demo/callback", false, false},
		{"http://127.0.0.1:8080/demo/", false, false},
		{"http://127.0.0.1:51234/callback", true, false},
		{"http://localhost:51234/callback", true, false},
		{"https://evil.example/demo/callback", false, false},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			login := op.ValidateAuthReqRedirectURI(app, tc.uri, oidc.ResponseTypeCode) == nil
			logout := op.ValidateEndSessionPostLogoutRedirectURI(tc.uri, app) == nil
			if login != tc.login || logout != tc.logout {
				t.Fatalf("accepted for login %v (want %v), for logout %v (want %v)", login, tc.login, logout, tc.logout)
			}
		})
	}
}
