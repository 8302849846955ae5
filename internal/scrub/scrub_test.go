package scrub

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/scrub/clock"
	"github.com/rempart/rempart/internal/scrub/pow"
)

var epoch = time.Date(2025, time.December, 18, 7, 0, 0, 0, time.UTC)

// newTestScrubber builds a scrubber on a fake clock with a small difficulty,
// so tests that solve challenges stay fast.
func newTestScrubber(t testing.TB, mutate func(*Options)) (*Scrubber, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(epoch)
	o := Options{
		Key:              []byte("0123456789abcdef0123456789abcdef"),
		Clock:            clk,
		Logger:           slog.New(slog.DiscardHandler),
		Registerer:       prometheus.NewRegistry(),
		PoW:              PoW{BaseBits: 8, MaxBits: 12},
		LoginRoutes:      []string{"login"},
		LoginStartRoutes: []string{"authorize"},
		InsecureCookies:  true,
		Device:           testDevice,
		LoginAccount:     func(_ string, r *http.Request) string { return r.Header.Get(accountHeader) },
	}
	if mutate != nil {
		mutate(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s, clk
}

// testDevice plays the identity provider's device-cookie check: X-Test-Device
// 1 is a valid cookie of X-Test-Device-Account, or else of the account the
// request logs in to (X-Test-Account).
func testDevice(r *http.Request) string {
	if r.Header.Get("X-Test-Device") != "1" {
		return ""
	}
	if a := r.Header.Get("X-Test-Device-Account"); a != "" {
		return a
	}
	return r.Header.Get(accountHeader)
}

// testGateway plays the gateway around the scrubber: it puts the route in
// the request's Info and, standing in for the token verifier and the partner
// authentication, a session when X-Test-Session is set and the partner named
// by X-Test-Partner.
func testGateway(s *Scrubber, route string, next http.Handler) http.Handler {
	h := s.Middleware(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &request.Info{Route: route, Session: r.Header.Get("X-Test-Session") == "1",
			Partner: r.Header.Get("X-Test-Partner")}
		h.ServeHTTP(w, r.WithContext(request.With(r.Context(), info)))
	})
}

// seenInfo records the Info the upstream saw.
type seenInfo struct{ info request.Info }

func (u *seenInfo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.info = *request.From(r.Context())
	w.WriteHeader(http.StatusOK)
}

func get(h http.Handler, remote string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/v1/accounts/A-alice/balance", nil)
	req.RemoteAddr = remote
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestClientAddress(t *testing.T) {
	s, _ := newTestScrubber(t, func(o *Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	})
	fwd, _ := newTestScrubber(t, func(o *Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		o.ClientIPHeader = "Forwarded"
	})
	for _, tc := range []struct {
		name   string
		s      *Scrubber
		remote string
		hdr    map[string][]string
		want   string
	}{
		{"no header", s, "203.0.113.9:4711", nil, "203.0.113.9"},
		{"spoofed xff from untrusted peer", s, "203.0.113.9:4711",
			map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, "203.0.113.9"},
		{"spoofed forwarded from untrusted peer", fwd, "203.0.113.9:4711",
			map[string][]string{"Forwarded": {"for=198.51.100.1"}}, "203.0.113.9"},
		{"trusted proxy", s, "10.0.0.1:80", map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, "198.51.100.1"},
		{"client spoofs the left of the chain", s, "10.0.0.1:80",
			map[string][]string{"X-Forwarded-For": {"1.2.3.4, 198.51.100.1"}}, "198.51.100.1"},
		{"two trusted hops", s, "10.0.0.1:80",
			map[string][]string{"X-Forwarded-For": {"1.2.3.4, 198.51.100.1, 10.9.9.9"}}, "198.51.100.1"},
		{"several header lines", s, "10.0.0.1:80",
			map[string][]string{"X-Forwarded-For": {"1.2.3.4", "198.51.100.1, 10.9.9.9"}}, "198.51.100.1"},
		{"all trusted", s, "10.0.0.1:80", map[string][]string{"X-Forwarded-For": {"10.1.1.1, 10.2.2.2"}}, "10.1.1.1"},
		{"garbage stops at the last trusted hop", s, "10.0.0.1:80",
			map[string][]string{"X-Forwarded-For": {"198.51.100.1, nonsense"}}, "10.0.0.1"},
		{"port in xff", s, "10.0.0.1:80", map[string][]string{"X-Forwarded-For": {"198.51.100.1:5555"}}, "198.51.100.1"},
		{"ipv6 in xff", s, "[fd00::1]:80", map[string][]string{"X-Forwarded-For": {"2001:db8::7"}}, "2001:db8::7"},
		{"mapped ipv4 peer", s, "[::ffff:203.0.113.9]:80", nil, "203.0.113.9"},
		{"xff ignored when forwarded configured", fwd, "10.0.0.1:80",
			map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, "10.0.0.1"},
		{"forwarded", fwd, "10.0.0.1:80",
			map[string][]string{"Forwarded": {`for=192.0.2.60;proto=http;by=203.0.113.43`}}, "192.0.2.60"},
		{"forwarded ipv6 quoted with port", fwd, "10.0.0.1:80",
			map[string][]string{"Forwarded": {`for="[2001:db8:cafe::17]:4711"`}}, "2001:db8:cafe::17"},
		{"forwarded chain", fwd, "10.0.0.1:80",
			map[string][]string{"Forwarded": {`for=1.1.1.1, for=192.0.2.60, for=10.3.3.3`}}, "192.0.2.60"},
		{"forwarded unknown", fwd, "10.0.0.1:80", map[string][]string{"Forwarded": {`for=unknown`}}, "10.0.0.1"},
		{"forwarded obfuscated", fwd, "10.0.0.1:80", map[string][]string{"Forwarded": {`for=_hidden`}}, "10.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &seenInfo{}
			h := testGateway(tc.s, "balance", up)
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.RemoteAddr = tc.remote
			for k, vs := range tc.hdr {
				for _, v := range vs {
					req.Header.Add(k, v)
				}
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			if got := up.info.Client.String(); got != tc.want {
				t.Fatalf("client = %s, want %s", got, tc.want)
			}
		})
	}
}

func FuzzResolveClient(f *testing.F) {
	f.Add("198.51.100.1, 10.0.0.2", false)
	f.Add(`for="[2001:db8::1]:80";proto=https, for=10.0.0.3`, true)
	f.Add(`for=";for=[`, true)
	trusted := prefixSet{netip.MustParsePrefix("10.0.0.0/8")}
	peer := netip.MustParseAddr("10.0.0.1")
	f.Fuzz(func(t *testing.T, h string, forwarded bool) {
		a := resolveClient(peer, []string{h}, forwarded, trusted.contains)
		if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
			t.Fatalf("resolved %q to %v", h, a)
		}
	})
}

// TestPartnersPassUnderAttack: what exempts a partner is the identity the
// gateway authenticated, never a source address.
func TestPartnersPassUnderAttack(t *testing.T) {
	s, _ := newTestScrubber(t, nil)
	s.SetMode("card-authorize", ModeAttack)
	h := testGateway(s, "card-authorize", &seenInfo{})
	for _, tc := range []struct {
		name, remote string
		hdr          map[string]string
		want         int
	}{
		{"authenticated partner", "192.0.2.10:1000", map[string]string{"X-Test-Partner": "card-scheme"}, http.StatusOK},
		{"partner network's address, no identity", "192.0.2.10:1000", nil, http.StatusTooManyRequests},
		{"stranger", "198.51.100.10:1000", nil, http.StatusTooManyRequests},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A hundred in a row: a partner is not limited either.
			for range 100 {
				if rec := get(h, tc.remote, tc.hdr); rec.Code != tc.want {
					t.Fatalf("got %d under attack, want %d", rec.Code, tc.want)
				}
			}
		})
	}
}

