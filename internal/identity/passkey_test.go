package identity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/rempart/rempart/internal/identity/webauthntest"
)

// passkeyEnv is an env whose login page is served, for WebAuthn, at
// http://localhost:PORT (browsers refuse an IP address as relying party).
func passkeyEnv(t *testing.T, mod ...func(*Config)) (*env, string) {
	t.Helper()
	var origin string
	e := newEnv(t, append([]func(*Config){func(c *Config) {
		u, _ := url.Parse(c.Issuer)
		origin = "http://localhost:" + u.Port()
		c.Passkeys = PasskeyConfig{RPID: "localhost", Origins: []string{origin}}
	}}, mod...)...)
	if e.p.passkeys == nil {
		t.Fatal("passkeys are off")
	}
	return e, origin
}

func (f *fakeSMS) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.msgs)
}

// postJSON posts body (raw JSON) with the browser's cookies.
func postJSON(t testing.TB, b *http.Client, u string, body []byte) (int, map[string]json.RawMessage) {
	t.Helper()
	if body == nil {
		body = []byte("{}")
	}
	resp, err := b.Post(u, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]json.RawMessage{}
	_ = json.Unmarshal([]byte(readAll(t, resp)), &m)
	return resp.StatusCode, m
}

// registerPasskey logs alice in with password + SMS in a new browser, then
// registers auth's passkey from that browser.
func (e *env) registerPasskey(t testing.TB, auth *webauthntest.Authenticator) (int, *http.Client) {
	t.Helper()
	b := e.browser(t)
	e.loginForm(t, b, e.authURL(e.issuer+"/demo/callback", oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()), "S256"),
		"alice", "alice-demo-2025")
	return e.registerWith(t, b, auth), b
}

func (e *env) registerWith(t testing.TB, b *http.Client, auth *webauthntest.Authenticator) int {
	t.Helper()
	st, begin := postJSON(t, b, e.issuer+PathPasskeyRegisterBegin, nil)
	if st != http.StatusOK {
		return st
	}
	cred, err := auth.Create(begin["publicKey"])
	if err != nil {
		t.Fatal(err)
	}
	st, _ = postJSON(t, b, e.issuer+PathPasskeyRegisterFinish, cred)
	return st
}

// passwordStep opens a login in a new browser and sends alice's password;
// it returns the browser, the login id and the page.
func (e *env) passwordStep(t *testing.T, verifier string) (*http.Client, string, string) {
	t.Helper()
	b := e.browser(t)
	resp, err := b.Get(e.authURL(e.issuer+"/demo/callback", oauth2.S256ChallengeFromVerifier(verifier), "S256"))
	if err != nil {
		t.Fatal(err)
	}
	m := idRe.FindStringSubmatch(readAll(t, resp))
	if m == nil {
		t.Fatal("no login form")
	}
	resp, err = b.PostForm(e.issuer+"/login/password", url.Values{"id": {m[1]}, "username": {"alice"}, "password": {"alice-demo-2025"}})
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("password step: %d %s", resp.StatusCode, body)
	}
	return b, m[1], body
}

// passkeyStep answers the passkey step with auth.
func (e *env) passkeyStep(t *testing.T, b *http.Client, id string, auth *webauthntest.Authenticator) (int, map[string]json.RawMessage) {
	t.Helper()
	q := "?id=" + url.QueryEscape(id)
	st, begin := postJSON(t, b, e.issuer+PathPasskeyBegin+q, nil)
	if st != http.StatusOK {
		return st, begin
	}
	cred, err := auth.Get(begin["publicKey"])
	if err != nil {
		t.Fatal(err)
	}
	return postJSON(t, b, e.issuer+PathPasskeyFinish+q, cred)
}

