package waitroom

import (
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestEstimatorFindsCapacity puts a room in front of a backend that serves
// capacity logins a second and answers 503 beyond, and a surge of three times
// that for 20 s. Starting from the floor, the room must find the capacity and
// hold the backend near it: what it admits is what the backend can do, not
// what was configured. Clients poll exactly when told to. The simulation
// calls the room's decision directly: the HTTP layer is tested elsewhere, and
// this way the test runs tens of thousands of polls in a second.
func TestEstimatorFindsCapacity(t *testing.T) {
	for _, capacity := range []int{25, 60} {
		t.Run(strconv.Itoa(capacity)+"/s", func(t *testing.T) {
			clock := newFakeClock()
			room := New(Options{Key: testKey, MinRate: 5, MaxRate: 5000, Clock: clock, MaxWaiting: 1 << 20})
			start := clock.Now()
			var sec int64
			var served int
			load := map[int64]int{}
			backend := func() int {
				now := clock.Now().Unix()
				if now != sec {
					sec, served = now, 0
				}
				load[sec]++
				if served >= capacity {
					return http.StatusServiceUnavailable
				}
				served++
				return http.StatusOK
			}
			req := httptest.NewRequest(http.MethodPost, "/login", nil)
			firstTicket := map[string]string{} // a client's latest ticket -> its first

			// due holds waiting clients' tickets by the 10 ms step they are
			// due back at.
			const step = 10 * time.Millisecond
			due := map[int][]string{}
			var late int
			// quoted holds, for clients who arrived once the rate had been
			// found (after 10 s), when they arrived and the wait they were
			// quoted then.
			type quote struct{ at, eta time.Duration }
			quoted := map[string]quote{}
			var ratios []float64
			for i := 1; i <= 45*100 || len(due) > 0; i++ {
				clock.Advance(step)
				now := clock.Now()
				back := due[i]
				delete(due, i)
				if i <= 20*100 {
					for range i*3*capacity/100 - (i-1)*3*capacity/100 {
						back = append(back, "")
					}
				}
				for _, tk := range back {
					req.Header.Set("Rempart-Ticket", tk)
					d := room.decide(req)
					switch d.kind {
					case admit:
						room.done(now, 0, backend())
						if q, ok := quoted[firstTicket[tk]]; ok {
							ratios = append(ratios, float64(now.Sub(start)-q.at)/float64(q.eta))
						}
					case wait:
						if tk == "" && i > 10*100 && i%7 == 0 {
							quoted[d.ticket] = quote{now.Sub(start), d.eta}
						}
						if tk == "" {
							firstTicket[d.ticket] = d.ticket
						} else {
							firstTicket[d.ticket] = firstTicket[tk]
						}
						j := i + int(d.pollAfter/step)
						due[j] = append(due[j], d.ticket)
					default:
						t.Fatalf("turned away at %v", now.Sub(start))
					}
				}
				late += len(back)
			}
			var total int
			for s := start.Unix() + 15; s < start.Unix()+45; s++ {
				total += load[s]
			}
			got := float64(total) / 30
			slices.Sort(ratios)
			median := ratios[len(ratios)/2]
			t.Logf("capacity %d/s: backend load %.1f/s over the last 30 s, rate now %.1f/s, %d polls; "+
				"observed/quoted wait of %d clients: median %.2f, 10th %.2f, 90th %.2f",
				capacity, got, room.Stats().AdmitRate, late, len(ratios), median, ratios[len(ratios)/10], ratios[len(ratios)*9/10])
			if median < 0.7 || median > 1.15 {
				t.Errorf("median observed/quoted wait %.2f, want about 1", median)
			}
			if p90 := ratios[len(ratios)*9/10]; p90 > 1.25 {
				t.Errorf("90th percentile observed/quoted wait %.2f: estimates too optimistic", p90)
			}
			if got < 0.75*float64(capacity) || got > 1.15*float64(capacity) {
				t.Errorf("backend load %.1f/s, want within [0.75, 1.15] × %d", got, capacity)
			}
		})
	}
}

func TestEstimatorRules(t *testing.T) {
	now := time.Date(2025, 12, 22, 8, 0, 0, 0, time.UTC)
	o := Options{MinRate: 5, MaxRate: 1000, InitialRate: 100}.withDefaults()
	tests := []struct {
		name     string
		good     int // per second, over the window
		bad      int
		slow     int
		inflight int
		binding  bool
		want     float64
	}{
		{"healthy, nobody held back: keep", 100, 0, 0, 0, false, 100},
		{"healthy, line, no capacity known: climb 50 %", 100, 0, 0, 0, true, 150},
		{"failures: 90 % of goodput", 60, 10, 0, 0, true, 54},
		{"slow: 90 % of goodput", 80, 0, 20, 0, true, 72},
		{"stuck: calls pile up, nothing completes", 0, 0, 0, 500, true, 5},
		{"a few failures below 5 %", 100, 4, 0, 0, true, 150},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEstimator(o, now)
			for s := range int64(5) {
				b := e.bucket(now.Unix() + s)
				b.good, b.bad, b.slow = tt.good, tt.bad, tt.slow
			}
			e.cur = now.Unix() + 4
			e.inflight, e.binding = tt.inflight, tt.binding
			e.roll(now.Add(5 * time.Second))
			if math.Abs(e.rate-tt.want) > 1e-9 {
				t.Errorf("rate %v, want %v", e.rate, tt.want)
			}
		})
	}
}

