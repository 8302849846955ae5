package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rempart/rempart/internal/journal"
)

func TestStandInVerdict(t *testing.T) {
	card := journal.Request{Path: "/v1/cards/authorize",
		Body: []byte(`{"card":"4971222222222223","amount":9000,"merchant":"B","channel":"shop"}`)}
	atm := journal.Request{Path: "/v1/atm/withdraw", Body: []byte(`{"card":"4971111111111110","amount":2000,"atm":"X"}`)}
	for _, tc := range []struct {
		name string
		req  journal.Request
		res  journal.Result
		want journal.Verdict
	}{
		{"insufficient funds", card, journal.Result{Status: 200, Body: []byte(`{"approved":false,"reason":"insufficient_funds","amount":9000}`)},
			journal.Verdict{Declined: true, Route: "card-authorize", Reason: "insufficient_funds", CardLast4: "2223"}},
		{"approved", card, journal.Result{Status: 200, Body: []byte(`{"approved":true,"amount":9000}`)},
			journal.Verdict{Route: "card-authorize", CardLast4: "2223"}},
		{"ATM refused by the core", atm, journal.Result{Status: 404, Body: []byte(`{"type":"unknown-account"}`)},
			journal.Verdict{Declined: true, Route: "atm-withdraw", Reason: "http_404", CardLast4: "1110"}},
		{"not a decision", card, journal.Result{Status: 200, Body: []byte(`<html>`)},
			journal.Verdict{Route: "card-authorize", CardLast4: "2223"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := standInVerdict(journal.Entry{Key: "k", Kind: journal.KindStandIn, Request: tc.req, Result: tc.res})
			if got != tc.want {
				t.Fatalf("verdict = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSharedJournalKey(t *testing.T) {
	key := bytes.Repeat([]byte{3}, journal.KeySize)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.key")
	if err := os.WriteFile(good, key, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, env, file string
		want            string // "" for the key
	}{
		{"from the environment", base64.StdEncoding.EncodeToString(key), filepath.Join(dir, "missing"), ""},
		{"from the key file", "", good, ""},
		{"bad environment", "c2hvcnQ=", good, "REMPART_JOURNAL_KEY"},
		{"neither", "", filepath.Join(dir, "missing"), "every node shares"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sharedJournalKey(tc.env, tc.file)
			if tc.want == "" {
				if err != nil || !bytes.Equal(got, key) {
					t.Fatalf("sharedJournalKey = %x, %v", got, err)
				}
				return
			}
			if !errors.Is(err, journal.ErrKey) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("sharedJournalKey: err = %v, want ErrKey saying %q", err, tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a shared key was created")
	}
}
