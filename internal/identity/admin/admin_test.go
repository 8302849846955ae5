package admin

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/identity/webauthntest"
)

func TestEnrolThenLoginSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	if st, _ := e.call(t, e.client(), "/ops/estate/faults", nil); st != http.StatusUnauthorized {
		t.Fatalf("before enrolment: %d, want 401", st)
	}
	for _, format := range []string{"none", "packed"} {
		t.Run(format, func(t *testing.T) {
			auth := webauthntest.New(e.origin)
			auth.Format = format
			c := e.client()
			name := "admin-" + format
			st, m := e.enrol(t, c, auth, e.token(t), name)
			if st != http.StatusOK || str(m, "admin") != name {
				t.Fatalf("enrol: %d %s", st, m["detail"])
			}
			// The enrolment logged the admin in.
			if st, _ := e.call(t, c, "/ops/estate/faults", nil); st != http.StatusOK {
				t.Fatalf("ops API after enrolment: %d", st)
			}
			if st, m := e.call(t, c, PathSession, nil); st != http.StatusOK || str(m, "admin") != name {
				t.Fatalf("session: %d %v", st, m)
			}
			// A restarted server knows the admin and the key.
			e.open(t)
			c2 := e.client()
			if st, m := e.login(t, c2, auth, name); st != http.StatusOK {
				t.Fatalf("login after restart: %d %s", st, m["detail"])
			}
			if st, _ := e.call(t, c2, "/ops/estate/faults", nil); st != http.StatusOK {
				t.Fatalf("ops API after login: %d", st)
			}
		})
	}
	fi, err := os.Stat(filepath.Join(e.dir, adminsFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admins file: %v %v", err, fi)
	}
}

func TestEnrolTokenIsOneTime(t *testing.T) {
	e := newEnv(t)
	tok := e.token(t)
	// Two ceremonies begun with one token: the first to finish wins.
	c1, c2 := e.client(), e.client()
	a1, a2 := webauthntest.New(e.origin), webauthntest.New(e.origin)
	_, b1 := e.call(t, c1, PathEnrolBegin, map[string]string{"token": tok, "name": "one"})
	_, b2 := e.call(t, c2, PathEnrolBegin, map[string]string{"token": tok, "name": "two"})
	cr1, _ := a1.Create(b1["publicKey"])
	cr2, _ := a2.Create(b2["publicKey"])
	if st, m := e.call(t, c1, PathEnrolFinish, map[string]any{"ceremony": str(b1, "ceremony"), "credential": rawJSON(cr1)}); st != http.StatusOK {
		t.Fatalf("first: %d %s", st, m["detail"])
	}
	if st, _ := e.call(t, c2, PathEnrolFinish, map[string]any{"ceremony": str(b2, "ceremony"), "credential": rawJSON(cr2)}); st != http.StatusUnauthorized {
		t.Fatalf("second finish with a spent token: %d, want 401", st)
	}
	if st, _ := e.enrol(t, e.client(), webauthntest.New(e.origin), tok, "three"); st != http.StatusUnauthorized {
		t.Fatalf("reuse: %d, want 401", st)
	}
	if n := e.a.Enrolled(); n != 1 {
		t.Fatalf("enrolled %d admins, want 1", n)
	}
}

func TestEnrolTokenRefused(t *testing.T) {
	e := newEnv(t)
	fresh, _ := randomToken(enrolPrefix)
	withdrawn := e.token(t)
	expired := e.token(t) // withdraws the one above
	cases := []struct{ name, token string }{
		{"empty", ""},
		{"malformed", "enrol_not-a-token"},
		{"machine token", readFile(t, e.a.MachineTokenPath())},
		{"never issued", fresh},
		{"withdrawn by a newer one", withdrawn},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if st, m := e.enrol(t, e.client(), webauthntest.New(e.origin), tc.token, "x"); st != http.StatusUnauthorized {
				t.Fatalf("%d %v, want 401", st, m)
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		e.clock.Add(time.Hour + time.Second)
		if st, _ := e.enrol(t, e.client(), webauthntest.New(e.origin), expired, "x"); st != http.StatusUnauthorized {
			t.Fatalf("%d, want 401", st)
		}
	})
	if e.a.Enrolled() != 0 {
		t.Fatal("an admin was enrolled")
	}
	if strings.Contains(e.log(), withdrawn) || strings.Contains(e.log(), expired) {
		t.Fatal("a token reached the log")
	}
}

