package scrub

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/scrub/pow"
)

// The done-when scenarios of issue 5, in-process on a fake clock: customers
// and bots are loopback addresses (127.x.y.z) set as RemoteAddr, requests go
// through the scrubber to an httptest upstream that plays the identity
// provider (AllowLogin, password check, ObserveLogin) and the core.

type actor struct {
	remote    string
	client    netip.Addr
	account   string
	session   bool // holds a session (returning customer)
	device    bool // holds a device cookie
	ua        string
	clearance string
}

type simStats struct {
	custRequests, custChallenged, custRefused, custFailed int
	botRequests, botRefused                               int
	firstBotRefused                                       time.Time
}

type sim struct {
	t   *testing.T
	s   *Scrubber
	clk interface {
		Advance(time.Duration)
		Now() time.Time
	}
	h         http.Handler
	rng       *rand.Rand
	customers []*actor
	bots      []*actor
	stats     simStats

	upstreamBot, upstreamCust, deviceLockouts atomic.Int64
}

const (
	kindHeader     = "X-Test-Kind"
	accountHeader  = "X-Test-Account"
	passwordHeader = "X-Test-Password-Ok"
	clientHeader   = "X-Test-Client"
)

func newSim(t *testing.T, customers, bots int) *sim {
	s, clk := newTestScrubber(t, nil)
	sm := &sim{t: t, s: s, clk: clk, rng: rand.New(rand.NewPCG(1, 2))}

	// The upstream: identity provider on "login", the core elsewhere.
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(kindHeader) == "bot" {
			sm.upstreamBot.Add(1)
		} else {
			sm.upstreamCust.Add(1)
		}
		if r.URL.Path != "/login" {
			w.WriteHeader(http.StatusOK)
			return
		}
		client := netip.MustParseAddr(r.Header.Get(clientHeader))
		acct, device := r.Header.Get(accountHeader), r.Header.Get("X-Test-Device") == "1"
		if ok, retry := s.AllowLogin(acct, client, device); !ok {
			if device {
				sm.deviceLockouts.Add(1)
			}
			w.Header().Set("Retry-After", fmt.Sprint(int(retry.Seconds())))
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		ok := r.Header.Get(passwordHeader) == "1"
		s.ObserveLogin("login", client, acct, ok, device)
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(upstream.Close)
	target, _ := url.Parse(upstream.URL)
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Header.Set(clientHeader, request.From(pr.In.Context()).Client.String())
	}}
	mw := s.Middleware(proxy)
	sm.h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := "balance"
		if r.URL.Path == "/login" {
			route = "login"
		}
		info := &request.Info{Route: route, Session: r.Header.Get("X-Test-Session") == "1"}
		mw.ServeHTTP(w, r.WithContext(request.With(r.Context(), info)))
	})

	// Customers on 127.200.0.0/13, diverse /24s; 99.8 % returning (session
	// and device cookie), 0.2 % new.
	for i := range customers {
		a := netip.AddrFrom4([4]byte{127, byte(200 + i%50), byte(i / 50 % 256), byte(1 + i%200)})
		sm.customers = append(sm.customers, &actor{
			remote: a.String() + ":40000", client: a, account: fmt.Sprintf("C%08d", i),
			session: i%500 != 0, device: i%500 != 0, ua: fmt.Sprintf("BankApp/7.%d (Android %d)", i%7, 10+i%5),
		})
	}
	// Bots on 127.1.0.0 - 127.40.255.255, a handful of user agents.
	for i := range bots {
		a := netip.AddrFrom4([4]byte{127, byte(1 + i/250%40), byte(i % 250), byte(1 + i/10000)})
		sm.bots = append(sm.bots, &actor{remote: a.String() + ":50000", client: a,
			ua: fmt.Sprintf("Mozilla/5.0 (bot %d)", i%5)})
	}
	return sm
}

