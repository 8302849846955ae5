package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/config"
)

// TestServeStandInDeclinedAtReplay: with the core down, stand-in approves
// two payments of bruno's that his balance cannot both cover; once the core
// is back, the replay of the second is declined, counted, and the journal
// holds no card number in clear.
func TestServeStandInDeclinedAtReplay(t *testing.T) {
	cfg := config.Default()
	cfg.Estate.Customers = 100_000
	cfg.Journal.ReplayRate = 1000
	s := startServe(t, cfg)
	cards := s.as(t, "card-schemes")
	ctype := map[string]string{"Content-Type": "application/json"}
	const bruno = "4971222222222223" // 150 EUR on his account
	if res, b := s.do(t, "PUT", s.ops+"/ops/estate/faults/core", `{"down":true}`, ctype); res.StatusCode != 200 {
		t.Fatalf("core down: %d %s", res.StatusCode, b)
	}
	for _, key := range []string{"bruno-1", "bruno-2"} {
		res, b := cards.do(t, "POST", cards.public+"/v1/cards/authorize",
			`{"card":"`+bruno+`","amount":9000,"merchant":"B","channel":"shop"}`,
			map[string]string{"Content-Type": "application/json", "Idempotency-Key": key})
		var d struct {
			Approved bool `json:"approved"`
			StandIn  bool `json:"stand_in"`
		}
		decode(t, b, &d)
		if res.StatusCode != 200 || !d.Approved || !d.StandIn {
			t.Fatalf("%s with the core down: %d %s; want a stand-in approval", key, res.StatusCode, b)
		}
	}
	s.do(t, "PUT", s.ops+"/ops/estate/faults/core", `{}`, ctype)

	series := regexp.MustCompile(`(?m)^rempart_standin_declined_on_replay_total\{route="card-authorize"\} (\S+)$`)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, b := s.do(t, "GET", s.ops+"/metrics", "", nil)
		if m := series.FindSubmatch(b); m != nil {
			if v, _ := strconv.ParseFloat(string(m[1]), 64); v != 1 {
				t.Fatalf("declined on replay = %v, want 1 (one of two payments of 90 EUR on 150 EUR)", v)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no stand-in approval was counted as declined at replay")
		}
	}

	for _, name := range []string{"journal.db", "journal.db-wal", "journal.db-shm", "journal.key"} {
		path := filepath.Join(s.dataDir, name)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %#o, want 0600", name, st.Mode().Perm())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(bruno)) {
			t.Errorf("%s holds the card number in clear", name)
		}
	}
}
