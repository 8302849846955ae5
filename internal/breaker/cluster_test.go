package breaker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
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

	"github.com/rempart/rempart/internal/breaker"
	"github.com/rempart/rempart/internal/journal"
)

// The stand-in limits of a cluster: nodes sharing one Redis approve no more
// together than the limits allow one gateway.

var clusterLimits = breaker.Limits{PerTransaction: 100_00, PerCardPerDay: 300_00, Exposure: 1_000_000_00}

// node is one gateway's stand-in and the route in front of it.
type node struct {
	si    *breaker.StandIn
	route http.Handler
	reg   *prometheus.Registry
	log   *bytes.Buffer
}

// newNode builds a node; timeout bounds its calls to shared (0: the default).
func newNode(t *testing.T, j journal.Store, shared breaker.Counter, nodes int, clk func() time.Time, timeout time.Duration) *node {
	t.Helper()
	n := &node{reg: prometheus.NewRegistry(), log: &bytes.Buffer{}}
	var err error
	n.si, err = breaker.NewStandIn(t.Context(), breaker.StandInConfig{Journal: j, Upstream: "estate",
		Limits: clusterLimits, Shared: shared, Nodes: nodes, SharedTimeout: timeout, Decode: decode, Encode: encode, Now: clk,
		Logger: slog.New(slog.NewTextHandler(&syncWriter{w: n.log}, nil)), Registerer: n.reg})
	if err != nil {
		t.Fatal(err)
	}
	n.route = newBreaker(t, testConfig(), nil).Middleware(breaker.Route{Fallback: n.si})(downCore())
	return n
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func (n *node) logged(what string) int {
	return strings.Count(n.log.String(), what)
}

// spend has each node try to approve 50 EUR on one card, tries times,
// all at once, and returns what each node approved.
func spend(t *testing.T, nodes []*node, card string, tries int) []int64 {
	t.Helper()
	approved := make([]int64, len(nodes))
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for i, n := range nodes {
		for k := range tries {
			wg.Go(func() {
				d, w := authorize(t, n.route, fmt.Sprintf("%s-n%d-%d", card, i, k), card, 50_00)
				if w.Code != http.StatusOK {
					t.Errorf("node %d: %d %s", i, w.Code, w.Body)
				}
				if d.Approved {
					mu.Lock()
					approved[i] += 50_00
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	return approved
}

func redisURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("REDIS_URL")
	if url == "" {
		t.Skip("REDIS_URL not set: skipping the stand-in cluster tests")
	}
	return url
}

// sharedCounter opens a counter on url under a prefix of the test's own;
// two calls with the same prefix are two nodes' connections to one Redis.
func sharedCounter(t *testing.T, url, prefix string) *breaker.RedisCounter {
	t.Helper()
	c, err := breaker.OpenRedisCounter(url, breaker.RedisOptions{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testPrefix() string { return "rempart-test:standin:" + rand.Text()[:12] + ":" }

// TestClusterSharesTheCardLimit: two nodes on one Redis approve the card's
// 300 EUR day once between them; two nodes counting alone, as before,
// approve it twice.
func TestClusterSharesTheCardLimit(t *testing.T) {
	url := redisURL(t)
	for _, tc := range []struct {
		name   string
		shared bool
		nodes  int
		want   int64
	}{
		{"each node alone with the whole limit", false, 1, 2 * clusterLimits.PerCardPerDay},
		{"shared on redis", true, 2, clusterLimits.PerCardPerDay},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := testPrefix()
			var nodes []*node
			for range 2 {
				j, _ := openJournal(t)
				var shared breaker.Counter
				if tc.shared {
					c := sharedCounter(t, url, prefix)
					if err := c.Warm(t.Context()); err != nil {
						t.Fatal(err)
					}
					shared = c
				}
				// A deadline a loaded test machine keeps: this test is about
				// sharing, TestClusterSilentRedisCostsTheDeadline about deadlines.
				nodes = append(nodes, newNode(t, j, shared, tc.nodes, time.Now, 2*time.Second))
			}
			got := spend(t, nodes, "4971111111111110", 10)
			if total := got[0] + got[1]; total != tc.want {
				t.Fatalf("nodes approved %v, together %d; want %d", got, total, tc.want)
			}
			for i, n := range nodes {
				if f := fallbacks(t, n.reg); tc.shared && f != 0 {
					t.Errorf("node %d fell back %v times with Redis up", i, f)
				}
			}
			t.Logf("approved per node: %v", got)
		})
	}
}

// fallbacks reads rempart_breaker_standin_shared_fallbacks_total.
func fallbacks(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "rempart_breaker_standin_shared_fallbacks_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0 // registered only with shared counters
}

// closedPort is an address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// silentRedis accepts connections and never answers, as a Redis stopped
// with SIGSTOP does.
func silentRedis(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// TestClusterFallsBackToItsShare: with Redis unreachable or silent, each
// node approves its share of the card's day (300 EUR / 2), never the whole,
// logs the loss once and counts every decision it took alone.
func TestClusterFallsBackToItsShare(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"closed port", closedPort},
		{"silent server", silentRedis},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := "redis://" + tc.addr(t) + "/0"
			var nodes []*node
			for range 2 {
				j, _ := openJournal(t)
				nodes = append(nodes, newNode(t, j, sharedCounter(t, url, testPrefix()), 2, time.Now, 0))
			}
			const tries = 6
			got := spend(t, nodes, "4971111111111110", tries)
			for i, n := range nodes {
				if got[i] != clusterLimits.PerCardPerDay/2 {
					t.Errorf("node %d approved %d, want its share %d", i, got[i], clusterLimits.PerCardPerDay/2)
				}
				if f := fallbacks(t, n.reg); f != tries {
					t.Errorf("node %d counted %v fallbacks, want %d", i, f, tries)
				}
				if l := n.logged("shared limits unreachable"); l != 1 {
					t.Errorf("node %d logged the loss %d times, want once:\n%s", i, l, n.log)
				}
				if n.si.Stats().Shared {
					t.Errorf("node %d reports the shared limits up", i)
				}
			}
		})
	}
}

// TestClusterSilentRedisCostsTheDeadline: a Redis that never answers costs
// a decision the call deadline (50ms), not go-redis's own 5s read timeout;
// until the backoff ends the next decisions do not call it at all.
func TestClusterSilentRedisCostsTheDeadline(t *testing.T) {
	clk := newClock(time.Now())
	j, _ := openJournal(t)
	n := newNode(t, j, sharedCounter(t, "redis://"+silentRedis(t)+"/0", testPrefix()), 1, clk.Now, 0)
	for i := range 4 {
		if i == 2 {
			clk.Advance(2 * time.Second) // past the backoff: Redis is tried again
		}
		start := time.Now()
		d, w := authorize(t, n.route, fmt.Sprint("k", i), "4971111111111110", 10_00)
		// A bound on a failure path, not a performance figure: 1s is far
		// above the 50ms deadline and far below the 5s it would otherwise wait.
		if took := time.Since(start); took > time.Second || !d.Approved {
			t.Fatalf("decision %d took %v (%d %s), want at most the call deadline", i, took, w.Code, w.Body)
		}
	}
	if l := n.logged("shared limits unreachable"); l != 1 {
		t.Errorf("logged the loss %d times, want once", l)
	}
}

// failingJournal refuses every append, as a full disk would.
type failingJournal struct{ journal.Store }

func (failingJournal) Append(context.Context, journal.Entry) (journal.Entry, error) {
	return journal.Entry{}, errors.New("disk full")
}

// TestClusterGivesBackWhatItCouldNotJournal: an approval counted on Redis
// whose journal write failed is given back, and another node may approve it.
func TestClusterGivesBackWhatItCouldNotJournal(t *testing.T) {
	url, prefix := redisURL(t), testPrefix()
	j, _ := openJournal(t)
	broken := newNode(t, failingJournal{j}, sharedCounter(t, url, prefix), 2, time.Now, 2*time.Second)
	j2, _ := openJournal(t)
	healthy := newNode(t, j2, sharedCounter(t, url, prefix), 2, time.Now, 2*time.Second)
	for i := range 3 {
		if _, w := authorize(t, broken.route, fmt.Sprint("lost-", i), "4971111111111110", 100_00); w.Code != http.StatusServiceUnavailable {
			t.Fatalf("unjournaled decision answered %d %s, want 503", w.Code, w.Body)
		}
	}
	for i := range 3 {
		if d, w := authorize(t, healthy.route, fmt.Sprint("kept-", i), "4971111111111110", 100_00); !d.Approved {
			t.Fatalf("approval %d on the healthy node declined: %d %s", i, w.Code, w.Body)
		}
	}
}

// TestClusterSettlesOnTheReplayingNode: node B replaying node A's approval
// ends its exposure for the whole cluster.
func TestClusterSettlesOnTheReplayingNode(t *testing.T) {
	url, prefix := redisURL(t), testPrefix()
	lim := clusterLimits
	lim.Exposure = 100_00
	mk := func() *breaker.StandIn {
		j, _ := openJournal(t)
		si, err := breaker.NewStandIn(t.Context(), breaker.StandInConfig{Journal: j, Upstream: "estate",
			Limits: lim, Shared: sharedCounter(t, url, prefix), Nodes: 2, SharedTimeout: 2 * time.Second,
			Decode: decode, Encode: encode})
		if err != nil {
			t.Fatal(err)
		}
		return si
	}
	a, b := mk(), mk()
	ra := newBreaker(t, testConfig(), nil).Middleware(breaker.Route{Fallback: a})(downCore())
	rb := newBreaker(t, testConfig(), nil).Middleware(breaker.Route{Fallback: b})(downCore())
	if d, _ := authorize(t, ra, "first", "4971111111111110", 100_00); !d.Approved {
		t.Fatal("first approval declined")
	}
	if d, _ := authorize(t, rb, "second", "4972222222222220", 100_00); d.Approved || d.Reason != breaker.ReasonExposureCap {
		t.Fatalf("second approval %+v, want declined on the exposure cap", d)
	}
	b.Settle(journal.Entry{Key: "first", Kind: journal.KindStandIn})
	if d, _ := authorize(t, rb, "third", "4972222222222220", 100_00); !d.Approved {
		t.Fatalf("after B settled A's approval: %+v, want approved", d)
	}
}
