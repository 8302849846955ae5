package breaker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/admission"
	"github.com/rempart/rempart/internal/breaker"
	"github.com/rempart/rempart/internal/estate"
	"github.com/rempart/rempart/internal/journal"
	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/tier"
)

// steered is the estate behind a switch the test holds: a request whose
// Idempotency-Key starts with "hold" keeps its admission slot until release
// closes, one starting with "slow" answers 504 once its context ends, as a
// proxy does when the call's deadline passes. The rest reach the estate.
type steered struct {
	next    http.Handler
	release chan struct{}
	calls   atomic.Int64 // requests that reached the estate
	mu      sync.Mutex
	budget  time.Duration // what was left of the last slow call's context
}

func (s *steered) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	switch {
	case strings.HasPrefix(key, "hold"):
		<-s.release
		w.WriteHeader(http.StatusOK)
	case strings.HasPrefix(key, "slow"):
		if dl, ok := r.Context().Deadline(); ok {
			s.mu.Lock()
			s.budget = time.Until(dl)
			s.mu.Unlock()
		}
		<-r.Context().Done()
		w.WriteHeader(http.StatusGatewayTimeout)
	default:
		s.calls.Add(1)
		s.next.ServeHTTP(w, r)
	}
}

// TestCallerCannotForceAStandIn sends, through the wired order (breaker with
// stand-in, admission, upstream) in front of the real estate, requests whose
// caller steers at a fallback: a deadline too short for the queue or the
// core, or a client that leaves. None may be approved by stand-in; the
// bank's own saturation and time-out still are.
func TestCallerCannotForceAStandIn(t *testing.T) {
	const bruno = "4971222222222223" // 150 EUR
	tests := []struct {
		name     string
		key      string
		amount   int64
		header   http.Header
		maxWait  time.Duration // admission's queue bound; 0: an hour
		timeout  time.Duration // the route's; 0: 5s
		hold     bool          // the only admission slot is taken
		cancel   time.Duration // the client leaves after this long; 0: never
		body     string        // instead of the card authorisation
		want     int
		standIn  bool // the answer is a stand-in approval
		noCore   bool // the estate must not be called
		problem  string
		field    string
		budgetLE time.Duration // the slow call's context ended within this
	}{
		{name: "above the balance is the core's decline", key: "plain", amount: 200_00, want: 200},
		{name: "deadline already past", key: "past", amount: 50_00,
			header: http.Header{"X-Request-Deadline": {"1000"}}, want: 504, noCore: true,
			problem: "deadline-exceeded", field: "X-Request-Deadline"},
		{name: "grpc timeout of zero", key: "zero", amount: 50_00,
			header: http.Header{"Grpc-Timeout": {"0m"}}, want: 504, noCore: true,
			problem: "deadline-exceeded", field: "Grpc-Timeout"},
		{name: "caller deadline ends the wait for a slot", key: "queued", amount: 50_00, hold: true,
			header: http.Header{"Grpc-Timeout": {"30m"}}, want: 504, noCore: true,
			problem: "deadline-exceeded", field: "Grpc-Timeout"},
		{name: "caller deadline ends the call", key: "slow-1", amount: 50_00,
			header: http.Header{"Grpc-Timeout": {"30m"}}, want: 504,
			problem: "deadline-exceeded", field: "Grpc-Timeout", budgetLE: 30 * time.Millisecond},
		{name: "client leaves during the call", key: "slow-2", amount: 50_00,
			cancel: 30 * time.Millisecond, want: 499},
		{name: "malformed body is the core's refusal", key: "bad", body: `{"card":"4971222222222223","amount":"lots"}`,
			want: 400},
		// The bank's own failures: stand-in answers.
		{name: "saturated: the queue's own bound ends the wait", key: "saturated", amount: 50_00, hold: true,
			maxWait: 30 * time.Millisecond, want: 200, standIn: true, noCore: true},
		{name: "route timeout is the most a long deadline gets", key: "slow-3", amount: 50_00,
			header: http.Header{"Grpc-Timeout": {"1M"}}, timeout: 50 * time.Millisecond, want: 200, standIn: true,
			budgetLE: 50 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			est := newEstate(t)
			j, _ := openJournal(t)
			reg := prometheus.NewRegistry()
			si, err := breaker.NewStandIn(t.Context(), breaker.StandInConfig{Journal: j, Upstream: "estate",
				Decode: estateDecode, Encode: estateEncode, Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			maxWait := tt.maxWait
			if maxWait == 0 {
				maxWait = time.Hour
			}
			ad, err := admission.New(admission.Options{InitialLimit: 1, MinLimit: 1, MaxLimit: 1,
				CriticalReserve: -1, MaxWait: maxWait, QueueInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			up := &steered{next: est.Handler(), release: make(chan struct{})}
			br := newBreaker(t, breaker.Config{Upstream: "estate"}, reg)
			route := br.Middleware(breaker.Route{Fallback: si, Timeout: timeout})(ad.Middleware(up))
			h := gatewayInfo(route)
			srv := httptest.NewServer(h)
			defer srv.Close()

			// Bruno spends down to 10 EUR first, so 50 EUR is within the
			// stand-in's limits and above his balance.
			if res, b := post(t, srv.URL, "spend", fmt.Sprintf(`{"card":%q,"amount":14000,"merchant":"B","channel":"shop"}`, bruno), nil, 0); res.StatusCode != 200 {
				t.Fatalf("spend: %d %s", res.StatusCode, b)
			}
			held := make(chan struct{})
			if tt.hold {
				go func() {
					defer close(held)
					post(t, srv.URL, "hold", `{"card":"4971111111111110","amount":100}`, nil, 0)
				}()
				waitFor(t, "the slot to be held", func() bool { return ad.Stats().InFlight == 1 })
			} else {
				close(held)
			}
			body := tt.body
			if body == "" {
				body = fmt.Sprintf(`{"card":%q,"amount":%d,"merchant":"Boulangerie","channel":"shop"}`, bruno, tt.amount)
			}
			before := up.calls.Load()
			res, b := post(t, srv.URL, tt.key, body, tt.header, tt.cancel)
			close(up.release)
			<-held

			if res == nil {
				if tt.want != 499 {
					t.Fatalf("no answer, want %d", tt.want)
				}
			} else if res.StatusCode != tt.want {
				t.Fatalf("answer %d %s, want %d", res.StatusCode, b, tt.want)
			}
			var d struct {
				Approved bool   `json:"approved"`
				StandIn  bool   `json:"stand_in"`
				Type     string `json:"type"`
				Field    string `json:"field"`
			}
			if len(b) > 0 {
				if err := json.Unmarshal(b, &d); err != nil {
					t.Fatalf("%v: %s", err, b)
				}
			}
			if d.StandIn != tt.standIn || (d.Approved && !tt.standIn) {
				t.Errorf("answer %s, want stand-in %v and no approval by the core of an amount above the balance", b, tt.standIn)
			}
			if tt.problem != "" && (!strings.HasSuffix(d.Type, "/"+tt.problem) || d.Field != tt.field ||
				res.Header.Get("Content-Type") != "application/problem+json") {
				t.Errorf("problem %s, want %s naming %s", b, tt.problem, tt.field)
			}
			if tt.noCore && up.calls.Load() != before {
				t.Errorf("the core was called after the caller's deadline (or while saturated)")
			}
			if tt.budgetLE > 0 {
				up.mu.Lock()
				got := up.budget
				up.mu.Unlock()
				if got <= 0 || got > tt.budgetLE {
					t.Errorf("the call's context had %v left, want at most %v", got, tt.budgetLE)
				}
			}
			// Nothing the caller steered is journaled to be replayed.
			if tt.standIn {
				return
			}
			page, err := j.List(t.Context(), journal.Filter{Kind: journal.KindStandIn, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page {
				if e.Key == tt.key {
					t.Errorf("journal holds %s: %s", e.Key, e.Decision)
				}
			}
		})
	}
}

// gatewayInfo does what the gateway does before a route: name it, give it
// its tier and read the caller's deadline.
func gatewayInfo(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &request.Info{ID: r.Header.Get("Idempotency-Key"), Route: "card-authorize", Tier: tier.Critical, Priority: tier.Critical}
		dl, ok, err := admission.ParseDeadline(r.Header, time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if ok {
			info.Deadline = dl
		}
		next.ServeHTTP(w, r.WithContext(request.With(r.Context(), info)))
	})
}

// post sends a card authorisation over HTTP; with cancel set, the client
// gives up after it and res is nil.
func post(t *testing.T, url, key, body string, hdr http.Header, cancel time.Duration) (*http.Response, []byte) {
	t.Helper()
	ctx := context.Background()
	if cancel > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, cancel)
		defer stop()
	}
	req, err := http.NewRequestWithContext(ctx, "POST", url+estate.PathCardAuthorize, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		if cancel > 0 {
			return nil, nil
		}
		t.Fatal(err)
	}
	defer res.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(res.Body)
	return res, buf.Bytes()
}

// TestStandInApprovalIsLoggedAndCounted: every approval the bank carries
// without its core leaves a log line (route, key, amount, the card's last
// four digits, never the number) and a count by route; a decline does not.
func TestStandInApprovalIsLoggedAndCounted(t *testing.T) {
	j, _ := openJournal(t)
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	s, err := breaker.NewStandIn(t.Context(), breaker.StandInConfig{Journal: j, Upstream: "estate",
		Limits: testLimits, Decode: decode, Encode: encode, Registerer: reg,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h := gatewayInfo(newBreaker(t, testConfig(), reg).Middleware(breaker.Route{Fallback: s})(downCore()))
	const pan = "4971111111111110"
	if d, w := authorize(t, h, "approve-1", pan, 40_00); !d.Approved || !d.StandIn {
		t.Fatalf("want a stand-in approval: %d %s", w.Code, w.Body)
	}
	if d, _ := authorize(t, h, "decline-1", pan, 200_00); d.Approved {
		t.Fatal("over the limit approved")
	}
	if strings.Contains(logs.String(), pan) {
		t.Errorf("the log holds the card number: %s", logs.String())
	}
	var lines []map[string]any
	for l := range strings.Lines(logs.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if m["msg"] == "stand-in approved without the core" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%d approval lines, want 1: %s", len(lines), logs.String())
	}
	for k, want := range map[string]any{"route": "card-authorize", "key": "approve-1", "amount": 4000.0, "card_last4": "1110", "level": "WARN"} {
		if lines[0][k] != want {
			t.Errorf("log %s = %v, want %v", k, lines[0][k], want)
		}
	}
	if got := metricValue(t, reg, "rempart_standin_approvals_total", map[string]string{"route": "card-authorize"}); got != 1 {
		t.Errorf("rempart_standin_approvals_total = %v, want 1", got)
	}
}
