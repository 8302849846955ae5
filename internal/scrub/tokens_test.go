package scrub

import (
	"encoding/base64"
	"net/netip"
	"testing"
)

func FuzzParseClearance(f *testing.F) {
	s, clk := newTestScrubber(f, nil)
	p := netip.MustParsePrefix("198.51.100.0/24")
	f.Add(s.mintClearance(p, 42, clk.Now().Add(s.opts.ClearanceTTL)))
	f.Add("c1.1.AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("c1..")
	f.Fuzz(func(t *testing.T, tok string) {
		head, _, mac, err := parseClearance(tok)
		if err != nil {
			return
		}
		if got := head + "." + base64.RawURLEncoding.EncodeToString(mac[:]); got != tok {
			t.Fatalf("accepted non-canonical %q (canonical %q)", tok, got)
		}
		// Only a minted token passes the MAC.
		if s.verifyClearance(tok, p, 42, clk.Now()) == nil && tok != s.mintClearance(p, 42, clk.Now().Add(s.opts.ClearanceTTL)) {
			t.Fatalf("forged clearance %q accepted", tok)
		}
	})
}

func FuzzVerifySolution(f *testing.F) {
	s, clk := newTestScrubber(f, nil)
	p := netip.MustParsePrefix("198.51.100.0/24")
	c := s.issueChallenge(p, 8, clk.Now())
	f.Add(c.String() + ".0")
	f.Add(c.String() + ".123456")
	f.Add("1.8.1.AAAAAAAAAAAAAAAAAAAAAA.GMYzZAA.x.1")
	f.Fuzz(func(t *testing.T, sol string) {
		got, err := s.verifySolution(sol, p, clk.Now())
		if err == nil && got.Nonce != c.Nonce {
			t.Fatalf("accepted a solution to a challenge we never issued: %q", sol)
		}
	})
}
