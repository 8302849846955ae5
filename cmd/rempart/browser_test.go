package main

import (
	"encoding/json"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/rempart/rempart/internal/browsertest"
	"github.com/rempart/rempart/internal/config"
)

// startBrowserServe runs serve on a public port chosen before it starts, so
// the issuer the pages send the browser back to is the address it listens
// on (the default issuer names the configured listen address).
func startBrowserServe(t *testing.T, cfg *config.Config) *running {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg.Identity.Issuer = "http://" + addr
	return startServeOn(t, cfg, addr)
}

// smsTo returns the newest message of the SMS outbox to phone.
func (s *running) smsTo(t *testing.T, phone string) string {
	t.Helper()
	_, body := s.do(t, "GET", s.ops+"/ops/estate/sms?limit=1&to="+url.QueryEscape(phone), "", nil)
	var out struct {
		Messages []struct{ Text string } `json:"messages"`
	}
	decode(t, body, &out)
	if len(out.Messages) == 0 {
		t.Fatalf("no SMS to %s: %s", phone, body)
	}
	return out.Messages[0].Text
}

// TestBrowserLogin logs customers in from the demo app in a real browser,
// as the README tells a newcomer to: the demo page, the login form in the
// customer's language (or the one chosen on the form), the password, the
// SMS code read from the outbox, and back on the demo page with a token.
func TestBrowserLogin(t *testing.T) {
	b := browsertest.New(t)
	cfg := config.Default()
	cfg.Estate.Customers = 1000
	s := startBrowserServe(t, cfg)

	for _, c := range []struct {
		name, acceptLanguage string
		choose               string // the language link to follow on the form, "" for none
		user, password       string
		phone                string
		lang, title, hint    string
		sms                  string
	}{
		{"french browser", "fr-FR,fr;q=0.9", "", "alice", "alice-demo-2025", "+33 6 12 34 56 78",
			"fr", "Connexion à votre banque", "Nous avons envoyé un code", "Code de connexion"},
		{"english chosen on the form", "fr-FR,fr;q=0.9", "en", "alice", "alice-demo-2025", "+33 6 12 34 56 78",
			"en", "Log in to your bank", "We sent a 6-digit code", "Login code"},
		{"english browser", "en-GB,en;q=0.9", "", "alice", "alice-demo-2025", "+33 6 12 34 56 78",
			"en", "Log in to your bank", "We sent a 6-digit code", "Login code"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tab := b.Tab(t, c.acceptLanguage)
			tab.Do(chromedp.Navigate(s.public+"/demo/"),
				chromedp.Click(chromedp.ID("login")),
				chromedp.WaitVisible(chromedp.ID("username")))
			if c.choose != "" {
				tab.Do(chromedp.Click(chromedp.CSS(`a[hreflang="`+c.choose+`"]`)),
					chromedp.WaitVisible(chromedp.CSS(`html[lang="`+c.choose+`"] #username`)))
			}
			if got := browsertest.Run(tab, chromedp.Evaluate[string]("document.documentElement.lang")); got != c.lang {
				t.Errorf("login page in %q, want %q", got, c.lang)
			}
			if got := tab.Text("h1"); got != c.title {
				t.Errorf("login page title %q, want %q", got, c.title)
			}
			tab.Do(chromedp.SendKeys(chromedp.ID("username"), c.user),
				chromedp.SendKeys(chromedp.ID("password"), c.password))
			tab.Shot("password")
			tab.Do(chromedp.Submit(chromedp.ID("password")), chromedp.WaitVisible(chromedp.ID("code")))
			if got := tab.Text("#hint"); !strings.Contains(got, c.hint) {
				t.Errorf("code step says %q, want it to contain %q", got, c.hint)
			}
			text := s.smsTo(t, c.phone)
			if !strings.Contains(text, c.sms) {
				t.Errorf("SMS %q, want it in the login's language (%q)", text, c.sms)
			}
			code := smsCodeRe.FindStringSubmatch(text)
			if code == nil {
				t.Fatalf("no code in the SMS %q", text)
			}
			tab.Do(chromedp.SendKeys(chromedp.ID("code"), code[1]))
			tab.Shot("code")
			tab.Do(chromedp.Submit(chromedp.ID("code")))
			tab.Until(`(document.getElementById("out")?.textContent ?? "").includes("access_token")`)
			tab.Shot("token")
			var out struct {
				Token struct {
					AccessToken string `json:"access_token"`
				} `json:"token_response"`
				Claims struct {
					Sub string   `json:"sub"`
					AMR []string `json:"amr"`
				} `json:"access_token_claims"`
			}
			raw := tab.Text("#out")
			if err := json.Unmarshal([]byte(raw), &out); err != nil {
				t.Fatalf("demo page shows %q: %v", raw, err)
			}
			if out.Token.AccessToken == "" || out.Claims.Sub != c.user || !slices.Contains(out.Claims.AMR, "otp") {
				t.Errorf("demo page shows no access token of %s with the SMS code as second factor: %s", c.user, raw)
			}
		})
	}
}