func rawJSON(b []byte) any { return json_(b) }

type json_ []byte

func (j json_) MarshalJSON() ([]byte, error) { return j, nil }

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestRequireAdmin(t *testing.T) {
	e := newEnv(t)
	_, c := e.enrolled(t)
	u, _ := url.Parse(e.srv.URL)
	var good string
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == cookieName {
			good = ck.Value
		}
	}
	if good == "" {
		t.Fatal("no session cookie")
	}
	withCookie := func(v string) *http.Client {
		c := e.client()
		c.Jar.SetCookies(u, []*http.Cookie{{Name: cookieName, Value: v}})
		return c
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	parts := strings.Split(good, ".")
	other := b64.EncodeToString(bytes.Repeat([]byte{7}, 32))
	tampered := map[string]string{
		"garbage":          "x",
		"mac flipped":      flip(good, len(good)-5),
		"admin swapped":    other + "." + parts[1] + "." + parts[2],
		"expiry extended":  parts[0] + "." + "9999999999" + "." + parts[2],
		"mac of other key": parts[0] + "." + parts[1] + "." + b64.EncodeToString(make([]byte, 32)),
		"extra part":       good + ".x",
	}
	for name, v := range tampered {
		t.Run(name, func(t *testing.T) {
			if st, _ := e.call(t, withCookie(v), "/ops/estate/faults", nil); st != http.StatusUnauthorized {
				t.Fatalf("%d, want 401", st)
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		if st, _ := e.call(t, withCookie(good), "/ops/estate/faults", nil); st != http.StatusOK {
			t.Fatalf("%d", st)
		}
	})
	t.Run("no session", func(t *testing.T) {
		st, m := e.call(t, e.client(), "/ops/estate/faults", nil)
		if st != http.StatusUnauthorized || !strings.HasSuffix(str(m, "type"), "admin-required") {
			t.Fatalf("%d %v", st, m)
		}
		st, _ = e.call(t, e.client(), "/ops/estate/faults", nil, "Accept", "text/html")
		if st != http.StatusSeeOther {
			t.Fatalf("browser: %d, want a redirect to the login page", st)
		}
	})
	t.Run("open paths", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/metrics"} {
			if st, _ := e.call(t, e.client(), p, nil); st != http.StatusOK {
				t.Fatalf("%s: %d", p, st)
			}
		}
		// The console's pages work at the relying party's origin only
		// (localhost): at 127.0.0.1 they send the browser there.
		for _, p := range []string{PathLogin, PathEnrol} {
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL+p, nil)
			resp, err := e.client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != e.origin+p {
				t.Fatalf("%s at 127.0.0.1: %d to %q, want 303 to %s", p, resp.StatusCode, loc, e.origin+p)
			}
			req.Host = strings.TrimPrefix(e.origin, "http://")
			if resp, err = e.client().Do(req); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s at the console's origin: %d", p, resp.StatusCode)
			}
		}
		for _, p := range []string{"/ops/admin/login/../../estate/faults", "/ops/admin/login/x", "/healthz/x"} {
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL, nil)
			req.URL.Path = p
			resp, err := e.client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatalf("%s reachable without a session", p)
			}
		}
	})
	t.Run("cross-origin write", func(t *testing.T) {
		st, _ := e.call(t, withCookie(good), "/ops/estate/faults", map[string]any{}, "Origin", "http://localhost:8080")
		if st != http.StatusForbidden {
			t.Fatalf("%d, want 403", st)
		}
		st, _ = e.call(t, withCookie(good), "/ops/estate/faults", map[string]any{}, "Origin", e.origin)
		if st != http.StatusOK {
			t.Fatalf("same origin: %d", st)
		}
	})
	t.Run("session expires", func(t *testing.T) {
		e.clock.Add(16 * time.Minute)
		defer e.clock.Add(-16 * time.Minute)
		if st, _ := e.call(t, withCookie(good), "/ops/estate/faults", nil); st != http.StatusUnauthorized {
			t.Fatalf("%d, want 401", st)
		}
	})
	t.Run("machine token", func(t *testing.T) {
		tok := readFile(t, e.a.MachineTokenPath())
		if st, _ := e.call(t, e.client(), "/ops/estate/faults", nil, "Authorization", "Bearer "+tok); st != http.StatusOK {
			t.Fatalf("%d", st)
		}
		// Not an admin login: it cannot mint enrolment tokens.
		if st, _ := e.call(t, e.client(), PathEnrolToken, map[string]any{}, "Authorization", "Bearer "+tok); st != http.StatusUnauthorized {
			t.Fatalf("enrol-token with the machine token: %d, want 401", st)
		}
		wrong, _ := randomToken(opsPrefix)
		for _, h := range []string{"Bearer " + wrong, "Basic " + tok, tok, "Bearer " + tok + "x"} {
			if st, _ := e.call(t, e.client(), "/ops/estate/faults", nil, "Authorization", h); st != http.StatusUnauthorized {
				t.Fatalf("%q: %d, want 401", h, st)
			}
		}
		fi, _ := os.Stat(e.a.MachineTokenPath())
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("machine token mode %v", fi.Mode())
		}
	})
	t.Run("admin issues a token for another admin", func(t *testing.T) {
		st, m := e.call(t, withCookie(good), PathEnrolToken, map[string]any{})
		if st != http.StatusOK {
			t.Fatalf("%d", st)
		}
		if st, _ := e.enrol(t, e.client(), webauthntest.New(e.origin), str(m, "token"), "bob"); st != http.StatusOK {
			t.Fatalf("enrol bob: %d", st)
		}
	})
	t.Run("logout", func(t *testing.T) {
		c := withCookie(good)
		if st, _ := e.call(t, c, PathLogout, map[string]any{}); st != http.StatusNoContent {
			t.Fatalf("%d", st)
		}
		if st, _ := e.call(t, c, "/ops/estate/faults", nil); st != http.StatusUnauthorized {
			t.Fatalf("after logout: %d", st)
		}
		// A copy of the cookie taken before the logout is dead too, and
		// stays dead when the admins are loaded again (a restart).
		if st, _ := e.call(t, withCookie(good), "/ops/estate/faults", nil); st != http.StatusUnauthorized {
			t.Fatalf("copied cookie after logout: %d, want 401", st)
		}
		again, err := loadAdmins(e.a.dir)
		if err != nil || len(again) == 0 || again[0].LoggedOut.IsZero() {
			t.Fatalf("logout not recorded on disk: %v %+v", err, again)
		}
	})
}

