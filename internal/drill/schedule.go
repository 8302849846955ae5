package drill

import (
	"hash/fnv"
	"math/rand/v2"
	"time"
)

// arrival is one request of the schedule: when it is due and everything it
// drew, so that every arm receives exactly the same requests.
type arrival struct {
	at       time.Duration // intended send time, from the drill's start
	phase    int
	pop      int
	target   int // index into the population's mix
	customer int
	other    int    // counterparty customer
	source   int    // loopback source index; -1 for the default address
	seed     uint64 // seeds the request's own random draws
}

// mix is a population's weighted choice of targets, in name order.
type mix struct {
	names []string
	cum   []float64 // cumulative weights, normalised to end at 1
}

func newMix(requests map[string]float64) mix {
	m := mix{names: sortedKeys(requests)}
	var total float64
	for _, n := range m.names {
		total += requests[n]
	}
	var acc float64
	for _, n := range m.names {
		acc += requests[n] / total
		m.cum = append(m.cum, acc)
	}
	return m
}

func (m mix) pick(u float64) int {
	for i, c := range m.cum {
		if u < c {
			return i
		}
	}
	return len(m.cum) - 1
}

// schedule generates a scenario's arrivals in time order: one Poisson stream
// per population, each seeded from the scenario seed and the population's
// name (adding a population does not move the others' arrivals), merged.
// Nothing is held per customer or per request: it is generated as it is sent.
type schedule struct {
	s       *Scenario
	mixes   []mix
	streams []*stream
}

type stream struct {
	pop   int
	rng   *rand.Rand
	phase int
	t     time.Duration
	next  arrival
	done  bool
}

func newSchedule(s *Scenario) *schedule {
	sc := &schedule{s: s}
	for i, p := range s.Populations {
		h := fnv.New64a()
		h.Write([]byte(p.Name))
		st := &stream{pop: i, rng: rand.New(rand.NewPCG(s.Seed, h.Sum64()))}
		sc.mixes = append(sc.mixes, newMix(p.Requests))
		sc.advance(st)
		sc.streams = append(sc.streams, st)
	}
	return sc
}

// advance draws a stream's next arrival. Rates are constant within a phase;
// at a boundary the wait restarts, which is exact for a memoryless process.
func (sc *schedule) advance(st *stream) {
	plan := sc.s.plan
	for st.phase < len(plan) {
		ph := plan[st.phase]
		rate := ph.rates[st.pop]
		if rate <= 0 {
			st.t = ph.end
			st.phase++
			continue
		}
		// In float first: a tiny rate's gap would overflow a Duration.
		gap := st.rng.ExpFloat64() / rate * float64(time.Second)
		if gap >= float64(ph.end-st.t) {
			st.t = ph.end
			st.phase++
			continue
		}
		st.t += time.Duration(gap)
		p := sc.s.Populations[st.pop]
		a := arrival{
			at:       st.t,
			phase:    st.phase,
			pop:      st.pop,
			target:   sc.mixes[st.pop].pick(st.rng.Float64()),
			customer: st.rng.IntN(sc.s.Customers),
			other:    st.rng.IntN(sc.s.Customers),
			source:   -1,
			seed:     st.rng.Uint64(),
		}
		if p.Sources > 0 {
			a.source = sc.s.sourceBase[st.pop] + st.rng.IntN(p.Sources)
		}
		st.next = a
		return
	}
	st.done = true
}

// Next returns the earliest pending arrival, or false when the drill is over.
func (sc *schedule) Next() (arrival, bool) {
	var first *stream
	for _, st := range sc.streams {
		if !st.done && (first == nil || st.next.at < first.next.at) {
			first = st
		}
	}
	if first == nil {
		return arrival{}, false
	}
	a := first.next
	sc.advance(first)
	return a, true
}
