package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rempart/rempart/client"
	"github.com/rempart/rempart/internal/estate"
	"github.com/rempart/rempart/internal/estate/core"
	"github.com/rempart/rempart/internal/proxy"
)

// The retry-storm tests replay the part of the incident where apps re-tried
// failed calls at once and multiplied the load on a core that was already
// failing. They drive the real estate core, degraded, through the gateway's
// replay cache and retry budget, and count the calls that reach the core.

const (
	stormOps         = 400 // distinct operations (Idempotency-Keys)
	stormConcurrency = 48  // clients at once
	stormMaxLoad     = 1.1 // calls at the core per operation, at most
)

// stormEstate starts the simulated bank with a small, degraded core.
func stormEstate(t *testing.T, faults core.Faults) *estate.Estate {
	t.Helper()
	e, err := estate.New(context.Background(), estate.Config{DataDir: t.TempDir(), Seed: 1, Customers: 100_000,
		Core: core.Config{Workers: 8, MedianService: 2 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if err := e.Core().SetFaults(faults); err != nil {
		t.Fatal(err)
	}
	return e
}

// stormGateway fronts the estate as the gateway does for one upstream, with
// (protected) or without the retry-storm defences.
func stormGateway(t *testing.T, e *estate.Estate, protected bool) *httptest.Server {
	t.Helper()
	var h http.Handler = proxy.WithTimeout(e.Handler(), 10*time.Second)
	if protected {
		budget := client.NewRetryBudget(client.BudgetConfig{})
		h = proxy.NewRetrier(proxy.RetryOptions{Budget: budget}).Middleware(h)
		h = proxy.NewReplayCache(proxy.ReplayOptions{Budget: budget}).Middleware(h)
	}
	srv := httptest.NewServer(h)
	srv.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = stormConcurrency
	t.Cleanup(srv.Close)
	return srv
}

// coreCalls counts the calls that reached the core: served or failed.
func coreCalls(e *estate.Estate) int64 {
	s := e.Core().Stats()
	return s.Completed + s.Failed
}

// payment is the i-th operation: a one-euro online card payment.
func payment(e *estate.Estate, i int) string {
	c := e.Population().Nth(i % e.Population().Size())
	return fmt.Sprintf(`{"card":%q,"amount":100,"merchant":"storm-%d","channel":"online"}`, c.Card, i)
}

// naive is an app that retries 3 times, at once, with the same
// Idempotency-Key, on anything but a 2xx; with a timeout it also gives up on
// an attempt after that long and sends it again.
type naive struct {
	timeout time.Duration
}

// run does one operation and reports whether it was acknowledged.
func (n naive) run(hc *http.Client, url, key, body string) bool {
	for range 1 + 3 {
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if n.timeout > 0 {
			ctx, cancel = context.WithTimeout(ctx, n.timeout)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+estate.PathCardAuthorize, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		res, err := hc.Do(req)
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		cancel()
		if err == nil && res.StatusCode/100 == 2 {
			return true
		}
	}
	return false
}

// drive runs stormOps operations on stormConcurrency workers and returns the
// keys acknowledged.
func drive(op func(i int, key string) bool) []string {
	var mu sync.Mutex
	var acked []string
	next := make(chan int)
	var wg sync.WaitGroup
	for range stormConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				key := fmt.Sprintf("storm-%04d", i)
				if op(i, key) {
					mu.Lock()
					acked = append(acked, key)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range stormOps {
		next <- i
	}
	close(next)
	wg.Wait()
	return acked
}

// checkLedger runs the estate's invariant: money conserved, and every
// acknowledged payment applied exactly once.
func checkLedger(t *testing.T, e *estate.Estate, acked []string) {
	t.Helper()
	rep, err := e.Check(context.Background(), acked)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Errorf("ledger invariant broken: missing %v, duplicated %v, %v", rep.Missing, rep.Duplicated, rep.Problems)
	}
}

func TestRetryStormNaiveClients(t *testing.T) {
	degraded := core.Faults{Slowdown: 5, ErrorRate: 0.2}
	tests := []struct {
		name      string
		client    naive
		protected bool
	}{
		// With 20 % failures and 3 immediate retries, 1 + 0.2 + 0.04 + 0.008
		// = 1.25 calls per operation are expected without the defences.
		{"errors, bare", naive{}, false},
		{"errors, defended", naive{}, true},
		// Apps giving up after 15 ms on a core that needs ~10 ms a call
		// behind a queue: without the defences every attempt that gets in
		// is a new call (cancelled in the queue, or served for nobody).
		{"timeouts, bare", naive{timeout: 15 * time.Millisecond}, false},
		{"timeouts, defended", naive{timeout: 15 * time.Millisecond}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := stormEstate(t, degraded)
			srv := stormGateway(t, e, tt.protected)
			hc := srv.Client()
			acked := drive(func(i int, key string) bool { return tt.client.run(hc, srv.URL, key, payment(e, i)) })
			srv.Close() // waits for the requests still running for callers who gave up
			calls := coreCalls(e)
			load := float64(calls) / stormOps
			t.Logf("%d operations, %d acknowledged, %d calls at the core: %.3f per operation", stormOps, len(acked), calls, load)
			if tt.protected && load > stormMaxLoad {
				t.Errorf("the core got %.3f calls per operation, want at most %.2f", load, stormMaxLoad)
			}
			// The bare arms show that the test measures something.
			if !tt.protected && load <= stormMaxLoad {
				t.Errorf("without the defences the core got only %.3f calls per operation: the storm did not happen", load)
			}
			checkLedger(t, e, acked)
		})
	}
}

// TestRetryStormSDK runs a bank app's backend on the SDK (one client shared
// by its workers) against the same degraded core, and against a core that is
// down: the SDK's retries stay within its budget, and the load on the core
// within 1.1 times the operations.
func TestRetryStormSDK(t *testing.T) {
	tests := []struct {
		name   string
		faults core.Faults
	}{
		{"degraded", core.Faults{Slowdown: 5, ErrorRate: 0.2}},
		{"down", core.Faults{Down: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := stormEstate(t, tt.faults)
			srv := stormGateway(t, e, true)
			// The breaker is set loose so that the retry budget alone is
			// what holds the retries back.
			app := client.New(srv.URL, client.WithHTTPClient(srv.Client()),
				client.WithBackoff(time.Millisecond, 10*time.Millisecond),
				client.WithBreaker(client.BreakerConfig{ConsecutiveFailures: 1 << 30, FailureRatio: 1, Window: 1 << 16, MinAttempts: 1 << 16}))
			var circuit atomic.Int64
			acked := drive(func(i int, key string) bool {
				// A card network waits a second at most.
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				req, _ := http.NewRequest(http.MethodPost, estate.PathCardAuthorize, strings.NewReader(payment(e, i)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", key)
				res, err := app.Do(ctx, req)
				if errors.Is(err, client.ErrCircuitOpen) {
					circuit.Add(1)
				}
				if err != nil {
					return false
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				return res.StatusCode/100 == 2
			})
			srv.Close()
			st := app.Stats()
			calls := coreCalls(e)
			load := float64(calls) / stormOps
			t.Logf("%d operations, %d acknowledged; SDK %+v; %d calls at the core: %.3f per operation",
				stormOps, len(acked), st, calls, load)
			if limit := max(st.Calls/10, 10); st.Retries > limit {
				t.Errorf("the SDK retried %d times for %d calls, want at most %d", st.Retries, st.Calls, limit)
			}
			if tt.faults.Down && st.BudgetRefused == 0 {
				t.Error("every call failed and the budget refused no retry")
			}
			if load > stormMaxLoad {
				t.Errorf("the core got %.3f calls per operation, want at most %.2f", load, stormMaxLoad)
			}
			checkLedger(t, e, acked)
		})
	}
}