// TestMachineTokenScope: the automation token does not reach the paths it
// is denied (the SMS outbox's login codes); an admin session does.
func TestMachineTokenScope(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MachineDenied = []string{"/ops/estate/sms"} })
	_, admin := e.enrolled(t)
	tok := readFile(t, e.a.MachineTokenPath())
	for _, tc := range []struct {
		path string
		c    *http.Client
		hdr  []string
		want int
	}{
		{"/ops/estate/faults", e.client(), []string{"Authorization", "Bearer " + tok}, http.StatusOK},
		{"/ops/estate/sms", e.client(), []string{"Authorization", "Bearer " + tok}, http.StatusForbidden},
		{"/ops/estate/sms?to=x", e.client(), []string{"Authorization", "Bearer " + tok}, http.StatusForbidden},
		// Past the guard: the test's ops mux has no outbox, hence 404.
		{"/ops/estate/sms", admin, nil, http.StatusNotFound},
	} {
		if st, m := e.call(t, tc.c, tc.path, nil, tc.hdr...); st != tc.want {
			t.Errorf("%s: %d %v, want %d", tc.path, st, m, tc.want)
		}
	}
}

func TestNotRequired(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Required = false })
	if st, _ := e.call(t, e.client(), "/ops/estate/faults", nil); st != http.StatusOK {
		t.Fatalf("%d", st)
	}
	// Minting enrolment tokens still needs an admin.
	if st, _ := e.call(t, e.client(), PathEnrolToken, map[string]any{}); st != http.StatusUnauthorized {
		t.Fatalf("enrol-token: %d", st)
	}
}