func TestPasskeyReplacesSMSAfterRegistration(t *testing.T) {
	e, origin := passkeyEnv(t)
	auth := webauthntest.New(origin)
	if st, _ := e.registerPasskey(t, auth); st != http.StatusOK {
		t.Fatalf("register: %d", st)
	}
	sent := e.sms.count()
	verifier := oauth2.GenerateVerifier()
	b, id, page := e.passwordStep(t, verifier)
	if !strings.Contains(page, `data-mode="login"`) || strings.Contains(page, `name="code"`) {
		t.Fatalf("password step did not offer the passkey: %s", page)
	}
	if e.sms.count() != sent {
		t.Fatal("an SMS was sent although the customer has a passkey")
	}
	st, m := e.passkeyStep(t, b, id, auth)
	if st != http.StatusOK {
		t.Fatalf("passkey step: %d %s", st, m["detail"])
	}
	var redirect string
	json.Unmarshal(m["redirect"], &redirect)
	resp, err := b.Get(e.issuer + redirect)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	loc, err := resp.Location()
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("no code after the passkey: %d %v", resp.StatusCode, loc)
	}
	st, tok := e.exchange(t, loc.Query().Get("code"), verifier)
	if st != http.StatusOK {
		t.Fatalf("exchange: %d %v", st, tok)
	}
	cl, err := e.p.Verifier().Verify(context.Background(), tok["access_token"].(string))
	if err != nil || !slices.Equal(cl.AMR, passkeyAMR) {
		t.Fatalf("access token amr %v, %v", cl.AMR, err)
	}
	if !e.p.VerifyDeviceCookie(cookieRequest(b, e.issuer), "alice") {
		t.Fatal("no device cookie after a passkey login")
	}
	// Bruno, who has no passkey, still gets his SMS code.
	b2 := e.browser(t)
	e.loginForm(t, b2, e.authURL(e.issuer+"/demo/callback", oauth2.S256ChallengeFromVerifier(verifier), "S256"), "bruno", "bruno-demo-2025")
}

func cookieRequest(b *http.Client, issuer string) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, issuer, nil)
	u, _ := url.Parse(issuer)
	for _, c := range b.Jar.Cookies(u) {
		r.AddCookie(c)
	}
	return r
}

func TestPasskeyStepFallsBackToSMSOnce(t *testing.T) {
	e, origin := passkeyEnv(t)
	if st, _ := e.registerPasskey(t, webauthntest.New(origin)); st != http.StatusOK {
		t.Fatal(st)
	}
	b, id, _ := e.passwordStep(t, oauth2.GenerateVerifier())
	sent := e.sms.count()
	// The first asks for the code instead of the passkey; the next ones
	// are the code step's "send a new code", too soon after the first.
	for i, want := range []int{http.StatusOK, http.StatusTooManyRequests, http.StatusTooManyRequests} {
		resp, err := b.PostForm(e.issuer+PathLoginSMS, url.Values{"id": {id}})
		if err != nil {
			t.Fatal(err)
		}
		if body := readAll(t, resp); resp.StatusCode != want || !strings.Contains(body, `name="code"`) {
			t.Fatalf("sms fallback %d: %d %s", i, resp.StatusCode, body)
		}
	}
	if n := e.sms.count() - sent; n != 1 {
		t.Fatalf("%d SMS sent, want exactly 1", n)
	}
	resp, err := b.PostForm(e.issuer+"/login/otp", url.Values{"id": {id}, "code": {e.sms.lastCode(t)}})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if loc, _ := resp.Location(); loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("otp after fallback: %d", resp.StatusCode)
	}
	// Without a sent code, no code is accepted.
	b2, id2, _ := e.passwordStep(t, oauth2.GenerateVerifier())
	resp, _ = b2.PostForm(e.issuer+"/login/otp", url.Values{"id": {id2}, "code": {"000000"}})
	readAll(t, resp)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("otp with no code sent: %d", resp.StatusCode)
	}
}

func TestPasskeyRegistrationNeedsRecentSMSLogin(t *testing.T) {
	e, origin := passkeyEnv(t)
	auth := webauthntest.New(origin)
	if st := e.registerWith(t, e.browser(t), auth); st != http.StatusUnauthorized {
		t.Fatalf("without a login: %d, want 401", st)
	}
	resp, _ := e.browser(t).Get(e.issuer + PathPasskeyRegister)
	readAll(t, resp)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("register page without a login: %d", resp.StatusCode)
	}
	st, b := e.registerPasskey(t, auth)
	if st != http.StatusOK {
		t.Fatal(st)
	}
	e.clock.Add(11 * time.Minute)
	if st := e.registerWith(t, b, webauthntest.New(origin)); st != http.StatusUnauthorized {
		t.Fatalf("stale login: %d, want 401", st)
	}
	// A passkey login does not let a browser add passkeys: that takes the SMS.
	bp, id, _ := e.passwordStep(t, oauth2.GenerateVerifier())
	if st, _ := e.passkeyStep(t, bp, id, auth); st != http.StatusOK {
		t.Fatal(st)
	}
	if st := e.registerWith(t, bp, webauthntest.New(origin)); st != http.StatusUnauthorized {
		t.Fatalf("after a passkey-only login: %d, want 401", st)
	}
}

