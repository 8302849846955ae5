package drill

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/estate"
)

func TestBreached(t *testing.T) {
	tests := []struct {
		name string
		goal string
		a    attempt
		want bool
	}{
		{"read answered", GoalAnswered, attempt{out: outOK, code: 200}, true},
		{"read refused", GoalAnswered, attempt{out: outError, code: 403}, false},
		{"read unauthenticated", GoalAnswered, attempt{out: outError, code: 401}, false},
		{"transfer taken though declined", GoalAnswered, attempt{out: outOK, code: 200, declined: true}, true},
		{"transfer shed", GoalAnswered, attempt{out: outShed, code: 503}, false},
		{"sms timed out", GoalAnswered, attempt{out: outTimeout}, false},
		{"payment approved", GoalApproved, attempt{out: outOK, code: 200}, true},
		{"payment declined", GoalApproved, attempt{out: outOK, code: 200, declined: true}, false},
		{"payment refused", GoalApproved, attempt{out: outError, code: 401}, false},
		{"payment past its deadline", GoalApproved, attempt{out: outError, code: 504}, false},
		{"not an attack", "", attempt{out: outOK, code: 200}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := breached(tt.goal, tt.a); got != tt.want {
				t.Errorf("breached(%q, %+v) = %v, want %v", tt.goal, tt.a, got, tt.want)
			}
		})
	}
}

const attackYAML = `
name: attacks
seed: 11
populations:
  - name: returning
    requests: {balance: 1}
    session: true
    sessions: 4
  - name: attackers
    requests: {anonymous_transfer: 1, anonymous_card: 1, stolen_balance: 1, stolen_documents: 1, stolen_transfer: 1, forced_deadline: 1, forced_deadline_at: 1, sms_injection: 1}
    sources: 8
phases:
  - name: p
    duration: 1s
    rates: {attackers: 160}
slos:
  - {population: attackers, max_breaches: 0}
`

// Every attack reaches the arm as issue 11 describes it, and is counted a
// breach exactly when the arm does what the attacker wanted: an open bank
// is breached by every kind, one that refuses them by none.
func TestAttacks(t *testing.T) {
	tests := []struct {
		name  string
		open  bool // the bank serves everything, as the 2025 one did
		wantN func(offered int64) int64
	}{
		{"open bank", true, func(n int64) int64 { return n }},
		{"closed bank", false, func(int64) int64 { return 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustScenario(t, attackYAML)
			var mu sync.Mutex
			var problems []string
			fail := func(format string, r *http.Request) {
				mu.Lock()
				problems = append(problems, format+": "+r.Method+" "+r.URL.Path)
				mu.Unlock()
			}
			owner := map[string]Customer{} // token -> customer
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
				thief, stolen := owner[tok]
				switch {
				case strings.HasPrefix(r.URL.Path, "/v1/accounts/") || strings.HasPrefix(r.URL.Path, "/v1/customers/"):
					if !stolen {
						fail("a read without a stolen token", r)
					} else if strings.Contains(r.URL.Path, "/"+thief.Account+"/") || strings.Contains(r.URL.Path, "/"+thief.ID+"/") {
						fail("a stolen token used on its own customer", r)
					}
				case r.URL.Path == estate.PathInstantTransfer && stolen:
					var tr estate.InstantTransfer
					if json.Unmarshal(body, &tr) != nil || tr.To != thief.Account || tr.From == thief.Account {
						fail("a stolen-token transfer not from the victim to the thief", r)
					}
				case r.URL.Path == estate.PathThreeDSChallenge:
					if !strings.Contains(string(body), "0899") {
						fail("an SMS injection without the attacker's words", r)
					}
				}
				var ca estate.CardAuthorization
				if r.URL.Path == estate.PathCardAuthorize && json.Unmarshal(body, &ca) == nil && ca.Channel == "shop" &&
					r.Header.Get("Grpc-Timeout") == "" && r.Header.Get("X-Request-Deadline") == "" {
					fail("a forced-deadline payment without a deadline", r)
				}
				if !tt.open {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"approved":true,"status":"done"}`)
			}))
			defer srv.Close()

			e, rec, chans := newTestEngine(t, s)
			e.setBase(srv.URL)
			// The sessions the seeding would have logged in.
			e.tokens = [][]string{make([]string, 4), nil}
			for k := range 4 {
				tok := "token-" + string(rune('a'+k))
				e.tokens[0][k] = tok
				owner[tok] = e.customers(e.sessionCustomer(0, &s.Populations[0], k))
			}
			e.collectSessions()
			e.run(context.Background(), time.Now())

			for _, p := range problems {
				t.Error(p)
			}
			var ar ArmResult
			rec.fill(&ar, s, chans)
			if len(ar.Attacks) != 6 {
				t.Fatalf("%d attack kinds recorded, want 6: %+v", len(ar.Attacks), ar.Attacks)
			}
			for _, a := range ar.Attacks {
				if a.Offered == 0 {
					t.Errorf("%s: no attack sent", a.Kind)
				}
				if want := tt.wantN(a.Offered); a.Breaches != want {
					t.Errorf("%s: %d breaches of %d, want %d", a.Kind, a.Breaches, a.Offered, want)
				}
			}
			v := judge(s, "arm", "", rec, chans)
			if len(v) != 1 || v[0].Metric != MetricMaxBreaches || v[0].Pass != !tt.open {
				t.Errorf("verdicts %+v, want the breach line to pass only for the closed bank", v)
			}
		})
	}
}
