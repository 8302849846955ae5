package status

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Board keeps the level of every channel and the status pages that show
// them. Observe is safe to call from any number of goroutines; Tick (or
// Run) re-evaluates and re-renders.
type Board struct {
	opts    Options
	chans   []*channel
	byName  map[string]*channel
	created time.Time
	gauge   *prometheus.GaugeVec

	tickMu sync.Mutex            // one evaluation at a time; guards every channel's hysteresis
	pages  atomic.Pointer[pages] // what the handlers serve, swapped whole by Tick
}

type channel struct {
	Channel
	slo time.Duration

	mu      sync.Mutex
	buckets []tally // one per second of the window, ring indexed by Unix second

	probes probes // the last synthetic checks, when Options.Probe is set

	h hysteresis
}

// ChannelStatus is a channel's state as of the last evaluation.
type ChannelStatus struct {
	Channel
	Level Level
	// Partial: Down, but part of the channel still answers.
	Partial bool
	// Since is when the level last changed (the board's creation if never).
	Since time.Time
	// FR and EN say what works, as the page does.
	FR, EN string
}

// New returns a board for channels, in the order the page shows them. It
// evaluates them once, all up, so the pages exist before the first Tick.
func New(channels []Channel, opts Options) (*Board, error) {
	opts = opts.withDefaults()
	b := &Board{
		opts:    opts,
		byName:  make(map[string]*channel, len(channels)),
		created: opts.Clock.Now(),
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rempart_status_level",
			Help: "Level of each channel as the status page shows it: 0 up, 1 degraded, 2 down.",
		}, []string{"channel", "tier"}),
	}
	for _, c := range channels {
		if c.Name == "" {
			return nil, errors.New("status: channel without a name")
		}
		if _, dup := b.byName[c.Name]; dup {
			return nil, fmt.Errorf("status: channel %q listed twice", c.Name)
		}
		ch := &channel{
			Channel: c,
			slo:     opts.SLO[c.Tier],
			buckets: make([]tally, int(opts.Window/time.Second)),
		}
		ch.h.changed = b.created
		b.chans = append(b.chans, ch)
		b.byName[c.Name] = ch
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(b.gauge); err != nil {
			return nil, fmt.Errorf("status: register metrics: %w", err)
		}
	}
	b.Tick()
	return b, nil
}

// Observe records the outcome of one request on channel. Unknown channels
// are ignored: the route table may hold routes the page does not show.
func (b *Board) Observe(channel string, o Outcome) {
	c := b.byName[channel]
	if c == nil {
		return
	}
	cl := classify(o)
	if cl == ignored {
		return
	}
	now := b.opts.Clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.bucket(now.Unix())
	switch cl {
	case served:
		t.served++
	case fellBack:
		t.fellBack++
		if !o.AsOf.IsZero() && (t.asOf.IsZero() || o.AsOf.Before(t.asOf)) {
			t.asOf = o.AsOf
		}
	case shed:
		t.shed++
	case failed:
		t.failed++
	}
	if (cl == served || cl == fellBack) && o.Latency > c.slo {
		t.slow++
	}
}

// bucket returns the bucket of second sec, emptied if it held an older
// second. Called with c.mu held.
func (c *channel) bucket(sec int64) *tally {
	t := &c.buckets[int(sec%int64(len(c.buckets)))]
	if t.sec != sec {
		*t = tally{sec: sec}
	}
	return t
}

// window sums the buckets of the last Window up to now.
func (c *channel) window(now time.Time) tally {
	sec := now.Unix()
	var sum tally
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.buckets {
		if t.sec <= sec && t.sec > sec-int64(len(c.buckets)) {
			sum.add(t)
		}
	}
	return sum
}

// Tick re-evaluates every channel and re-renders the pages. Run calls it
// every Options.Every; tests call it after moving their clock.
func (b *Board) Tick() {
	b.tickMu.Lock()
	defer b.tickMu.Unlock()
	now := b.opts.Clock.Now()
	states := make([]ChannelStatus, len(b.chans))
	for i, c := range b.chans {
		s := signals{t: c.window(now)}
		if b.opts.Breakers != nil {
			s.breaker = b.opts.Breakers.BreakerState(c.Name)
		}
		if b.opts.Shed != nil {
			s.shedRatio = b.opts.Shed.ShedRatio(c.Name)
		}
		if b.opts.Line != nil {
			s.waiting, s.wait = b.opts.Line.Line(c.Name)
		}
		s.probe, s.probed = c.probes.verdict(now.Add(-probeStale * b.opts.ProbeEvery))
		c.h.update(now, judge(s, b.opts.MinSamples), b.opts.RaiseAfter, b.opts.RecoverAfter)
		b.gauge.WithLabelValues(c.Name, c.Tier.String()).Set(float64(c.h.level))
		fr, en := words(c.Channel, c.h.shown, now, b.opts.Location)
		states[i] = ChannelStatus{
			Channel: c.Channel,
			Level:   c.h.level,
			Partial: c.h.level == Down && c.h.shown.partial,
			Since:   c.h.changed,
			FR:      fr,
			EN:      en,
		}
	}
	b.pages.Store(b.render(now, states))
}

// Run calls Tick every Options.Every, and checks every channel every
// Options.ProbeEvery when Options.Probe is set, until ctx is done.
func (b *Board) Run(ctx context.Context) {
	if b.opts.Probe != nil {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			b.runProbes(ctx)
		}()
	}
	t := time.NewTicker(b.opts.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.Tick()
		}
	}
}

// Channels returns every channel's state as of the last evaluation, in page
// order.
func (b *Board) Channels() []ChannelStatus {
	return append([]ChannelStatus(nil), b.pages.Load().states...)
}

// Level returns a channel's level as of the last evaluation, and false for
// an unknown channel.
func (b *Board) Level(channel string) (Level, bool) {
	for _, s := range b.pages.Load().states {
		if s.Name == channel {
			return s.Level, true
		}
	}
	return Up, false
}
