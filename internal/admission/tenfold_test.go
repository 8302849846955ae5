package admission

import (
	"context"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/estate/core"
	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/tier"
)

// coreHandler is an upstream made of a real fixed-capacity core: one read per
// request, 200 when it completes, 503 when the core refuses it or the caller
// gave up while it queued.
func coreHandler(c *core.Core) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := c.Do(r.Context(), core.Read, nil); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// twin runs a copy of a core closed-loop, with twice as many callers as
// workers so that no worker idles, until stop is called, which returns its
// completions per second. Run beside a test, it measures the capacity the
// core under test has on this machine at that moment: a host that stalls
// the test's goroutines stalls the twin's as much, so a loaded machine does
// not pass for a controller that wastes capacity.
func twin(cfg core.Config) (stop func() float64) {
	c := core.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	var done atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 2 * cfg.Workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				if c.Do(ctx, core.Read, nil) == nil {
					done.Add(1)
				}
			}
		})
	}
	return func() float64 {
		el := time.Since(start)
		n := done.Load()
		cancel()
		wg.Wait()
		return float64(n) / el.Seconds()
	}
}

// openLoad describes an open-loop load: arrivals at rate whatever the
// answers, each with its own timeout, tiers interleaved by mix.
type openLoad struct {
	rate    float64 // arrivals per second
	length  time.Duration
	timeout time.Duration // per request, as the caller's deadline
	mix     [numTiers]int // arrivals of each tier per sum(mix)
}

type tierOutcome struct {
	sent, ok, shed, late, failed int
	latency                      []time.Duration // of the ok ones
}

func (o tierOutcome) successRatio() float64 {
	if o.sent == 0 {
		return 1
	}
	return float64(o.ok) / float64(o.sent)
}

// nullWriter is the cheapest ResponseWriter that keeps the status, so the
// load generator spends its CPU on arrivals, not on recording bodies.
type nullWriter struct {
	h    http.Header
	code int
}

