package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

type oauthErr struct {
	Error string `json:"error"`
	Desc  string `json:"error_description"`
}

// postToken posts a form to the token endpoint and decodes the answer.
func (e *env) post(t testing.TB, path string, form url.Values, basic ...string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if len(basic) == 2 {
		req.SetBasicAuth(basic[0], basic[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	var m map[string]any
	_ = json.Unmarshal([]byte(body), &m)
	if m == nil {
		m = map[string]any{"raw": body}
	}
	return resp.StatusCode, m
}

func (e *env) authURL(redirect, challenge, method string, scopes ...string) string {
	if len(scopes) == 0 {
		scopes = []string{"openid", "offline_access", "payments"}
	}
	q := url.Values{"client_id": {DemoAppClient}, "response_type": {"code"}, "redirect_uri": {redirect},
		"scope": {strings.Join(scopes, " ")}, "state": {"s"}}
	if challenge != "" {
		q.Set("code_challenge", challenge)
	}
	if method != "" {
		q.Set("code_challenge_method", method)
	}
	return e.issuer + PathAuthorize + "?" + q.Encode()
}

// grant logs alice in and returns the code's redirect and the PKCE verifier.
func (e *env) code(t testing.TB) (code, verifier string) {
	t.Helper()
	verifier = oauth2.GenerateVerifier()
	loc := e.loginForm(t, e.browser(t), e.authURL(e.issuer+"/demo/callback", oauth2.S256ChallengeFromVerifier(verifier), "S256"),
		"alice", "alice-demo-2025")
	return loc.Query().Get("code"), verifier
}

func (e *env) exchange(t testing.TB, code, verifier string) (int, map[string]any) {
	return e.post(t, PathToken, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {e.issuer + "/demo/callback"}, "client_id": {DemoAppClient}, "code_verifier": {verifier}})
}

func (e *env) refresh(t testing.TB, rt string) (int, map[string]any) {
	return e.post(t, PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {DemoAppClient}})
}

func wantOAuthError(t testing.TB, status int, m map[string]any, code string) {
	t.Helper()
	if m["error"] != code || status < 400 {
		t.Fatalf("got %d %v, want error %q", status, m, code)
	}
}

func TestAuthorizeRefusals(t *testing.T) {
	e := newEnv(t)
	good := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		name, redirect, challenge, method string
		wantRedirect                      bool // error delivered to the (registered) redirect URI
		wantErr                           string
	}{
		{"unregistered host", "https://evil.example/demo/callback", good, "S256", false, "invalid_request"},
		{"unregistered path", e.issuer + "/demo/callback/../evil", good, "S256", false, "invalid_request"},
		{"registered plus query", e.issuer + "/demo/callback?x=1", good, "S256", false, "invalid_request"},
		{"missing PKCE", e.issuer + "/demo/callback", "", "", true, "invalid_request"},
		{"plain PKCE", e.issuer + "/demo/callback", good, "plain", true, "invalid_request"},
		{"PKCE without method (plain)", e.issuer + "/demo/callback", good, "", true, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := noRedirect.Get(e.authURL(tc.redirect, tc.challenge, tc.method))
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			loc, _ := resp.Location()
			if !tc.wantRedirect {
				if loc != nil && !strings.HasPrefix(loc.String(), e.issuer+"/login") {
					t.Fatalf("redirected to %s", loc)
				}
				// op answers without redirecting, in plain text (invalid_request).
				if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "redirect_uri") {
					t.Fatalf("status %d body %q", resp.StatusCode, body)
				}
				return
			}
			if loc == nil || loc.Query().Get("error") != tc.wantErr || !strings.HasPrefix(loc.String(), e.issuer+"/demo/callback") {
				t.Fatalf("status %d location %v", resp.StatusCode, loc)
			}
		})
	}
}

func TestCodeExchangeRefusals(t *testing.T) {
	e := newEnv(t)
	t.Run("wrong verifier", func(t *testing.T) {
		code, _ := e.code(t)
		st, m := e.exchange(t, code, oauth2.GenerateVerifier())
		wantOAuthError(t, st, m, "invalid_grant")
	})
	t.Run("no verifier", func(t *testing.T) {
		code, _ := e.code(t)
		st, m := e.exchange(t, code, "")
		wantOAuthError(t, st, m, "invalid_request")
	})
	t.Run("replay revokes the first exchange's tokens", func(t *testing.T) {
		code, v := e.code(t)
		st, m := e.exchange(t, code, v)
		if st != http.StatusOK {
			t.Fatalf("first exchange: %d %v", st, m)
		}
		at, rt := m["access_token"].(string), m["refresh_token"].(string)
		if _, err := e.p.Verifier().Verify(context.Background(), at); err != nil {
			t.Fatal(err)
		}
		st, m = e.exchange(t, code, v)
		wantOAuthError(t, st, m, "invalid_grant")
		if _, err := e.p.Verifier().Verify(context.Background(), at); !errors.Is(err, ErrRevoked) {
			t.Fatalf("access token of a replayed code still accepted: %v", err)
		}
		st, m = e.refresh(t, rt)
		wantOAuthError(t, st, m, "invalid_grant")
	})
}

