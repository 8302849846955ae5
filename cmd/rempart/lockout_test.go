package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/config"
	"github.com/rempart/rempart/internal/identity"
	"github.com/rempart/rempart/internal/scrub/pow"
)

// loginFlow is one browser's login in progress against serve.
type loginFlow struct {
	s  *running
	b  *http.Client
	id string
}

var browsers atomic.Int32

// startLogin opens a login in browser b (a fresh one when nil), with
// prompt=login when the browser has a session to ignore.
func (s *running) startLogin(t *testing.T, b *http.Client) *loginFlow {
	t.Helper()
	if b == nil {
		// Each new browser comes from its own loopback address, as
		// customers and bots do from theirs.
		n := browsers.Add(1)
		src := &net.TCPAddr{IP: net.IPv4(127, 77, byte(n/250), byte(n%250+1))}
		tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: src}).DialContext}
		jar, _ := cookiejar.New(nil)
		b = &http.Client{Jar: jar, Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	var raw [32]byte
	rand.Read(raw[:])
	sum := sha256.Sum256([]byte(base64.RawURLEncoding.EncodeToString(raw[:])))
	q := url.Values{"client_id": {"rempart-demo-app"}, "response_type": {"code"}, "scope": {"openid accounts"},
		"redirect_uri": {"http://127.0.0.1/callback"}, "state": {"s"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	if b.Jar != nil {
		if u, _ := url.Parse(s.public); len(b.Jar.Cookies(u)) > 0 {
			q.Set("prompt", "login")
		}
	}
	resp, err := b.Get(s.public + "/oauth/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if loc, err := resp.Location(); err == nil && strings.HasPrefix(loc.Path, "/login") {
		if resp, err = b.Get(s.public + loc.RequestURI()); err != nil {
			t.Fatal(err)
		}
	}
	body := readBody(t, resp)
	m := loginIDRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no login form: %d %s", resp.StatusCode, body)
	}
	return &loginFlow{s: s, b: b, id: m[1]}
}

func (f *loginFlow) post(t *testing.T, path string, v url.Values) (int, string) {
	t.Helper()
	v.Set("id", f.id)
	v.Set("lang", "en")
	resp, err := f.b.PostForm(f.s.public+path, v)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, readBody(t, resp)
}

var challengeRe = regexp.MustCompile(`data-challenge="([^"]+)" data-bits="(\d+)"`)

// TestOwnerNotLockedOut performs, against serve on its defaults, a
// password-guessing attack on alice's account, then logs alice in from a
// browser that has never seen the bank: she is asked for a proof of work,
// not locked out, and gets in with it. An attacker who knows her password
// cannot go on guessing SMS codes past the day's cap, while her own device
// still can log in.
func TestOwnerNotLockedOut(t *testing.T) {
	cfg := config.Default()
	cfg.OpsTokenSMS = true // the test reads login codes from the outbox
	cfg.Estate.Customers = 1000
	s := startServe(t, cfg)

	for i := range 5 {
		if st, body := s.startLogin(t, nil).post(t, "/login/password", url.Values{"username": {"alice"}, "password": {"guess-" + string(rune('a'+i))}}); st != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d %.200s", i, st, body)
		}
	}
	// The sixth guess is not checked without work: a challenge, no hash.
	st, body := s.startLogin(t, nil).post(t, "/login/password", url.Values{"username": {"alice"}, "password": {"guess-f"}})
	if st != http.StatusTooManyRequests || !challengeRe.MatchString(body) {
		t.Fatalf("sixth guess: %d %.300s, want a challenge", st, body)
	}
	// A made-up solution is no solution.
	st, body = s.startLogin(t, nil).post(t, "/login/password", url.Values{"username": {"alice"}, "password": {"guess-g"}, "pow": {"1.16.0.AAAA.AAAA.AAAA.0"}})
	if st != http.StatusTooManyRequests || !challengeRe.MatchString(body) {
		t.Fatalf("forged solution: %d %.300s", st, body)
	}

	// Alice, from a new browser: the page asks for work and keeps her ID.
	owner := s.startLogin(t, nil)
	st, body = owner.post(t, "/login/password", url.Values{"username": {"alice"}, "password": {"alice-demo-2025"}})
	m := challengeRe.FindStringSubmatch(body)
	if st != http.StatusTooManyRequests || m == nil || !strings.Contains(body, `value="alice"`) || !strings.Contains(body, "short calculation") {
		t.Fatalf("owner after the attack: %d %.400s", st, body)
	}
	sol, err := pow.Solve(context.Background(), html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	st, body = owner.post(t, "/login/password", url.Values{"username": {"alice"}, "password": {"alice-demo-2025"}, "pow": {sol}})
	if st != http.StatusOK || !strings.Contains(body, `name="code"`) {
		t.Fatalf("owner with the work done: %d %.300s", st, body)
	}
	code := smsCodeRe.FindStringSubmatch(s.smsTo(t, "+33 6 12 34 56 78"))[1]
	if st, _ = owner.post(t, "/login/otp", url.Values{"code": {code}}); st != http.StatusSeeOther {
		t.Fatalf("owner's code: %d", st)
	}
	// The solution was spent.
	if st, _ = s.startLogin(t, nil).post(t, "/login/password", url.Values{"username": {"alice"}, "password": {"alice-demo-2025"}, "pow": {sol}}); st == http.StatusOK {
		t.Fatal("a spent solution let a second login in")
	}

	// Bruno's password is known to an attacker, who guesses SMS codes from
	// browsers without bruno's device cookie; the day's ten are all it
	// gets. Bruno logged in from his phone the day before.
	phone := s.startLogin(t, nil)
	phone.password(t, "bruno", "bruno-demo-2025")
	// "Send a new code" goes through the gateway to the provider, which
	// paces it (a 404 here would be the gateway not routing it).
	if st, body := phone.post(t, "/login/sms", url.Values{}); st != http.StatusTooManyRequests || !strings.Contains(body, "A new code can be sent in") {
		t.Fatalf("send a new code at once: %d %.300s", st, body)
	}
	if st, _ := phone.post(t, "/login/otp", url.Values{"code": {s.code(t, brunoPhone)}}); st != http.StatusSeeOther {
		t.Fatalf("bruno's own login: %d", st)
	}
	for _, wrong := range []int{4, 4, 2} {
		f := s.startLogin(t, nil)
		f.password(t, "bruno", "bruno-demo-2025")
		for range wrong {
			if st, _ := f.post(t, "/login/otp", url.Values{"code": {"000000"}}); st != http.StatusUnauthorized {
				t.Fatalf("wrong code: %d", st)
			}
		}
		if wrong == 2 {
			// The eleventh code of the day is not checked, even the right one.
			st, body := f.post(t, "/login/otp", url.Values{"code": {s.code(t, brunoPhone)}})
			if st != http.StatusTooManyRequests || !strings.Contains(body, "Too many wrong codes") {
				t.Fatalf("eleventh code of the day: %d %.300s, want it not checked", st, body)
			}
		}
	}
	// Bruno's phone has its own day.
	again := s.startLogin(t, phone.b)
	again.password(t, "bruno", "bruno-demo-2025")
	if st, body := again.post(t, "/login/otp", url.Values{"code": {s.code(t, brunoPhone)}}); st != http.StatusSeeOther {
		t.Fatalf("bruno's phone after the attack: %d %.300s", st, body)
	}
}

const brunoPhone = "+33 6 23 45 67 89"

// code is the newest login code sent to phone.
func (s *running) code(t *testing.T, phone string) string {
	t.Helper()
	return smsCodeRe.FindStringSubmatch(s.smsTo(t, phone))[1]
}

// password sends the password step, doing the work when challenged.
func (f *loginFlow) password(t *testing.T, user, password string) {
	t.Helper()
	v := url.Values{"username": {user}, "password": {password}}
	st, body := f.post(t, "/login/password", v)
	if m := challengeRe.FindStringSubmatch(body); st == http.StatusTooManyRequests && m != nil {
		sol, err := pow.Solve(context.Background(), html.UnescapeString(m[1]))
		if err != nil {
			t.Fatal(err)
		}
		v.Set("pow", sol)
		st, body = f.post(t, "/login/password", v)
	}
	if st != http.StatusOK || !strings.Contains(body, `name="code"`) {
		t.Fatalf("%s's password: %d %.300s", user, st, body)
	}
}

// TestOpsTokenReadsNoSMS: on defaults the automation token switches faults
// and reads the ledger check, but not the SMS outbox, where every login
// code goes; ops_token_sms (serve --ops-token-sms) is the demo's opt-in.
func TestOpsTokenReadsNoSMS(t *testing.T) {
	for _, tc := range []struct {
		optIn bool
		want  int
	}{{false, http.StatusForbidden}, {true, http.StatusOK}} {
		cfg := config.Default()
		cfg.Estate.Customers = 1000
		cfg.OpsTokenSMS = tc.optIn
		s := startServe(t, cfg)
		if res, body := s.do(t, "GET", s.ops+"/ops/estate/sms?limit=1", "", nil); res.StatusCode != tc.want {
			t.Errorf("ops_token_sms=%v: outbox %d %s, want %d", tc.optIn, res.StatusCode, body, tc.want)
		}
		if res, body := s.do(t, "GET", s.ops+"/ops/estate/check", "", nil); res.StatusCode != http.StatusOK {
			t.Errorf("ops_token_sms=%v: ledger check %d %s", tc.optIn, res.StatusCode, body)
		}
	}
}

// TestBackupLoginThroughServe: with the identity store stuck (the drill's
// fault), alice logs in again from the browser of her earlier login — her
// password and SMS code checked against that device's snapshot — while a
// browser without one is told logins are busy; once the bank blocks her in
// the directory, her device's backup path is gone too.
func TestBackupLoginThroughServe(t *testing.T) {
	cfg := config.Default()
	cfg.OpsTokenSMS = true // the test reads login codes from the outbox
	cfg.Estate.Customers = 1000
	s := startServe(t, cfg)
	const alicePhone = "+33 6 12 34 56 78"
	loginOn := func(b *http.Client) (int, *loginFlow) {
		f := s.startLogin(t, b)
		st, _ := f.post(t, "/login/password", url.Values{"username": {"alice"}, "password": {"alice-demo-2025"}})
		return st, f
	}
	st, phone := loginOn(nil)
	if st != http.StatusOK {
		t.Fatalf("first login: %d", st)
	}
	if st, _ := phone.post(t, "/login/otp", url.Values{"code": {s.code(t, alicePhone)}}); st != http.StatusSeeOther {
		t.Fatalf("first login's code: %d", st)
	}
	stuck := func(on bool) {
		if res, body := s.do(t, "PUT", s.ops+"/ops/identity/faults", fmt.Sprintf(`{"user_store_stuck":%t}`, on), map[string]string{"Content-Type": "application/json"}); res.StatusCode != http.StatusOK {
			t.Fatalf("identity faults: %d %s", res.StatusCode, body)
		}
	}
	stuck(true)
	t.Cleanup(func() { stuck(false) })
	st, again := loginOn(phone.b)
	if st != http.StatusOK {
		t.Fatalf("alice's browser with the store stuck: %d, want the code step", st)
	}
	if st, _ := again.post(t, "/login/otp", url.Values{"code": {s.code(t, alicePhone)}}); st != http.StatusSeeOther {
		t.Fatalf("backup login's code: %d", st)
	}
	if st, _ := loginOn(nil); st != http.StatusServiceUnavailable {
		t.Fatalf("a new browser with the store stuck: %d, want 503", st)
	}
	_, metrics := s.do(t, "GET", s.ops+"/metrics", "", nil)
	if !strings.Contains(string(metrics), `rempart_identity_backup_logins_total{outcome="backup"} 1`) {
		t.Errorf("no backup login counted in /metrics")
	}
	if res, body := s.do(t, "PUT", s.ops+"/ops/identity/users/alice", `{"blocked":true}`, map[string]string{"Content-Type": "application/json"}); res.StatusCode != http.StatusNoContent {
		t.Fatalf("block alice: %d %s", res.StatusCode, body)
	}
	if st, _ := loginOn(phone.b); st == http.StatusOK {
		t.Fatal("a blocked customer got in through the backup path")
	}

	// The directory back, what the backup login wrote to it while it hung
	// reaches it from the journal.
	stuck(false)
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		res, body := s.do(t, "GET", s.ops+"/ops/identity/users/alice", "", nil)
		var a identity.DirectoryActivity
		if res.StatusCode == http.StatusOK && json.Unmarshal(body, &a) == nil && a.Logins == 2 {
			if a.LastMethod != "pwd+otp+backup" || len(a.Devices) != 1 {
				t.Fatalf("alice's activity in the directory: %s", body)
			}
			break
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("the backup login's writes never reached the directory: %d %s", res.StatusCode, body)
		}
	}
}