func TestPasskeyRefused(t *testing.T) {
	cases := map[string]func(a *webauthntest.Authenticator){
		"phishing origin": func(a *webauthntest.Authenticator) { a.Origin = "http://banque-postale.example" },
		"wrong rp id":     func(a *webauthntest.Authenticator) { a.RPID = "banque-postale.example" },
		"cloned":          func(a *webauthntest.Authenticator) { a.SetCounter(0) },
	}
	why := map[string]string{"phishing origin": "validating origin", "wrong rp id": "RP Hash mismatch", "cloned": "may be cloned"}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			e, origin := passkeyEnv(t)
			auth := webauthntest.New(origin)
			if st, _ := e.registerPasskey(t, auth); st != http.StatusOK {
				t.Fatal(st)
			}
			b, id, _ := e.passwordStep(t, oauth2.GenerateVerifier())
			if st, _ := e.passkeyStep(t, b, id, auth); st != http.StatusOK { // counter 1
				t.Fatal(st)
			}
			bad := auth.Clone()
			mod(bad)
			b, id, _ = e.passwordStep(t, oauth2.GenerateVerifier())
			if st, _ := e.passkeyStep(t, b, id, bad); st != http.StatusUnauthorized {
				t.Fatalf("%d, want 401", st)
			}
			if !strings.Contains(e.logs.String(), why[name]) {
				t.Fatalf("refused, but not for %q: %s", why[name], e.logs.String())
			}
			// The login can go on with the genuine passkey.
			if st, m := e.passkeyStep(t, b, id, auth); st != http.StatusOK {
				t.Fatalf("genuine passkey after a refusal: %d %s", st, m["detail"])
			}
		})
	}
}

func TestPasskeyAttemptsAndFlowBound(t *testing.T) {
	e, origin := passkeyEnv(t)
	auth := webauthntest.New(origin)
	if st, _ := e.registerPasskey(t, auth); st != http.StatusOK {
		t.Fatal(st)
	}
	b, id, _ := e.passwordStep(t, oauth2.GenerateVerifier())
	// Another browser cannot answer this login's passkey step.
	if st, _ := e.passkeyStep(t, e.browser(t), id, auth); st != http.StatusBadRequest {
		t.Fatalf("other browser: %d, want 400", st)
	}
	bad := auth.Clone()
	bad.Origin = "http://evil.example"
	for range maxOTPAttempts {
		e.passkeyStep(t, b, id, bad)
	}
	if st, _ := e.passkeyStep(t, b, id, auth); st != http.StatusUnauthorized {
		t.Fatalf("after too many attempts: %d, want 401", st)
	}
}

func TestPasskeysSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	e, origin := passkeyEnv(t, func(c *Config) { c.DataDir = dir })
	auth := webauthntest.New(origin)
	if st, _ := e.registerPasskey(t, auth); st != http.StatusOK {
		t.Fatal(st)
	}
	cfg := e.p.cfg
	p2, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if !p2.passkeys.has("alice") || p2.passkeys.has("bruno") {
		t.Fatal("passkeys not restored")
	}
}

func TestPasskeysOffWithAnIPIssuer(t *testing.T) {
	e := newEnv(t)
	if e.p.passkeys != nil {
		t.Fatal("passkeys on with an IP issuer and no relying party configured")
	}
	for _, tc := range []struct{ issuer, rp string }{
		{"http://127.0.0.1:8080", ""},
		{"http://localhost:8080", "localhost"},
		{"https://login.bank.example", "login.bank.example"},
	} {
		if rp, _ := passkeyRPFromIssuer(tc.issuer); rp != tc.rp {
			t.Errorf("%s: %q, want %q", tc.issuer, rp, tc.rp)
		}
	}
}

func TestPasskeyPageScriptMatchesCSP(t *testing.T) {
	e, origin := passkeyEnv(t)
	_, b := e.registerPasskey(t, webauthntest.New(origin))
	resp, err := b.Get(e.issuer + PathPasskeyRegister)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	i, j := strings.Index(body, "<script>"), strings.LastIndex(body, "</script>")
	if resp.StatusCode != http.StatusOK || i < 0 || j < i {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	h := sha256.Sum256([]byte(body[i+len("<script>") : j]))
	if !strings.Contains(resp.Header.Get("Content-Security-Policy"), base64.StdEncoding.EncodeToString(h[:])) {
		t.Fatal("the CSP does not allow the page's script")
	}
}