func (sm *sim) send(a *actor, kind string, login bool, passwordOK bool, extra map[string]string) *httptest.ResponseRecorder {
	method, path := http.MethodGet, "/balance"
	if login {
		method, path = http.MethodPost, "/login"
	}
	req := httptest.NewRequest(method, path, nil)
	req.RemoteAddr = a.remote
	req.Header.Set("User-Agent", a.ua)
	req.Header.Set("Accept", "application/json")
	req.Header.Set(kindHeader, kind)
	if a.session && !login {
		req.Header.Set("X-Test-Session", "1")
	}
	if a.device {
		req.Header.Set("X-Test-Device", "1")
	}
	if a.clearance != "" {
		req.Header.Set(HeaderClearance, a.clearance)
	}
	if login {
		req.Header.Set(accountHeader, a.account)
		if passwordOK {
			req.Header.Set(passwordHeader, "1")
		}
	}
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	sm.h.ServeHTTP(rec, req)
	if c := rec.Header().Get(HeaderClearance); c != "" {
		a.clearance = c
	}
	return rec
}

// customer sends one request as the SDK would: on a challenge it solves and
// retries once.
func (sm *sim) customer() {
	c := sm.customers[sm.rng.IntN(len(sm.customers))]
	login := sm.rng.IntN(10) < 3
	pwOK := sm.rng.IntN(100) >= 3 // 3 % typos
	sm.stats.custRequests++
	rec := sm.send(c, "customer", login, pwOK, nil)
	if rec.Code == http.StatusTooManyRequests && rec.Header().Get(HeaderChallenge) != "" {
		sm.stats.custChallenged++
		sol, err := pow.Solve(context.Background(), rec.Header().Get(HeaderChallenge))
		if err != nil {
			sm.t.Fatal(err)
		}
		rec = sm.send(c, "customer", login, pwOK, map[string]string{HeaderSolution: sol})
		if rec.Code == http.StatusTooManyRequests || rec.Code == http.StatusForbidden {
			sm.stats.custFailed++
		}
		return
	}
	if rec.Code == http.StatusForbidden || rec.Code == http.StatusTooManyRequests && rec.Header().Get("RateLimit") != "" {
		sm.stats.custRefused++
		sm.stats.custFailed++
	}
}

// bot sends one credential-stuffing attempt (80 %) or a scrape of a balance
// (20 %); it never solves a challenge.
func (sm *sim) bot() {
	b := sm.bots[sm.rng.IntN(len(sm.bots))]
	b.account = sm.customers[sm.rng.IntN(len(sm.customers))].account
	sm.stats.botRequests++
	rec := sm.send(b, "bot", sm.rng.IntN(10) < 8, false, nil)
	// Refused by the scrubber: a challenge, a rate limit or a block (the
	// identity provider's own 429 carries neither header).
	if rec.Header().Get(HeaderChallenge) != "" || rec.Header().Get("RateLimit") != "" || rec.Code == http.StatusForbidden {
		sm.stats.botRefused++
		if sm.stats.firstBotRefused.IsZero() {
			sm.stats.firstBotRefused = sm.clk.Now()
		}
	}
}

// run plays d of traffic at the given rates (requests per second) in 10 ms
// steps of the fake clock.
func (sm *sim) run(d time.Duration, custRate, botRate float64) {
	const step = 10 * time.Millisecond
	var custDue, botDue float64
	for elapsed := time.Duration(0); elapsed < d; elapsed += step {
		custDue += custRate * step.Seconds()
		botDue += botRate * step.Seconds()
		for ; custDue >= 1; custDue-- {
			sm.customer()
		}
		for ; botDue >= 1; botDue-- {
			sm.bot()
		}
		sm.clk.Advance(step)
	}
}

func (sm *sim) logState(route string) RouteState {
	st := sm.s.State(route)
	b, _ := json.Marshal(st.Evidence)
	sm.t.Logf("route %s: state %s since %s, bits %d, evidence %s", route, st.State,
		st.Since.Format("15:04:05.000"), st.DifficultyBits, b)
	return st
}

