package main

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/rempart/rempart/internal/browsertest"
	"github.com/rempart/rempart/internal/config"
	"github.com/rempart/rempart/internal/identity"
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
	m := s.lastSMS(t, phone)
	if m == "" {
		t.Fatalf("no SMS to %s", phone)
	}
	return m
}

// TestBrowserLogin logs customers in from the demo app in a real browser,
// as the README tells a newcomer to: the demo page, the login form in the
// customer's language (or the one chosen on the form), the password, the
// SMS code read from the outbox, and back on the demo page with a token.
func TestBrowserLogin(t *testing.T) {
	b := browsertest.New(t)
	cfg := config.Default()
	cfg.OpsTokenSMS = true // the test reads login codes from the outbox
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

// TestBrowserLoginWayOut: a customer who forgot the password finds out how
// to get a new one in the login's language and comes back to the form; one
// who gives up goes back to the app, which hears access_denied.
func TestBrowserLoginWayOut(t *testing.T) {
	b := browsertest.New(t)
	cfg := config.Default()
	cfg.Estate.Customers = 1000
	s := startBrowserServe(t, cfg)
	tab := b.Tab(t, "fr-FR,fr;q=0.9")
	tab.Do(chromedp.Navigate(s.public+"/demo/"),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.Click(chromedp.ID("forgot")),
		chromedp.WaitVisible(chromedp.ID("back")))
	if got := tab.Text("main"); !strings.Contains(got, "votre banque") {
		t.Errorf("forgot page says %q", got)
	}
	tab.Shot("forgot")
	tab.Do(chromedp.Click(chromedp.ID("back")), chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.Click(chromedp.ID("cancel")))
	tab.Until(`location.pathname === "/demo/callback" && (document.getElementById("out")?.textContent ?? "").includes("access_denied")`)
	tab.Shot("cancelled")

	// An app on another origin (a native app's loopback redirect, RFC 8252):
	// the browser follows the form's redirect to it, which the login page's
	// form-action must allow, for a cancel as for a code.
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>app</title><p id="got">%s</p>`, html.EscapeString(r.URL.Query().Get("error")))
	}))
	t.Cleanup(app.Close)
	q := url.Values{"client_id": {"rempart-demo-app"}, "response_type": {"code"}, "scope": {"openid"},
		"redirect_uri": {app.URL + "/callback"}, "state": {"s"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
	tab.Do(chromedp.Navigate(s.public+"/oauth/authorize?"+q.Encode()),
		chromedp.WaitVisible(chromedp.ID("cancel")),
		chromedp.Click(chromedp.ID("cancel")))
	tab.Until(`document.getElementById("got")?.textContent === "access_denied"`)
}

// TestBrowserStatusOutage opens the public status page in both languages,
// kills the core with nobody using the bank, and waits for the page to say
// so: card payments on stand-in, balances from last known values or down,
// the headline no longer "All Systems Operational". Without the status
// board's synthetic checks no channel has traffic, and the page stays green.
// One outage for both languages: a recovered page stays degraded for the
// board's RecoverAfter.
func TestBrowserStatusOutage(t *testing.T) {
	b := browsertest.New(t)
	cfg := config.Default()
	cfg.OpsTokenSMS = true // the test reads login codes from the outbox
	cfg.Estate.Customers = 1000
	s := startBrowserServe(t, cfg)

	langs := []struct {
		lang, healthy, standIn, label string
	}{
		{"en", "All Systems Operational", "Working in stand-in mode", "Degraded performance"},
		{"fr", "Tous les services fonctionnent normalement.", "Fonctionne en mode secours", "Perturbé"},
	}
	for _, c := range langs {
		t.Run(c.lang+"/healthy", func(t *testing.T) {
			tab := b.Tab(t, "")
			tab.Do(chromedp.Navigate(s.public + "/status?lang=" + c.lang))
			if got := browsertest.Run(tab, chromedp.Evaluate[string]("document.documentElement.lang")); got != c.lang {
				t.Errorf("status page in %q, want %q", got, c.lang)
			}
			if got := tab.Text("#overall"); got != c.healthy {
				t.Errorf("healthy bank: headline %q, want %q", got, c.healthy)
			}
			tab.Shot("page")
		})
	}
	s.setCoreDown(t, true)
	t.Cleanup(func() { s.setCoreDown(t, false) })
	for _, c := range langs {
		t.Run(c.lang+"/core-down", func(t *testing.T) {
			tab := b.Tab(t, "")
			page := s.public + "/status?lang=" + c.lang
			// Reload as a customer would, until the page says it or the
			// step's time is up; the board's own tests bound the delay.
			shown := false
			for range int(browsertest.StepTimeout / time.Second) {
				tab.Do(chromedp.Navigate(page))
				if browsertest.Run(tab, chromedp.Evaluate[string](`document.getElementById("card-authorize").className`)) == "degraded_performance" {
					shown = true
					break
				}
				time.Sleep(time.Second)
			}
			tab.Shot("page")
			if !shown {
				t.Fatalf("card payments still shown %q with the core down", tab.Text("#card-authorize"))
			}
			if got := tab.Text("#card-authorize"); !strings.Contains(got, c.standIn) || !strings.Contains(got, c.label) {
				t.Errorf("card payments say %q, want %q and %q", got, c.label, c.standIn)
			}
			if got := browsertest.Run(tab, chromedp.Evaluate[string](`document.getElementById("balance").className`)); got == "operational" {
				t.Errorf("balance shown operational with the core down: %q", tab.Text("#balance"))
			}
			if got := tab.Text("#overall"); got == c.healthy {
				t.Errorf("headline %q with the core down", got)
			}
		})
	}
}

// setScrubMode sets the scrubber's mode on route by hand, as an operator
// would.
func (s *running) setScrubMode(t *testing.T, route, mode string) {
	t.Helper()
	res, body := s.do(t, "PUT", s.ops+"/ops/scrub/routes/"+route+"/mode", `{"mode":"`+mode+`"}`,
		map[string]string{"Content-Type": "application/json"})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("scrub mode %s on %s: %d %s", mode, route, res.StatusCode, body)
	}
}

func (s *running) setCoreDown(t *testing.T, down bool) {
	t.Helper()
	body := `{}`
	if down {
		body = `{"down":true}`
	}
	res, b := s.do(t, "PUT", s.ops+"/ops/estate/faults/core", body, map[string]string{"Content-Type": "application/json"})
	if res.StatusCode != 200 {
		t.Fatalf("core fault: %d %s", res.StatusCode, b)
	}
}

// TestBrowserSteppedLogin: after an attack has spent alice's unknown-device
// budget, alice logs in from a browser the bank has never seen. The login
// page does the proof of work itself while she types her password again,
// keeps her customer ID, and lets her through; no step locks her out.
func TestBrowserSteppedLogin(t *testing.T) {
	b := browsertest.New(t)
	cfg := config.Default()
	cfg.OpsTokenSMS = true // the test reads login codes from the outbox
	cfg.Estate.Customers = 1000
	s := startBrowserServe(t, cfg)
	for i := range 5 {
		if st, _ := s.startLogin(t, nil).post(t, "/login/password", url.Values{"username": {"alice"}, "password": {"guess-" + strconv.Itoa(i)}}); st != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, st)
		}
	}
	tab := b.Tab(t, "en-GB,en;q=0.9")
	tab.Do(chromedp.Navigate(s.public+"/demo/"),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), "alice-demo-2025"),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.ID("powstatus")))
	if got := tab.Text("#err"); !strings.Contains(got, "short calculation") {
		t.Errorf("stepped login says %q", got)
	}
	if got := browsertest.Run(tab, chromedp.Evaluate[string](`document.getElementById("username").value`)); got != "alice" {
		t.Errorf("customer ID field holds %q after the challenge, want it kept", got)
	}
	tab.Shot("challenge")
	tab.Until(`!document.getElementById("go").disabled`)
	if got := tab.Text("#powstatus"); !strings.Contains(got, "Ready") {
		t.Errorf("after the work the page says %q", got)
	}
	tab.Do(chromedp.SendKeys(chromedp.ID("password"), "alice-demo-2025"),
		chromedp.Click(chromedp.ID("go")),
		chromedp.WaitVisible(chromedp.ID("code")))
	code := smsCodeRe.FindStringSubmatch(s.smsTo(t, "+33 6 12 34 56 78"))
	tab.Do(chromedp.SendKeys(chromedp.ID("code"), code[1]), chromedp.Submit(chromedp.ID("code")))
	tab.Until(`(document.getElementById("out")?.textContent ?? "").includes("access_token")`)
	tab.Shot("token")
}

// TestBrowserChallengeResubmits: with the password step under attack (the
// scrubber's mode set by hand, as an operator would), a customer on a
// browser the bank has never seen types her password in French; the
// proof-of-work page answers in French, does the work, and sends her form
// again by itself: she lands on the code step without typing anything twice.
func TestBrowserChallengeResubmits(t *testing.T) {
	b := browsertest.New(t)
	cfg := config.Default()
	cfg.OpsTokenSMS = true // the test reads login codes from the outbox
	cfg.Estate.Customers = 1000
	s := startBrowserServe(t, cfg)
	s.setScrubMode(t, identity.RouteLoginPassword, "attack")
	tab := b.Tab(t, "fr-FR,fr;q=0.9")
	// The challenge page can solve and resubmit before its own
	// DOMContentLoaded, let alone a poll, so every page watches itself being
	// parsed and notes its language once the challenge's form is in it.
	tab.OnEveryPage(`new MutationObserver((_, seen) => {
		if (!document.getElementById("again")) return;
		sessionStorage.setItem("challengeLang", document.documentElement.lang);
		seen.disconnect();
	}).observe(document, {childList: true, subtree: true});`)
	tab.Do(chromedp.Navigate(s.public+"/demo/"),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), "alice-demo-2025"),
		chromedp.Submit(chromedp.ID("password")))
	tab.Until(`document.getElementById("code") !== null`)
	if got := browsertest.Run(tab, chromedp.Evaluate[string](`sessionStorage.getItem("challengeLang") ?? "no challenge page"`)); got != "fr" {
		t.Errorf("challenge page in %q, want fr", got)
	}
	tab.Do(chromedp.WaitVisible(chromedp.ID("code")))
	if got := tab.Text("#hint"); !strings.Contains(got, "Nous avons envoyé un code") {
		t.Errorf("code step says %q", got)
	}
	tab.Shot("code")
	// The page was the challenge's, and its answer is what let her through.
	_, metrics := s.do(t, "GET", s.ops+"/metrics", "", nil)
	for _, d := range []string{"challenged", "solved"} {
		if !regexp.MustCompile(`rempart_scrub_decisions_total\{decision="` + d + `",route="login-password"\} [1-9]`).Match(metrics) {
			t.Errorf("no %s login-password request in /metrics: the form did not go through the challenge", d)
		}
	}
}

// pageLog is what notePages recorded of one page the tab loaded.
type pageLog struct {
	Path, Lang, H1 string
	Status         int  // the HTTP status the page came with
	Refresh        bool // a <meta http-equiv=refresh>
	Held           bool // the waiting room's held form (#again)
	HeldUser       string
	Password       bool // a password field to type into
	Code           bool // the code step
}

// notePages has every page the tab loads note itself in sessionStorage
// (pagesFrom reads them back): pages that go away by themselves, such as
// the waiting room's, last a second, less than a screenshot may take.
func notePages(tab *browsertest.Tab) {
	tab.OnEveryPage(`document.addEventListener("DOMContentLoaded", () => {
		const nav = performance.getEntriesByType("navigation")[0], held = document.getElementById("again");
		const log = JSON.parse(sessionStorage.getItem("pages") ?? "[]");
		log.push({Path: location.pathname, Lang: document.documentElement.lang,
			H1: document.querySelector("h1")?.textContent ?? "", Status: nav?.responseStatus ?? 0,
			Refresh: !!document.querySelector('meta[http-equiv="refresh"]'), Held: !!held,
			HeldUser: held?.elements.username?.value ?? "", Password: !!document.querySelector('input[type=password]'),
			Code: !!document.getElementById("code")});
		sessionStorage.setItem("pages", JSON.stringify(log));
	});`)
}

func pagesFrom(t *testing.T, tab *browsertest.Tab) []pageLog {
	t.Helper()
	var pages []pageLog
	raw := browsertest.Run(tab, chromedp.Evaluate[string](`sessionStorage.getItem("pages") ?? "[]"`))
	if err := json.Unmarshal([]byte(raw), &pages); err != nil {
		t.Fatalf("pages noted: %q: %v", raw, err)
	}
	return pages
}

// TestBrowserWaitingRoom: a customer on a French browser chooses English on
// the login form and sends her password while the login waiting room is
// holding logins back (a cap of one login a second, and another login that
// took this second's turn). She gets the room's page in the language she
// chose, her customer ID kept, and when her turn comes the page sends her
// login on by itself: she lands on the code step without typing her
// password again, and every address the page went to answered.
func TestBrowserWaitingRoom(t *testing.T) {
	b := browsertest.New(t)
	cfg := config.Default()
	cfg.OpsTokenSMS = true // the test reads login codes from the outbox
	cfg.Estate.Customers = 1000
	cfg.Identity.MaxLoginRate = 1
	s := startBrowserServe(t, cfg)

	tab := b.Tab(t, "fr-FR,fr;q=0.9")
	notePages(tab)
	tab.Do(chromedp.Navigate(s.public+"/demo/"),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.Click(chromedp.CSS(`a[hreflang="en"]`)),
		chromedp.WaitVisible(chromedp.CSS(`html[lang="en"] #username`)),
		chromedp.SendKeys(chromedp.ID("username"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), "alice-demo-2025"))
	// Another customer's login takes the second's only turn (a wrong
	// password, checked: the room let it through).
	if st, body := s.startLogin(t, nil).post(t, "/login/password", url.Values{"username": {"bruno"}, "password": {"not-his"}}); st != http.StatusUnauthorized {
		t.Fatalf("the login before hers: %d %.300s", st, body)
	}
	tab.Do(chromedp.Submit(chromedp.ID("password")))
	tab.Until(`document.getElementById("again") !== null || document.getElementById("code") !== null`)
	tab.Shot("waiting")
	tab.Until(`document.getElementById("code") !== null`)
	tab.Shot("code")

	pages := pagesFrom(t, tab)
	waited := slices.IndexFunc(pages, func(p pageLog) bool { return p.Held })
	if waited < 0 {
		t.Fatalf("no waiting-room page on the way to the code step: %+v", pages)
	}
	w := pages[waited]
	if w.Status != http.StatusServiceUnavailable || w.Lang != "en" || w.H1 != "You are in the waiting line" || w.HeldUser != "alice" || w.Refresh {
		t.Errorf("waiting page %+v: want a 503 in English (the language chosen on the form), alice kept, no reload of its address", w)
	}
	for _, p := range pages[waited+1:] {
		if p.Password {
			t.Errorf("after the waiting room she was asked for her password again: %+v", p)
		}
	}
	for _, p := range pages {
		if p.Status == http.StatusNotFound || p.Status == http.StatusMethodNotAllowed {
			t.Errorf("the tab went to an address that does not answer: %+v", p)
		}
	}
	if last := pages[len(pages)-1]; !last.Code || last.Lang != "en" || last.Status != http.StatusOK {
		t.Errorf("last page %+v, want the code step in English", last)
	}
	_, metrics := s.do(t, "GET", s.ops+"/metrics", "", nil)
	for _, m := range []string{`rempart_waitroom_pending_total{room="login"} [1-9]`, `rempart_waitroom_admitted_total{room="login"} [2-9]`} {
		if !regexp.MustCompile(m).Match(metrics) {
			t.Errorf("no %s in /metrics: the room did not hold and then admit her", m)
		}
	}

	code := smsCodeRe.FindStringSubmatch(s.smsTo(t, "+33 6 12 34 56 78"))
	if code == nil {
		t.Fatal("no code in alice's SMS")
	}
	tab.Do(chromedp.SendKeys(chromedp.ID("code"), code[1]), chromedp.Submit(chromedp.ID("code")))
	tab.Until(`(document.getElementById("out")?.textContent ?? "").includes("access_token")`)
}

