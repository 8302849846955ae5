package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/config"
)

// TestServeCoreDownStandInAndReplay drives the wired stack as an operator
// would: switch the core off through the ops API, keep paying by card and
// transferring, switch it back on, and check that every acknowledged write
// reached the ledger exactly once.
func TestServeCoreDownStandInAndReplay(t *testing.T) {
	cfg := config.Default()
	cfg.Estate.Customers = 100_000
	cfg.Journal.ReplayRate = 1000
	s := startServe(t, cfg)
	ctype := map[string]string{"Content-Type": "application/json"}
	write := func(key string) map[string]string {
		return map[string]string{"Content-Type": "application/json", "Idempotency-Key": key}
	}
	if res, b := s.do(t, "PUT", s.ops+"/ops/estate/faults/core", `{"down":true}`, ctype); res.StatusCode != 200 {
		t.Fatalf("core down: %d %s", res.StatusCode, b)
	}
	var acked []string
	cards, scheme := s.as(t, "card-schemes"), s.as(t, "instant-scheme")
	for i := range 25 {
		key := fmt.Sprintf("card-%d", i)
		res, b := cards.do(t, "POST", cards.public+"/v1/cards/authorize", `{"card":"4971111111111110","amount":1500,"merchant":"B","channel":"shop"}`, write(key))
		if res.StatusCode != 200 {
			t.Fatalf("card %d with the core down: %d %s", i, res.StatusCode, b)
		}
		var d struct {
			Approved bool `json:"approved"`
			StandIn  bool `json:"stand_in"`
		}
		decode(t, b, &d)
		if d.Approved {
			acked = append(acked, key)
		}
		if i >= 20 && !d.StandIn {
			t.Errorf("card %d: breaker should be open and stand-in answering: %s", i, b)
		}
	}
	if len(acked) == 0 {
		t.Fatal("stand-in approved nothing")
	}
	res, b := scheme.do(t, "POST", scheme.public+"/v1/transfers/instant", `{"from":"A-camille","to":"A-bruno","amount":5000}`, write("tr-1"))
	if res.StatusCode != 202 || res.Header.Get("Location") != "/v1/transfers/outbox/tr-1" {
		t.Fatalf("transfer with the core down: %d %s", res.StatusCode, b)
	}
	acked = append(acked, "tr-1")
	// Bad input is still refused, not stood in for.
	if res, b := cards.do(t, "POST", cards.public+"/v1/cards/authorize", `{"card":"4971111111111110","amount":-1,"merchant":"B","channel":"shop"}`, write("bad")); res.StatusCode != 400 {
		t.Errorf("bad input with the core down: %d %s", res.StatusCode, b)
	}

	s.do(t, "PUT", s.ops+"/ops/estate/faults/core", `{}`, ctype)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, b := s.do(t, "POST", s.ops+"/ops/estate/check", `{"acknowledged":["`+strings.Join(acked, `","`)+`"]}`, ctype)
		var rep struct {
			OK      bool     `json:"ok"`
			Missing []string `json:"missing"`
		}
		decode(t, b, &rep)
		if rep.OK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replay did not deliver every acknowledged write: %s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The replayer marks the entry done just after the core applied it:
	// the status follows the ledger by a moment.
	for {
		_, b = scheme.do(t, "GET", scheme.public+"/v1/transfers/outbox/tr-1", "", nil)
		if strings.Contains(string(b), `"executed"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox status after replay: %s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
}
