package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/rempart/rempart/internal/identity/webauthntest"
)

// The login steps are fuzzed through the provider's real handler, called
// in-process with the flow cookie of a login opened the ordinary way (over
// the loopback listener): ID in a fuzzed body is replaced by that login's
// id, CODE by the code the SMS carried.

// fuzzLogin is a login at its first step, as a browser holds it.
type fuzzLogin struct {
	id      string
	cookies []*http.Cookie
}

func (e *env) fuzzLogin(t testing.TB) fuzzLogin {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	id := e.startLogin(t, stepper(jar))
	u, _ := url.Parse(e.issuer)
	return fuzzLogin{id: id, cookies: jar.Cookies(u)}
}

// send posts body to path (with query q) with the login's cookies, to the
// handler directly.
func (e *env) send(l fuzzLogin, path, q, contentType string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path+q, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for _, c := range l.cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	e.p.Handler().ServeHTTP(rec, req)
	return rec
}

// alicePassword sends alice's right password to login l.
func (e *env) alicePassword(l fuzzLogin) *httptest.ResponseRecorder {
	form := url.Values{"id": {l.id}, "username": {"alice"}, "password": {"alice-demo-2025"}}
	return e.send(l, PathLogin+"/password", "", formType, []byte(form.Encode()))
}

// formAsParsed reads body the way the login handlers do: an 8 KiB form.
func formAsParsed(contentType string, body []byte) *http.Request {
	req := httptest.NewRequest(http.MethodPost, PathLogin, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Body = http.MaxBytesReader(nil, req.Body, 8<<10)
	_ = req.ParseForm()
	return req
}

// done reports whether login id has been completed.
func (e *env) done(id string) bool {
	a, err := e.p.pending.get(context.Background(), id)
	return err == nil && a.done
}

const formType = "application/x-www-form-urlencoded"

func addFormSeeds(f *testing.F, good string, extra ...string) {
	for _, s := range append([]string{
		good,
		good + "&lang=en",
		"lang=fr&" + good,
		good + "&id=ID",
		"id=ID",
		"id=other&" + strings.TrimPrefix(good, "id=ID&"),
		"",
		"id=ID&username=&password=",
		"id=ID&username=" + strings.Repeat("a", 65) + "&password=x",
		"id=ID&username=alice&password=" + strings.Repeat("p", 1025),
		"id=ID&%zz=1&username=alice",
		"id=ID;username=alice",
		"id=ID&" + strings.Repeat("x=1&", 3000),
		"id=ID&username=%00alice&password=%ff%fe&lang=%3Cscript%3E",
	}, extra...) {
		f.Add(s, formType)
	}
	f.Add(good, "multipart/form-data; boundary=x")
	f.Add(good, "application/json")
	f.Add(good, "")
	f.Add(good, formType+"; charset=utf-8")
}

// FuzzLoginPassword drives the password step with fuzzed forms. It never
// answers 5xx, and it moves the login to its second factor exactly when the
// form, as the handler reads it, names an account whose password it holds:
// garbage neither gets past the step nor changes the login.
func FuzzLoginPassword(f *testing.F) {
	e := newEnv(f)
	addFormSeeds(f, "id=ID&username=alice&password=alice-demo-2025",
		"id=ID&username=alice&password=alice-demo-2024",
		"id=ID&username=+alice+&password=alice-demo-2025",
		"id=ID&username=C00000042&password=demo-C00000042",
		"id=ID&username=C99999999&password=demo-C99999999",
		"id=ID&username=nobody&password=x")
	f.Fuzz(func(t *testing.T, body, contentType string) {
		l := e.fuzzLogin(t)
		defer e.p.pending.remove(context.Background(), l.id)
		b := []byte(strings.ReplaceAll(body, "ID", l.id))
		rec := e.send(l, PathLogin+"/password", "", contentType, b)
		if rec.Code >= 500 {
			t.Fatalf("%q: %d", b, rec.Code)
		}
		a, err := e.p.pending.get(context.Background(), l.id)
		if err != nil {
			t.Fatalf("%q removed the login: %v", b, err)
		}
		advanced := rec.Code == http.StatusOK
		if advanced != (a.user != nil) || a.done {
			t.Fatalf("%q: %d, login user %v, done %v", b, rec.Code, a.user, a.done)
		}
		r := formAsParsed(contentType, b)
		account, password := strings.TrimSpace(r.FormValue("username")), r.FormValue("password")
		right := false
		if r.FormValue("id") == l.id && account != "" && len(account) <= 64 && password != "" && len(password) <= 1024 {
			_, err := e.users.Authenticate(t.Context(), account, password)
			right = err == nil
		}
		if advanced != right {
			t.Fatalf("%q (account %q): %d, but the password is right: %v", b, account, rec.Code, right)
		}
		if advanced && a.user.ID != account {
			t.Fatalf("%q logs in %q as %q", b, account, a.user.ID)
		}
	})
}

// FuzzLoginOTP drives the SMS code step with fuzzed forms after a right
// password. It never answers 5xx, and it completes the login exactly when
// the form carries the code that was sent; any other answer leaves the
// login at its code step, not done.
func FuzzLoginOTP(f *testing.F) {
	e := newEnv(f)
	addFormSeeds(f, "id=ID&code=CODE",
		"id=ID&code=+CODE+",
		"id=ID&code=000000",
		"id=ID&code=CODE0",
		"id=ID&code=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96",
		"id=ID&code=-12345",
		"id=ID&code=")
	f.Fuzz(func(t *testing.T, body, contentType string) {
		l := e.fuzzLogin(t)
		defer e.p.pending.remove(context.Background(), l.id)
		if rec := e.alicePassword(l); rec.Code != http.StatusOK {
			t.Fatalf("password step: %d", rec.Code)
		}
		code := e.sms.lastCode(t)
		b := []byte(strings.ReplaceAll(strings.ReplaceAll(body, "ID", l.id), "CODE", code))
		rec := e.send(l, PathLogin+"/otp", "", contentType, b)
		if rec.Code >= 500 {
			t.Fatalf("%q: %d", b, rec.Code)
		}
		r := formAsParsed(contentType, b)
		right := r.FormValue("id") == l.id && strings.TrimSpace(r.FormValue("code")) == code
		if done := e.done(l.id); done != right || (rec.Code == http.StatusSeeOther) != right {
			t.Fatalf("%q with code %s: %d, done %v", b, code, rec.Code, done)
		}
		if !right && len(rec.Header().Values("Set-Cookie")) > 0 {
			t.Fatalf("%q refused with cookies %q", b, rec.Header().Values("Set-Cookie"))
		}
	})
}

// fuzzPasskeyEnv is a provider with passkeys on, where alice has logged in
// with an SMS code in browser b and registered auth's passkey from it.
func fuzzPasskeyEnv(f *testing.F) (*env, *webauthntest.Authenticator, *http.Client) {
	var origin string
	e := newEnv(f, func(c *Config) {
		u, _ := url.Parse(c.Issuer)
		origin = "http://localhost:" + u.Port()
		c.Passkeys = PasskeyConfig{RPID: "localhost", Origins: []string{origin}}
	})
	auth := webauthntest.New(origin)
	st, b := e.registerPasskey(f, auth)
	if st != http.StatusOK {
		f.Fatalf("register: %d", st)
	}
	return e, auth, b
}

// passkeyRegistry is the stored passkeys, credentials and counters.
func (e *env) passkeyRegistry() []byte {
	k := e.p.passkeys
	k.mu.Lock()
	defer k.mu.Unlock()
	b, _ := json.Marshal(k.users)
	return b
}

// FuzzPasskeyFinish drives the customer's passkey step with fuzzed finish
// bodies after a right password, for a customer with a registered passkey.
// No body can answer the ceremony's fresh challenge, so every one is
// refused with a 4xx problem document, sets no cookie, leaves the login
// not done and the stored passkeys (their signature counters) as they were.
func FuzzPasskeyFinish(f *testing.F) {
	e, auth, _ := fuzzPasskeyEnv(f)
	stored := e.passkeyRegistry()
	passkeyStep := func(t testing.TB) (fuzzLogin, string, json.RawMessage) {
		l := e.fuzzLogin(t)
		if rec := e.alicePassword(l); rec.Code != http.StatusOK ||
			!strings.Contains(rec.Body.String(), `data-mode="login"`) {
			t.Fatalf("password step: %d, no passkey step", rec.Code)
		}
		q := "?id=" + url.QueryEscape(l.id)
		rec := e.send(l, PathPasskeyBegin, q, "application/json", []byte("{}"))
		var begin struct {
			PublicKey json.RawMessage `json:"publicKey"`
		}
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &begin) != nil {
			t.Fatalf("passkey begin: %d %s", rec.Code, rec.Body)
		}
		return l, q, begin.PublicKey
	}
	// A real answer, to another ceremony, and variants of it.
	old, _, opts := passkeyStep(f)
	e.p.pending.remove(context.Background(), old.id)
	cred, err := auth.Get(opts)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(cred),
		string(cred) + "{}",
		strings.Replace(string(cred), `"type":"public-key"`, `"type":"password"`, 1),
		`{}`,
		`null`,
		``,
		`{"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"AA","signature":"AA","userHandle":"AA"}}`,
		`{"id":"AA","rawId":"!!","type":"public-key","response":{"clientDataJSON":"%%%"}}`,
		strings.Repeat(`{"a":`, 5000),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		l, q, _ := passkeyStep(t)
		defer func() {
			e.p.pending.remove(context.Background(), l.id)
		}()
		rec := e.send(l, PathPasskeyFinish, q, "application/json", []byte(body))
		if rec.Code < 400 || rec.Code >= 500 || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%q: %d %q %s, want a 4xx problem document", body, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
		if sc := rec.Header().Values("Set-Cookie"); len(sc) > 0 {
			t.Fatalf("%q refused with cookies %q", body, sc)
		}
		if e.done(l.id) {
			t.Fatalf("%q completed the login", body)
		}
		if !bytes.Equal(e.passkeyRegistry(), stored) {
			t.Fatalf("%q changed the stored passkeys", body)
		}
	})
}