func TestClonedAuthenticatorRefused(t *testing.T) {
	e := newEnv(t)
	auth, _ := e.enrolled(t)
	if st, _ := e.login(t, e.client(), auth, "ada"); st != http.StatusOK { // counter 1
		t.Fatal(st)
	}
	clone := auth.Clone()
	for range 2 { // counter 3
		if st, _ := e.login(t, e.client(), auth, "ada"); st != http.StatusOK {
			t.Fatal(st)
		}
	}
	if st, _ := e.login(t, e.client(), clone, "ada"); st != http.StatusUnauthorized { // counter 2
		t.Fatalf("clone with an older counter: %d, want 401", st)
	}
	if st, _ := e.login(t, e.client(), clone, "ada"); st != http.StatusUnauthorized { // counter 3, equal
		t.Fatalf("clone with an equal counter: %d, want 401", st)
	}
	if !strings.Contains(e.log(), "may be cloned") {
		t.Fatal("the clone was not logged")
	}
	// The genuine key, ahead, keeps working.
	if st, _ := e.login(t, e.client(), auth, "ada"); st != http.StatusOK {
		t.Fatalf("genuine key after a clone was refused: %d", st)
	}
}

func TestPhishingRefused(t *testing.T) {
	e := newEnv(t)
	tok := e.token(t)
	cases := map[string]func(*webauthntest.Authenticator){
		"wrong origin":   func(a *webauthntest.Authenticator) { a.Origin = "http://rempart-ops.example" },
		"other port":     func(a *webauthntest.Authenticator) { a.Origin = "http://localhost:1" },
		"wrong rp id":    func(a *webauthntest.Authenticator) { a.RPID = "rempart-ops.example" },
		"no user verify": func(a *webauthntest.Authenticator) { a.NoUV = true },
		"wrong type":     func(a *webauthntest.Authenticator) { a.Type = "webauthn.get" },
	}
	for name, mod := range cases {
		t.Run("enrol/"+name, func(t *testing.T) {
			auth := webauthntest.New(e.origin)
			mod(auth)
			if st, _ := e.enrol(t, e.client(), auth, tok, "eve"); st != http.StatusUnauthorized {
				t.Fatalf("%d, want 401", st)
			}
		})
	}
	// Failed ceremonies did not spend the token.
	auth, _ := func() (*webauthntest.Authenticator, int) {
		a := webauthntest.New(e.origin)
		st, _ := e.enrol(t, e.client(), a, tok, "ada")
		if st != http.StatusOK {
			t.Fatalf("enrol after failures: %d", st)
		}
		return a, st
	}()
	for name, mod := range cases {
		t.Run("login/"+name, func(t *testing.T) {
			a := auth.Clone()
			a.SetCounter(1 << 20) // not a clone: only the named fault
			mod(a)
			if name == "wrong type" {
				a.Type = "webauthn.create"
			}
			if st, _ := e.login(t, e.client(), a, "ada"); st != http.StatusUnauthorized {
				t.Fatalf("%d, want 401", st)
			}
		})
	}
}

func TestCeremonyReplayRefused(t *testing.T) {
	e := newEnv(t)
	auth, _ := e.enrolled(t)
	c := e.client()
	_, begin := e.call(t, c, PathLoginBegin, map[string]string{"name": "ada"})
	cred, _ := auth.Get(begin["publicKey"])
	body := map[string]any{"ceremony": str(begin, "ceremony"), "credential": rawJSON(cred)}
	if st, _ := e.call(t, c, PathLoginFinish, body); st != http.StatusOK {
		t.Fatal(st)
	}
	if st, _ := e.call(t, e.client(), PathLoginFinish, body); st != http.StatusUnauthorized {
		t.Fatalf("replayed assertion: %d, want 401", st)
	}
	// An assertion for one ceremony does not finish another.
	_, b2 := e.call(t, c, PathLoginBegin, map[string]string{"name": "ada"})
	if st, _ := e.call(t, c, PathLoginFinish, map[string]any{"ceremony": str(b2, "ceremony"), "credential": rawJSON(cred)}); st != http.StatusUnauthorized {
		t.Fatalf("assertion of another ceremony: %d, want 401", st)
	}
	// A ceremony left too long expires.
	_, b3 := e.call(t, c, PathLoginBegin, map[string]string{"name": "ada"})
	cred3, _ := auth.Get(b3["publicKey"])
	e.clock.Add(ceremonyTTL + time.Second)
	if st, _ := e.call(t, c, PathLoginFinish, map[string]any{"ceremony": str(b3, "ceremony"), "credential": rawJSON(cred3)}); st != http.StatusUnauthorized {
		t.Fatalf("expired ceremony: %d, want 401", st)
	}
	if st, _ := e.login(t, c, auth, "nobody"); st != http.StatusUnauthorized {
		t.Fatalf("unknown admin: %d", st)
	}
}