// TestBrowserChallengeNoScript: with the password step under attack, a
// customer whose browser runs no JavaScript sends her password from a
// login she switched to French. The proof-of-work page answers in French,
// says that the calculation needs JavaScript and what to do instead, and
// does not claim it carries on by itself: it stays where it is, unsolved.
func TestBrowserChallengeNoScript(t *testing.T) {
	b := browsertest.New(t)
	cfg := config.Default()
	cfg.Estate.Customers = 1000
	s := startBrowserServe(t, cfg)
	s.setScrubMode(t, identity.RouteLoginPassword, "attack")
	tab := b.Tab(t, "en-GB,en;q=0.9")
	// The demo app builds its login link in JavaScript; the customer's
	// browser runs none from the login form on.
	tab.Do(chromedp.Navigate(s.public+"/demo/"),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.Click(chromedp.CSS(`a[hreflang="fr"]`)),
		chromedp.WaitVisible(chromedp.CSS(`html[lang="fr"] #username`)),
		func(ctx context.Context, target *chromedp.Target) (chromedp.Void, error) {
			_, err := cdp.Call(ctx, target, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return chromedp.Void{}, err
		},
		chromedp.SendKeys(chromedp.ID("username"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), "alice-demo-2025"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	tab.Until(`document.documentElement.lang === "fr" && document.querySelector("h1")?.textContent === "Un instant, s'il vous plaît"`)
	// Long enough for the page's script to have solved 16 bits and sent
	// the form again, had it run.
	time.Sleep(3 * time.Second)
	tab.Shot("challenge")
	page := browsertest.Run(tab, chromedp.Evaluate[string](`location.pathname + "\n" + document.body.innerText`))
	for _, want := range []string{"/login/password\n", "JavaScript est désactivé", "application de la banque"} {
		if !strings.Contains(page, want) {
			t.Errorf("challenge page without JavaScript lacks %q:\n%s", want, page)
		}
	}
	for _, lie := range []string{"d'elle-même", "by itself", "C'est fait"} {
		if strings.Contains(page, lie) {
			t.Errorf("challenge page without JavaScript says %q:\n%s", lie, page)
		}
	}
	if browsertest.Run(tab, chromedp.Evaluate[bool](`document.getElementById("code") !== null`)) {
		t.Error("the login went on without the work done")
	}
	_, metrics := s.do(t, "GET", s.ops+"/metrics", "", nil)
	if !regexp.MustCompile(`rempart_scrub_decisions_total\{decision="challenged",route="login-password"\} [1-9]`).Match(metrics) {
		t.Error("no challenged login-password request in /metrics: the form did not meet the challenge")
	}
	if regexp.MustCompile(`rempart_scrub_decisions_total\{decision="solved",route="login-password"\} [1-9]`).Match(metrics) {
		t.Error("a challenge was solved with JavaScript off")
	}
}
