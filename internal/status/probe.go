package status

import (
	"context"
	"sync"
	"time"
)

// Prober checks one channel the way a customer's request would travel, with
// no customer behind it, and says what became of the check. It reports false
// when it has no check for the channel, which is then judged on its traffic
// alone. A check must be cheap and must change nothing: a read, never a
// payment.
type Prober interface {
	Probe(ctx context.Context, channel string) (Outcome, bool)
}

// A quiet channel is judged on its checks: without them a channel nobody
// used in the window says "Normal" in the middle of an outage, and one that
// gets a few requests needs MinSamples answers before a ratio is believed.
// Two checks in a row must agree before they move the level (one lost check
// is not an outage), and checks older than probeStale rounds are not
// believed (the checking itself may be stuck).
const (
	probeAgree = 2
	probeStale = 3
)

// probeResult is one check of one channel.
type probeResult struct {
	at time.Time
	v  verdict
}

// probes keeps a channel's last checks, newest last.
type probes struct {
	mu   sync.Mutex
	last [probeAgree]probeResult
	n    int // results recorded, up to probeAgree
}

func (p *probes) record(r probeResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	copy(p.last[:], p.last[1:])
	p.last[len(p.last)-1] = r
	p.n = min(p.n+1, len(p.last))
}

// verdict is what the checks say, and false when there are not enough fresh
// ones: the best level of the last probeAgree checks, each newer than since.
func (p *probes) verdict(since time.Time) (verdict, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n < len(p.last) {
		return verdict{}, false
	}
	best := p.last[len(p.last)-1].v
	for _, r := range p.last {
		if r.at.Before(since) {
			return verdict{}, false
		}
		if r.v.level < best.level {
			best = r.v
		}
	}
	return best, true
}

// probeVerdict is what one check's outcome says about its channel; false
// for an answer that says nothing (a 4xx: the check's own mistake).
func probeVerdict(o Outcome, slo time.Duration) (verdict, bool) {
	switch classify(o) {
	case served:
		if o.Latency > slo {
			return verdict{level: Degraded, reason: strained}, true
		}
		return verdict{level: Up, reason: fine}, true
	case fellBack:
		return verdict{level: Degraded, reason: fallbacks, asOf: o.AsOf}, true
	case shed:
		return verdict{level: Degraded, reason: strained}, true
	case failed:
		return verdict{level: Down, reason: strained}, true
	}
	return verdict{}, false
}

// ProbeAll checks every channel once, all at once, each check bounded by
// Options.ProbeEvery, and records the outcomes. Run calls it every
// ProbeEvery when Options.Probe is set; tests call it after moving their
// clock.
func (b *Board) ProbeAll(ctx context.Context) {
	if b.opts.Probe == nil {
		return
	}
	var wg sync.WaitGroup
	for _, c := range b.chans {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, b.opts.ProbeEvery)
			defer cancel()
			o, ok := b.opts.Probe.Probe(pctx, c.Name)
			if !ok {
				return
			}
			if v, ok := probeVerdict(o, c.slo); ok {
				c.probes.record(probeResult{at: b.opts.Clock.Now(), v: v})
			}
		})
	}
	wg.Wait()
}

// runProbes checks every channel every ProbeEvery until ctx is done. A round
// waits for the previous one: at most one check per channel is in flight.
func (b *Board) runProbes(ctx context.Context) {
	t := time.NewTicker(b.opts.ProbeEvery)
	defer t.Stop()
	for {
		b.ProbeAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
