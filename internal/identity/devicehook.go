package identity

import (
	"net/http"
	"strings"
)

// DeviceCookieAccount returns the account a valid, unexpired device cookie on
// r was issued to. The scrubbing layer uses it, with LoginAccount, to tell a
// returning customer logging in to their own account from an unknown client:
// a device cookie vouches for nothing else.
func (p *Provider) DeviceCookieAccount(r *http.Request) (string, bool) {
	c, err := r.Cookie(DeviceCookieName)
	if err != nil {
		return "", false
	}
	d, ok := parseDeviceCookie(c.Value)
	if !ok {
		return "", false
	}
	if _, ok := p.checkDeviceCookie(c.Value, d.account); !ok {
		return "", false
	}
	return d.account, true
}

// LoginAccount returns the account a request on a login route is an attempt
// for, as the login handlers will read it: the password form's username on
// RouteLoginPassword, the account of this browser's pending login on
// RouteLoginOTP; "" on other routes or when there is none. It bounds and
// parses the form as the handlers do, and they reuse the parsed form, so the
// body is read once.
func (p *Provider) LoginAccount(route string, r *http.Request) string {
	switch route {
	case RouteLoginPassword:
		r.Body = http.MaxBytesReader(nil, r.Body, 8<<10)
		return strings.TrimSpace(r.FormValue("username"))
	case RouteLoginOTP:
		r.Body = http.MaxBytesReader(nil, r.Body, 8<<10)
		if a, ok := p.checkFlow(r); ok && a.user != nil {
			return a.user.ID
		}
	}
	return ""
}
