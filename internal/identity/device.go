package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DeviceCookieName is the cookie that marks a device on which the account's
// owner has completed a strong login (OWASP's device-cookie pattern): the
// scrubber lets it bypass the per-account throttle that bots trigger, so an
// attacker hammering an account cannot lock its owner out.
const DeviceCookieName = "rempart_device"

// The cookie's value is account.nonce.issued.mac, each part base64url
// except issued (Unix seconds); mac is HMAC-SHA256 over the rest under the
// provider's device key.
func (p *Provider) deviceCookieValue(account string, issued time.Time) string {
	v, _ := p.newDeviceCookie(account, issued, "")
	return v
}

// newDeviceCookie returns a cookie value for account with the nonce (a
// fresh one when empty), and the nonce.
func (p *Provider) newDeviceCookie(account string, issued time.Time, nonce string) (value, n string) {
	if n = nonce; n == "" {
		n = randomID(16)
	}
	body := b64.EncodeToString([]byte(account)) + "." + n + "." + strconv.FormatInt(issued.Unix(), 10)
	return body + "." + b64.EncodeToString(p.deviceMAC(body)), n
}

func (p *Provider) deviceMAC(body string) []byte {
	m := hmac.New(sha256.New, p.deviceKey)
	m.Write([]byte("rempart device cookie v1\x00"))
	m.Write([]byte(body))
	return m.Sum(nil)
}

// deviceCookie is a parsed, not yet verified, device cookie.
type deviceCookie struct {
	account string
	nonce   string
	issued  int64
	body    string
	mac     []byte
}

func parseDeviceCookie(v string) (deviceCookie, bool) {
	if len(v) > 1024 {
		return deviceCookie{}, false
	}
	parts := strings.Split(v, ".")
	if len(parts) != 4 {
		return deviceCookie{}, false
	}
	acct, err := b64.DecodeString(parts[0])
	if err != nil || len(acct) == 0 {
		return deviceCookie{}, false
	}
	if n, err := b64.DecodeString(parts[1]); err != nil || len(n) != 16 {
		return deviceCookie{}, false
	}
	issued, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || issued <= 0 {
		return deviceCookie{}, false
	}
	mac, err := b64.DecodeString(parts[3])
	if err != nil || len(mac) != sha256.Size {
		return deviceCookie{}, false
	}
	return deviceCookie{account: string(acct), nonce: parts[1], issued: issued,
		body: v[:len(v)-len(parts[3])-1], mac: mac}, true
}

// VerifyDeviceCookie reports whether r carries a valid, unexpired device
// cookie issued to account. The MAC is compared in constant time.
func (p *Provider) VerifyDeviceCookie(r *http.Request, account string) bool {
	c, err := r.Cookie(DeviceCookieName)
	if err != nil {
		return false
	}
	_, ok := p.checkDeviceCookie(c.Value, account)
	return ok
}

func (p *Provider) checkDeviceCookie(v, account string) (nonce string, ok bool) {
	d, ok := parseDeviceCookie(v)
	if !ok || !hmac.Equal(d.mac, p.deviceMAC(d.body)) {
		return "", false
	}
	issued := time.Unix(d.issued, 0)
	now := p.cfg.Now()
	if d.account != account || issued.After(now.Add(time.Minute)) || now.Sub(issued) > p.cfg.DeviceCookieTTL {
		return "", false
	}
	return d.nonce, true
}

// setDeviceCookie gives the browser a device cookie for account, issued
// now, and returns its nonce (the key of the device's backup snapshot). A
// browser that already holds a valid one for the account keeps its nonce:
// one device, one snapshot.
func (p *Provider) setDeviceCookie(w http.ResponseWriter, r *http.Request, account string) string {
	keep, _ := p.deviceNonce(r, account)
	v, nonce := p.newDeviceCookie(account, p.cfg.Now(), keep)
	http.SetCookie(w, &http.Cookie{
		Name: DeviceCookieName, Value: v, Path: "/",
		MaxAge: int(p.cfg.DeviceCookieTTL / time.Second), HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: strings.HasPrefix(p.cfg.Issuer, "https://"),
	})
	return nonce
}

// deviceNonce returns the nonce of r's valid device cookie for account.
func (p *Provider) deviceNonce(r *http.Request, account string) (string, bool) {
	c, err := r.Cookie(DeviceCookieName)
	if err != nil {
		return "", false
	}
	return p.checkDeviceCookie(c.Value, account)
}