func TestRefreshReuseRevokesFamily(t *testing.T) {
	e := newEnv(t)
	code, v := e.code(t)
	_, m := e.exchange(t, code, v)
	rt1 := m["refresh_token"].(string)
	st, m := e.refresh(t, rt1)
	if st != http.StatusOK {
		t.Fatalf("refresh: %d %v", st, m)
	}
	rt2, at2 := m["refresh_token"].(string), m["access_token"].(string)
	if rt2 == rt1 {
		t.Fatal("refresh token not rotated")
	}
	st, m = e.refresh(t, rt1) // the attacker replays the stolen, spent token
	wantOAuthError(t, st, m, "invalid_grant")
	st, m = e.refresh(t, rt2) // the whole family is gone, the current token too
	wantOAuthError(t, st, m, "invalid_grant")
	if _, err := e.p.Verifier().Verify(context.Background(), at2); !errors.Is(err, ErrRevoked) {
		t.Fatalf("access token of a revoked family still accepted: %v", err)
	}
	if !strings.Contains(e.logs.String(), "refresh token reused") {
		t.Fatal("reuse not logged")
	}
}

func TestClientAuthentication(t *testing.T) {
	e := newEnv(t)
	st, m := e.post(t, PathToken, url.Values{"grant_type": {"client_credentials"}}, DemoServiceClient, "wrong")
	wantOAuthError(t, st, m, "invalid_client")
	st, m = e.post(t, PathToken, url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}, DemoServiceClient, DemoServiceSecret)
	wantOAuthError(t, st, m, "invalid_scope")
	// The public client may not use client credentials.
	st, m = e.post(t, PathToken, url.Values{"grant_type": {"client_credentials"}, "client_id": {DemoAppClient}})
	if st < 400 {
		t.Fatalf("public client got a client-credentials token: %v", m)
	}
	for _, g := range []string{"password", "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:jwt-bearer"} {
		st, m = e.post(t, PathToken, url.Values{"grant_type": {g}}, DemoServiceClient, DemoServiceSecret)
		if st < 400 {
			t.Fatalf("grant %s accepted: %v", g, m)
		}
	}
}

func TestIntrospectionAndRevocation(t *testing.T) {
	e := newEnv(t)
	st, m := e.post(t, PathToken, url.Values{"grant_type": {"client_credentials"}, "scope": {"payments"}}, DemoServiceClient, DemoServiceSecret)
	if st != 200 {
		t.Fatal(m)
	}
	at := m["access_token"].(string)
	_, m = e.post(t, PathIntrospect, url.Values{"token": {at}}, DemoServiceClient, DemoServiceSecret)
	if m["active"] != true || m["client_id"] != DemoServiceClient || m["scope"] != "payments" {
		t.Fatalf("introspection %v", m)
	}
	st, m = e.post(t, PathRevoke, url.Values{"token": {at}, "token_type_hint": {"access_token"}}, DemoServiceClient, DemoServiceSecret)
	if st != 200 {
		t.Fatalf("revoke: %d %v", st, m)
	}
	_, m = e.post(t, PathIntrospect, url.Values{"token": {at}}, DemoServiceClient, DemoServiceSecret)
	if m["active"] != false {
		t.Fatalf("revoked token still active: %v", m)
	}
	if _, err := e.p.Verifier().Verify(context.Background(), at); !errors.Is(err, ErrRevoked) {
		t.Fatalf("verifier accepted a revoked token: %v", err)
	}
	// Refresh tokens: introspected active, then revoked with their family.
	code, v := e.code(t)
	_, m = e.exchange(t, code, v)
	rt := m["refresh_token"].(string)
	_, m = e.post(t, PathIntrospect, url.Values{"token": {rt}}, DemoServiceClient, DemoServiceSecret)
	if m["active"] != true || m["sub"] != "alice" {
		t.Fatalf("refresh introspection %v", m)
	}
	st, _ = e.post(t, PathRevoke, url.Values{"token": {rt}, "client_id": {DemoAppClient}})
	if st != 200 {
		t.Fatalf("revoke refresh: %d", st)
	}
	st, m = e.refresh(t, rt)
	wantOAuthError(t, st, m, "invalid_grant")
	// A forged token reference (op passes undecodable tokens through to
	// the storage) must not revoke anything.
	code, v = e.code(t)
	_, m = e.exchange(t, code, v)
	rt = m["refresh_token"].(string)
	grantID, _ := parseRefreshToken(rt)
	body, _ := json.Marshal(tokenRef{Kind: "refresh", Grant: grantID, Client: DemoAppClient})
	forged := refPrefix + b64.EncodeToString(body) + "." + b64.EncodeToString(make([]byte, 16))
	e.post(t, PathRevoke, url.Values{"token": {forged}, "client_id": {DemoAppClient}})
	if st, m := e.refresh(t, rt); st != 200 {
		t.Fatalf("forged reference revoked a grant: %d %v", st, m)
	}
	// Unknown tokens revoke fine (RFC 7009, section 2.2).
	if st, _ := e.post(t, PathRevoke, url.Values{"token": {"garbage"}}, DemoServiceClient, DemoServiceSecret); st != 200 {
		t.Fatalf("revoking garbage: %d", st)
	}
}