// FuzzPasskeyRegisterFinish drives the registration finish endpoint with
// fuzzed bodies, from a browser that may register (a recent SMS login) and
// has begun a registration. No body can answer the fresh challenge: each is
// refused with a 4xx problem document, registers no passkey, and leaves no
// registration open behind it.
func FuzzPasskeyRegisterFinish(f *testing.F) {
	e, auth, b := fuzzPasskeyEnv(f)
	u, _ := url.Parse(e.issuer)
	l := fuzzLogin{cookies: b.Jar.Cookies(u)}
	stored := e.passkeyRegistry()
	begin := func(t testing.TB) json.RawMessage {
		rec := e.send(l, PathPasskeyRegisterBegin, "", "application/json", []byte("{}"))
		var out struct {
			PublicKey json.RawMessage `json:"publicKey"`
		}
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
			t.Fatalf("register begin: %d %s", rec.Code, rec.Body)
		}
		return out.PublicKey
	}
	// A real answer, to another ceremony, by another authenticator.
	cred, err := webauthntest.New(auth.Origin).Create(begin(f))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(cred),
		string(cred) + "[]",
		strings.Replace(string(cred), `"type":"public-key"`, `"type":"x"`, 1),
		`{}`, `null`, ``, `[`,
		`{"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"oA"}}`,
		`{"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"o2NmbXRkbm9uZWdhdHRTdG10oGhhdXRoRGF0YUA"},"transports":["usb","\u0000"]}`,
		strings.Repeat(`[`, 10000),
	} {
		f.Add(s)
	}
	var sid string
	for _, c := range l.cookies {
		if c.Name == browserCookie {
			sid = c.Value
		}
	}
	f.Fuzz(func(t *testing.T, body string) {
		begin(t)
		if _, err := e.p.logins.Get(context.Background(), registrationID(sid)); err != nil {
			t.Fatalf("no registration open after begin: %v", err)
		}
		rec := e.send(l, PathPasskeyRegisterFinish, "", "application/json", []byte(body))
		if rec.Code < 400 || rec.Code >= 500 || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%q: %d %q %s, want a 4xx problem document", body, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
		if !bytes.Equal(e.passkeyRegistry(), stored) {
			t.Fatalf("%q registered a passkey", body)
		}
		if _, err := e.p.logins.Get(context.Background(), registrationID(sid)); err == nil {
			t.Fatalf("%q left its registration open", body)
		}
	})
}
