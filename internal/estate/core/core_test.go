package core

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fast is a core small and quick enough for unit tests.
func fast(cfg Config) Config {
	if cfg.MedianService == 0 {
		cfg.MedianService = 200 * time.Microsecond
	}
	if cfg.LockTimeout == 0 {
		cfg.LockTimeout = 50 * time.Millisecond
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	return cfg
}

// waitFor polls cond until it holds. The deadline only stops a broken test
// from hanging; no test passes or fails on how fast the core is.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// blocker occupies workers with calls whose fn blocks until released.
type blocker struct {
	entered atomic.Int64
	release chan struct{}
}

func newBlocker() *blocker { return &blocker{release: make(chan struct{})} }

func (b *blocker) fn(context.Context) error {
	b.entered.Add(1)
	<-b.release
	return nil
}

func TestDefaults(t *testing.T) {
	c := New(Config{})
	want := Config{Workers: 64, MedianService: 8 * time.Millisecond, Sigma: 0.5, QueueLimit: 4096, LockTimeout: 5 * time.Second}
	if c.cfg != want {
		t.Fatalf("defaults = %+v, want %+v", c.cfg, want)
	}
	if got := c.Stats().Workers; got != 64 {
		t.Fatalf("Stats().Workers = %d, want 64", got)
	}
}

func TestCapacity(t *testing.T) {
	for _, tc := range []struct {
		name           string
		workers, calls int
	}{
		{"4 workers 40 calls", 4, 40},
		{"1 worker 10 calls", 1, 10},
		{"more workers than calls", 16, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(fast(Config{Workers: tc.workers}))
			var running, maxRunning, maxBusy atomic.Int64
			observe := func(context.Context) error {
				n := running.Add(1)
				defer running.Add(-1)
				for m := maxRunning.Load(); n > m && !maxRunning.CompareAndSwap(m, n); m = maxRunning.Load() {
				}
				b := int64(c.Stats().Busy)
				for m := maxBusy.Load(); b > m && !maxBusy.CompareAndSwap(m, b); m = maxBusy.Load() {
				}
				time.Sleep(time.Millisecond)
				return nil
			}
			var wg sync.WaitGroup
			errs := make(chan error, tc.calls)
			for range tc.calls {
				wg.Go(func() { errs <- c.Do(t.Context(), Read, observe) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("Do: %v", err)
				}
			}
			if m := maxRunning.Load(); m > int64(tc.workers) {
				t.Errorf("%d calls ran at once, want at most %d", m, tc.workers)
			}
			if m := maxBusy.Load(); m > int64(tc.workers) {
				t.Errorf("Stats().Busy reached %d, want at most %d", m, tc.workers)
			}
			s := c.Stats()
			if s.Completed != int64(tc.calls) || s.Failed != 0 || s.Busy != 0 || s.Queued != 0 {
				t.Errorf("stats after run = %+v, want %d completed and nothing held", s, tc.calls)
			}
		})
	}
}

func TestQueueFull(t *testing.T) {
	c := New(fast(Config{Workers: 1, QueueLimit: 2}))
	b := newBlocker()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Go(func() { errs <- c.Do(t.Context(), Read, b.fn) })
	waitFor(t, "the worker to be taken", func() bool { return b.entered.Load() == 1 })
	for range 2 {
		wg.Go(func() { errs <- c.Do(t.Context(), Read, b.fn) })
	}
	waitFor(t, "two queued calls", func() bool { return c.Stats().Queued == 2 })

	called := false
	err := c.Do(t.Context(), Read, func(context.Context) error { called = true; return nil })
	if !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Do on a full queue = %v, want ErrQueueFull", err)
	}
	if called {
		t.Error("fn ran although the queue was full")
	}

	close(b.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("queued call: %v", err)
		}
	}
	if s := c.Stats(); s.Completed != 3 || s.QueueFull != 1 || s.Failed != 1 {
		t.Errorf("stats = %+v, want 3 completed and 1 queue_full", s)
	}
}

