package scrub

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/request"
)

// TestLoopbackSources plays a few hundred real clients, each bound to its own
// 127.x.y.z source address with net.Dialer.LocalAddr, against a loopback
// listener on the real clock: the scrubber must tell them apart by their
// RemoteAddr, detect the attack, refuse bots and leave the device-cookie
// customers alone. It checks plumbing over real sockets, not counts that
// depend on the machine's speed.
func TestLoopbackSources(t *testing.T) {
	if testing.Short() {
		t.Skip("binds hundreds of loopback sources: skipped in -short mode")
	}
	const bots, perBot, customers = 300, 8, 20
	s, err := New(Options{
		Logger:       slog.New(slog.DiscardHandler),
		LoginRoutes:  []string{"login"},
		Baselines:    map[string]float64{"login": 5},
		PoW:          PoW{BaseBits: 8, MaxBits: 10},
		Device:       testDevice,
		LoginAccount: func(_ string, r *http.Request) string { return r.Header.Get("X-Test-Account") },
	})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		sources = map[netip.Addr]bool{}
	)
	var botsUpstream, lockouts atomic.Int64
	idp := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := request.From(r.Context()).Client
		device := r.Header.Get("X-Test-Device") == "1"
		if !device {
			botsUpstream.Add(1)
		}
		acct := r.Header.Get("X-Test-Account")
		if ok, _ := s.AllowLogin(acct, client, device); !ok {
			if device {
				lockouts.Add(1)
			}
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		ok := device // customers know their password, bots guess
		s.ObserveLogin("login", client, acct, ok, device)
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
		}
	})
	mw := s.Middleware(idp)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &request.Info{Route: "login"}
		mw.ServeHTTP(w, r.WithContext(request.With(r.Context(), info)))
		// Whatever the answer, the scrubber has attributed the request.
		mu.Lock()
		sources[info.Client] = true
		mu.Unlock()
	}))
	defer srv.Close()

	clientFrom := func(ip netip.Addr) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip.AsSlice()}, Timeout: 2 * time.Second}
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 1}}
	}
	// post returns the status and whether the scrubber refused the request
	// (a challenge or a rate limit).
	post := func(c *http.Client, acct string, device bool) (int, bool, error) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/login", strings.NewReader("{}"))
		req.Header.Set("X-Test-Account", acct)
		req.Header.Set("Accept", "application/json")
		if device {
			req.Header.Set("X-Test-Device", "1")
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, false, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get(HeaderChallenge) != "" || resp.Header.Get("RateLimit") != "", nil
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Customers log in steadily from their own addresses throughout.
	var custRefused, custTotal atomic.Int64
	var wg sync.WaitGroup
	custDone := make(chan struct{})
	for i := range customers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := clientFrom(netip.AddrFrom4([4]byte{127, 88, 0, byte(1 + i)}))
			defer c.CloseIdleConnections()
			for {
				select {
				case <-custDone:
					return
				case <-ctx.Done():
					return
				case <-time.After(200 * time.Millisecond):
				}
				code, _, err := post(c, fmt.Sprintf("C%08d", i), true)
				if err != nil {
					continue
				}
				custTotal.Add(1)
				if code != http.StatusOK {
					custRefused.Add(1)
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)

	// The botnet: 300 sources in 300 different /24s (so no prefix limit
	// helps), eight guesses each, 32 at a time.
	onset := time.Now()
	var firstChallenge atomic.Int64
	var refused, botTotal atomic.Int64
	sem := make(chan struct{}, 32)
	var bw sync.WaitGroup
	for i := range bots {
		bw.Add(1)
		sem <- struct{}{}
		go func() {
			defer bw.Done()
			defer func() { <-sem }()
			c := clientFrom(botAddr(i))
			defer c.CloseIdleConnections()
			for j := range perBot {
				if ctx.Err() != nil {
					return
				}
				_, ch, err := post(c, fmt.Sprintf("C%08d", (i*perBot+j)%customers), false)
				if err != nil {
					t.Errorf("bot %d: %v", i, err)
					return
				}
				botTotal.Add(1)
				if ch {
					refused.Add(1)
					firstChallenge.CompareAndSwap(0, time.Now().UnixNano())
				}
			}
		}()
	}
	bw.Wait()
	close(custDone)
	wg.Wait()

	st := s.State("login")
	mu.Lock()
	distinct := 0
	for a := range sources {
		if a.Is4() && a.As4()[3] == 7 && a.As4()[1] != 88 {
			distinct++
		}
	}
	mu.Unlock()
	toMitigation := time.Duration(firstChallenge.Load() - onset.UnixNano())
	t.Logf("bots: %d requests from %d sources (%d told apart), %d refused, %d reached the identity provider; first refusal %v after onset",
		botTotal.Load(), bots, distinct, refused.Load(), botsUpstream.Load(), toMitigation)
	t.Logf("customers: %d logins, %d refused; route state %s (%s)", custTotal.Load(), custRefused.Load(), st.State, st.Evidence.Reason)
	if distinct != bots {
		t.Errorf("scrubber told %d bot sources apart, want %d: RemoteAddr not used", distinct, bots)
	}
	if st.Detected != Attack {
		t.Errorf("detected %s, want attack", st.Detected)
	}
	// Plumbing only: how many bot requests slip through before detection,
	// and how soon it comes, depend on how fast this machine runs the bots
	// (the race detector slows them several times). The bound on what
	// passes before classification is proven on the fake clock in
	// TestSurgeCap, the share refused in the botnet scenario test.
	if firstChallenge.Load() == 0 {
		t.Error("no bot request was refused")
	}
	if custRefused.Load() != 0 || lockouts.Load() != 0 {
		t.Errorf("device-cookie customers refused %d times, %d lockouts", custRefused.Load(), lockouts.Load())
	}
}

// botAddr is the source address of bot i: one per /24.
func botAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(77 + i/250), byte(i % 250), 7})
}
