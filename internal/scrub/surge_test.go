package scrub

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// TestSurgeCap floods a login route on the fake clock with unknown clients at
// multiples of its surge threshold, alongside returning customers with device
// cookies, and counts what reaches the identity provider: before the flood is
// classified, the surge cap lets at most one detection window of surge-rate
// traffic through (the threshold, three times the learnt baseline), whatever
// the flood's rate or how long detection takes. Without the cap, what passes
// grows with both: one more request at 10x, ten times the threshold at 100x,
// and ten times at 10x when the route is evaluated once a second.
func TestSurgeCap(t *testing.T) {
	const (
		baseline = 20.0 // learnt requests per second on the route
		window   = time.Second
		flood    = 2 * time.Second
	)
	for _, tc := range []struct {
		name     string
		multiple float64       // flood rate over the surge threshold
		eval     time.Duration // Detection.EvalInterval, 0 for the default
		attack   bool          // the flood must be classified as an attack
		crowd    float64       // customers' rate over the baseline, 0 for a half
		uncapped bool          // a classified route: no cap, detection alone bounds what passes
	}{
		{"half the threshold passes untouched", 0.5, 0, false, 0, false},
		{"10x the threshold", 10, 0, true, 0, false},
		{"100x the threshold", 100, 0, true, 0, false},
		{"10x the threshold, evaluated once a second", 10, time.Second, true, 0, false},
		// Customers at twice the threshold make a flash crowd before the
		// strangers arrive. A flash crowd is a classification (real
		// customers, who meet the waiting room, not a 429), so the cap is
		// lifted: what passes is bounded by detection, two evaluation
		// intervals of the flood here, until the strangers are called an
		// attack.
		{"10x the threshold into a flash crowd", 10, 0, true, 6, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, clk := newTestScrubber(t, func(o *Options) {
				o.Baselines = map[string]float64{"login": baseline}
				o.Detection.EvalInterval = tc.eval
			})
			threshold := s.State("login").Evidence.Signals.SurgeThreshold
			if threshold != 3*baseline {
				t.Fatalf("surge threshold %v, want 3x the baseline %v", threshold, baseline)
			}
			var passed []time.Time // when each stranger reached the provider
			var customers atomic.Int64
			h := testGateway(s, "login", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("X-Test-Device") == "1" {
					customers.Add(1)
					return
				}
				passed = append(passed, clk.Now())
			}))

			custRate := baseline / 2
			if tc.crowd > 0 {
				custRate = tc.crowd * baseline
			}
			custSent := 0
			customer := func() {
				custSent++
				get(h, fmt.Sprintf("127.200.%d.%d:1000", custSent/250%250, 1+custSent%250), map[string]string{
					"Accept": "application/json", "X-Test-Device": "1", accountHeader: fmt.Sprintf("C%08d", custSent),
					"User-Agent": "BankApp/7.1"})
			}
			if tc.crowd > 0 {
				for range int(2 * custRate) {
					customer()
					clk.Advance(time.Duration(float64(time.Second) / custRate))
				}
				if st := s.State("login").State; st != FlashCrowd {
					t.Fatalf("customers alone: %s, want flash_crowd", st)
				}
			}

			rate := tc.multiple * threshold
			n := int(rate * flood.Seconds())
			step := time.Duration(float64(time.Second) / rate)
			start := clk.Now()
			var attackAt time.Time
			custNext := start
			for i := range n {
				get(h, botAddr(i%2000).String()+":1000", map[string]string{"Accept": "application/json", "User-Agent": "bot/1"})
				if now := clk.Now(); !now.Before(custNext) {
					custNext = now.Add(time.Duration(float64(time.Second) / custRate))
					customer()
				}
				if attackAt.IsZero() && s.route("login").effective() == Attack {
					attackAt = clk.Now()
				}
				clk.Advance(step)
			}

			// The most strangers that passed in any one detection window.
			most := 0
			for i, at := range passed {
				j := i
				for j < len(passed) && passed[j].Sub(at) < window {
					j++
				}
				most = max(most, j-i)
			}
			t.Logf("flood %.0f req/s for %v: %d of %d strangers passed, at most %d per window (%.2f x baseline); attack %v, %v after onset",
				rate, flood, len(passed), n, most, float64(most)/baseline, !attackAt.IsZero(), max(0, attackAt.Sub(start)))
			if got := int(customers.Load()); got != custSent {
				t.Errorf("%d of %d customer logins with a device cookie passed, want all", got, custSent)
			}
			if !tc.attack {
				if len(passed) != n {
					t.Errorf("%d of %d strangers passed below the surge threshold, want all", len(passed), n)
				}
				return
			}
			if attackAt.IsZero() {
				t.Fatalf("flood not classified as an attack: %s", s.State("login").Evidence.Reason)
			}
			if tc.uncapped {
				if d := attackAt.Sub(start); d > 3*100*time.Millisecond {
					t.Errorf("strangers in a flash crowd called an attack after %v, want within three evaluations", d)
				}
				return
			}
			// One window of surge-rate traffic, in total: after
			// classification strangers are challenged, not passed.
			if float64(len(passed)) > threshold*window.Seconds() {
				t.Errorf("%d strangers passed in all, want at most one window's worth, %v (%.0f x baseline)",
					len(passed), threshold, threshold/baseline)
			}
			if float64(most) > threshold*window.Seconds() {
				t.Errorf("%d strangers passed in one window, want at most %v", most, threshold)
			}
		})
	}
}
