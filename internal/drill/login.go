package drill

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// Login makes a target a customer's whole login instead of one request: the
// authorization request of an app (code + PKCE), the login page, the
// password, the one-time code the customer reads on their phone, and the
// code exchange, with the cookies a browser keeps. It succeeds when an
// access token comes back; bots fail at the password and stop there.
type Login struct {
	// User and Password are what the customer (or the bot) types.
	User, Password func(d *Draw) string
}

// The OpenID client the drill's logins use: the provider's demo app, a
// public native client whose loopback redirect URI takes any port and is
// never fetched (RFC 8252 section 7.3).
const (
	loginClient   = "rempart-demo-app"
	loginRedirect = "http://127.0.0.1/callback"
	loginScope    = "openid accounts payments"
)

// maxLoginBody bounds what one step's answer is read to; login pages are a
// few KiB.
const maxLoginBody = 64 << 10

// maxHops bounds the redirects one step follows.
const maxHops = 5

var loginIDRe = regexp.MustCompile(`name="id" value="([^"]+)"`)

// doFunc sends one request: a plain client's Do, or the SDK's.
type doFunc func(*http.Request) (*http.Response, error)

// flow is one login in progress.
type flow struct {
	base    string
	ua      string
	do      doFunc
	cookies map[string]string
	sent    int // requests this flow handed to do
}

// answer is one step's response, its body read.
type answer struct {
	resp *http.Response
	body []byte
}

func (f *flow) send(ctx context.Context, method, target string, form url.Values) (answer, error) {
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("User-Agent", f.ua)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range f.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	f.sent++
	resp, err := f.do(req)
	if err != nil {
		return answer{}, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxLoginBody))
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	resp.Body.Close()
	if err != nil {
		return answer{}, err
	}
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(f.cookies, c.Name)
		} else {
			f.cookies[c.Name] = c.Value
		}
	}
	return answer{resp: resp, body: body}, nil
}

// follow GETs target and its redirects until an answer that is not one, or
// a redirect to the app (whose URL is returned with the answer).
func (f *flow) follow(ctx context.Context, target string) (answer, *url.URL, error) {
	for range maxHops {
		a, err := f.send(ctx, http.MethodGet, target, nil)
		if err != nil {
			return a, nil, err
		}
		loc, done := f.next(a)
		if done {
			return a, loc, nil
		}
		target = loc.String()
	}
	return answer{}, nil, fmt.Errorf("more than %d redirects", maxHops)
}

// next reads a redirect: where it goes, and whether the flow stops there
// (not a redirect, or a redirect to the app).
func (f *flow) next(a answer) (*url.URL, bool) {
	if a.resp.StatusCode/100 != 3 {
		return nil, true
	}
	loc, err := a.resp.Location()
	if err != nil {
		return nil, true
	}
	return loc, strings.HasPrefix(loc.String(), loginRedirect)
}

// deviceCookie is the cookie the identity provider marks a device with once
// a login on it succeeded (identity.DeviceCookieName; the drill stays off
// the identity package, which it only talks to over HTTP).
const deviceCookie = "rempart_device"

// credentials are what a successful login leaves the app: the access token
// and, when the provider set one, the device cookie.
type credentials struct{ token, device string }

// login runs one attempt of a login flow through do and returns its
// outcome, what it got on success, and how many requests it sent. A draw of
// a population logging in from known devices presents its device's cookie.
func (e *engine) login(ctx context.Context, do doFunc, p *Population, l *Login, d *Draw) (attempt, credentials, int) {
	base := *e.base.Load()
	f := &flow{base: base, ua: "rempart-drill/" + p.Name, do: do, cookies: map[string]string{}}
	if d.slot >= 0 && d.pop < len(e.devices) && d.slot < len(e.devices[d.pop]) && e.devices[d.pop][d.slot] != "" {
		f.cookies[deviceCookie] = e.devices[d.pop][d.slot]
	}
	res, tok := e.loginSteps(ctx, f, l, d)
	return res, credentials{token: tok, device: f.cookies[deviceCookie]}, f.sent
}

func (e *engine) loginSteps(ctx context.Context, f *flow, l *Login, d *Draw) (attempt, string) {
	var raw [32]byte
	for i := range raw {
		raw[i] = byte(d.Rand.Uint32())
	}
	verifier := base64.RawURLEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"client_id": {loginClient}, "response_type": {"code"}, "scope": {loginScope},
		"redirect_uri": {loginRedirect}, "state": {d.Key},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	// 1. The app opens the authorization request; the provider sends the
	// browser to its login page.
	a, _, err := f.follow(ctx, f.base+"/oauth/authorize?"+q.Encode())
	if err != nil {
		return transportFailure(ctx, err), ""
	}
	m := loginIDRe.FindSubmatch(a.body)
	if a.resp.StatusCode != http.StatusOK || m == nil {
		return failedStep(a, "login_page"), ""
	}
	id := string(m[1])
	// 2. The password.
	a, err = f.send(ctx, http.MethodPost, f.base+"/login/password",
		url.Values{"id": {id}, "username": {l.User(d)}, "password": {l.Password(d)}})
	if err != nil {
		return transportFailure(ctx, err), ""
	}
	if a.resp.StatusCode != http.StatusOK || !bytes.Contains(a.body, []byte(`name="code"`)) {
		return failedStep(a, "password"), ""
	}
	// 3. The code the customer reads on their phone.
	code, err := e.otp(ctx, d.Customer.Phone)
	if err != nil {
		return attempt{out: outError, status: "otp_not_received"}, ""
	}
	a, err = f.send(ctx, http.MethodPost, f.base+"/login/otp", url.Values{"id": {id}, "code": {code}})
	if err != nil {
		return transportFailure(ctx, err), ""
	}
	loc, done := f.next(a)
	if loc == nil {
		return failedStep(a, "otp"), ""
	}
	if !done {
		if a, loc, err = f.follow(ctx, loc.String()); err != nil {
			return transportFailure(ctx, err), ""
		}
	}
	if loc == nil || loc.Query().Get("code") == "" {
		return failedStep(a, "callback"), ""
	}
	// 4. The app exchanges the code for tokens.
	a, err = f.send(ctx, http.MethodPost, f.base+"/oauth/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {loginRedirect}, "client_id": {loginClient}, "code_verifier": {verifier},
	})
	if err != nil {
		return transportFailure(ctx, err), ""
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if a.resp.StatusCode != http.StatusOK || json.Unmarshal(a.body, &tok) != nil || tok.AccessToken == "" {
		return failedStep(a, "token"), ""
	}
	return attempt{out: outOK, status: "200", code: 200}, tok.AccessToken
}

// failedStep sorts a step's unexpected answer like any other: shed with a
// Retry-After, an error otherwise. A 200 at the wrong place is an error
// named after the step.
func failedStep(a answer, step string) attempt {
	res := sortAnswer(a.resp, a.body)
	if res.out == outOK {
		return attempt{out: outError, status: step + "_unexpected", code: a.resp.StatusCode}
	}
	return res
}

func transportFailure(ctx context.Context, err error) attempt {
	return classify(ctx, nil, err)
}