func TestCancelWhileQueued(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ctx    func(parent context.Context) (context.Context, context.CancelFunc)
		cancel bool // cancel explicitly once queued, rather than wait for a deadline
		want   error
	}{
		{"cancel", func(p context.Context) (context.Context, context.CancelFunc) { return context.WithCancel(p) }, true, context.Canceled},
		{"deadline", func(p context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(p, 5*time.Millisecond)
		}, false, context.DeadlineExceeded},
		{"already canceled", func(p context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(p)
			cancel()
			return ctx, cancel
		}, false, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(fast(Config{Workers: 1}))
			b := newBlocker()
			done := make(chan error, 1)
			go func() { done <- c.Do(t.Context(), Read, b.fn) }()
			waitFor(t, "the worker to be taken", func() bool { return b.entered.Load() == 1 })

			ctx, cancel := tc.ctx(t.Context())
			defer cancel()
			var called atomic.Bool
			got := make(chan error, 1)
			go func() {
				got <- c.Do(ctx, Write, func(context.Context) error { called.Store(true); return nil })
			}()
			if tc.cancel {
				waitFor(t, "the call to queue", func() bool { return c.Stats().Queued == 1 })
				cancel()
			}
			if err := <-got; !errors.Is(err, tc.want) {
				t.Fatalf("Do = %v, want %v", err, tc.want)
			}
			if called.Load() {
				t.Error("fn ran for a caller who had gone")
			}
			s := c.Stats()
			if s.Busy != 1 || s.Queued != 0 || s.WritesInFlight != 0 || s.Canceled != 1 {
				t.Errorf("stats = %+v, want only the blocker's worker held and 1 canceled", s)
			}
			close(b.release)
			if err := <-done; err != nil {
				t.Fatalf("blocker: %v", err)
			}
			if s := c.Stats(); s.Busy != 0 || s.Completed != 1 {
				t.Errorf("stats after release = %+v", s)
			}
		})
	}
}

// TestCancelWhileRunning shows the legacy behaviour that makes retry storms
// hurt: a call that holds a worker runs to the end for nobody.
func TestCancelWhileRunning(t *testing.T) {
	c := New(fast(Config{Workers: 1}))
	ctx, cancel := context.WithCancel(t.Context())
	var sawCancel bool
	err := c.Do(ctx, Write, func(ctx context.Context) error {
		cancel() // the caller gives up while the core is working
		sawCancel = ctx.Err() != nil
		return nil
	})
	if err != nil {
		t.Fatalf("Do = %v, want nil: the core finishes what it started", err)
	}
	if sawCancel {
		t.Error("fn saw the caller's cancellation; the core must not know about it")
	}
	// Cancelled during the service time: the worker is still spent in full.
	ctx, cancel = context.WithTimeout(t.Context(), time.Millisecond)
	defer cancel()
	c2 := New(fast(Config{Workers: 1, MedianService: 20 * time.Millisecond}))
	if err := c2.Do(ctx, Read, nil); err != nil {
		t.Fatalf("Do = %v, want nil", err)
	}
	if s := c2.Stats(); s.Abandoned != 1 || s.Completed != 1 {
		t.Errorf("stats = %+v, want 1 completed and abandoned", s)
	}
}

func TestFaults(t *testing.T) {
	errCall := errors.New("call failed")
	for _, tc := range []struct {
		name       string
		faults     Faults
		fnErr      error
		want       error
		wantCalled bool
	}{
		{"healthy", Faults{}, nil, nil, true},
		{"down", Faults{Down: true}, nil, ErrDown, false},
		{"error rate 1", Faults{ErrorRate: 1}, nil, ErrInjected, false},
		{"slowdown", Faults{Slowdown: 3}, nil, nil, true},
		{"fn error passes through", Faults{}, errCall, errCall, true},
		{"contention without other writes", Faults{LockContention: 1}, nil, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(fast(Config{}))
			if err := c.SetFaults(tc.faults); err != nil {
				t.Fatalf("SetFaults: %v", err)
			}
			for _, k := range []Kind{Read, Write} {
				called := false
				err := c.Do(t.Context(), k, func(context.Context) error { called = true; return tc.fnErr })
				if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
					t.Errorf("%v: Do = %v, want %v", k, err, tc.want)
				}
				if called != tc.wantCalled {
					t.Errorf("%v: fn called = %v, want %v", k, called, tc.wantCalled)
				}
			}
			s := c.Stats()
			if s.Busy != 0 || s.WritesInFlight != 0 || s.Completed+s.Failed != 2 {
				t.Errorf("stats = %+v, want 2 calls accounted for and nothing held", s)
			}
		})
	}
}

func TestErrorRateIsAProbability(t *testing.T) {
	c := New(fast(Config{MedianService: time.Nanosecond, Seed: 7}))
	if err := c.SetFaults(Faults{ErrorRate: 0.3}); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	for range n {
		_ = c.Do(t.Context(), Read, nil)
	}
	// 0.3 × 2000 = 600, standard deviation about 20: ±100 is five of them.
	if got := c.Stats().Injected; got < 500 || got > 700 {
		t.Errorf("%d of %d calls injected at error_rate 0.3, want about 600", got, n)
	}
}