// TestChallengeSolveClearance walks the app flow: challenged, solve, retry
// with the solution, receive a clearance, pass on it alone.
func TestChallengeSolveClearance(t *testing.T) {
	s, clk := newTestScrubber(t, nil)
	s.SetMode("balance", ModeAttack)
	h := testGateway(s, "balance", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !request.From(r.Context()).Cleared {
			t.Error("upstream saw a request without clearance")
		}
	}))
	ua := map[string]string{"User-Agent": "BankApp/7.1", "Accept": "application/json"}
	rec := get(h, "198.51.100.7:1", ua)
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("got %d, want 429 challenge", rec.Code)
	}
	var p struct {
		Type       string `json:"type"`
		Challenge  string `json:"challenge"`
		Difficulty int    `json:"difficulty"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if p.Challenge == "" || p.Challenge != rec.Header().Get(HeaderChallenge) || !strings.HasSuffix(p.Type, "/proof-of-work") {
		t.Fatalf("challenge problem %+v, header %q", p, rec.Header().Get(HeaderChallenge))
	}
	sol, err := pow.Solve(context.Background(), p.Challenge)
	if err != nil {
		t.Fatal(err)
	}
	rec = get(h, "198.51.100.7:2", map[string]string{"User-Agent": "BankApp/7.1", HeaderSolution: sol})
	if rec.Code != http.StatusOK {
		t.Fatalf("with solution: %d %s", rec.Code, rec.Body)
	}
	clr := rec.Header().Get(HeaderClearance)
	if clr == "" || !strings.Contains(rec.Header().Get("Set-Cookie"), CookieClearance+"=") {
		t.Fatalf("no clearance handed out: %v", rec.Header())
	}
	// Replaying the solution gets nothing more.
	if rec := get(h, "198.51.100.8:2", map[string]string{"User-Agent": "BankApp/7.1", HeaderSolution: sol}); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("replayed solution: %d", rec.Code)
	}
	// Another address of the same /24, same app: the clearance holds.
	if rec := get(h, "198.51.100.9:3", map[string]string{"User-Agent": "BankApp/7.1", HeaderClearance: clr}); rec.Code != http.StatusOK {
		t.Fatalf("clearance refused: %d", rec.Code)
	}
	// As a cookie, for browsers.
	if rec := get(h, "198.51.100.9:3", map[string]string{"User-Agent": "BankApp/7.1", "Cookie": CookieClearance + "=" + clr}); rec.Code != http.StatusOK {
		t.Fatalf("clearance cookie refused: %d", rec.Code)
	}

	tampered := []byte(clr)
	tampered[len(tampered)-2] ^= 1
	for _, tc := range []struct {
		name, remote, ua, tok string
		advance               time.Duration
	}{
		{"other network", "203.0.113.9:1", "BankApp/7.1", clr, 0},
		{"other user agent", "198.51.100.9:1", "curl/8.0", clr, 0},
		{"tampered mac", "198.51.100.9:1", "BankApp/7.1", string(tampered), 0},
		{"tampered expiry", "198.51.100.9:1", "BankApp/7.1", "c1.9999999999." + strings.SplitN(clr, ".", 3)[2], 0},
		{"garbage", "198.51.100.9:1", "BankApp/7.1", "c1..x", 0},
		{"expired", "198.51.100.9:1", "BankApp/7.1", clr, 16 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk.Advance(tc.advance)
			rec := get(h, tc.remote, map[string]string{"User-Agent": tc.ua, HeaderClearance: tc.tok})
			if rec.Code != http.StatusTooManyRequests {
				t.Fatalf("%s clearance: %d, want 429 challenge", tc.name, rec.Code)
			}
		})
	}
}

func TestSolutionRefused(t *testing.T) {
	s, clk := newTestScrubber(t, nil)
	p := netip.MustParsePrefix("198.51.100.0/24")
	solve := func(c pow.Challenge) string {
		sol, err := pow.Solve(context.Background(), c.String())
		if err != nil {
			t.Fatal(err)
		}
		return sol
	}
	good := s.issueChallenge(p, 8, clk.Now())
	forged := good
	forged.Bits = 1 // cheaper work, same MAC
	var weak string
	for _, bits := range []int{1} {
		c := s.issueChallenge(p, 12, clk.Now())
		// Find a counter that meets 1 bit but not 12.
		for n := 0; ; n++ {
			cand := c.String() + "." + strconv.Itoa(n)
			if pow.Enough(cand, bits) && !pow.Enough(cand, 12) {
				weak = cand
				break
			}
		}
	}
	for _, tc := range []struct {
		name    string
		sol     string
		prefix  netip.Prefix
		advance time.Duration
		want    error
	}{
		{"wrong network", solve(good), netip.MustParsePrefix("203.0.113.0/24"), 0, errPrefix},
		{"forged difficulty", solve(forged), p, 0, errMAC},
		{"not enough work", weak, p, 0, errWork},
		{"malformed", "1.2.3", p, 0, errMalformed},
		{"expired", solve(s.issueChallenge(p, 8, clk.Now())), p, 3 * time.Minute, errExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.verifySolution(tc.sol, tc.prefix, clk.Now().Add(tc.advance)); err != tc.want {
				t.Fatalf("verifySolution: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestBrowserGetsPage(t *testing.T) {
	s, _ := newTestScrubber(t, nil)
	s.SetMode("balance", ModeAttack)
	h := testGateway(s, "balance", &seenInfo{})
	rec := get(h, "198.51.100.7:1", map[string]string{"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
	body := rec.Body.String()
	if rec.Code != http.StatusTooManyRequests || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("browser got %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, want := range []string{"<noscript>", "crypto.subtle", rec.Header().Get(HeaderChallenge), "rempart_solution="} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestDifficultyRisesWithAttack(t *testing.T) {
	bitsAt := func(bots int) int {
		s, clk := newTestScrubber(t, func(o *Options) {
			o.Baselines = map[string]float64{"balance": 20}
			o.PoW = PoW{BaseBits: 10, MaxBits: 24}
		})
		h := testGateway(s, "balance", &seenInfo{})
		for i := range bots {
			get(h, "127.9."+strconv.Itoa(i/250)+"."+strconv.Itoa(i%250)+":1", nil)
			if i%(bots/100) == 0 {
				clk.Advance(10 * time.Millisecond)
			}
		}
		clk.Advance(10 * time.Millisecond)
		st := s.State("balance")
		if st.State != Attack {
			t.Fatalf("%d bots/s: state %s (%s)", bots, st.State, st.Evidence.Reason)
		}
		return st.DifficultyBits
	}
	small, large := bitsAt(200), bitsAt(5000)
	if !(large > small && small >= 10) {
		t.Fatalf("difficulty %d bits at 200 req/s, %d at 5000: want it to rise", small, large)
	}
}

func TestRateLimitedAnswer(t *testing.T) {
	s, _ := newTestScrubber(t, func(o *Options) { o.NormalFactor = 1 })
	h := testGateway(s, "balance", &seenInfo{})
	var rec *httptest.ResponseRecorder
	for range 11 {
		rec = get(h, "198.51.100.7:1", nil)
	}
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("11th request in a burst of 10: %d", rec.Code)
	}
	h1 := rec.Header()
	if h1.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q, want 1", h1.Get("Retry-After"))
	}
	if got, want := h1.Get("RateLimit-Policy"), `"per-address";q=10;w=5`; got != want {
		t.Errorf("RateLimit-Policy = %q, want %q", got, want)
	}
	if got, want := h1.Get("RateLimit"), `"per-address";r=0;t=1`; got != want {
		t.Errorf("RateLimit = %q, want %q", got, want)
	}
	if !strings.HasPrefix(h1.Get("Content-Type"), "application/problem+json") {
		t.Errorf("content type %q", h1.Get("Content-Type"))
	}
	// Known clients have their own, larger budget.
	if rec := get(h, "198.51.100.7:1", map[string]string{"X-Test-Session": "1"}); rec.Code != http.StatusOK {
		t.Fatalf("session holder on a limited address: %d", rec.Code)
	}
}

func TestSessionEarnsClearance(t *testing.T) {
	s, _ := newTestScrubber(t, nil)
	h := testGateway(s, "balance", &seenInfo{})
	rec := get(h, "198.51.100.7:1", map[string]string{"X-Test-Session": "1", "User-Agent": "BankApp/7.1"})
	clr := rec.Header().Get(HeaderClearance)
	if clr == "" {
		t.Fatal("no clearance for a session holder")
	}
	s.SetMode("balance", ModeAttack)
	if rec := get(h, "198.51.100.7:1", map[string]string{HeaderClearance: clr, "User-Agent": "BankApp/7.1"}); rec.Code != http.StatusOK {
		t.Fatalf("clearance from a session refused under attack: %d", rec.Code)
	}
}

func TestLateSessionEarnsClearance(t *testing.T) {
	s, _ := newTestScrubber(t, nil)
	// The token verifier runs after the scrubber here.
	h := testGateway(s, "balance", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		request.From(r.Context()).Session = true
		io.WriteString(w, "ok")
	}))
	rec := get(h, "198.51.100.7:1", nil)
	if rec.Header().Get(HeaderClearance) == "" {
		t.Fatal("no clearance for a session found after the scrubber")
	}
}

func TestBlockAndAllowLists(t *testing.T) {
	s, clk := newTestScrubber(t, nil)
	h := testGateway(s, "balance", &seenInfo{})
	if err := s.Block(netip.MustParsePrefix("203.0.113.0/24"), time.Minute, "test"); err != nil {
		t.Fatal(err)
	}
	if err := s.Allow(netip.MustParsePrefix("198.51.100.0/24"), time.Minute, "test"); err != nil {
		t.Fatal(err)
	}
	s.SetMode("balance", ModeAttack)
	if rec := get(h, "203.0.113.5:1", nil); rec.Code != http.StatusForbidden {
		t.Fatalf("blocked network: %d", rec.Code)
	}
	if rec := get(h, "198.51.100.5:1", nil); rec.Code != http.StatusOK {
		t.Fatalf("allowed network under attack: %d", rec.Code)
	}
	clk.Advance(2 * time.Minute)
	if rec := get(h, "203.0.113.5:1", nil); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("block expired, want the attack's challenge: %d", rec.Code)
	}
	if rec := get(h, "198.51.100.5:1", nil); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("allow expired, want the attack's challenge: %d", rec.Code)
	}
}

func TestLoginThrottling(t *testing.T) {
	s, clk := newTestScrubber(t, nil)
	owner := netip.MustParseAddr("198.51.100.7")
	// A distributed attack on one account: 200 failures from 200 addresses.
	for i := range 200 {
		bot := netip.AddrFrom4([4]byte{127, 5, byte(i / 250), byte(i % 250)})
		if ok, _ := s.AllowLogin("Alice", bot, false); ok {
			s.ObserveLogin("login", bot, "alice", false, false)
		}
	}
	if ok, retry := s.AllowLogin("alice", netip.MustParseAddr("127.6.0.1"), false); ok || retry <= 0 {
		t.Fatalf("unknown device after the attack: ok=%v retry=%v, want throttled", ok, retry)
	}
	if ok, _ := s.AllowLogin("alice", owner, true); !ok {
		t.Fatal("the owner with a device cookie is locked out")
	}
	// The owner's own typos spend the device budget, not the attack's.
	for range 10 {
		s.ObserveLogin("login", owner, "alice", false, true)
	}
	if ok, _ := s.AllowLogin("alice", owner, true); ok {
		t.Fatal("ten device failures in a row did not slow the device")
	}
	clk.Advance(time.Minute)
	if ok, _ := s.AllowLogin("alice", owner, true); !ok {
		t.Fatal("device budget did not refill")
	}
	// Per-address: one address failing across many accounts.
	addr := netip.MustParseAddr("203.0.113.50")
	for i := range 20 {
		s.ObserveLogin("login", addr, "acct"+strconv.Itoa(i), false, false)
	}
	if ok, _ := s.AllowLogin("fresh-account", addr, false); ok {
		t.Fatal("address with 20 failures across accounts not throttled")
	}
	if got := counterValue(t, s.metrics.logins.WithLabelValues("challenged_account")); got < 1 {
		t.Fatalf("challenged_account counter %v", got)
	}
}

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestDeviceCookieOnlyForOwnLogin: under attack a device cookie lets its
// holder through on a login route for a login to its own account, and
// nowhere else, so a copied cookie earns a bot nothing.
func TestDeviceCookieOnlyForOwnLogin(t *testing.T) {
	s, _ := newTestScrubber(t, nil)
	for _, route := range []string{"balance", "login", "authorize"} {
		s.SetMode(route, ModeAttack)
	}
	for _, tc := range []struct {
		name, route   string
		hdr           map[string]string
		wantChallenge bool
	}{
		{"own account on the login route", "login", map[string]string{"X-Test-Device": "1", accountHeader: "alice"}, false},
		{"other account on the login route", "login",
			map[string]string{"X-Test-Device": "1", "X-Test-Device-Account": "alice", accountHeader: "bruno"}, true},
		{"no login account on the login route", "login", map[string]string{"X-Test-Device": "1", "X-Test-Device-Account": "alice"}, true},
		{"no cookie on the login route", "login", map[string]string{accountHeader: "alice"}, true},
		{"valid cookie on another route", "balance", map[string]string{"X-Test-Device": "1", accountHeader: "alice"}, true},
		{"valid cookie where a login starts", "authorize", map[string]string{"X-Test-Device": "1", "X-Test-Device-Account": "alice"}, false},
		{"no cookie where a login starts", "authorize", map[string]string{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.hdr["Accept"] = "application/json"
			rec := get(testGateway(s, tc.route, &seenInfo{}), "198.51.100.7:1", tc.hdr)
			challenged := rec.Code == http.StatusTooManyRequests && rec.Header().Get(HeaderChallenge) != ""
			if challenged != tc.wantChallenge || !challenged && rec.Code != http.StatusOK {
				t.Fatalf("got %d (challenge %v), want challenge %v", rec.Code, challenged, tc.wantChallenge)
			}
		})
	}
}
