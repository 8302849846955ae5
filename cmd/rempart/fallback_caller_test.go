package main

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/config"
)

// TestServeCallerDeadlineNeverApproves is issue 11's forced stand-in: a card
// authorisation above the balance, which the core declines, sent again with a
// deadline the caller chose so short that admission sheds it. The stand-in
// must not answer it: the bank's core is fine, the caller asked for too
// little time. The answer is a 504 naming the header, or the core's decline.
func TestServeCallerDeadlineNeverApproves(t *testing.T) {
	cfg := config.Default()
	cfg.Estate.Customers = 100_000
	s := startServe(t, cfg)
	cards, scheme := s.as(t, "card-schemes"), s.as(t, "instant-scheme")
	const bruno = "4971222222222223" // 150 EUR
	authorize := func(key string, amount int, hdr map[string]string) (*http.Response, []byte) {
		h := map[string]string{"Content-Type": "application/json", "Idempotency-Key": key}
		for k, v := range hdr {
			h[k] = v
		}
		return cards.do(t, "POST", cards.public+"/v1/cards/authorize",
			fmt.Sprintf(`{"card":%q,"amount":%d,"merchant":"Boulangerie","channel":"shop"}`, bruno, amount), h)
	}
	type decision struct {
		Approved bool `json:"approved"`
		StandIn  bool `json:"stand_in"`
	}
	// Bring bruno down to 10 EUR, so that 50 EUR is above his balance and
	// within the stand-in's per-transaction limit.
	if res, b := authorize("spend", 140_00, nil); res.StatusCode != http.StatusOK {
		t.Fatalf("spend: %d %s", res.StatusCode, b)
	}
	res, b := authorize("above", 50_00, nil)
	var d decision
	decode(t, b, &d)
	if res.StatusCode != http.StatusOK || d.Approved || d.StandIn {
		t.Fatalf("above the balance without a deadline: %d %s, want the core's decline", res.StatusCode, b)
	}

	for i, tc := range []struct {
		name   string
		header string
		value  func() string
	}{
		{"grpc-timeout of one millisecond", "Grpc-Timeout", func() string { return "1m" }},
		{"grpc-timeout of zero", "Grpc-Timeout", func() string { return "0n" }},
		{"deadline already past", "X-Request-Deadline", func() string {
			return strconv.FormatInt(time.Now().Add(-time.Second).UnixMilli(), 10)
		}},
		{"deadline in a millisecond", "X-Request-Deadline", func() string {
			return time.Now().Add(time.Millisecond).Format(time.RFC3339Nano)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, b := authorize(fmt.Sprintf("forced-%d", i), 50_00, map[string]string{tc.header: tc.value()})
			if res.StatusCode == http.StatusOK {
				var d decision
				decode(t, b, &d)
				if d.Approved || d.StandIn {
					t.Fatalf("%s: %s, want a 504 or the core's decline, never a stand-in", tc.header, b)
				}
				return
			}
			var p struct {
				Type  string `json:"type"`
				Field string `json:"field"`
			}
			decode(t, b, &p)
			if res.StatusCode != http.StatusGatewayTimeout || res.Header.Get("Content-Type") != "application/problem+json" ||
				p.Field != tc.header {
				t.Fatalf("%s: %d %s, want 504 problem+json naming the header", tc.header, res.StatusCode, b)
			}
		})
	}

	t.Run("an instant transfer with a past deadline is not put in the outbox", func(t *testing.T) {
		res, b := scheme.do(t, "POST", scheme.public+"/v1/transfers/instant", `{"from":"A-bruno","to":"A-alice","amount":5000}`,
			map[string]string{"Content-Type": "application/json", "Idempotency-Key": "tr-forced", "Grpc-Timeout": "0m"})
		if res.StatusCode != http.StatusGatewayTimeout || res.Header.Get("Rempart-Outbox") != "" {
			t.Fatalf("%d %s, want 504 and no outbox acceptance", res.StatusCode, b)
		}
	})

	t.Run("a key the core declined, reused with a short deadline", func(t *testing.T) {
		res, b := authorize("above", 50_00, map[string]string{"Grpc-Timeout": "0m"})
		if res.StatusCode == http.StatusOK {
			var d decision
			decode(t, b, &d)
			if d.Approved || d.StandIn {
				t.Fatalf("%s, want the core's first decline or a 504", b)
			}
		}
	})

	t.Run("a long deadline is the core's decline", func(t *testing.T) {
		res, b := authorize("long", 50_00, map[string]string{"Grpc-Timeout": "1M"})
		var d decision
		decode(t, b, &d)
		if res.StatusCode != http.StatusOK || d.Approved || d.StandIn {
			t.Fatalf("%d %s, want the core's decline", res.StatusCode, b)
		}
	})
}