// forge signs arbitrary header and claims with the provider's current key.
func forge(t testing.TB, e *env, header map[string]any, claims map[string]any, hmacKey []byte) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	signed := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	switch header["alg"] {
	case "none":
		return signed + "."
	case "HS256":
		m := hmac.New(sha256.New, hmacKey)
		m.Write([]byte(signed))
		return signed + "." + b64.EncodeToString(m.Sum(nil))
	}
	k, _ := e.p.keys.Signing()
	return signed + "." + b64.EncodeToString(ed25519.Sign(k.Private, []byte(signed)))
}

func TestVerifierRefusals(t *testing.T) {
	e := newEnv(t)
	k, _ := e.p.keys.Signing()
	now := e.clock.Now()
	claims := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{"iss": e.issuer, "sub": "alice", "aud": []string{"rempart"}, "client_id": DemoAppClient,
			"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": randomID(8), "scope": "payments"}
		if mod != nil {
			mod(c)
		}
		return c
	}
	hdr := func(alg, typ string) map[string]any { return map[string]any{"alg": alg, "kid": k.ID, "typ": typ} }
	good := forge(t, e, hdr("EdDSA", "at+jwt"), claims(nil), nil)
	if _, err := e.p.Verifier().Verify(context.Background(), good); err != nil {
		t.Fatalf("control token refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		tok  string
		want error
	}{
		{"alg none", forge(t, e, hdr("none", "at+jwt"), claims(nil), nil), ErrInvalidToken},
		{"HS256 keyed with the public key", forge(t, e, hdr("HS256", "at+jwt"), claims(nil), k.Public()), ErrInvalidToken},
		{"RS256 header on an EdDSA signature", forge(t, e, hdr("RS256", "at+jwt"), claims(nil), nil), ErrInvalidToken},
		{"ID token typ", forge(t, e, hdr("EdDSA", "JWT"), claims(nil), nil), ErrInvalidToken},
		{"expired", forge(t, e, hdr("EdDSA", "at+jwt"), claims(func(c map[string]any) { c["exp"] = now.Add(-time.Second).Unix() }), nil), ErrExpired},
		{"not yet valid", forge(t, e, hdr("EdDSA", "at+jwt"), claims(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() }), nil), ErrNotYetValid},
		{"wrong audience", forge(t, e, hdr("EdDSA", "at+jwt"), claims(func(c map[string]any) { c["aud"] = "other-api" }), nil), ErrInvalidToken},
		{"wrong issuer", forge(t, e, hdr("EdDSA", "at+jwt"), claims(func(c map[string]any) { c["iss"] = "https://evil.example" }), nil), ErrInvalidToken},
		{"unknown kid", forge(t, e, map[string]any{"alg": "EdDSA", "kid": "nope", "typ": "at+jwt"}, claims(nil), nil), ErrInvalidToken},
		{"tampered payload", good[:strings.IndexByte(good, '.')+1] + b64.EncodeToString([]byte(`{"sub":"mallory"}`)) + good[strings.LastIndexByte(good, '.'):], ErrInvalidToken},
		{"garbage", "a.b.c", ErrInvalidToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.p.Verifier().Verify(context.Background(), tc.tok); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	// A cached token still expires and is still revocable.
	e.clock.Add(2 * time.Minute)
	if _, err := e.p.Verifier().Verify(context.Background(), good); !errors.Is(err, ErrExpired) {
		t.Fatalf("cached token outlived its exp: %v", err)
	}
}

func TestDeviceCookie(t *testing.T) {
	e := newEnv(t)
	v := e.p.deviceCookieValue("alice", e.clock.Now())
	req := func(val string) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.AddCookie(&http.Cookie{Name: DeviceCookieName, Value: val})
		return r
	}
	if !e.p.VerifyDeviceCookie(req(v), "alice") {
		t.Fatal("valid cookie refused")
	}
	parts := strings.Split(v, ".")
	flip := func(s string) string {
		b := []byte(s)
		if b[0] == 'A' {
			b[0] = 'B'
		} else {
			b[0] = 'A'
		}
		return string(b)
	}
	for _, tc := range []struct{ name, val, account string }{
		{"other account", v, "bruno"},
		{"account swapped", b64.EncodeToString([]byte("bruno")) + "." + strings.Join(parts[1:], "."), "bruno"},
		{"nonce changed", parts[0] + "." + flip(parts[1]) + "." + parts[2] + "." + parts[3], "alice"},
		{"issued moved", parts[0] + "." + parts[1] + "." + "9999999999" + "." + parts[3], "alice"},
		{"mac changed", parts[0] + "." + parts[1] + "." + parts[2] + "." + flip(parts[3]), "alice"},
		{"truncated", strings.Join(parts[:3], "."), "alice"},
		{"other key", (&Provider{deviceKey: make([]byte, 32), cfg: e.p.cfg}).deviceCookieValue("alice", e.clock.Now()), "alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if e.p.VerifyDeviceCookie(req(tc.val), tc.account) {
				t.Fatal("tampered cookie accepted")
			}
		})
	}
	e.clock.Add(181 * 24 * time.Hour)
	if e.p.VerifyDeviceCookie(req(v), "alice") {
		t.Fatal("expired cookie accepted")
	}
}

