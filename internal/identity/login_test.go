package identity

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// stepper is a browser that stops at every redirect, to look at each hop.
func stepper(jar http.CookieJar) *http.Client {
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// get fetches target and returns the status, the Location (if any) and the body.
func get(t testing.TB, c *http.Client, target string) (int, *url.URL, string) {
	t.Helper()
	resp, err := c.Get(target)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	loc, _ := resp.Location()
	return resp.StatusCode, loc, body
}

// startLogin opens an authorization request in c's browser and returns the
// login request id it was sent to.
func (e *env) startLogin(t testing.TB, c *http.Client) string {
	t.Helper()
	authURL := e.authURL(e.issuer+"/demo/callback", oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()), "S256")
	st, loc, body := get(t, c, authURL)
	if st != http.StatusFound || loc == nil || loc.Path != PathLogin {
		t.Fatalf("authorize: %d %v %s", st, loc, body)
	}
	return loc.Query().Get("id")
}

// TestSessionTakeoverRefused plays the attack of issue 12: an attacker
// starts an authorization request with their own PKCE values and sends its
// login link to a customer whose browser holds a single sign-on session;
// neither the customer's browser nor the attacker may turn that link into
// a code for the customer.
func TestSessionTakeoverRefused(t *testing.T) {
	e := newEnv(t)
	victimJar, _ := cookiejar.New(nil)
	victim := &http.Client{Jar: victimJar, CheckRedirect: e.browser(t).CheckRedirect}
	v := oauth2.GenerateVerifier()
	e.loginForm(t, victim, e.authURL(e.issuer+"/demo/callback", oauth2.S256ChallengeFromVerifier(v), "S256"), "alice", "alice-demo-2025")

	attackerJar, _ := cookiejar.New(nil)
	attacker := stepper(attackerJar)
	id := e.startLogin(t, attacker)
	link := e.issuer + PathLogin + "?" + url.Values{"id": {id}}.Encode()
	callback := e.issuer + PathAuthorize + "/callback?" + url.Values{"id": {id}}.Encode()

	t.Run("the customer's SSO does not complete the attacker's request", func(t *testing.T) {
		st, loc, body := get(t, stepper(victimJar), link)
		if st != http.StatusBadRequest || loc != nil || !strings.Contains(body, "a expiré") {
			t.Fatalf("customer's browser on the attacker's link: %d %v %.200s", st, loc, body)
		}
	})
	t.Run("the customer's browser cannot type into the attacker's request", func(t *testing.T) {
		resp, err := stepper(victimJar).PostForm(e.issuer+"/login/password",
			url.Values{"id": {id}, "username": {"alice"}, "password": {"alice-demo-2025"}})
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusBadRequest || strings.Contains(body, `name="code"`) {
			t.Fatalf("password on the attacker's request: %d %.200s", resp.StatusCode, body)
		}
	})
	t.Run("the attacker's callback yields no code", func(t *testing.T) {
		for name, c := range map[string]*http.Client{"attacker": attacker, "no cookie": stepper(nil)} {
			_, loc, _ := get(t, c, callback)
			if loc != nil && loc.Query().Get("code") != "" {
				t.Fatalf("%s got a code: %s", name, loc)
			}
		}
	})
	t.Run("a browser without the flow cookie cannot collect a finished request", func(t *testing.T) {
		// The customer's own request, finished by their SSO, its callback
		// not yet followed.
		own := e.startLogin(t, stepper(victimJar))
		st, loc, _ := get(t, stepper(victimJar), e.issuer+PathLogin+"?"+url.Values{"id": {own}}.Encode())
		if st != http.StatusSeeOther || loc == nil || !strings.HasSuffix(loc.Path, "/callback") {
			t.Fatalf("SSO for the customer's own request: %d %v", st, loc)
		}
		target := loc.String()
		st, loc, body := get(t, stepper(nil), target)
		if loc != nil && loc.Query().Get("code") != "" || st != http.StatusBadRequest {
			t.Fatalf("cookieless callback: %d %v %.200s", st, loc, body)
		}
		_, loc, _ = get(t, stepper(victimJar), target)
		if loc == nil || loc.Query().Get("code") == "" {
			t.Fatalf("the customer's own callback: %v", loc)
		}
	})
}

