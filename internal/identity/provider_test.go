package identity

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestDiscoveryListsOnlyWhatIsSupported(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.issuer + PathDiscovery)
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	list := func(k string) []string {
		var out []string
		for _, v := range d[k].([]any) {
			out = append(out, v.(string))
		}
		slices.Sort(out)
		return out
	}
	for k, want := range map[string][]string{
		"grant_types_supported":                 {"authorization_code", "client_credentials", "refresh_token"},
		"response_types_supported":              {"code"},
		"code_challenge_methods_supported":      {"S256"},
		"id_token_signing_alg_values_supported": {"EdDSA"},
	} {
		if got := list(k); !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	for _, k := range []string{"device_authorization_endpoint", "check_session_iframe", "request_object_signing_alg_values_supported"} {
		if _, ok := d[k]; ok {
			t.Errorf("%s advertised", k)
		}
	}
	if d["request_uri_parameter_supported"] != false || d["issuer"] != e.issuer || d["jwks_uri"] != e.issuer+PathKeys {
		t.Errorf("discovery %v", d)
	}
	for _, path := range []string{"/device_authorization", "/healthz", "/ready"} {
		resp, _ := http.Get(e.issuer + path)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, resp.StatusCode)
		}
	}
}

func TestLoginPageLanguage(t *testing.T) {
	e := newEnv(t)
	authURL := e.authURL(e.issuer+"/demo/callback", oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()), "S256")
	for _, tc := range []struct{ accept, query, want, text string }{
		{"", "", "fr", "Mot de passe"},
		{"en-GB,en;q=0.9", "", "en", "Password"},
		{"de-DE, fr;q=0.5", "", "fr", "Mot de passe"},
		{"fr-FR", "en", "en", "Password"},
	} {
		b := e.browser(t)
		req, _ := http.NewRequest(http.MethodGet, authURL, nil)
		if tc.accept != "" {
			req.Header.Set("Accept-Language", tc.accept)
		}
		resp, err := b.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if tc.query != "" {
			id := idRe.FindStringSubmatch(body)[1]
			resp, _ = b.Get(e.issuer + PathLogin + "?" + url.Values{"id": {id}, "lang": {tc.query}}.Encode())
			body = readAll(t, resp)
		}
		if !strings.Contains(body, `<html lang="`+tc.want+`">`) || !strings.Contains(body, tc.text) ||
			!strings.Contains(body, `<label for="password">`) {
			t.Errorf("Accept-Language %q lang %q: want %s page, got %.300s", tc.accept, tc.query, tc.want, body)
		}
	}
}

// throttle refuses every attempt on an account unless the device cookie is
// there, like the scrubber's per-account throttle under attack.
type throttle struct{}

func (throttle) GateLogin(_ string, _ netip.Addr, device bool, _ string) LoginGate {
	return LoginGate{Allowed: device, RetryAfter: 42 * time.Second}
}
func (throttle) AllowCode(string, bool) (bool, time.Duration) { return true, 0 }
func (throttle) CodeFailed(string, bool)                      {}
func (throttle) AllowResend(string) (bool, time.Duration)     { return true, 0 }

func TestDeviceCookieBypassesThrottle(t *testing.T) {
	e := newEnv(t)
	owner := e.browser(t)
	v := oauth2.GenerateVerifier()
	authURL := e.authURL(e.issuer+"/demo/callback", oauth2.S256ChallengeFromVerifier(v), "S256")
	e.loginForm(t, owner, authURL, "alice", "alice-demo-2025") // leaves the device cookie
	e.p.cfg.Limiter = throttle{}

	// The owner's browser loses its SSO session but keeps the device cookie.
	u, _ := url.Parse(e.issuer)
	var keep []*http.Cookie
	for _, c := range owner.Jar.Cookies(u) {
		if c.Name == DeviceCookieName {
			keep = append(keep, c)
		}
	}
	owner = e.browser(t)
	owner.Jar.SetCookies(u, keep)
	e.loginForm(t, owner, authURL, "alice", "alice-demo-2025")

	bot := e.browser(t)
	resp, _ := bot.Get(authURL)
	id := idRe.FindStringSubmatch(readAll(t, resp))[1]
	resp, _ = bot.PostForm(e.issuer+"/login/password", url.Values{"id": {id}, "username": {"alice"}, "password": {"guess"}})
	readAll(t, resp)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "42" {
		t.Fatalf("bot without device cookie: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	e.obs.mu.Lock()
	defer e.obs.mu.Unlock()
	var sawDevice bool
	for _, o := range e.obs.obs {
		sawDevice = sawDevice || (o.route == RouteLoginPassword && o.ok && o.device)
	}
	if !sawDevice {
		t.Fatalf("observer never saw a device-cookie login: %+v", e.obs.obs)
	}
}