func TestSetFaultsValidation(t *testing.T) {
	nan := func() float64 { var z float64; return z / z }()
	for _, tc := range []struct {
		name    string
		faults  Faults
		wantErr string // a field name the error must mention; empty for valid faults
	}{
		{"zero", Faults{}, ""},
		{"slowdown 1", Faults{Slowdown: 1}, ""},
		{"slowdown 1000", Faults{Slowdown: 1000}, ""},
		{"error rate 1", Faults{ErrorRate: 1}, ""},
		{"all on", Faults{Slowdown: 5, ErrorRate: 0.5, Down: true, LockContention: 3}, ""},
		{"slowdown below 1", Faults{Slowdown: 0.5}, "slowdown: must be between 1 and 1000"},
		{"slowdown above 1000", Faults{Slowdown: 1001}, "slowdown: must be between 1 and 1000"},
		{"slowdown negative", Faults{Slowdown: -2}, "slowdown"},
		{"slowdown NaN", Faults{Slowdown: nan}, "slowdown"},
		{"error rate above 1", Faults{ErrorRate: 1.1}, "error_rate: must be between 0 and 1"},
		{"error rate negative", Faults{ErrorRate: -0.1}, "error_rate"},
		{"error rate NaN", Faults{ErrorRate: nan}, "error_rate"},
		{"lock contention negative", Faults{LockContention: -1}, "lock_contention: must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(fast(Config{}))
			before := Faults{Slowdown: 2, ErrorRate: 0.1, LockContention: 4}
			if err := c.SetFaults(before); err != nil {
				t.Fatal(err)
			}
			err := c.SetFaults(tc.faults)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("SetFaults(%+v) = %v, want nil", tc.faults, err)
				}
				if got := c.Faults(); got != tc.faults {
					t.Errorf("Faults() = %+v, want %+v", got, tc.faults)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("SetFaults(%+v) = %v, want an error mentioning %q", tc.faults, err, tc.wantErr)
			}
			if got := c.Faults(); got != before {
				t.Errorf("Faults() = %+v after a refused change, want %+v kept", got, before)
			}
		})
	}
}

// TestLockConvoy reproduces the incident's database deadlock: past K writes in
// flight, every further write holds a worker for LockTimeout and fails, so
// write throughput collapses while reads go on.
func TestLockConvoy(t *testing.T) {
	const writes = 20
	for _, tc := range []struct {
		name             string
		contention       int
		wantOK           int
		wantLockTimeouts int64
	}{
		{"contention off", 0, writes, 0},
		{"K=2", 2, 2, writes - 2},
		{"K=5", 5, 5, writes - 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(fast(Config{Workers: 64}))
			if err := c.SetFaults(Faults{LockContention: tc.contention}); err != nil {
				t.Fatal(err)
			}
			b := newBlocker() // writes stay in flight until released
			var wg sync.WaitGroup
			errs := make(chan error, writes)
			for range writes {
				wg.Go(func() { errs <- c.Do(t.Context(), Write, b.fn) })
			}
			// Every write is now either inside fn or in the convoy.
			waitFor(t, "all writes to hold a worker", func() bool { return c.Stats().WritesInFlight == writes })
			if s := c.Stats(); s.Busy != writes {
				t.Errorf("Busy = %d while %d writes are stuck, want %d: convoys hold workers", s.Busy, writes, writes)
			}

			// Reads take no write locks and still get through.
			for range 10 {
				if err := c.Do(t.Context(), Read, nil); err != nil {
					t.Fatalf("read during the convoy: %v", err)
				}
			}

			waitFor(t, "the convoy to time out", func() bool {
				return b.entered.Load()+c.Stats().LockTimeouts == writes
			})
			close(b.release)
			wg.Wait()
			close(errs)
			ok := 0
			for err := range errs {
				switch {
				case err == nil:
					ok++
				case errors.Is(err, ErrLockTimeout):
				default:
					t.Errorf("write: %v", err)
				}
			}
			s := c.Stats()
			if ok != tc.wantOK || s.LockTimeouts != tc.wantLockTimeouts {
				t.Errorf("%d writes succeeded and %d timed out on locks, want %d and %d", ok, s.LockTimeouts, tc.wantOK, tc.wantLockTimeouts)
			}
			if s.Busy != 0 || s.WritesInFlight != 0 || s.Completed != int64(tc.wantOK)+10 {
				t.Errorf("stats after run = %+v", s)
			}
		})
	}
}

