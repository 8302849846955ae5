package identity

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestLoginAccount: the scrubber's view of which account a login request is
// for matches what the login handlers read, and reading it leaves the form
// for them.
func TestLoginAccount(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	v := oauth2.GenerateVerifier()
	resp, err := b.Get(e.authURL(e.issuer+"/demo/callback", oauth2.S256ChallengeFromVerifier(v), "S256"))
	if err != nil {
		t.Fatal(err)
	}
	m := idRe.FindStringSubmatch(readAll(t, resp))
	if m == nil {
		t.Fatal("no login form")
	}
	id := m[1]
	resp, err = b.PostForm(e.issuer+"/login/password", url.Values{"id": {id}, "username": {"alice"}, "password": {"alice-demo-2025"}})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	base, _ := url.Parse(e.issuer + "/login/otp")
	flow := b.Jar.Cookies(base)

	form := func(path string, vals url.Values, withFlow bool) *http.Request {
		r := httptest.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(vals.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if withFlow {
			for _, c := range flow {
				r.AddCookie(c)
			}
		}
		return r
	}
	for _, tc := range []struct {
		name, route string
		req         *http.Request
		want        string
	}{
		{"password form", RouteLoginPassword, form("/login/password", url.Values{"id": {id}, "username": {" bruno "}}, false), "bruno"},
		{"otp step of this browser's login", RouteLoginOTP, form("/login/otp", url.Values{"id": {id}, "code": {"1"}}, true), "alice"},
		{"otp step without the flow cookie", RouteLoginOTP, form("/login/otp", url.Values{"id": {id}, "code": {"1"}}, false), ""},
		{"another route", "balance", form("/v1/x", url.Values{"username": {"bruno"}}, false), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := e.p.LoginAccount(tc.route, tc.req); got != tc.want {
				t.Fatalf("LoginAccount = %q, want %q", got, tc.want)
			}
			if tc.route == RouteLoginPassword && tc.req.FormValue("id") != id {
				t.Fatal("the form is gone for the login handler")
			}
		})
	}
}