const baselineRate = 10 // customer requests per second before the rush

func TestFlashCrowdAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("scenario test: skipped in -short mode")
	}
	sm := newSim(t, 5000, 0)
	sm.run(60*time.Second, baselineRate, 0)
	for _, r := range []string{"balance", "login"} {
		if st := sm.s.State(r); st.State != Normal {
			t.Fatalf("%s after warm-up: %s (%s)", r, st.State, st.Evidence.Reason)
		}
	}
	sm.stats = simStats{}
	sm.run(60*time.Second, 10*baselineRate, 0)
	for _, r := range []string{"balance", "login"} {
		if st := sm.logState(r); st.State != FlashCrowd {
			t.Errorf("%s during a 10x rush of returning customers: %s, want flash_crowd", r, st.State)
		}
	}
	st := sm.stats
	share := float64(st.custChallenged+st.custRefused) / float64(st.custRequests)
	t.Logf("flash crowd: %d customer requests, %d challenged, %d refused (%.3f %%)",
		st.custRequests, st.custChallenged, st.custRefused, 100*share)
	if share > 0.001 {
		t.Errorf("%.3f %% of legitimate requests challenged or refused, want <= 0.1 %%", 100*share)
	}
	if n := sm.deviceLockouts.Load(); n != 0 {
		t.Errorf("%d device-cookie logins throttled", n)
	}
}

func TestFlashCrowdWithBotnet(t *testing.T) {
	if testing.Short() {
		t.Skip("scenario test: skipped in -short mode")
	}
	sm := newSim(t, 5000, 10000)
	sm.run(60*time.Second, baselineRate, 0)
	sm.run(20*time.Second, 10*baselineRate, 0) // the rush starts first
	if st := sm.s.State("login"); st.State != FlashCrowd {
		t.Fatalf("login before the botnet: %s", st.State)
	}

	sm.stats = simStats{}
	botUp0, custUp0 := sm.upstreamBot.Load(), sm.upstreamCust.Load()
	onset := sm.clk.Now()
	// 10,000 bot addresses at 10x the rush (100x the baseline), 80 % of it
	// credential stuffing against the customers' accounts.
	sm.run(60*time.Second, 10*baselineRate, 100*baselineRate)

	st := sm.stats
	for _, r := range []string{"balance", "login"} {
		if rs := sm.logState(r); rs.State != Attack {
			t.Errorf("%s under a botnet: %s, want attack", r, rs.State)
		}
	}
	toMitigation := st.firstBotRefused.Sub(onset)
	botUp := sm.upstreamBot.Load() - botUp0
	reached := float64(botUp) / float64(st.botRequests)
	fp := float64(st.custChallenged+st.custRefused) / float64(st.custRequests)
	t.Logf("onset to first mitigated bot request: %v", toMitigation)
	t.Logf("bots: %d requests, %d reached the upstream (%.3f %%)", st.botRequests, botUp, 100*reached)
	t.Logf("customers: %d requests, %d reached the upstream, %d challenged, %d refused, %d failed after solving (%.3f %% challenged or refused)",
		st.custRequests, sm.upstreamCust.Load()-custUp0, st.custChallenged, st.custRefused, st.custFailed-st.custRefused, 100*fp)
	if st.firstBotRefused.IsZero() || toMitigation > 5*time.Second {
		t.Errorf("onset to mitigation %v, want <= 5s", toMitigation)
	}
	if reached > 0.01 {
		t.Errorf("%.3f %% of bot requests reached the upstream, want <= 1 %%", 100*reached)
	}
	if fp > 0.005 {
		t.Errorf("%.3f %% of customer requests challenged or refused, want <= 0.5 %%", 100*fp)
	}
	if st.custFailed != 0 {
		t.Errorf("%d customer requests failed for good", st.custFailed)
	}
	if n := sm.deviceLockouts.Load(); n != 0 {
		t.Errorf("%d device-cookie logins throttled: owners locked out", n)
	}
}