func TestServiceTimeDistribution(t *testing.T) {
	const median = 8 * time.Millisecond
	for _, tc := range []struct {
		name     string
		slowdown float64
	}{
		{"normal", 0},
		{"slowdown 10", 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(Config{MedianService: median, Seed: 42})
			f := &Faults{Slowdown: tc.slowdown}
			const n = 2000
			ds := make([]time.Duration, n)
			for i := range ds {
				ds[i], _ = c.draw(f)
			}
			sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
			want := time.Duration(float64(median) * f.slowdown())
			if got := ds[n/2]; got < want*3/4 || got > want*5/4 {
				t.Errorf("median service time = %v, want %v ±25%%", got, want)
			}
			// With sigma 0.5 the 84th percentile is e^0.5 ≈ 1.65 medians: the
			// tail that makes a busy core's latency grow faster than its load.
			if r := float64(ds[n*84/100]) / float64(ds[n/2]); r < 1.4 || r > 1.9 {
				t.Errorf("p84/p50 = %.2f, want about 1.65", r)
			}
		})
	}
}

// TestSameSeedSameDraws makes drills reproducible.
func TestSameSeedSameDraws(t *testing.T) {
	a, b := New(Config{Seed: 9}), New(Config{Seed: 9})
	f := &Faults{ErrorRate: 0.5}
	for range 100 {
		da, ea := a.draw(f)
		db, eb := b.draw(f)
		if da != db || ea != eb {
			t.Fatalf("draws differ for the same seed: %v,%v vs %v,%v", da, ea, db, eb)
		}
	}
}

// TestAccounting runs a noisy mix (faults flipping, short deadlines, a tight
// queue) and checks that every call is accounted for exactly once and that
// nothing stays held: the invariants the race detector and the FIFO hand-over
// must keep.
func TestAccounting(t *testing.T) {
	c := New(fast(Config{Workers: 3, QueueLimit: 8, LockTimeout: time.Millisecond, MedianService: 100 * time.Microsecond}))
	stop := make(chan struct{})
	flipped := make(chan struct{})
	go func() {
		defer close(flipped)
		fs := []Faults{{}, {ErrorRate: 0.3}, {LockContention: 1}, {Down: true}, {Slowdown: 2}}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Microsecond):
			}
			if err := c.SetFaults(fs[i%len(fs)]); err != nil {
				t.Error(err)
			}
		}
	}()
	const calls = 400
	var wg sync.WaitGroup
	var ok atomic.Int64
	for i := range calls {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), time.Duration(i%5)*300*time.Microsecond)
			defer cancel()
			err := c.Do(ctx, Kind(i%2), nil)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrDown), errors.Is(err, ErrInjected), errors.Is(err, ErrLockTimeout),
				errors.Is(err, ErrQueueFull), errors.Is(err, context.DeadlineExceeded):
			default:
				t.Errorf("unexpected error %v", err)
			}
		})
	}
	wg.Wait()
	close(stop)
	<-flipped
	s := c.Stats()
	if s.Completed+s.Failed != calls || s.Completed != ok.Load() {
		t.Errorf("stats = %+v: %d calls made, %d succeeded", s, calls, ok.Load())
	}
	if s.Busy != 0 || s.Queued != 0 || s.WritesInFlight != 0 {
		t.Errorf("stats = %+v, want nothing held after the run", s)
	}
}

func TestMetrics(t *testing.T) {
	c := New(fast(Config{Workers: 2}))
	if err := c.Do(t.Context(), Read, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.SetFaults(Faults{Down: true}); err != nil {
		t.Fatal(err)
	}
	_ = c.Do(t.Context(), Read, nil)

	got := map[string]float64{}
	for _, m := range c.Metrics("core-a") {
		if m.Labels["component"] != "core-a" {
			t.Errorf("%s: component label = %q", m.Name, m.Labels["component"])
		}
		key := m.Name
		if r, ok := m.Labels["reason"]; ok {
			key += "{" + r + "}"
		}
		if _, dup := got[key]; dup {
			t.Errorf("duplicate series %s", key)
		}
		got[key] = m.Value()
	}
	for key, want := range map[string]float64{
		"rempart_estate_core_workers":                  2,
		"rempart_estate_core_busy_workers":             0,
		"rempart_estate_core_queued":                   0,
		"rempart_estate_core_writes_in_flight":         0,
		"rempart_estate_core_completed_total":          1,
		"rempart_estate_core_abandoned_total":          0,
		"rempart_estate_core_failed_total{down}":       1,
		"rempart_estate_core_failed_total{injected}":   0,
		"rempart_estate_core_failed_total{queue_full}": 0,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
}

func BenchmarkDo(b *testing.B) {
	c := New(Config{Workers: 64, MedianService: time.Nanosecond, Seed: 1})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.Do(ctx, Read, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