// TestLoginFlowsStillWork checks the flows the flow cookie must not break:
// several logins in progress in one browser (two tabs), and SSO.
func TestLoginFlowsStillWork(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	authURL := e.authURL(e.issuer+"/demo/callback", oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()), "S256")
	first := e.startLogin(t, stepper(b.Jar))
	loc := e.loginForm(t, b, authURL, "alice", "alice-demo-2025")
	if loc.Query().Get("code") == "" {
		t.Fatalf("password + SMS login: %v", loc)
	}
	// The first tab, opened before the second login, still belongs here;
	// the SSO session finishes it.
	st, next, _ := get(t, stepper(b.Jar), e.issuer+PathLogin+"?"+url.Values{"id": {first}}.Encode())
	if st != http.StatusSeeOther || next == nil {
		t.Fatalf("first tab after the second tab's login: %d %v", st, next)
	}
	if loc := e.loginForm(t, b, authURL, "", ""); loc.Query().Get("code") == "" {
		t.Fatalf("SSO login: %v", loc)
	}
}

// TestBrowserSessionHashedAtRest checks the session store never holds the
// SSO cookie's value: a copy of the store logs no browser in.
func TestBrowserSessionHashedAtRest(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	e.loginForm(t, b, e.authURL(e.issuer+"/demo/callback", oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()), "S256"),
		"alice", "alice-demo-2025")
	u, _ := url.Parse(e.issuer)
	var cookie string
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == browserCookie {
			cookie = c.Value
		}
	}
	if cookie == "" {
		t.Fatal("no SSO cookie")
	}
	list, err := e.p.sessions.ListSubject(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	var found int
	for _, s := range list {
		if strings.Contains(s.ID, cookie) {
			t.Fatalf("store record %q holds the cookie's value", s.ID)
		}
		if strings.HasPrefix(s.ID, browserPrefix) {
			found++
		}
	}
	if found != 1 {
		t.Fatalf("%d browser sessions in the store, want 1", found)
	}
	// A stolen record id is not a cookie.
	for _, s := range list {
		if !strings.HasPrefix(s.ID, browserPrefix) {
			continue
		}
		thief := e.browser(t)
		thief.Jar.SetCookies(u, []*http.Cookie{{Name: browserCookie, Value: strings.TrimPrefix(s.ID, browserPrefix), Path: "/"}})
		resp, err := thief.Get(e.authURL(e.issuer+"/demo/callback", oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()), "S256"))
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="password"`) {
			t.Fatalf("the store's record id as a cookie: %d %.200s", resp.StatusCode, body)
		}
	}
}

// TestResendCode: the code step's "send a new code" sends one at most every
// 30 seconds and three times a login; the new code replaces the old, and a
// resend gives no wrong-code attempts back.
func TestResendCode(t *testing.T) {
	e := newEnv(t)
	b, id, _ := e.passwordStep(t, oauth2.GenerateVerifier())
	first := e.sms.lastCode(t)
	post := func(path string, v url.Values) (int, string) {
		t.Helper()
		v.Set("id", id)
		resp, err := b.PostForm(e.issuer+path, v)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, readAll(t, resp)
	}
	if st, body := post("/login/sms", url.Values{"lang": {"en"}}); st != http.StatusTooManyRequests || !strings.Contains(body, "A new code can be sent in 30 seconds") {
		t.Fatalf("resend at once: %d %s", st, body)
	}
	// Four wrong codes, then a resend: one attempt is left, not five.
	for range 4 {
		if st, _ := post("/login/otp", url.Values{"code": {"000000"}}); st != http.StatusUnauthorized {
			t.Fatalf("wrong code: %d", st)
		}
	}
	e.clock.Add(31 * time.Second)
	if st, body := post("/login/sms", url.Values{"lang": {"en"}}); st != http.StatusOK || !strings.Contains(body, "A new code was sent.") || !strings.Contains(body, `name="code"`) {
		t.Fatalf("resend after 31 s: %d %s", st, body)
	}
	second := e.sms.lastCode(t)
	if second == first {
		t.Skip("the new code happens to equal the old one (one in a million)")
	}
	if st, _ := post("/login/otp", url.Values{"code": {first}}); st != http.StatusUnauthorized {
		t.Fatalf("the replaced code still works: %d", st)
	}
	if st, body := post("/login/otp", url.Values{"code": {second}}); st != http.StatusUnauthorized || !strings.Contains(body, `name="password"`) {
		t.Fatalf("sixth attempt after a resend: %d, want the login restarted at the password", st)
	}

	// Three resends a login, then none.
	b, id, _ = e.passwordStep(t, oauth2.GenerateVerifier())
	for i := range 3 {
		e.clock.Add(31 * time.Second)
		if st, body := post("/login/sms", url.Values{}); st != http.StatusOK {
			t.Fatalf("resend %d: %d %s", i+1, st, body)
		}
	}
	e.clock.Add(31 * time.Second)
	if st, body := post("/login/sms", url.Values{"lang": {"en"}}); st != http.StatusTooManyRequests || !strings.Contains(body, "No more new codes") {
		t.Fatalf("fourth resend: %d %s", st, body)
	}
	if st, _ := post("/login/otp", url.Values{"code": {e.sms.lastCode(t)}}); st != http.StatusSeeOther && st != http.StatusFound {
		t.Fatalf("the last code sent does not log in: %d", st)
	}
}

// TestDemoAtAnotherName: the demo page opened at another name for the
// provider's listener (localhost for an issuer at 127.0.0.1) sends the
// browser to the issuer's address, where its login can come back.
func TestDemoAtAnotherName(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/demo/", nil)
	req.Host = strings.Replace(strings.TrimPrefix(e.issuer, "http://"), "127.0.0.1", "localhost", 1)
	resp, err := stepper(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != e.issuer+"/demo/" {
		t.Fatalf("demo at %s: %d to %q, want 303 to the issuer's", req.Host, resp.StatusCode, loc)
	}
	if st, _, body := get(t, stepper(nil), e.issuer+"/demo/"); st != http.StatusOK || !strings.Contains(body, `id="login"`) {
		t.Fatalf("demo at the issuer: %d", st)
	}
}

// TestLoginCancel: the customer giving up goes back to the app with
// access_denied and the app's state, and the login is gone; a browser
// other than the one that started the login cannot cancel it.
func TestLoginCancel(t *testing.T) {
	e := newEnv(t)
	jar, _ := cookiejar.New(nil)
	b := stepper(jar)
	id := e.startLogin(t, b)
	if st, _, body := get(t, b, e.issuer+PathLogin+"?id="+url.QueryEscape(id)); st != http.StatusOK || !strings.Contains(body, `action="/login/cancel"`) || !strings.Contains(body, `id="forgot"`) {
		t.Fatalf("login page: %d, want cancel and forgot links: %s", st, body)
	}
	otherJar, _ := cookiejar.New(nil)
	resp, err := stepper(otherJar).PostForm(e.issuer+PathLogin+"/cancel", url.Values{"id": {id}})
	if err != nil {
		t.Fatal(err)
	}
	if readAll(t, resp); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("another browser cancelling the login: %d, want 400", resp.StatusCode)
	}
	resp, err = b.PostForm(e.issuer+PathLogin+"/cancel", url.Values{"id": {id}})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	loc, _ := resp.Location()
	if resp.StatusCode != http.StatusFound || loc == nil || loc.Path != "/demo/callback" ||
		loc.Query().Get("error") != "access_denied" || loc.Query().Get("state") != "s" {
		t.Fatalf("cancel: %d to %v, want the app's callback with error=access_denied and its state", resp.StatusCode, loc)
	}
	resp, err = b.PostForm(e.issuer+PathLogin+"/password", url.Values{"id": {id}, "username": {"alice"}, "password": {"alice-demo-2025"}})
	if err != nil {
		t.Fatal(err)
	}
	if readAll(t, resp); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("password on a cancelled login: %d, want 400 (expired)", resp.StatusCode)
	}
}

// TestLoginForgot: the forgot page says how to get a new password in the
// login's language, links to the bank's page when one is configured, and
// back to the login.
func TestLoginForgot(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PasswordResetURL = "https://bank.example/reset" })
	st, _, body := get(t, e.browser(t), e.issuer+PathLogin+"/forgot?lang=fr&id=ar_x")
	for _, want := range []string{`lang="fr"`, "votre banque", `href="https://bank.example/reset"`, `href="/login?id=ar_x&amp;lang=fr"`} {
		if st != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("forgot page: %d, missing %q: %s", st, want, body)
		}
	}
}
