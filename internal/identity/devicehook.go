package identity

import "net/http"

// DeviceCookieAccount returns the account a valid, unexpired device cookie on
// r was issued to. The scrubbing layer uses it to tell a returning customer's
// own browser or app from an unknown client before it knows which account a
// request is for.
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
