package drill

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func mustScenario(t testing.TB, yaml string) *Scenario {
	t.Helper()
	s, err := ParseScenario(t.Name()+".yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func arrivals(s *Scenario) []arrival {
	var out []arrival
	sc := newSchedule(s)
	for {
		a, ok := sc.Next()
		if !ok {
			return out
		}
		out = append(out, a)
	}
}

const scheduleYAML = `
name: schedule
seed: %d
populations:
  - name: returning
    requests: {balance: 3, card_authorize: 1}
  - name: bots
    requests: {login_flood: 1}
    sources: 4096
%s
phases:
  - name: calm
    duration: 2s
    rates: {returning: 200}
  - name: flood
    duration: 3s
    rates: {bots: 500}
  - name: quiet
    duration: 1s
    rates: {returning: 0, bots: 0}
`

func TestScheduleDeterministic(t *testing.T) {
	a := arrivals(mustScenario(t, fmt.Sprintf(scheduleYAML, 7, "")))
	b := arrivals(mustScenario(t, fmt.Sprintf(scheduleYAML, 7, "")))
	c := arrivals(mustScenario(t, fmt.Sprintf(scheduleYAML, 8, "")))
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("same seed: %d and %d arrivals", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, arrival %d differs: %+v vs %+v", i, a[i], b[i])
		}
	}
	same := 0
	for i := range min(len(a), len(c)) {
		if a[i] == c[i] {
			same++
		}
	}
	if same > 0 {
		t.Errorf("seeds 7 and 8 share %d arrivals", same)
	}
}

// Adding a population must not move the others' arrivals: each stream is
// seeded by its own name.
func TestScheduleStreamsIndependent(t *testing.T) {
	base := arrivals(mustScenario(t, fmt.Sprintf(scheduleYAML, 7, "")))
	more := arrivals(mustScenario(t, fmt.Sprintf(scheduleYAML, 7, `  - name: partners
    requests: {atm_withdraw: 1}`)))
	pick := func(as []arrival, pop int) []arrival {
		var out []arrival
		for _, a := range as {
			if a.pop == pop {
				out = append(out, a)
			}
		}
		return out
	}
	for pop := range 2 {
		x, y := pick(base, pop), pick(more, pop)
		if len(x) != len(y) {
			t.Fatalf("population %d: %d arrivals, then %d", pop, len(x), len(y))
		}
		for i := range x {
			if x[i] != y[i] {
				t.Fatalf("population %d arrival %d moved: %+v vs %+v", pop, i, x[i], y[i])
			}
		}
	}
}

func TestScheduleRatesAndPhases(t *testing.T) {
	s := mustScenario(t, fmt.Sprintf(scheduleYAML, 7, ""))
	as := arrivals(s)
	type key struct{ phase, pop int }
	got := make(map[key]int)
	var last time.Duration
	for _, a := range as {
		if a.at < last {
			t.Fatalf("arrivals out of order: %v after %v", a.at, last)
		}
		last = a.at
		p := s.plan[a.phase]
		if a.at < p.start || a.at >= p.end {
			t.Fatalf("arrival at %v outside its phase %d [%v, %v)", a.at, a.phase, p.start, p.end)
		}
		if a.customer < 0 || a.customer >= s.Customers {
			t.Fatalf("customer %d out of range", a.customer)
		}
		if (a.pop == 1) != (a.source >= 0) || a.source >= 4096 {
			t.Fatalf("population %d drew source %d", a.pop, a.source)
		}
		got[key{a.phase, a.pop}]++
	}
	// Poisson counts: mean λT, standard deviation √(λT); allow 5σ.
	tests := []struct {
		name       string
		phase, pop int
		mean       float64
	}{
		{"calm returning", 0, 0, 400},
		{"flood returning carries over", 1, 0, 600},
		{"flood bots", 1, 1, 1500},
		{"calm bots", 0, 1, 0},
		{"quiet returning", 2, 0, 0},
		{"quiet bots", 2, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := float64(got[key{tt.phase, tt.pop}])
			if math.Abs(n-tt.mean) > 5*math.Sqrt(tt.mean)+0.5 {
				t.Errorf("%v arrivals, want about %v", n, tt.mean)
			}
		})
	}
}

func newTestRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }
