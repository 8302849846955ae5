package identity

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// rp is an unmodified go-oidc + x/oauth2 relying party of the demo app.
type rp struct {
	prov *gooidc.Provider
	conf oauth2.Config
	e    *env
}

func newRP(t testing.TB, e *env) *rp {
	t.Helper()
	prov, err := gooidc.NewProvider(context.Background(), e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	return &rp{prov: prov, e: e, conf: oauth2.Config{ClientID: DemoAppClient, Endpoint: prov.Endpoint(),
		RedirectURL: e.issuer + "/demo/callback", Scopes: []string{gooidc.ScopeOpenID, gooidc.ScopeOfflineAccess, "payments"}}}
}

// outcome is where an authorization request led the browser.
type outcome struct {
	form bool     // the login form was shown
	loc  *url.URL // the redirect to the app, with a code or an error
	id   string   // the login request, when the form was shown
}

// authorize opens an authorization request with extra parameters in b and
// stops at the login form or at the redirect to the app.
func (r *rp) authorize(t testing.TB, b *http.Client, verifier string, extra ...oauth2.AuthCodeOption) outcome {
	t.Helper()
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}, extra...)
	resp, err := b.Get(r.conf.AuthCodeURL("st", opts...))
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if loc, err := resp.Location(); err == nil {
		return outcome{loc: loc}
	}
	m := idRe.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil || !strings.Contains(body, `name="password"`) {
		t.Fatalf("authorize: %d %.300s", resp.StatusCode, body)
	}
	return outcome{form: true, id: m[1]}
}

// finish types alice's password and SMS code into the login form.
func (r *rp) finish(t testing.TB, b *http.Client, id string) *url.URL {
	t.Helper()
	resp, err := b.PostForm(r.e.issuer+"/login/password", url.Values{"id": {id}, "username": {"alice"}, "password": {"alice-demo-2025"}})
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("password: %d %.300s", resp.StatusCode, body)
	}
	resp, err = b.PostForm(r.e.issuer+"/login/otp", url.Values{"id": {id}, "code": {r.e.sms.lastCode(t)}})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("otp: %d", resp.StatusCode)
	}
	return loc
}

// exchange trades the code for tokens and verifies the ID token with go-oidc.
func (r *rp) exchange(t testing.TB, loc *url.URL, verifier string) (*oauth2.Token, string, *gooidc.IDToken) {
	t.Helper()
	ctx := context.Background()
	if loc.Query().Get("code") == "" {
		t.Fatalf("no code in %s", loc)
	}
	tok, err := r.conf.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	id, err := r.prov.Verifier(&gooidc.Config{ClientID: DemoAppClient}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("go-oidc refused the ID token: %v", err)
	}
	return tok, raw, id
}

// login runs a whole login in b and returns the tokens.
func (r *rp) login(t testing.TB, b *http.Client) (*oauth2.Token, string, *gooidc.IDToken) {
	t.Helper()
	v := oauth2.GenerateVerifier()
	o := r.authorize(t, b, v)
	if !o.form {
		t.Fatalf("fresh browser skipped the form: %v", o.loc)
	}
	return r.exchange(t, r.finish(t, b, o.id), v)
}

func authTime(t testing.TB, id *gooidc.IDToken) time.Time {
	t.Helper()
	var c struct {
		AuthTime int64 `json:"auth_time"`
	}
	if err := id.Claims(&c); err != nil || c.AuthTime == 0 {
		t.Fatalf("auth_time missing: %v", err)
	}
	return time.Unix(c.AuthTime, 0)
}