// TestNoSecretsInLogs runs every flow with debug logging (the provider's and
// slog's default, which op uses) and checks that no password, SMS code,
// token or client secret appears in any line.
func TestNoSecretsInLogs(t *testing.T) {
	e := newEnv(t)
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(prev)

	code, v := e.code(t)
	otp := e.sms.lastCode(t)
	_, m := e.exchange(t, code, v)
	at, rt, idt := m["access_token"].(string), m["refresh_token"].(string), m["id_token"].(string)
	_, m = e.refresh(t, rt)
	rt2 := m["refresh_token"].(string)
	e.refresh(t, rt) // reuse: logged as a warning, without the token
	e.exchange(t, code, v)
	_, m = e.post(t, PathToken, url.Values{"grant_type": {"client_credentials"}}, DemoServiceClient, DemoServiceSecret)
	cc := m["access_token"].(string)
	e.post(t, PathIntrospect, url.Values{"token": {cc}}, DemoServiceClient, DemoServiceSecret)
	e.post(t, PathRevoke, url.Values{"token": {cc}}, DemoServiceClient, DemoServiceSecret)
	e.post(t, PathToken, url.Values{"grant_type": {"client_credentials"}}, DemoServiceClient, "wrong-secret-123")
	b := e.browser(t)
	resp, _ := b.Get(e.authURL(e.issuer+"/demo/callback", oauth2.S256ChallengeFromVerifier(v), "S256"))
	body := readAll(t, resp)
	if id := idRe.FindStringSubmatch(body); id != nil {
		b.PostForm(e.issuer+"/login/password", url.Values{"id": {id[1]}, "username": {"alice"}, "password": {"hunter2-wrong"}})
	}

	logs := e.logs.String()
	if !strings.Contains(logs, "login") {
		t.Fatal("nothing logged; the test would prove nothing")
	}
	for name, secret := range map[string]string{
		"password": "alice-demo-2025", "wrong password": "hunter2-wrong", "sms code": otp, "access token": at,
		"id token": idt, "refresh token": rt, "rotated refresh token": rt2, "service token": cc,
		"client secret": DemoServiceSecret, "wrong secret": "wrong-secret-123", "code": code, "verifier": v,
		"refresh secret part": rt[len(rt)-43:],
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("%s appears in the logs", name)
		}
	}
}
