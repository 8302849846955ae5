package scrub

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/scrub/pow"
)

// solve does a browser's work for a stepped login's challenge.
func solve(t *testing.T, challenge string) string {
	t.Helper()
	sol, err := pow.Solve(context.Background(), challenge)
	if err != nil {
		t.Fatal(err)
	}
	return sol
}

// TestSteppedLogin: an attack on one account from many networks spends its
// unknown-device budget; from then on the owner, from a browser without the
// device cookie, is asked for work instead of being locked out, and gets in
// with it; the attacker pays more for each further guess and cannot reuse,
// move or take the owner's turn.
func TestSteppedLogin(t *testing.T) {
	s, clk := newTestScrubber(t, func(o *Options) {
		o.Login.StepBits, o.Login.StepMaxBits = 6, 9
	})
	bot := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 5, byte(i), 1}) }
	for i := range 5 {
		if v := s.GateLogin("alice", bot(i), false, ""); !v.Allowed {
			t.Fatalf("failure %d refused before the budget was spent: %+v", i, v)
		}
		s.ObserveLogin("login", bot(i), "alice", false, false)
	}
	owner := netip.MustParseAddr("198.51.100.7")

	// The owner is asked for work, not refused with a wait.
	v := s.GateLogin("alice", owner, false, "")
	if v.Allowed || v.Challenge == "" || v.Bits != 6 || v.RetryAfter != 0 {
		t.Fatalf("owner after the attack: %+v, want a 6-bit challenge and no wait", v)
	}
	ownerSol := solve(t, v.Challenge)

	// A solution for another account, or from another network, buys nothing.
	if got := s.GateLogin("bruno", netip.MustParseAddr("127.9.0.1"), false, ownerSol); !got.Allowed {
		t.Fatalf("bruno's login (budget intact) refused: %+v", got)
	}
	for i := range 5 {
		s.ObserveLogin("login", bot(i), "bruno", false, false)
	}
	if got := s.GateLogin("bruno", owner, false, ownerSol); got.Allowed {
		t.Fatal("a solution for alice opened bruno's stepped login")
	}
	if got := s.GateLogin("alice", netip.MustParseAddr("127.77.0.1"), false, ownerSol); got.Allowed {
		t.Fatal("a solution solved on the owner's network worked from another network")
	}

	// The owner's solution lets the owner in, once.
	if got := s.GateLogin("alice", owner, false, ownerSol); !got.Allowed || !got.Stepped {
		t.Fatalf("owner with a solved challenge: %+v", got)
	}
	s.ObserveLogin("login", owner, "alice", true, false)
	clk.Advance(31 * time.Second)
	if got := s.GateLogin("alice", owner, false, ownerSol); got.Allowed {
		t.Fatal("a solution was accepted twice")
	}

	// The attacker pays one more bit per further failure, up to the cap.
	atk := bot(200)
	for want := 6; want <= 9; want++ {
		v := s.GateLogin("alice", atk, false, "")
		if v.Bits != min(want, 9) {
			t.Fatalf("stepped failure %d: challenge of %d bits, want %d", want-6, v.Bits, want)
		}
		if got := s.GateLogin("alice", atk, false, solve(t, v.Challenge)); !got.Allowed {
			t.Fatalf("attacker's solved attempt refused: %+v", got)
		}
		s.ObserveLogin("login", atk, "alice", false, false)
		// A solved challenge does not skip the network's turn.
		v = s.GateLogin("alice", atk, false, "")
		if got := s.GateLogin("alice", atk, false, solve(t, v.Challenge)); got.Allowed || got.RetryAfter <= 0 || got.Challenge == "" {
			t.Fatalf("second attempt within the turn: %+v, want a wait with a fresh challenge", got)
		}
		clk.Advance(31 * time.Second)
	}
	if v := s.GateLogin("alice", atk, false, ""); v.Bits != 9 {
		t.Fatalf("difficulty past the cap: %d bits", v.Bits)
	}
	// The attacker's turns are its network's: the owner's network still
	// has its own.
	v = s.GateLogin("alice", owner, false, "")
	if got := s.GateLogin("alice", owner, false, solve(t, v.Challenge)); !got.Allowed {
		t.Fatalf("owner's turn taken by the attacker's network: %+v", got)
	}
	// And the owner's device never sees any of it.
	if got := s.GateLogin("alice", owner, true, ""); !got.Allowed {
		t.Fatalf("owner's device: %+v", got)
	}
}

// TestCodeBudgets: wrong SMS codes are capped per account and day, device
// holders on their own cap; resent codes are capped per account and day.
func TestCodeBudgets(t *testing.T) {
	s, clk := newTestScrubber(t, nil)
	for i := range 10 {
		if ok, _ := s.AllowCode("alice", false); !ok {
			t.Fatalf("wrong code %d refused before the cap", i)
		}
		s.CodeFailed("Alice", false)
	}
	if ok, wait := s.AllowCode("alice", false); ok || wait < time.Hour {
		t.Fatalf("after ten wrong codes: ok=%v wait=%v, want refused for hours", ok, wait)
	}
	if ok, _ := s.AllowCode("alice", true); !ok {
		t.Fatal("the owner's device is capped by the attacker's wrong codes")
	}
	if ok, _ := s.AllowCode("bruno", false); !ok {
		t.Fatal("another account is capped")
	}
	clk.Advance(3 * time.Hour)
	if ok, _ := s.AllowCode("alice", false); !ok {
		t.Fatal("the day's cap never gives back")
	}
	for i := range 10 {
		if ok, _ := s.AllowResend("alice"); !ok {
			t.Fatalf("resend %d refused", i)
		}
	}
	if ok, _ := s.AllowResend("alice"); ok {
		t.Fatal("eleventh resent code of the day allowed")
	}
}
