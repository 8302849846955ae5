package status

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/tier"
)

// fakeProber answers every check of a channel with the outcome it was set
// to, and has no check for the others.
type fakeProber struct {
	mu  sync.Mutex
	out map[string]Outcome
}

func (p *fakeProber) Probe(_ context.Context, channel string) (Outcome, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o, ok := p.out[channel]
	return o, ok
}

func (p *fakeProber) set(channel string, o Outcome) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out[channel] = o
}

// TestProbes runs a board second by second, checking every 2 s as Run does,
// with a channel that gets no traffic (or a little, or a lot) while its
// checks start answering differently at second 10.
func TestProbes(t *testing.T) {
	ok := Outcome{Status: 200, Latency: 5 * time.Millisecond}
	failed := Outcome{Status: 503, UpstreamFailure: true}
	standIn := Outcome{Status: 200, Fallback: true, Latency: 5 * time.Millisecond}
	for _, c := range []struct {
		name    string
		after   Outcome // what the checks answer from second 10
		lost    bool    // only one check at second 10 answers after, then back to ok
		stop    bool    // the checks stop answering at second 10
		traffic int     // successful customer answers a second, throughout
		sparse  bool    // one successful customer answer every 5 s instead
		want    Level   // the level at second 20
		within  time.Duration
	}{
		{name: "quiet channel, core down", after: failed, want: Down, within: 8 * time.Second},
		{name: "quiet channel on stand-in", after: standIn, want: Degraded, within: 8 * time.Second},
		{name: "slow answers", after: Outcome{Status: 200, Latency: 3 * time.Second}, want: Degraded, within: 8 * time.Second},
		{name: "one lost check is no outage", after: failed, lost: true, want: Up},
		{name: "a check's own 404 says nothing", after: Outcome{Status: 404}, want: Up},
		{name: "checks that stopped are not believed", after: failed, stop: true, want: Up},
		{name: "a little traffic is not enough to judge", after: failed, sparse: true, want: Down, within: 8 * time.Second},
		{name: "enough traffic is the better evidence", after: failed, traffic: 5, want: Up},
	} {
		t.Run(c.name, func(t *testing.T) {
			pr := &fakeProber{out: map[string]Outcome{"balance": ok}}
			ch := Channel{Name: "balance", Tier: tier.Normal, TitleFR: "Solde", TitleEN: "Balance", Fallback: StandIn}
			b, clock := newBoard(t, []Channel{ch}, func(o *Options) { o.Probe = pr })
			var reached time.Duration = -1
			for sec := 1; sec <= 20; sec++ {
				clock.Advance(time.Second)
				for range c.traffic {
					b.Observe("balance", ok)
				}
				if c.sparse && sec%5 == 0 {
					b.Observe("balance", ok)
				}
				if sec%2 == 0 {
					switch {
					case sec == 10:
						pr.set("balance", c.after)
					case sec == 12 && c.lost:
						pr.set("balance", ok)
					}
					if !c.stop || sec < 10 {
						b.ProbeAll(context.Background())
					}
				}
				b.Tick()
				if lv, _ := b.Level("balance"); lv == c.want && reached < 0 && sec >= 10 {
					reached = time.Duration(sec-10) * time.Second
				}
			}
			if lv, _ := b.Level("balance"); lv != c.want {
				t.Fatalf("level %v at second 20, want %v", lv, c.want)
			}
			if c.within > 0 && reached > c.within {
				t.Errorf("reached %v %v after the checks changed, want within %v", c.want, reached, c.within)
			}
		})
	}
}

// TestProbeWords: a channel judged on its checks says what works, as it
// does when judged on traffic.
func TestProbeWords(t *testing.T) {
	pr := &fakeProber{out: map[string]Outcome{"card-authorize": {Status: 200, Fallback: true}, "parcel": {Status: 502, UpstreamFailure: true}}}
	b, clock := newBoard(t, DefaultChannels(), func(o *Options) { o.Probe = pr })
	for range 6 {
		clock.Advance(time.Second)
		b.ProbeAll(context.Background())
		b.Tick()
	}
	for _, s := range b.Channels() {
		switch s.Name {
		case "card-authorize":
			if s.Level != Degraded || s.EN != "Working in stand-in mode: operations are approved within the usual limits and confirmed later." {
				t.Errorf("card-authorize: %v %q", s.Level, s.EN)
			}
		case "parcel":
			if s.Level != Down || s.EN != "Unavailable at the moment." {
				t.Errorf("parcel: %v %q", s.Level, s.EN)
			}
		default:
			if s.Level != Up {
				t.Errorf("%s: %v, want up: it has no check and no traffic", s.Name, s.Level)
			}
		}
	}
}
