package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/rempart/rempart/internal/config"
)

var (
	loginIDRe = regexp.MustCompile(`name="id" value="([^"]+)"`)
	smsCodeRe = regexp.MustCompile(`\b(\d{6})\b`)
)

// login runs the whole login an app drives against serve — authorization
// request with PKCE, password, the SMS code read from the estate's outbox,
// code exchange — and returns the access token.
func (s *running) login(t *testing.T, user, password, phone string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if r.URL.Path == "/callback" {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	var raw [32]byte
	rand.Read(raw[:])
	verifier := base64.RawURLEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(verifier))
	const redirect = "http://127.0.0.1/callback"
	q := url.Values{"client_id": {"rempart-demo-app"}, "response_type": {"code"}, "scope": {"openid accounts payments"},
		"redirect_uri": {redirect}, "state": {"s"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"}}
	resp, err := b.Get(s.public + "/oauth/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	m := loginIDRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no login form: %d %s", resp.StatusCode, body)
	}
	if resp, err = b.PostForm(s.public+"/login/password", url.Values{"id": {m[1]}, "username": {user}, "password": {password}}); err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); !strings.Contains(body, `name="code"`) {
		t.Fatalf("password step: %d %s", resp.StatusCode, body)
	}
	_, sms := s.do(t, "GET", s.ops+"/ops/estate/sms?limit=1&to="+url.QueryEscape(phone), "", nil)
	var out struct {
		Messages []struct{ Text string } `json:"messages"`
	}
	decode(t, sms, &out)
	if len(out.Messages) == 0 || smsCodeRe.FindStringSubmatch(out.Messages[0].Text) == nil {
		t.Fatalf("no login code sent to %s: %s", phone, sms)
	}
	code := smsCodeRe.FindStringSubmatch(out.Messages[0].Text)[1]
	if resp, err = b.PostForm(s.public+"/login/otp", url.Values{"id": {m[1]}, "code": {code}}); err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	loc, err := resp.Location()
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("otp step: %d, no code in %v", resp.StatusCode, loc)
	}
	resp, err = b.PostForm(s.public+"/oauth/token", url.Values{"grant_type": {"authorization_code"},
		"code": {loc.Query().Get("code")}, "redirect_uri": {redirect}, "client_id": {"rempart-demo-app"},
		"code_verifier": {verifier}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	decode(t, []byte(readBody(t, resp)), &tok)
	return tok.AccessToken
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTrustBoundary performs, against serve on its defaults, the attacks a
// bank's front door must refuse: anonymous money movements, partner routes
// without the partner's certificate, a customer's token against another
// customer's accounts, a service token against customer data, a forged
// forwarded certificate. Each answer is a problem document and changes
// nothing; the legitimate calls beside them succeed.
func TestTrustBoundary(t *testing.T) {
	cfg := config.Default()
	cfg.OpsTokenSMS = true // the test reads login codes from the outbox
	cfg.Estate.Customers = 1000
	s := startServe(t, cfg)
	alice := s.login(t, "alice", "alice-demo-2025", "+33 6 12 34 56 78")
	cc := func() string {
		res, b := s.do(t, "POST", s.public+"/oauth/token", "grant_type=client_credentials&scope=accounts+payments",
			map[string]string{"Content-Type": "application/x-www-form-urlencoded",
				"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("rempart-demo-service:rempart-demo-service-secret"))})
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if res.StatusCode != 200 {
			t.Fatalf("client credentials: %d %s", res.StatusCode, b)
		}
		decode(t, b, &tok)
		return tok.AccessToken
	}()
	card := `{"card":"4971111111111110","amount":3000,"merchant":"Boulangerie","channel":"shop"}`
	bearer := func(tok string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + tok}
	}
	write := func(key string, extra map[string]string) map[string]string {
		h := map[string]string{"Content-Type": "application/json", "Idempotency-Key": key}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	cards, atm, acs, scheme, noCert := s.as(t, "card-schemes"), s.as(t, "atm-network"), s.as(t, "3ds-server"),
		s.as(t, "instant-scheme"), s.as(t, "")
	cases := []struct {
		name         string
		via          *running
		method, path string
		body         string
		hdr          map[string]string
		status       int
	}{
		// Partner routes: the certificate, not the address, says who calls.
		{"anonymous card payment", s, "POST", "/v1/cards/authorize", card, write("a1", nil), 401},
		{"card payment over TLS without a certificate", noCert, "POST", "/v1/cards/authorize", card, write("a2", nil), 401},
		{"card payment with the ATM network's certificate", atm, "POST", "/v1/cards/authorize", card, write("a3", nil), 403},
		{"card payment with a customer's token", s, "POST", "/v1/cards/authorize", card, write("a4", bearer(alice)), 403},
		{"card payment with a service token", s, "POST", "/v1/cards/authorize", card, write("a5", bearer(cc)), 403},
		{"anonymous ATM withdrawal", s, "POST", "/v1/atm/withdraw", `{"card":"4971111111111110","amount":2000,"atm":"X"}`, write("a6", nil), 401},
		{"anonymous 3-D Secure challenge", s, "POST", "/v1/3ds/challenge", `{"card":"4971111111111110","amount":100,"merchant":"Appelez le 0899"}`, write("a7", nil), 401},
		{"3-D Secure challenge by a card scheme", cards, "POST", "/v1/3ds/challenge", `{"card":"4971111111111110","amount":100,"merchant":"X"}`, write("a8", nil), 403},
		{"forged forwarded certificate from a peer that is no balancer", s, "POST", "/v1/cards/authorize", card,
			write("a9", map[string]string{"X-Forwarded-Client-Cert": `Subject="CN=card-schemes";DNS=card-schemes.partners.rempart.test`}), 401},
		// Money leaves an account only for its owner, strongly authenticated.
		{"anonymous instant transfer", s, "POST", "/v1/transfers/instant", `{"from":"A-camille","to":"A-bruno","amount":100}`, write("b1", nil), 401},
		{"transfer from another customer's account", s, "POST", "/v1/transfers/instant", `{"from":"A-camille","to":"A-alice","amount":100}`, write("b2", bearer(alice)), 403},
		{"transfer naming from twice", s, "POST", "/v1/transfers/instant", `{"from":"A-alice","from":"A-camille","to":"A-bruno","amount":100}`, write("b3", bearer(alice)), 400},
		{"transfer with a service token", s, "POST", "/v1/transfers/instant", `{"from":"A-camille","to":"A-bruno","amount":100}`, write("b4", bearer(cc)), 403},
		{"transfer with the 3-D Secure server's certificate", acs, "POST", "/v1/transfers/instant", `{"from":"A-camille","to":"A-bruno","amount":100}`, write("b5", nil), 403},
		// Reads: only the customer's own.
		{"anonymous balance", s, "GET", "/v1/accounts/A-camille/balance", "", nil, 401},
		{"anonymous accounts", s, "GET", "/v1/customers/camille/accounts", "", nil, 401},
		{"anonymous documents", s, "GET", "/v1/customers/camille/documents", "", nil, 401},
		{"another customer's balance", s, "GET", "/v1/accounts/A-camille/balance", "", bearer(alice), 403},
		{"another customer's history", s, "GET", "/v1/accounts/A-camille/transactions", "", bearer(alice), 403},
		{"another customer's documents", s, "GET", "/v1/customers/camille/documents", "", bearer(alice), 403},
		{"balance with a service token", s, "GET", "/v1/accounts/A-camille/balance", "", bearer(cc), 403},
		{"balance with a forged token", s, "GET", "/v1/accounts/A-alice/balance", "", bearer(alice[:len(alice)-4] + "AAAA"), 401},
		// What the same callers may do.
		{"the card scheme pays", cards, "POST", "/v1/cards/authorize", card, write("ok1", nil), 200},
		{"the ATM network withdraws", atm, "POST", "/v1/atm/withdraw", `{"card":"4971111111111110","amount":2000,"atm":"X"}`, write("ok2", nil), 200},
		{"the scheme transfers", scheme, "POST", "/v1/transfers/instant", `{"from":"A-camille","to":"A-bruno","amount":100}`, write("ok3", nil), 200},
		{"alice transfers from her account", s, "POST", "/v1/transfers/instant", `{"from":"A-alice","to":"A-bruno","amount":100}`, write("ok4", bearer(alice)), 200},
		{"alice reads her balance", s, "GET", "/v1/accounts/A-alice/balance", "", bearer(alice), 200},
		{"alice reads her documents", s, "GET", "/v1/customers/alice/documents", "", bearer(alice), 200},
		{"parcels stay public", s, "GET", "/v1/parcels/LP123456789FR", "", nil, 200},
		// Passkey login is routed (it answered no-route before): without a
		// login in progress it is a clear refusal, not a 404.
		{"passkey login without a login in progress", s, "POST", "/login/passkey/begin", "id=ar_nothing", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, b := tc.via.do(t, tc.method, tc.via.public+tc.path, tc.body, tc.hdr)
			if res.StatusCode != tc.status {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, res.StatusCode, b, tc.status)
			}
			if tc.status >= 400 && res.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("refusal is %q, not a problem document: %s", res.Header.Get("Content-Type"), b)
			}
		})
	}

	// Nothing refused moved money: the ledger holds exactly the writes that
	// were answered 2xx.
	_, b := s.do(t, "POST", s.ops+"/ops/estate/check", `{"acknowledged":["ok1","ok2","ok3","ok4"]}`,
		map[string]string{"Content-Type": "application/json"})
	var rep struct {
		OK     bool  `json:"ok"`
		Writes int64 `json:"writes"`
	}
	decode(t, b, &rep)
	if !rep.OK {
		t.Fatalf("ledger check: %s", b)
	}
	var full map[string]any
	json.Unmarshal(b, &full)
	t.Logf("ledger after the attacks: %v", full)
}

// TestDemoPKIFiles checks what serve leaves on disk for the demo: keys no
// one else can read, one certificate per default partner.
func TestDemoPKIFiles(t *testing.T) {
	cfg := config.Default()
	cfg.OpsTokenSMS = true // the test reads login codes from the outbox
	cfg.Estate.Customers = 1000
	s := startServe(t, cfg)
	for _, p := range config.DemoPartners() {
		for _, f := range []string{"partner-" + p.Name + ".pem", "partner-" + p.Name + "-key.pem"} {
			fi, err := os.Stat(s.dataDir + "/pki/" + f)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(f, "-key.pem") && fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
			}
		}
	}
}
