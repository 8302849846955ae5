package main

import (
	"context"
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/rempart/rempart/internal/browsertest"
	"github.com/rempart/rempart/internal/config"
	"github.com/rempart/rempart/internal/identity"
)

// TestBrowserPasskeyLogin: alice logs in from the demo app with her
// password and an SMS code, registers a passkey (Chromium's virtual
// platform authenticator) at /login/passkey/register, and once her browser
// session is over logs in again with her password and the passkey: no SMS
// is sent, and the token says proof of possession, not a one-time code.
// Passkeys need a named relying party, so the issuer is localhost.
func TestBrowserPasskeyLogin(t *testing.T) {
	b := browsertest.New(t)
	cfg := config.Default()
	cfg.OpsTokenSMS = true // the test reads login codes from the outbox
	cfg.Estate.Customers = 1000
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	origin := "http://localhost:" + port
	cfg.Identity.Issuer = origin
	s := startServeOn(t, cfg, addr)
	const phone = "+33 6 12 34 56 78"

	tab := b.Tab(t, "en-GB,en;q=0.9")
	authenticator := virtualAuthenticator(tab, webauthn.AuthenticatorTransportInternal)
	login := func() {
		t.Helper()
		tab.Do(chromedp.Navigate(origin+"/demo/"),
			chromedp.Click(chromedp.ID("login")),
			chromedp.WaitVisible(chromedp.ID("username")),
			chromedp.SendKeys(chromedp.ID("username"), "alice"),
			chromedp.SendKeys(chromedp.ID("password"), "alice-demo-2025"),
			chromedp.Submit(chromedp.ID("password")))
	}
	claims := func() []string {
		t.Helper()
		tab.Until(`(document.getElementById("out")?.textContent ?? "").includes("access_token")`)
		var out struct {
			Claims struct {
				Sub string   `json:"sub"`
				AMR []string `json:"amr"`
			} `json:"access_token_claims"`
		}
		raw := tab.Text("#out")
		if err := json.Unmarshal([]byte(raw), &out); err != nil || out.Claims.Sub != "alice" {
			t.Fatalf("demo page shows %q (%v), want alice's token", raw, err)
		}
		return out.Claims.AMR
	}

	// With an SMS code first: a passkey is registered only after one.
	login()
	tab.Do(chromedp.WaitVisible(chromedp.ID("code")))
	code := smsCodeRe.FindStringSubmatch(s.smsTo(t, phone))
	if code == nil {
		t.Fatal("no code in alice's SMS")
	}
	tab.Do(chromedp.SendKeys(chromedp.ID("code"), code[1]), chromedp.Submit(chromedp.ID("code")))
	if amr := claims(); !slices.Contains(amr, "otp") {
		t.Errorf("first login's amr %v, want otp", amr)
	}
	firstSMS := s.smsTo(t, phone)

	tab.Do(chromedp.Navigate(origin+identity.PathPasskeyRegister),
		chromedp.WaitVisible(chromedp.ID("go")))
	tab.Shot("register")
	tab.Do(chromedp.Click(chromedp.ID("go")))
	tab.Until(`document.getElementById("done").textContent === "Passkey registered." || !document.getElementById("err").hidden`)
	if got := tab.Text("#done"); got != "Passkey registered." {
		t.Fatalf("registration says %q, error %q", got, tab.Text("#err"))
	}
	tab.Shot("registered")
	creds := browsertest.Run(tab, chromedp.Action[[]*webauthn.Credential](func(ctx context.Context, target *chromedp.Target) ([]*webauthn.Credential, error) {
		res, err := cdp.Call(ctx, target, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: authenticator})
		if err != nil {
			return nil, err
		}
		return res.Credentials, nil
	}))
	if len(creds) != 1 || creds[0].RpID != "localhost" {
		t.Fatalf("authenticator holds %d credentials (%+v), want alice's one for localhost", len(creds), creds)
	}

	// Her browser session ends (its cookie goes; the device cookie stays):
	// the next login shows the form, then the passkey instead of the code.
	tab.Do(func(ctx context.Context, target *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, target, network.DeleteCookies, network.DeleteCookiesParams{Name: "rempart_sso", Domain: "localhost"})
		return chromedp.Void{}, err
	})
	login()
	tab.Do(chromedp.WaitVisible(chromedp.CSS(`#passkey[data-mode="login"] #go`)))
	if got := tab.Text("h1"); got != "Confirm with your passkey" {
		t.Errorf("after the password the page says %q", got)
	}
	tab.Shot("passkey")
	tab.Do(chromedp.Click(chromedp.ID("go")))
	amr := claims()
	tab.Shot("token")
	if !slices.Contains(amr, "pop") || slices.Contains(amr, "otp") {
		t.Errorf("passkey login's amr %v, want pop and no otp", amr)
	}
	if got := s.smsTo(t, phone); got != firstSMS {
		t.Errorf("an SMS was sent for the passkey login: %q", got)
	}
	if strings.Contains(tab.Text("#out"), "error") {
		t.Errorf("demo page shows an error: %s", tab.Text("#out"))
	}
}
