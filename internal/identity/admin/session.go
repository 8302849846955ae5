package admin

import (
	"crypto/hmac"
	"crypto/sha256"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Session cookie names. Over https the __Host- prefix makes the browser
// refuse the cookie unless it is Secure, host-only and for the whole path.
const (
	cookieName       = "rempart_admin"
	cookieNameSecure = "__Host-rempart_admin"
)

// session is a verified admin session.
type session struct {
	admin   []byte // the admin's user handle
	expires time.Time
}

// The cookie's value is admin.expires.mac: admin in unpadded base64url,
// expires in Unix milliseconds (a logout ends the sessions issued before
// it, to the millisecond), mac = HMAC-SHA256 over "admin.expires" under the
// session key, in base64url. Nothing in it is secret; it only has to be
// unforgeable and short-lived.
func (a *Admins) sessionValue(admin []byte, expires time.Time) string {
	body := b64.EncodeToString(admin) + "." + strconv.FormatInt(expires.UnixMilli(), 10)
	return body + "." + b64.EncodeToString(a.sessionMAC(body))
}

func (a *Admins) sessionMAC(body string) []byte {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte("rempart admin session v1\x00"))
	m.Write([]byte(body))
	return m.Sum(nil)
}

// parsedSession is a parsed, not yet verified, cookie value.
type parsedSession struct {
	admin   []byte
	expires int64
	body    string
	mac     []byte
}

func parseSession(v string) (parsedSession, bool) {
	if len(v) > 512 {
		return parsedSession{}, false
	}
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return parsedSession{}, false
	}
	id, err := b64.DecodeString(parts[0])
	if err != nil || len(id) == 0 || len(id) > 64 {
		return parsedSession{}, false
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || exp <= 0 {
		return parsedSession{}, false
	}
	mac, err := b64.DecodeString(parts[2])
	if err != nil || len(mac) != sha256.Size {
		return parsedSession{}, false
	}
	return parsedSession{admin: id, expires: exp, body: parts[0] + "." + parts[1], mac: mac}, true
}

// verifySession checks a cookie value: MAC in constant time, expiry, and
// that the admin still exists.
func (a *Admins) verifySession(v string) (session, bool) {
	p, ok := parseSession(v)
	if !ok || !hmac.Equal(p.mac, a.sessionMAC(p.body)) {
		return session{}, false
	}
	exp := time.UnixMilli(p.expires)
	now := a.opts.Now()
	if !now.Before(exp) || exp.Sub(now) > a.opts.SessionTTL+time.Minute {
		return session{}, false
	}
	ad := a.byID(p.admin)
	if ad == nil || !exp.Add(-a.opts.SessionTTL).After(ad.LoggedOut) {
		return session{}, false // gone, or logged out since
	}
	return session{admin: p.admin, expires: exp}, true
}

func (a *Admins) cookieName() string {
	if a.secure {
		return cookieNameSecure
	}
	return cookieName
}

func (a *Admins) setSession(w http.ResponseWriter, admin []byte) {
	exp := a.opts.Now().Add(a.opts.SessionTTL)
	http.SetCookie(w, &http.Cookie{Name: a.cookieName(), Value: a.sessionValue(admin, exp), Path: "/",
		MaxAge: int(a.opts.SessionTTL / time.Second), HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteStrictMode})
}

func (a *Admins) clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: a.cookieName(), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteStrictMode})
}

// sessionFrom returns the request's valid admin session, if any.
func (a *Admins) sessionFrom(r *http.Request) (session, bool) {
	c, err := r.Cookie(a.cookieName())
	if err != nil {
		return session{}, false
	}
	return a.verifySession(c.Value)
}
