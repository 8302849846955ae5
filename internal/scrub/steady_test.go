package scrub

import (
	"net/http"
	"net/netip"
	"testing"
	"time"
)

// TestSteadySource: in normal state, one unknown address sending a calm 15
// requests a second — above a stranger's limit (8/s in peacetime), below a
// known client's (20/s) — is refused at first; once it has kept sending for
// SteadyAfter it is a steady source and nothing more is refused. A pause
// longer than SteadyGap starts its history again, and with the learning
// off it stays a stranger.
func TestSteadySource(t *testing.T) {
	for _, tc := range []struct {
		name      string
		after     time.Duration
		pause     bool
		wantLater bool // nothing refused in the last 30 s
	}{
		{"steady", 0, false, true},
		{"paused", 0, true, false},
		{"learning off", -1, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, clk := newTestScrubber(t, func(o *Options) {
				o.SteadyAfter = tc.after
				o.Baselines = map[string]float64{"balance": 15}
			})
			h := testGateway(s, "balance", &seenInfo{})
			const remote = "198.51.100.7:4711"
			var early, late int
			for i := range 90 * 15 { // 90 s at 15/s
				if tc.pause && i == 75*15 {
					clk.Advance(11 * time.Second)
				}
				clk.Advance(time.Second / 15)
				if rec := get(h, remote, nil); rec.Code == http.StatusTooManyRequests {
					if i < 30*15 {
						early++
					} else if i >= 65*15 {
						late++
					}
				} else if rec.Code != http.StatusOK {
					t.Fatalf("request %d: %d", i, rec.Code)
				}
			}
			if early == 0 {
				t.Fatalf("nothing refused in the first 30 s: the test proves nothing")
			}
			if got := late == 0; got != tc.wantLater {
				t.Errorf("%d refused in the last 25 s (early %d); want none: %v", late, early, tc.wantLater)
			}
			if st := s.State("balance"); st.State != Normal {
				t.Errorf("route state %v, want normal", st.State)
			}
		})
	}
}

// TestSteadySetBounded: a full set drops the addresses idle past the gap
// and does not follow new ones while the others are live.
func TestSteadySetBounded(t *testing.T) {
	now := epoch
	s := newSteadySet(time.Minute, 10*time.Second, 2)
	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	s.see(a, now)
	s.see(b, now)
	s.see(c, now)
	if _, ok := s.m[c]; ok || len(s.m) != 2 {
		t.Fatalf("a full set took a third address: %v", s.m)
	}
	now = now.Add(11 * time.Second)
	s.see(b, now)
	s.see(c, now)
	if _, ok := s.m[a]; ok {
		t.Error("the idle address was kept")
	}
	if _, ok := s.m[c]; !ok {
		t.Error("no room made for the new address")
	}
}
