//go:build unix

package breaker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/breaker"
	"github.com/rempart/rempart/internal/estate"
	"github.com/rempart/rempart/internal/estate/core"
	"github.com/rempart/rempart/internal/journal"
	"github.com/rempart/rempart/internal/journal/sqlite"
	"github.com/rempart/rempart/internal/proxy"
)

// replayerEnv, when set, turns TestKillMidReplay into the replayer process
// it kills; the value is "<journal file> <estate URL>".
const replayerEnv = "REMPART_BREAKER_KILL_REPLAYER"

// killNode is the lease owner of the killed replayer and of its successor.
const killNode = "node-1"

// TestKillMidReplay journals stand-in approvals while the estate's core is
// down, then replays them from a separate process against the estate served
// over HTTP, and SIGKILLs that process part-way — right after the estate
// has applied one replay and before the replayer could hear of it and mark
// it done. A fresh replayer then finishes: every approval is in the ledger
// exactly once, the one caught in the kill included, and the ledger
// invariant holds.
func TestKillMidReplay(t *testing.T) {
	if arg := os.Getenv(replayerEnv); arg != "" {
		runReplayerProcess(t, arg)
		return
	}
	est := newEstate(t)
	j, path := openJournal(t)
	br := newBreaker(t, breaker.Config{Upstream: "estate", MinCalls: 3, Delay: time.Hour}, nil)
	si, err := breaker.NewStandIn(t.Context(), breaker.StandInConfig{Journal: j, Upstream: "estate",
		Limits: breaker.Limits{PerTransaction: 500_00, PerCardPerDay: 1000_00, Exposure: 1_000_000_00},
		Decode: estateDecode, Encode: estateEncode})
	if err != nil {
		t.Fatal(err)
	}
	route := br.Middleware(breaker.Route{Fallback: si})(est.Handler())
	if err := est.Core().SetFaults(core.Faults{Down: true}); err != nil {
		t.Fatal(err)
	}
	const n = 60
	var acked []string
	for i := range n {
		key := fmt.Sprintf("kill-%02d", i)
		card := est.Population().Nth(i).Card
		if i == 0 {
			card = alice
		}
		if d := readDecision(t, pay(route, estate.PathCardAuthorize, key, card, int64(5_00+i*100))); !d.Approved || !d.StandIn {
			t.Fatalf("%s: %+v", key, d)
		}
		acked = append(acked, key)
	}
	// The gateway that took the decisions is gone; its journal stays.
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := est.Core().SetFaults(core.Faults{}); err != nil {
		t.Fatal(err)
	}

	// The estate, over HTTP. The killAt-th replay is applied, then the
	// replayer is killed before the answer leaves.
	const killAt = 20
	var (
		child    atomic.Pointer[os.Process]
		served   atomic.Int64
		mu       sync.Mutex
		inKill   string // the key applied but never acknowledged
		killOnce sync.Once
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		est.Handler().ServeHTTP(rec, r)
		if served.Add(1) == killAt {
			killOnce.Do(func() {
				mu.Lock()
				inKill = r.Header.Get("Idempotency-Key")
				mu.Unlock()
				if p := child.Load(); p != nil {
					p.Kill() // SIGKILL
				}
			})
			// No answer leaves, whether or not the signal has landed yet.
			panic(http.ErrAbortHandler)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	defer srv.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestKillMidReplay$", "-test.count=1")
	cmd.Env = append(os.Environ(), replayerEnv+"="+path+" "+srv.URL)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child.Store(cmd.Process)
	err = cmd.Wait()
	if st, ok := cmd.ProcessState.Sys().(interface{ Signaled() bool }); !ok || !st.Signaled() {
		t.Fatalf("the replayer was not killed: %v (%d requests served)", err, served.Load())
	}

	j2, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	c, err := j2.Counts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed after %d replays served: %d done, %d pending", served.Load(), c.Done[journal.KindStandIn], c.Pending[journal.KindStandIn])
	if c.Done[journal.KindStandIn] == 0 || c.Pending[journal.KindStandIn] == 0 {
		t.Fatalf("not killed mid-replay: %+v", c)
	}
	mu.Lock()
	caught := inKill
	mu.Unlock()
	if e, err := j2.Get(t.Context(), caught); err != nil || e.State != journal.Pending {
		t.Fatalf("the replay caught in the kill (%s): %+v %v; want applied by the estate, pending in the journal", caught, e, err)
	}
	mid, err := est.Check(t.Context(), acked)
	if err != nil || len(mid.Duplicated) != 0 || len(mid.Missing) == 0 || len(mid.Problems) != 0 {
		t.Fatalf("ledger mid-replay: %+v %v", mid, err)
	}

	// A fresh replayer finishes. It is the same node restarted, under the
	// same lease owner: the killed process's leases are its own and it
	// takes them at once, without waiting for them to end.
	rb := newBreaker(t, breaker.Config{Upstream: "estate"}, nil)
	rp, err := journal.NewReplayer(journal.ReplayerConfig{Store: j2, Upstream: "estate", Rate: 1000, Owner: killNode,
		Handler: rb.Middleware(breaker.Route{})(est.Handler())})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := rp.Drain(t.Context()); err != nil || p.Failed != 0 {
		t.Fatalf("fresh replayer: %+v %v", p, err)
	}
	if c, _ := j2.Counts(t.Context()); c.Pending[journal.KindStandIn] != 0 || c.Done[journal.KindStandIn] != n {
		t.Fatalf("after the fresh replayer: %+v", c)
	}
	rep, err := est.Check(t.Context(), acked)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Transfers+rep.Declined != n {
		t.Fatalf("ledger after the kill and a fresh replay: %+v; want %d transfers, each key once", rep, n)
	}
	// The estate had applied the caught entry before the kill: the fresh
	// replay got the first decision back, marked replayed, and moved nothing.
	e, err := j2.Get(t.Context(), caught)
	if err != nil {
		t.Fatal(err)
	}
	var d estate.Decision
	if err := json.Unmarshal(e.Result.Body, &d); err != nil || !d.Replayed {
		t.Fatalf("%s after the fresh replay: %s (%v); want the estate's first decision, replayed", caught, e.Result.Body, err)
	}
}

// runReplayerProcess is the process TestKillMidReplay kills: a replayer on
// the journal file, sending to the estate over HTTP through a breaker.
func runReplayerProcess(t *testing.T, arg string) {
	path, rawURL, _ := strings.Cut(arg, " ")
	base, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	j, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	br, err := breaker.New(breaker.Config{Upstream: "estate"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := journal.NewReplayer(journal.ReplayerConfig{Store: j, Upstream: "estate", Rate: 200, Workers: 2, Owner: killNode,
		Handler: br.Middleware(breaker.Route{})(proxy.New(base, 5*time.Second, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := rp.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		c, err := j.Counts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c.Pending[journal.KindStandIn] == 0 {
			return // drained without being killed: the parent fails
		}
		time.Sleep(10 * time.Millisecond)
	}
}
