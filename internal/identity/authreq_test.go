package identity

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/rempart/rempart/internal/identity/users"
	"github.com/rempart/rempart/internal/session/memory"
)

// show serves the page of request id, if it is live.
func show(p *pending, id string) {
	if a, err := p.get(context.Background(), id); err == nil {
		p.show(context.Background(), a)
	}
}

func TestPendingBounds(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	req := func(i int, addr string) *authRequest {
		a := &authRequest{id: "ar_" + strconv.Itoa(i), created: now}
		a.source, a.prefix = sourceOf(netip.MustParseAddr(addr))
		return a
	}
	for _, tc := range []struct {
		name string
		lim  PendingLimits
		run  func(t *testing.T, p *pending)
	}{
		{"per source", PendingLimits{Max: 1000, PerSource: 3, PerPrefix: 100}, func(t *testing.T, p *pending) {
			for i := range 3 {
				if err := p.add(ctx, req(i, "192.0.2.1")); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.add(ctx, req(3, "192.0.2.1")); !errors.Is(err, errTooManyLogins) {
				t.Fatalf("fourth from one address: %v", err)
			}
			if err := p.add(ctx, req(4, "192.0.2.2")); err != nil {
				t.Fatalf("a neighbour is refused: %v", err)
			}
			p.remove(ctx, "ar_0")
			if err := p.add(ctx, req(5, "192.0.2.1")); err != nil {
				t.Fatalf("a finished login does not give its place back: %v", err)
			}
		}},
		{"per /64", PendingLimits{Max: 1000, PerSource: 2, PerPrefix: 100}, func(t *testing.T, p *pending) {
			p.add(ctx, req(0, "2001:db8:0:1::1"))
			p.add(ctx, req(1, "2001:db8:0:1::2"))
			if err := p.add(ctx, req(2, "2001:db8:0:1:ffff::3")); !errors.Is(err, errTooManyLogins) {
				t.Fatalf("third from one /64: %v", err)
			}
		}},
		{"per prefix", PendingLimits{Max: 1000, PerSource: 100, PerPrefix: 4}, func(t *testing.T, p *pending) {
			for i := range 4 {
				if err := p.add(ctx, req(i, "198.51.100."+strconv.Itoa(i+1))); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.add(ctx, req(4, "198.51.100.200")); !errors.Is(err, errTooManyLogins) {
				t.Fatalf("fifth from one /24: %v", err)
			}
			if err := p.add(ctx, req(5, "198.51.101.1")); err != nil {
				t.Fatalf("the next /24 is refused: %v", err)
			}
		}},
		{"full table evicts the unshown, then the shown, never a customer past the password", PendingLimits{Max: 3, PerSource: 100, PerPrefix: 100}, func(t *testing.T, p *pending) {
			for i := range 3 {
				p.add(ctx, req(i, "192.0.2.1"))
			}
			show(p, "ar_0")
			p.update(ctx, "ar_0", func(a *authRequest) error { a.user = &users.User{ID: "alice"}; return nil })
			show(p, "ar_2")
			// Full: ar_1 is the only unshown one.
			if err := p.add(ctx, req(3, "192.0.2.9")); err != nil {
				t.Fatal(err)
			}
			if _, err := p.get(ctx, "ar_1"); err == nil {
				t.Fatal("the unshown request survived a full table")
			}
			show(p, "ar_3")
			// Full, all shown: ar_2 is the oldest without a password.
			if err := p.add(ctx, req(4, "192.0.2.9")); err != nil {
				t.Fatal(err)
			}
			for id, want := range map[string]bool{"ar_0": true, "ar_2": false, "ar_3": true, "ar_4": true} {
				if _, err := p.get(ctx, id); (err == nil) != want {
					t.Errorf("%s kept=%v, want %v", id, err == nil, want)
				}
			}
			p.update(ctx, "ar_3", func(a *authRequest) error { a.user = &users.User{ID: "bruno"}; return nil })
			p.update(ctx, "ar_4", func(a *authRequest) error { a.done = true; return nil })
			if err := p.add(ctx, req(5, "192.0.2.9")); !errors.Is(err, errTooManyLogins) {
				t.Fatalf("a customer past the password was evicted: %v", err)
			}
		}},
		{"unshown requests live a minute", PendingLimits{Max: 10, PerSource: 10, PerPrefix: 10}, func(t *testing.T, p *pending) {
			p.add(ctx, req(0, "192.0.2.1"))
			p.add(ctx, req(1, "192.0.2.1"))
			show(p, "ar_1")
			now = now.Add(unshownTTL + time.Second)
			if _, err := p.get(ctx, "ar_0"); err == nil {
				t.Error("an unshown request outlived its minute")
			}
			show(p, "ar_0") // too late: stays dead
			if _, err := p.get(ctx, "ar_0"); err == nil {
				t.Error("a late show revived an expired request")
			}
			if _, err := p.get(ctx, "ar_1"); err != nil {
				t.Errorf("a shown request died after a minute: %v", err)
			}
			now = now.Add(pendingTTL)
			if _, err := p.get(ctx, "ar_1"); err == nil {
				t.Error("a shown request outlived pendingTTL")
			}
			p.mu.Lock()
			p.sweep()
			n, s := len(p.reqs), len(p.sources)
			p.mu.Unlock()
			if n != 0 || s != 0 {
				t.Errorf("after the sweep %d requests and %d source counts remain", n, s)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now = time.Unix(1_800_000_000, 0)
			store, err := memory.Open(ctx, memory.Options{Clock: clockFunc(clock), PruneEvery: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			tc.run(t, newPending(store, clock, tc.lim))
		})
	}
}

// TestPendingFloodLetsCustomersIn fills the pending-login table with
// anonymous authorization requests, as a script calling /oauth/authorize
// in a loop does, and then logs a customer in: the flood's requests, whose
// login page nobody opened, make room.
func TestPendingFloodLetsCustomersIn(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxPendingLogins, c.MaxPendingPerSource, c.MaxPendingPerPrefix = 50, 1000, 1000 })
	bot := stepper(nil)
	for i := range 200 {
		st, _, _ := get(t, bot, e.authURL(e.issuer+"/demo/callback", oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()), "S256"))
		if st != http.StatusFound {
			t.Fatalf("flood request %d: %d", i, st)
		}
	}
	v := oauth2.GenerateVerifier()
	loc := e.loginForm(t, e.browser(t), e.authURL(e.issuer+"/demo/callback", oauth2.S256ChallengeFromVerifier(v), "S256"), "alice", "alice-demo-2025")
	if loc.Query().Get("code") == "" {
		t.Fatalf("customer after the flood: %v", loc)
	}
}