func TestEstimatorCoolsDownAfterACut(t *testing.T) {
	now := time.Date(2025, 12, 22, 8, 0, 0, 0, time.UTC)
	e := newEstimator(Options{MinRate: 1, MaxRate: 1000, InitialRate: 100}.withDefaults(), now)
	for i := range 30 {
		at := now.Add(time.Duration(i) * time.Second)
		for range 50 {
			e.observe(at, 10*time.Millisecond, http.StatusOK)
		}
		for range 50 {
			e.observe(at, 10*time.Millisecond, http.StatusServiceUnavailable)
		}
	}
	// Half the calls fail for 30 s: one cut per window, not one per second.
	if want := 100 * math.Pow(0.9, 6) / 2; e.rate < want {
		t.Errorf("rate %v after 30 s of failures, want cuts paced by the window", e.rate)
	}
	if e.rate >= 50 {
		t.Errorf("rate %v, want below the goodput of 50", e.rate)
	}
}

// TestEstimatorResumesAfterAStall runs a backend at 100/s, stalls it (calls
// pile up, none completes, as the incident's identity store did) for 10 s,
// then unblocks it: the first prompt second after the stall takes the rate
// back to half what it was, not to a crawl up from the floor. A backend that
// is merely saturated gets no such jump.
func TestEstimatorResumesAfterAStall(t *testing.T) {
	now := time.Date(2025, 12, 22, 8, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return now.Add(time.Duration(s) * time.Second) }
	// stalled runs 100/s for 5 s, then 10 s of calls piling up.
	stalled := func() *estimator {
		e := newEstimator(Options{MinRate: 5, MaxRate: 1000, InitialRate: 100}.withDefaults(), now)
		for s := range 5 {
			for range 100 {
				e.observe(at(s), 20*time.Millisecond, http.StatusOK)
			}
		}
		e.inflight = 400
		for s := 5; s < 15; s++ {
			e.roll(at(s))
		}
		return e
	}
	e := stalled()
	if e.rate != 5 {
		t.Fatalf("rate %v during the stall, want the floor", e.rate)
	}
	e.inflight = 0
	for range 5 {
		e.observe(at(15), 20*time.Millisecond, http.StatusOK)
	}
	e.roll(at(16))
	if e.rate != 50 {
		t.Errorf("rate %v the second after the stall, want half the 100 before it", e.rate)
	}

	// A stall whose calls all time out: no word, nothing in flight. After
	// the cooldown the room probes at half the rate before the stall.
	e = stalled()
	e.inflight = 0
	for s := 15; s < 25 && e.rate == 5; s++ {
		e.observe(at(s), 5*time.Second, http.StatusServiceUnavailable) // the hung calls time out
		e.roll(at(s + 1))
	}
	if e.rate != 50 || e.resume == 0 {
		t.Errorf("rate %v, resume %v after the hung calls timed out: want a probe at 50, the stall still remembered", e.rate, e.resume)
	}

	// Saturated, not stalled: the cut stands until the window has passed.
	e = newEstimator(Options{MinRate: 5, MaxRate: 1000, InitialRate: 100}.withDefaults(), now)
	for s := range 5 {
		for range 40 {
			e.observe(at(s), 20*time.Millisecond, http.StatusOK)
		}
		for range 20 {
			e.observe(at(s), 20*time.Millisecond, http.StatusServiceUnavailable)
		}
	}
	cut := e.rate
	for range 5 {
		e.observe(at(5), 20*time.Millisecond, http.StatusOK)
	}
	e.roll(at(6))
	if e.resume != 0 || e.rate > cut || cut > 36 {
		t.Errorf("rate %v after cuts to %v, resume %v: want the cuts (90 %% of the goodput of 40) to stand", e.rate, cut, e.resume)
	}
}
