//go:build unix

package identity

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/journal"
	"github.com/rempart/rempart/internal/journal/sqlite"
	"github.com/rempart/rempart/internal/proxy"
)

// killEnv, when set, turns TestKillBetweenLoginAndReplay into one of the
// processes it kills: "login <journal>" logs in through the outage and
// waits, "replay <journal> <directory URL>" drains the journal into a
// directory over HTTP.
const killEnv = "REMPART_IDENTITY_KILL"

// TestKillBetweenLoginAndReplay SIGKILLs a node twice. First right after a
// backup login has answered, its directory writes queued and none applied:
// every write is in the journal. Then a replayer part-way through, right
// after the directory has applied a write and before the replayer heard of
// it: a fresh replayer sends that write again and the directory counts it
// once. The directory ends with each write applied exactly once.
func TestKillBetweenLoginAndReplay(t *testing.T) {
	if arg := os.Getenv(killEnv); arg != "" {
		runKilledProcess(t, arg)
		return
	}
	path := filepath.Join(t.TempDir(), "journal.db")

	// 1. The node logs in through the outage and is killed once answered.
	login := exec.Command(os.Args[0], "-test.run=^TestKillBetweenLoginAndReplay$", "-test.count=1")
	login.Env = append(os.Environ(), killEnv+"=login "+path)
	login.Stderr = os.Stderr
	out, err := login.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := login.Start(); err != nil {
		t.Fatal(err)
	}
	acked := false
	for sc := bufio.NewScanner(out); sc.Scan(); {
		if sc.Text() == "acked" {
			acked = true
			login.Process.Kill() // SIGKILL, the logins answered
			break
		}
	}
	login.Wait()
	if !acked {
		t.Fatal("the login process ended without logging in")
	}

	j, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := j.Counts(t.Context())
	j.Close()
	if err != nil || c.Pending[KindDirectory] != 3 {
		t.Fatalf("journal after the kill: %+v %v; want the 3 writes of the logins that answered", c, err)
	}

	// 2. The directory comes back and a replayer drains into it over HTTP;
	// the replayer is killed once the directory has applied the second
	// write, before that write's answer leaves.
	dir := backupEnv(t)
	var (
		child     atomic.Pointer[os.Process]
		served    atomic.Int64
		mu        sync.Mutex
		delivered = map[string]int{}
		caught    string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		rec := httptest.NewRecorder()
		dir.p.DirectoryEventsHandler(dir.users).ServeHTTP(rec, r)
		mu.Lock()
		delivered[key]++
		mu.Unlock()
		if served.Add(1) == 2 {
			mu.Lock()
			caught = key
			mu.Unlock()
			if p := child.Load(); p != nil {
				p.Kill()
			}
			panic(http.ErrAbortHandler) // no answer leaves
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	defer srv.Close()
	replay := exec.Command(os.Args[0], "-test.run=^TestKillBetweenLoginAndReplay$", "-test.count=1")
	replay.Env = append(os.Environ(), killEnv+"=replay "+path+" "+srv.URL)
	replay.Stdout, replay.Stderr = os.Stderr, os.Stderr
	if err := replay.Start(); err != nil {
		t.Fatal(err)
	}
	child.Store(replay.Process)
	err = replay.Wait()
	if st, ok := replay.ProcessState.Sys().(interface{ Signaled() bool }); !ok || !st.Signaled() {
		t.Fatalf("the replayer was not killed: %v (%d writes served)", err, served.Load())
	}

	// 3. The node restarted (the same lease owner) finishes the replay.
	j, err = sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	mu.Lock()
	key := caught
	mu.Unlock()
	if e, err := j.Get(t.Context(), key); err != nil || e.State != journal.Pending {
		t.Fatalf("the write caught in the kill (%s): %+v %v; want applied by the directory, pending in the journal", key, e, err)
	}
	rp, err := journal.NewReplayer(journal.ReplayerConfig{Store: j, Upstream: DirectoryUpstream, Owner: "node-1",
		Handler: srv.Config.Handler})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := rp.Drain(t.Context()); err != nil || p.Failed != 0 {
		t.Fatalf("fresh replayer: %+v %v", p, err)
	}
	if c, _ := j.Counts(t.Context()); c.Pending[KindDirectory] != 0 || c.Done[KindDirectory] != 3 {
		t.Fatalf("after the fresh replayer: %+v", c)
	}
	mu.Lock()
	twice := delivered[key]
	mu.Unlock()
	if twice != 2 {
		t.Fatalf("the caught write was delivered %d times; the test needs it sent again", twice)
	}
	wantOutageActivity(t, dir.users)
}

func runKilledProcess(t *testing.T, arg string) {
	mode, rest, _ := strings.Cut(arg, " ")
	switch mode {
	case "login":
		e, _ := queuedEnv(t, rest)
		loginThroughOutage(t, e)
		fmt.Println("acked")
		time.Sleep(time.Minute) // killed long before
		t.Fatal("not killed")
	case "replay":
		path, rawURL, _ := strings.Cut(rest, " ")
		base, err := url.Parse(rawURL)
		if err != nil {
			t.Fatal(err)
		}
		j, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		// One worker: the writes go one after the other, so the kill
		// lands between the second's application and its answer.
		rp, err := journal.NewReplayer(journal.ReplayerConfig{Store: j, Upstream: DirectoryUpstream, Owner: "node-1",
			Workers: 1, Handler: proxy.New(base, 5*time.Second, nil)})
		if err != nil {
			t.Fatal(err)
		}
		for range 100 {
			rp.Drain(context.Background())
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("not killed")
	default:
		t.Fatalf("%s=%q", killEnv, arg)
	}
}
