package revocation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rempart/rempart/internal/identity"
)

// client returns a client on REDIS_URL, and a prefix unique to the test, or
// skips: these tests need a real server.
func client(t *testing.T) (*redis.Client, Options) {
	t.Helper()
	url := os.Getenv("REDIS_URL")
	if url == "" {
		t.Skip("REDIS_URL not set: skipping Redis revocation tests")
	}
	o, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(o)
	t.Cleanup(func() { _ = rdb.Close() })
	var b [8]byte
	_, _ = rand.Read(b[:])
	p := "rempart-test:" + t.Name() + ":" + hex.EncodeToString(b[:])
	opts := Options{Channel: p + ":ch", Key: p + ":set"}
	t.Cleanup(func() { _ = rdb.Del(context.Background(), opts.Key).Err() })
	return rdb, opts
}

func start(t *testing.T, rdb *redis.Client, revs *identity.Revocations, opts Options, node string) *Bridge {
	t.Helper()
	opts.NodeID = node
	b, err := Start(t.Context(), rdb, revs, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close %s: %v", node, err)
		}
	})
	return b
}

// waitRevoked polls revs for id, with a 5 s guard, and returns how long it
// took.
func waitRevoked(t *testing.T, revs *identity.Revocations, id string) time.Duration {
	t.Helper()
	t0 := time.Now()
	for !revs.Revoked(id) {
		if time.Since(t0) > 5*time.Second {
			t.Fatalf("%s not revoked after 5 s", id)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(t0)
}

func TestPropagatesWithinOneSecond(t *testing.T) {
	rdb, opts := client(t)
	a, b := identity.NewRevocations(nil), identity.NewRevocations(nil)
	start(t, rdb, a, opts, "A")
	start(t, rdb, b, opts, "B")

	var worst time.Duration
	for i := range 20 {
		id := "jti-" + string(rune('a'+i))
		t0 := time.Now()
		a.Revoke(id, time.Now().Add(time.Hour))
		waitRevoked(t, b, id)
		worst = max(worst, time.Since(t0))
	}
	// And the other way.
	t0 := time.Now()
	b.Revoke("grant-1", time.Now().Add(time.Hour))
	waitRevoked(t, a, "grant-1")
	worst = max(worst, time.Since(t0))
	t.Logf("worst propagation latency over 21 revocations: %v", worst)
	if worst > time.Second {
		t.Errorf("propagation took %v, want at most 1 s", worst)
	}
}

func TestLateNodeCatchesUpFromSet(t *testing.T) {
	rdb, opts := client(t)
	a := identity.NewRevocations(nil)
	start(t, rdb, a, opts, "A")
	a.Revoke("jti-early", time.Now().Add(time.Hour))
	// Wait until it is in the set (published asynchronously).
	deadline := time.Now().Add(5 * time.Second)
	for rdb.ZScore(t.Context(), opts.Key, "jti-early").Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("jti-early never reached the sorted set")
		}
		time.Sleep(5 * time.Millisecond)
	}
	late := identity.NewRevocations(nil)
	start(t, rdb, late, opts, "late")
	if !late.Revoked("jti-early") {
		t.Fatal("a node started after the revocation does not see it")
	}
}

func TestCatchesUpAfterReconnect(t *testing.T) {
	rdb, opts := client(t)
	// B gets its own client, named, so that only its connections are killed.
	o := *rdb.Options()
	o.ClientName = "rempart-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	brdb := redis.NewClient(&o)
	t.Cleanup(func() { _ = brdb.Close() })
	b := identity.NewRevocations(nil)
	start(t, brdb, b, opts, "B")
	// A partition: a revocation is written to the set while B's message is
	// lost.
	if err := rdb.ZAdd(t.Context(), opts.Key, redis.Z{Score: float64(time.Now().Add(time.Hour).UnixMilli()), Member: "jti-missed"}).Err(); err != nil {
		t.Fatal(err)
	}
	if b.Revoked("jti-missed") {
		t.Fatal("revoked before any reconnect")
	}
	// Drop B's connections from the server side; its subscription
	// reconnects and catches up from the set.
	list, err := rdb.ClientList(t.Context()).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		if !strings.Contains(line, " name="+o.ClientName+" ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if id, ok := strings.CutPrefix(f, "id="); ok {
				if err := rdb.Do(t.Context(), "CLIENT", "KILL", "ID", id).Err(); err == nil {
					killed++
				}
			}
		}
	}
	if killed == 0 {
		t.Fatal("found no connection of B to kill")
	}
	d := waitRevoked(t, b, "jti-missed")
	t.Logf("caught up %v after %d connection(s) of B were killed", d, killed)
	// And the subscription is live again.
	payload, _ := json.Marshal(message{Node: "X", ID: "jti-after", Until: time.Now().Add(time.Hour).UnixNano()})
	if err := rdb.Publish(t.Context(), opts.Channel, payload).Err(); err != nil {
		t.Fatal(err)
	}
	waitRevoked(t, b, "jti-after")
}

func TestExpiredArePruned(t *testing.T) {
	rdb, opts := client(t)
	a := identity.NewRevocations(nil)
	start(t, rdb, a, opts, "A")
	// An entry already expired in the set, left by a node long gone.
	if err := rdb.ZAdd(t.Context(), opts.Key, redis.Z{Score: float64(time.Now().Add(-time.Minute).UnixMilli()), Member: "jti-stale"}).Err(); err != nil {
		t.Fatal(err)
	}
	a.Revoke("jti-short", time.Now().Add(200*time.Millisecond))
	a.Revoke("jti-long", time.Now().Add(time.Hour))
	time.Sleep(300 * time.Millisecond)

	// A node starting now prunes and loads only what is live.
	late := identity.NewRevocations(nil)
	start(t, rdb, late, opts, "late")
	if late.Revoked("jti-short") || late.Revoked("jti-stale") {
		t.Error("late node applied an expired revocation")
	}
	if !late.Revoked("jti-long") {
		t.Error("late node missed a live revocation")
	}
	members, err := rdb.ZRange(t.Context(), opts.Key, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 1 || members[0] != "jti-long" {
		t.Errorf("set holds %v, want only jti-long", members)
	}
}

func TestNoEcho(t *testing.T) {
	rdb, opts := client(t)
	// Count every message on the channel.
	spy := rdb.Subscribe(t.Context(), opts.Channel)
	t.Cleanup(func() { _ = spy.Close() })
	if _, err := spy.Receive(t.Context()); err != nil {
		t.Fatal(err)
	}
	var published atomic.Int64
	go func() {
		for range spy.Channel() {
			published.Add(1)
		}
	}()

	a, b := identity.NewRevocations(nil), identity.NewRevocations(nil)
	var aCalls, bCalls atomic.Int64
	a.Subscribe(func(string, time.Time) { aCalls.Add(1) })
	b.Subscribe(func(string, time.Time) { bCalls.Add(1) })
	start(t, rdb, a, opts, "A")
	start(t, rdb, b, opts, "B")

	a.Revoke("jti-once", time.Now().Add(time.Hour))
	waitRevoked(t, b, "jti-once")
	time.Sleep(500 * time.Millisecond) // room for an echo, were there one

	if n := published.Load(); n != 1 {
		t.Errorf("%d messages published, want 1 (B must not re-publish, A must not re-apply)", n)
	}
	if n := aCalls.Load(); n != 1 {
		t.Errorf("A's list revoked %d times, want 1", n)
	}
	if n := bCalls.Load(); n != 1 {
		t.Errorf("B's list revoked %d times, want 1", n)
	}
}