func TestConcurrentLogins(t *testing.T) {
	e := newEnv(t)
	auth, _ := e.enrolled(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if st, m := e.login(t, e.client(), auth, "ada"); st != http.StatusOK {
				// Two assertions can reach the server out of counter order;
				// the later-numbered one wins and the other looks cloned.
				if !strings.HasSuffix(str(m, "type"), "login-refused") {
					t.Errorf("%d %v", st, m)
				}
			}
		})
	}
	wg.Wait()
}

func TestBootstrap(t *testing.T) {
	e := newEnv(t)
	var out bytes.Buffer
	if err := e.a.Bootstrap(&out); err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`enrol_[A-Za-z0-9_-]{43}`).MatchString(out.String()) {
		t.Fatalf("the enrolment token was printed (start-up output ends in logs): %q", out.String())
	}
	if !strings.Contains(out.String(), e.origin+PathEnrol) || !strings.Contains(out.String(), e.a.EnrolTokenPath()) {
		t.Fatalf("no URL or token file in %q", out.String())
	}
	if o, err := Origin(e.a.dir); err != nil || o != e.origin {
		t.Fatalf("recorded origin %q, %v; want %q", o, err, e.origin)
	}
	fi, err := os.Stat(e.a.EnrolTokenPath())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("enrolment token file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	tok := regexp.MustCompile(`enrol_[A-Za-z0-9_-]{43}`).FindString(readFile(t, e.a.EnrolTokenPath()))
	if tok == "" {
		t.Fatal("no token in the enrolment token file")
	}
	if strings.Contains(out.String(), readFile(t, e.a.MachineTokenPath())) {
		t.Fatal("the machine token was printed")
	}
	if st, _ := e.enrol(t, e.client(), webauthntest.New(e.origin), tok, "ada"); st != http.StatusOK {
		t.Fatalf("enrol with the printed token: %d", st)
	}
	out.Reset()
	e.a.Bootstrap(&out)
	if strings.Contains(out.String(), "enrol") {
		t.Fatalf("enrolment offered with an admin enrolled: %q", out.String())
	}
	if _, err := os.Stat(e.a.EnrolTokenPath()); !os.IsNotExist(err) {
		t.Fatalf("the enrolment token file outlived the first enrolment: %v", err)
	}
}

func TestPageScriptMatchesCSP(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{PathLogin, PathEnrol} {
		resp, err := http.Get(e.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := regexp.MustCompile(`(?s)<script>(.*)</script>`).FindSubmatch(body)
		if m == nil {
			t.Fatal("no script")
		}
		h := sha256.Sum256(m[1])
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "'sha256-"+base64.StdEncoding.EncodeToString(h[:])+"'") {
			t.Fatalf("%s: CSP %q does not allow the page's script", p, csp)
		}
	}
}

func TestDefaultRP(t *testing.T) {
	cases := []struct {
		addr, rp, origin string
		err              bool
	}{
		{"127.0.0.1:9090", "localhost", "http://localhost:9090", false},
		{"[::1]:9090", "localhost", "http://localhost:9090", false},
		{":9090", "localhost", "http://localhost:9090", false},
		{"localhost:9091", "localhost", "http://localhost:9091", false},
		{"ops.bank.example:9090", "ops.bank.example", "https://ops.bank.example:9090", false},
		{"10.0.0.5:9090", "", "", true},
		{"nonsense", "", "", true},
		{"127.0.0.1:bad", "", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.addr, func(t *testing.T) {
			rp, origins, err := DefaultRP(tc.addr)
			if (err != nil) != tc.err || rp != tc.rp || (!tc.err && origins[0] != tc.origin) {
				t.Fatalf("%q %v %v", rp, origins, err)
			}
		})
	}
}