// TestPromptAndMaxAge checks what OpenID Connect Core 1.0 section 3.1.2.1
// asks of prompt and max_age against a browser holding an SSO session.
func TestPromptAndMaxAge(t *testing.T) {
	for _, tc := range []struct {
		name     string
		session  bool          // the browser logged in before
		later    time.Duration // how long after that login the app asks
		params   []string      // name, value pairs
		wantForm bool
		wantErr  string // the error redirected to the app
	}{
		{"SSO without prompt", true, time.Minute, nil, false, ""},
		{"prompt=login shows the form despite SSO", true, time.Minute, []string{"prompt", "login"}, true, ""},
		{"max_age=0 shows the form despite SSO", true, time.Minute, []string{"max_age", "0"}, true, ""},
		{"max_age older than the login shows the form", true, 10 * time.Minute, []string{"max_age", "300"}, true, ""},
		{"max_age newer than the login keeps SSO", true, 10 * time.Minute, []string{"max_age", "3600"}, false, ""},
		{"prompt=none with SSO gets a code", true, time.Minute, []string{"prompt", "none"}, false, ""},
		{"prompt=none without a session is login_required", false, 0, []string{"prompt", "none"}, false, "login_required"},
		{"prompt=none past max_age is login_required", true, 10 * time.Minute, []string{"prompt", "none", "max_age", "300"}, false, "login_required"},
		{"prompt=none with login is refused", true, time.Minute, []string{"prompt", "none login"}, false, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := newRP(t, e)
			b := e.browser(t)
			var first time.Time
			if tc.session {
				_, _, id := r.login(t, b)
				first = authTime(t, id)
			}
			e.clock.Add(tc.later)
			var extra []oauth2.AuthCodeOption
			for i := 0; i < len(tc.params); i += 2 {
				extra = append(extra, oauth2.SetAuthURLParam(tc.params[i], tc.params[i+1]))
			}
			v := oauth2.GenerateVerifier()
			o := r.authorize(t, b, v, extra...)
			if o.form != tc.wantForm {
				t.Fatalf("form shown %v, want %v (redirect %v)", o.form, tc.wantForm, o.loc)
			}
			if tc.wantErr != "" {
				if o.loc.Query().Get("error") != tc.wantErr || o.loc.Query().Get("state") != "st" || o.loc.Query().Get("code") != "" {
					t.Fatalf("redirect %s, want error %s with state", o.loc, tc.wantErr)
				}
				return
			}
			loc := o.loc
			if o.form {
				loc = r.finish(t, b, o.id)
			}
			_, _, id := r.exchange(t, loc, v)
			got := authTime(t, id)
			if tc.wantForm && !got.After(first) || !tc.wantForm && !got.Equal(first) {
				t.Fatalf("auth_time %v after a login at %v (form %v)", got, first, tc.wantForm)
			}
		})
	}
}

