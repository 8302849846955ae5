package scrub

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/rempart/rempart/internal/scrub/clock"
	"github.com/rempart/rempart/internal/scrub/ratelimit"
)

// syncBuffer is a log sink safe for the scrubber's concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTransitionsAreObservable: an attack shows in the log (with its
// evidence) and in rempart_scrub_* metrics.
func TestTransitionsAreObservable(t *testing.T) {
	var logs syncBuffer
	reg := prometheus.NewRegistry()
	s, clk := newTestScrubber(t, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		o.Registerer = reg
		o.Baselines = map[string]float64{"balance": 10}
	})
	h := testGateway(s, "balance", &seenInfo{})
	for i := range 1000 {
		get(h, fmt.Sprintf("127.3.%d.%d:1", i/200, i%200), nil)
		if i%10 == 0 {
			clk.Advance(time.Millisecond)
		}
	}
	clk.Advance(100 * time.Millisecond)
	if st := s.State("balance"); st.State != Attack {
		t.Fatalf("state %s", st.State)
	}
	line := logs.String()
	for _, want := range []string{"route state changed", "route=balance", "to=attack", "known_share=", "indicators="} {
		if !strings.Contains(line, want) {
			t.Errorf("log lacks %q:\n%s", want, line)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "rempart_scrub_") {
			t.Errorf("metric %s lacks the rempart_scrub_ prefix", mf.GetName())
		}
		found[mf.GetName()] = true
		if mf.GetName() == "rempart_scrub_state" {
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["route"] == "balance" && labels["state"] == "attack" && m.GetGauge().GetValue() != 1 {
					t.Error("rempart_scrub_state{route=balance,state=attack} is not 1")
				}
			}
		}
	}
	for _, name := range []string{"rempart_scrub_state", "rempart_scrub_signal", "rempart_scrub_decisions_total",
		"rempart_scrub_transitions_total", "rempart_scrub_difficulty_bits"} {
		if !found[name] {
			t.Errorf("metric %s not exported", name)
		}
	}
}

// TestSharedLimitsFallBack: with Redis unreachable, the scrubber keeps
// limiting, locally, instead of failing open or refusing everyone.
func TestSharedLimitsFallBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rc := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 50 * time.Millisecond})
	defer rc.Close()
	reg := prometheus.NewRegistry()
	s, _ := newTestScrubber(t, func(o *Options) {
		o.NormalFactor = 1
		o.Registerer = reg
		o.Limiter = ratelimit.NewShared(ratelimit.NewRedis(rc, "rempart:scrub:"), ratelimit.NewLocal(o.Clock, ratelimit.LocalOptions{}), o.Clock, ratelimit.SharedOptions{})
	})
	h := testGateway(s, "balance", &seenInfo{})
	codes := map[int]int{}
	for range 12 {
		codes[get(h, "198.51.100.7:1", nil).Code]++
	}
	if codes[http.StatusOK] != 10 || codes[http.StatusTooManyRequests] != 2 {
		t.Fatalf("with Redis down: %v, want the local burst of 10 then 429", codes)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "rempart_scrub_shared_limiter_up" && mf.GetMetric()[0].GetGauge().GetValue() != 0 {
			t.Error("rempart_scrub_shared_limiter_up is not 0 with Redis down")
		}
	}
}

// TestSharedLimitsAcrossGateways: two scrubbers (two gateways) on one Redis
// spend one per-address budget.
func TestSharedLimitsAcrossGateways(t *testing.T) {
	url := os.Getenv("REDIS_URL")
	if url == "" {
		t.Skip("REDIS_URL not set: skipping tests against a real Redis")
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	defer rc.Close()
	prefix := fmt.Sprintf("rempart-test:%d:", time.Now().UnixNano())
	gateway := func() http.Handler {
		s, _ := newTestScrubber(t, func(o *Options) {
			o.NormalFactor = 1
			o.Limits.Address = ratelimit.Limit{Rate: 0.1, Burst: 10}
			o.Limiter = ratelimit.NewShared(ratelimit.NewRedis(rc, prefix), ratelimit.NewLocal(clock.System{}, ratelimit.LocalOptions{}), clock.System{}, ratelimit.SharedOptions{})
		})
		return testGateway(s, "balance", &seenInfo{})
	}
	a, b := gateway(), gateway()
	passed := 0
	for i := range 20 {
		h := a
		if i%2 == 1 {
			h = b
		}
		if get(h, "198.51.100.7:1", nil).Code == http.StatusOK {
			passed++
		}
	}
	if passed != 10 {
		t.Fatalf("two gateways passed %d requests of one address, want the shared burst of 10", passed)
	}
}
