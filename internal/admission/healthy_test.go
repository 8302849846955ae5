package admission_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/admission"
	"github.com/rempart/rempart/internal/proxy"
	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/telemetry"
	"github.com/rempart/rempart/internal/tier"
)

// echoBody is a few hundred bytes of JSON, as the bench's echo back end
// answers.
var echoBody = []byte(`{"account":"A00000042","currency":"EUR","balance":{"amount":254312,"as_of":"2026-01-05T10:00:00Z"},` +
	`"holder":"C00000042","status":"open","limits":{"daily":150000,"monthly":900000},"flags":["sepa","instant"]}`)

// TestHealthyBackEndAtGatewaySaturation is issue 14's first Done-when: a fast
// back end with room to spare, behind the real proxy and a controller told
// the gateway's scheduling latency, loaded closed-loop by many more clients
// than the controller's initial limit, all in this process so that clients,
// gateway and back end fight for the same cores (the gateway at its own CPU
// saturation). Nothing about the back end changes: its latency is what it
// is at that load, and it never fails. NORMAL must shed nothing, from the
// first request on.
//
// Before the admission layer measured the back end where it is and kept its
// queue open until the back end showed overload, this run shed most of the
// NORMAL requests (at commit d5f7a74, on 2 shared cores at load 10 and 13:
// 9,589 of 11,969 and 28,087 of 36,479, queue_full and queue_timeout, the
// limit at 14 and 18).
func TestHealthyBackEndAtGatewaySaturation(t *testing.T) {
	if testing.Short() {
		t.Skip("a few seconds of closed-loop load")
	}
	if raceEnabled {
		// Seen in CI: 130 answers a second instead of thousands, the
		// scheduling delay at 117 ms, and 128 closed-loop clients then
		// wait past MaxWait whatever the limit. The run without -race
		// (CI's second pass) holds the line.
		t.Skip("speed-dependent: skipped under the race detector, run by go test without -race")
	}
	const clients = 128
	length := 4 * time.Second

	back := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(echoBody)
	}))
	defer back.Close()
	base, _ := url.Parse(back.URL)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sched := telemetry.NewSchedLatency(ctx, 100*time.Millisecond)
	c, err := admission.New(admission.Options{Name: "echo", Noise: sched.P90})
	if err != nil {
		t.Fatal(err)
	}
	inner := c.Middleware(proxy.New(base, 0, nil))
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.WithContext(request.With(r.Context(), &request.Info{Route: "balance", Tier: tier.Normal, Priority: tier.Normal}))
		inner.ServeHTTP(w, r)
	}))
	defer front.Close()

	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	var ok, other, failed atomic.Int64
	var peakSched atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(length)
	for range clients {
		wg.Go(func() {
			for time.Now().Before(end) {
				res, err := client.Get(front.URL + "/v1/accounts/A00000042/balance")
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					ok.Add(1)
				} else {
					other.Add(1)
				}
				if p := int64(sched.P90()); p > peakSched.Load() {
					peakSched.Store(p)
				}
			}
		})
	}
	wg.Wait()

	s := c.Stats()
	n := s.Tiers[tier.Normal]
	t.Logf("%d clients on %d processors: %d ok (%.0f/s), %d other answers, %d errors; limit %d at the end; "+
		"NORMAL admitted %d shed %d %v; peak scheduling p90 %v",
		clients, runtime.GOMAXPROCS(0), ok.Load(), float64(ok.Load())/length.Seconds(), other.Load(), failed.Load(),
		s.Limit, n.Admitted, n.Shed, n.ShedBy, time.Duration(peakSched.Load()))
	if failed.Load() > 0 {
		t.Errorf("%d requests failed at the transport", failed.Load())
	}
	if n.Shed > 0 || other.Load() > 0 {
		t.Errorf("NORMAL shed %d requests %v (%d non-200 answers) in front of a healthy back end",
			n.Shed, n.ShedBy, other.Load())
	}
	if ok.Load() < clients {
		t.Fatalf("only %d answers: the load did not run", ok.Load())
	}
}