// TestLogout checks RP-initiated logout with the customer's own ID token,
// with bad hints and redirects, and without a hint.
func TestLogout(t *testing.T) {
	endSession := func(e *env, q url.Values) string { return e.issuer + PathEndSession + "?" + q.Encode() }
	ssoAlive := func(t *testing.T, r *rp, b *http.Client) bool {
		t.Helper()
		return !r.authorize(t, b, oauth2.GenerateVerifier()).form
	}

	t.Run("hint ends the session on every node", func(t *testing.T) {
		dir := t.TempDir()
		a := newEnv(t, func(c *Config) { c.DataDir = dir })
		// Node b shares a's session store, keys and issuer, as nodes
		// behind one address do.
		bnode := newEnv(t, func(c *Config) { c.DataDir, c.Sessions, c.Issuer = dir, a.p.sessions, a.issuer })
		r := newRP(t, a)
		b := a.browser(t)
		tok, raw, _ := r.login(t, b)
		// The customer logs out from the app, whose browser request lands
		// on node b; the browser's own cookie stays where it is to show the
		// session ended in the store, not merely in this browser.
		elsewhere := stepper(nil)
		st, loc, body := get(t, elsewhere, bnode.srv.URL+PathEndSession+"?"+url.Values{"id_token_hint": {raw},
			"post_logout_redirect_uri": {a.issuer + "/demo/"}, "state": {"bye"}}.Encode())
		if st != http.StatusFound || loc == nil || loc.String() != a.issuer+"/demo/?state=bye" {
			t.Fatalf("end_session: %d %v %.300s", st, loc, body)
		}
		if ssoAlive(t, r, b) {
			t.Fatal("node a still logs the browser in from its SSO cookie")
		}
		list, err := a.p.sessions.ListSubject(context.Background(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list {
			if strings.HasPrefix(s.ID, browserPrefix) {
				t.Fatalf("browser session %s survived the logout", s.ID)
			}
		}
		if _, err := r.conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
			t.Fatal("the app's refresh token survived the logout")
		}
	})

	for _, tc := range []struct {
		name  string
		query func(e *env, raw string) url.Values
	}{
		{"unregistered post_logout_redirect_uri", func(e *env, raw string) url.Values {
			return url.Values{"id_token_hint": {raw}, "post_logout_redirect_uri": {"https://evil.example/"}}
		}},
		{"tampered hint", func(e *env, raw string) url.Values {
			i := strings.LastIndexByte(raw, '.')
			return url.Values{"id_token_hint": {raw[:i+1] + b64.EncodeToString(make([]byte, 64))}}
		}},
		{"hint of another client", func(e *env, raw string) url.Values {
			return url.Values{"id_token_hint": {raw}, "client_id": {DemoServiceClient}}
		}},
	} {
		t.Run(tc.name+" is refused and ends nothing", func(t *testing.T) {
			e := newEnv(t)
			r := newRP(t, e)
			b := e.browser(t)
			_, raw, _ := r.login(t, b)
			st, loc, body := get(t, stepper(b.Jar), endSession(e, tc.query(e, raw)))
			if st != http.StatusBadRequest || loc != nil {
				t.Fatalf("end_session: %d %v %.300s", st, loc, body)
			}
			if !ssoAlive(t, r, b) {
				t.Fatal("a refused logout ended the session")
			}
		})
	}

	t.Run("without a hint the customer confirms", func(t *testing.T) {
		e := newEnv(t)
		r := newRP(t, e)
		b := e.browser(t)
		r.login(t, b)
		q := url.Values{"client_id": {DemoAppClient}, "post_logout_redirect_uri": {e.issuer + "/demo/"}, "state": {"bye"}}
		st, _, body := get(t, stepper(b.Jar), endSession(e, q))
		if st != http.StatusOK || !strings.Contains(body, `action="/oauth/end_session"`) {
			t.Fatalf("confirmation page: %d %.300s", st, body)
		}
		if !ssoAlive(t, r, b) {
			t.Fatal("a GET alone ended the session")
		}
		// A forged POST (no token, or another browser's) ends nothing.
		resp, err := stepper(b.Jar).PostForm(e.issuer+PathEndSession, url.Values{"confirm": {"forged"}})
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if !ssoAlive(t, r, b) {
			t.Fatal("a POST without the confirmation token ended the session")
		}
		form := url.Values{}
		for _, m := range hiddenRe.FindAllStringSubmatch(body, -1) {
			form.Set(m[1], html.UnescapeString(m[2]))
		}
		resp, err = stepper(b.Jar).PostForm(e.issuer+PathEndSession, form)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if loc, _ := resp.Location(); resp.StatusCode != http.StatusFound || loc == nil || loc.String() != e.issuer+"/demo/?state=bye" {
			t.Fatalf("confirmed logout: %d %v", resp.StatusCode, loc)
		}
		if ssoAlive(t, r, b) {
			t.Fatal("the confirmed logout left the session alive")
		}
	})

	t.Run("without a session there is nothing to confirm", func(t *testing.T) {
		e := newEnv(t)
		st, _, body := get(t, stepper(nil), endSession(e, url.Values{}))
		if st != http.StatusOK || strings.Contains(body, "<form") {
			t.Fatalf("logout without a session: %d %.300s", st, body)
		}
	})
}

var hiddenRe = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