func (w *nullWriter) Header() http.Header { return w.h }
func (w *nullWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return len(b), nil
}
func (w *nullWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

// drive runs l against h and returns each tier's outcome and the achieved
// arrival rate. A request succeeds when it is answered 2xx before its
// caller's timeout; one answered 2xx after it counts as late, as a real
// client would have given up on it.
func drive(h http.Handler, l openLoad) ([numTiers]tierOutcome, float64) {
	var pattern []tier.Tier
	for t, n := range l.mix {
		for range n {
			pattern = append(pattern, tier.Tier(t))
		}
	}
	// Interleave the tiers rather than send them in blocks: stepping by a
	// number prime to the pattern's length visits every slot once.
	spread := make([]tier.Tier, 0, len(pattern))
	for i := range len(pattern) {
		spread = append(spread, pattern[(i*37)%len(pattern)])
	}

	tmpl, _ := http.NewRequest(http.MethodGet, "http://upstream/load", nil)
	var mu sync.Mutex
	var out [numTiers]tierOutcome
	var wg sync.WaitGroup
	start := time.Now()
	sent := 0
	for {
		el := time.Since(start)
		if el >= l.length {
			break
		}
		for due := int(l.rate * el.Seconds()); sent < due; sent++ {
			t := spread[sent%len(spread)]
			wg.Go(func() {
				begin := time.Now()
				ctx, cancel := context.WithDeadline(context.Background(), begin.Add(l.timeout))
				defer cancel()
				ctx = request.With(ctx, &request.Info{Tier: t, Priority: t, Deadline: begin.Add(l.timeout)})
				w := &nullWriter{h: http.Header{}}
				h.ServeHTTP(w, tmpl.WithContext(ctx))
				took := time.Since(begin)
				mu.Lock()
				o := &out[t]
				o.sent++
				switch {
				case w.code/100 == 2 && took <= l.timeout:
					o.ok++
					o.latency = append(o.latency, took)
				case w.code/100 == 2:
					o.late++
				case w.Header().Get("Retry-After") != "":
					o.shed++
				default:
					o.failed++
				}
				mu.Unlock()
			})
		}
		time.Sleep(time.Millisecond)
	}
	achieved := float64(sent) / time.Since(start).Seconds()
	wg.Wait()
	return out, achieved
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// tenfoldMix is the share of each tier per 100 arrivals. CRITICAL is 5%,
// not 10%: at ten times capacity 10% CRITICAL alone is the whole capacity,
// which no scheduler can serve at 99.9%. IMPORTANT at 3% leaves NORMAL a
// fifth of what it asks, so that all four tiers show their order.
var tenfoldMix = [numTiers]int{tier.Critical: 5, tier.Important: 3, tier.Normal: 12, tier.Sheddable: 80}

// tenfoldMedian is the core's median service time. The core serves
// in 2ms, and ten times it is ~70,000 requests per second: more than a
// 2-core machine generates in-process under -race (about 20,000/s into an
// empty handler), let alone a loaded one. At 50ms the ten-fold load is
// ~2,800/s, and the host's stalls (up to half a second were seen with the
// machine at load 9) stay small against the 2s client time-out and the 1s
// latency bound. REMPART_TENFOLD_MEDIAN=2ms runs the figure where
// the machine can generate it.
func tenfoldMedian(t *testing.T) time.Duration {
	v := os.Getenv("REMPART_TENFOLD_MEDIAN")
	if v == "" {
		return 50 * time.Millisecond
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("REMPART_TENFOLD_MEDIAN=%q: want a positive duration", v)
	}
	return d
}

// TestTenfold is issue 4's Done-when: a fixed-capacity core behind the
// controller, driven open-loop at ten times its capacity with every tier
// mixed, keeps CRITICAL served, keeps the core busy with useful work, sheds
// SHEDDABLE first and keeps admitted CRITICAL latency bounded. It takes
// about 5s.
func TestTenfold(t *testing.T) {
	tenfold(t, 4*time.Second)
}

// TestSoak is TestTenfold held for REMPART_ADMISSION_SOAK (e.g. "40s"),
// which shows whether the learnt limit stays put or wanders. Skipped unless
// the variable is set.
func TestSoak(t *testing.T) {
	v := os.Getenv("REMPART_ADMISSION_SOAK")
	if v == "" {
		t.Skip("REMPART_ADMISSION_SOAK is unset (set it to a duration, e.g. 40s)")
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("REMPART_ADMISSION_SOAK=%q: want a positive duration", v)
	}
	tenfold(t, d)
}

func tenfold(t *testing.T, length time.Duration) {
	median := tenfoldMedian(t)
	cfg := core.Config{Workers: 16, MedianService: median, QueueLimit: 100000, Seed: 1}
	// The load is sized on the capacity measured just before, not on the
	// nominal one (16 workers over a 1.13 × median mean service time): on a
	// machine at load 10 the core delivered less than half of it.
	nominal := float64(cfg.Workers) / (1.13 * median.Seconds())
	measured := twin(cfg)
	time.Sleep(time.Second)
	before := measured()

	c, err := New(Options{Name: "core"})
	if err != nil {
		t.Fatal(err)
	}
	up := core.New(cfg)
	l := openLoad{
		rate:    10 * before,
		length:  length,
		timeout: 40 * median,
		mix:     tenfoldMix,
	}
	limits := sampleLimit(c, length/40)
	stop := twin(cfg)
	out, achieved := drive(c.Middleware(coreHandler(up)), l)
	capacity := stop()
	lo, hi := limits()

	var good int
	for _, tt := range tier.All {
		o := out[tt]
		good += o.ok
		t.Logf("%-9s sent %6d ok %6d (%.4f) shed %6d %v late %4d failed %4d p50 %v p99 %v",
			tt, o.sent, o.ok, o.successRatio(), o.shed, c.Stats().Tiers[tt].ShedBy, o.late, o.failed,
			percentile(o.latency, .5), percentile(o.latency, .99))
	}
	goodput := float64(good) / l.length.Seconds()
	t.Logf("capacity %.0f/s during the run, %.0f/s before, %.0f/s nominal; offered %.0f/s (%.1fx); goodput %.0f/s (%.1f%%); limit %d..%d",
		capacity, before, nominal, achieved, achieved/capacity, goodput, 100*goodput/capacity, lo, hi)

	if achieved < 8*capacity {
		t.Fatalf("the load generator offered %.0f/s, %.1fx capacity: too little to test overload", achieved, achieved/capacity)
	}
	if r := out[tier.Critical].successRatio(); r < 0.999 {
		t.Errorf("CRITICAL success %.4f, want >= 0.999", r)
	}
	if goodput < 0.9*capacity {
		t.Errorf("goodput %.0f/s is %.1f%% of capacity %.0f/s, want >= 90%%", goodput, 100*goodput/capacity, capacity)
	}
	shed := out[tier.Sheddable].successRatio()
	for _, tt := range []tier.Tier{tier.Critical, tier.Important, tier.Normal} {
		if r := out[tt].successRatio(); shed > r {
			t.Errorf("SHEDDABLE success %.4f above %s's %.4f", shed, tt, r)
		}
	}
	if shed >= out[tier.Normal].successRatio() {
		t.Errorf("SHEDDABLE success %.4f not below NORMAL's %.4f", shed, out[tier.Normal].successRatio())
	}
	if p99 := percentile(out[tier.Critical].latency, .99); p99 > 20*median {
		t.Errorf("admitted CRITICAL p99 %v, want < %v (20x the median service time)", p99, 20*median)
	}
}

// sampleLimit records c's limit every interval until the returned function
// is called, which returns the lowest and highest seen.
func sampleLimit(c *Controller, interval time.Duration) func() (lo, hi int) {
	done := make(chan struct{})
	var lo, hi int
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		lo, hi = c.Stats().Limit, c.Stats().Limit
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				l := c.Stats().Limit
				lo, hi = min(lo, l), max(hi, l)
			}
		}
	})
	return func() (int, int) {
		close(done)
		wg.Wait()
		return lo, hi
	}
}
