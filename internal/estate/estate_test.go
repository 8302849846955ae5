package estate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/estate/core"
	"github.com/rempart/rempart/internal/estate/ledger"
	"github.com/rempart/rempart/internal/problem"
)

const (
	aliceCard = "4971111111111110"
	brunoCard = "4971222222222223"
)

// newTestEstate starts an estate with a fast core (a fraction of a
// millisecond per call) so tests exercise the real code paths quickly.
func newTestEstate(t *testing.T, mod func(*Config)) (*Estate, *httptest.Server, *httptest.Server) {
	t.Helper()
	cfg := Config{
		DataDir:   t.TempDir(),
		Seed:      7,
		Customers: 100_000,
		Core:      core.Config{Workers: 16, MedianService: 200 * time.Microsecond, LockTimeout: 100 * time.Millisecond, Seed: 1},
		Services:  core.Config{Workers: 4, MedianService: 100 * time.Microsecond, Seed: 2},
	}
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	pub := httptest.NewServer(e.Handler())
	ops := httptest.NewServer(e.OpsHandler())
	t.Cleanup(func() {
		pub.Close()
		ops.Close()
		e.Close()
	})
	return e, pub, ops
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) problem(t *testing.T) problem.Details {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != problem.ContentType {
		t.Fatalf("Content-Type = %q, want %q (body %s)", ct, problem.ContentType, r.body)
	}
	var d problem.Details
	if err := json.Unmarshal(r.body, &d); err != nil {
		t.Fatalf("problem body: %v", err)
	}
	return d
}

func do(t testing.TB, method, url string, hdr map[string]string, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return reply{resp.StatusCode, resp.Header, buf.Bytes()}
}

func write(key string) map[string]string {
	h := map[string]string{"Content-Type": "application/json"}
	if key != "" {
		h["Idempotency-Key"] = key
	}
	return h
}

func mustCheck(t *testing.T, e *Estate, acked []string) ledger.Report {
	t.Helper()
	rep, err := e.Check(context.Background(), acked)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Fatalf("ledger invariant violated: %+v", rep)
	}
	return rep
}

func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	e, pub, _ := newTestEstate(t, nil)
	big := `{"card":"` + aliceCard + `","amount":100,"merchant":"` + strings.Repeat("x", MaxBodyBytes) + `","channel":"shop"}`
	cases := []struct {
		name, path string
		hdr        map[string]string
		body       string
		status     int
		slug       string
		field      string
	}{
		{"malformed json", PathCardAuthorize, write("k1"), `{"card":`, 400, "malformed-json", ""},
		{"not an object", PathCardAuthorize, write("k1"), `[1,2]`, 400, "invalid-field", ""},
		{"trailing data", PathCardAuthorize, write("k1"), `{"card":"` + aliceCard + `","amount":1,"merchant":"m","channel":"shop"} {}`, 400, "malformed-json", ""},
		{"empty body", PathCardAuthorize, write("k1"), ``, 400, "malformed-json", ""},
		{"unknown field", PathCardAuthorize, write("k1"), `{"card":"` + aliceCard + `","amount":1,"merchant":"m","channel":"shop","tip":5}`, 400, "unknown-field", "tip"},
		{"wrong type", PathCardAuthorize, write("k1"), `{"card":"` + aliceCard + `","amount":"12","merchant":"m","channel":"shop"}`, 400, "invalid-field", "amount"},
		{"negative amount", PathCardAuthorize, write("k1"), `{"card":"` + aliceCard + `","amount":-5,"merchant":"m","channel":"shop"}`, 400, "invalid-field", "amount"},
		{"zero amount", PathATMWithdraw, write("k1"), `{"card":"` + aliceCard + `","amount":0,"atm":"A1"}`, 400, "invalid-field", "amount"},
		{"absurd amount", PathCardAuthorize, write("k1"), `{"card":"` + aliceCard + `","amount":9000000000000,"merchant":"m","channel":"shop"}`, 400, "invalid-field", "amount"},
		{"amount overflow", PathCardAuthorize, write("k1"), `{"card":"` + aliceCard + `","amount":1e40,"merchant":"m","channel":"shop"}`, 400, "invalid-field", "amount"},
		{"atm odd amount", PathATMWithdraw, write("k1"), `{"card":"` + aliceCard + `","amount":1234,"atm":"A1"}`, 400, "invalid-field", "amount"},
		{"bad channel", PathCardAuthorize, write("k1"), `{"card":"` + aliceCard + `","amount":1,"merchant":"m","channel":"moon"}`, 400, "invalid-field", "channel"},
		{"bad pan", PathCardAuthorize, write("k1"), `{"card":"12ab","amount":1,"merchant":"m","channel":"shop"}`, 400, "invalid-field", "card"},
		{"unknown card", PathCardAuthorize, write("k1"), `{"card":"4971111111111128","amount":1,"merchant":"m","channel":"shop"}`, 404, "unknown-card", "card"},
		{"unknown account", PathInstantTransfer, write("k1"), `{"from":"A-alice","to":"A-nobody","amount":100}`, 404, "unknown-account", "to"},
		{"same account", PathInstantTransfer, write("k1"), `{"from":"A-alice","to":"A-alice","amount":100}`, 400, "invalid-field", "to"},
		{"control chars", PathInstantTransfer, write("k1"), `{"from":"A-alice","to":"A-bruno","amount":100,"reference":"a\u0000b"}`, 400, "invalid-field", "reference"},
		{"missing key", PathInstantTransfer, write(""), `{"from":"A-alice","to":"A-bruno","amount":100}`, 400, "missing-idempotency-key", "Idempotency-Key"},
		{"bad key", PathInstantTransfer, write("a b"), `{"from":"A-alice","to":"A-bruno","amount":100}`, 400, "invalid-idempotency-key", "Idempotency-Key"},
		{"long key", PathInstantTransfer, write(strings.Repeat("k", MaxKeyLen+1)), `{"from":"A-alice","to":"A-bruno","amount":100}`, 400, "invalid-idempotency-key", "Idempotency-Key"},
		{"wrong content type", PathInstantTransfer, map[string]string{"Idempotency-Key": "k1", "Content-Type": "text/plain"}, `{"from":"A-alice","to":"A-bruno","amount":100}`, 415, "unsupported-media-type", "Content-Type"},
		{"body too large", PathCardAuthorize, write("k1"), big, 413, "body-too-large", ""},
		{"bad otp", PathThreeDSVerify, write("k1"), `{"challenge_id":"x","otp":"12a456"}`, 400, "invalid-field", "otp"},
		{"unknown challenge", PathThreeDSVerify, write("k1"), `{"challenge_id":"nope","otp":"123456"}`, 404, "unknown-challenge", "challenge_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, "POST", pub.URL+tc.path, tc.hdr, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			d := r.problem(t)
			if !strings.HasSuffix(d.Type, "/"+tc.slug) || d.Status != tc.status || d.Detail == "" {
				t.Errorf("problem = %+v, want slug %s", d, tc.slug)
			}
			if tc.field != "" && d.Field != tc.field {
				t.Errorf("field = %q, want %q", d.Field, tc.field)
			}
		})
	}
	rep := mustCheck(t, e, nil)
	if rep.Transfers != 0 {
		t.Errorf("bad input moved money: %+v", rep)
	}
	for _, q := range []struct{ path, slug string }{
		{"/v1/accounts/A-nobody/balance", "unknown-account"},
		{"/v1/customers/nobody/accounts", "unknown-customer"},
		{"/v1/parcels/123", "invalid-field"},
		{"/v1/accounts/A-alice/transactions?limit=0", "invalid-field"},
		{"/v1/nowhere", "not-found"},
	} {
		r := do(t, "GET", pub.URL+q.path, nil, "")
		if d := r.problem(t); r.status < 400 || r.status > 499 || !strings.HasSuffix(d.Type, q.slug) {
			t.Errorf("GET %s: %d %+v", q.path, r.status, d)
		}
	}
}

func TestConcurrentReplaysMoveMoneyOnce(t *testing.T) {
	e, pub, _ := newTestEstate(t, nil)
	const n = 100
	body := `{"from":"A-camille","to":"A-bruno","amount":12345,"reference":"rent"}`
	var wg sync.WaitGroup
	results := make([]TransferResult, n)
	statuses := make([]int, n)
	for i := range n {
		wg.Go(func() {
			r := do(t, "POST", pub.URL+PathInstantTransfer, write("rent-2026-12"), body)
			statuses[i] = r.status
			json.Unmarshal(r.body, &results[i])
		})
	}
	wg.Wait()
	fresh := 0
	for i := range n {
		if statuses[i] != 200 || results[i].Status != "executed" {
			t.Fatalf("reply %d: %d %+v", i, statuses[i], results[i])
		}
		if results[i].ID != results[0].ID {
			t.Fatalf("reply %d has transfer %d, reply 0 has %d", i, results[i].ID, results[0].ID)
		}
		if !results[i].Replayed {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("%d replies executed the transfer, want exactly 1", fresh)
	}
	rep := mustCheck(t, e, []string{"rent-2026-12"})
	if rep.Transfers != 1 {
		t.Errorf("ledger has %d transfers, want 1", rep.Transfers)
	}
	bal, _ := e.Ledger().Balance(context.Background(), "A-bruno")
	if bal != 150_00+12345 {
		t.Errorf("bruno's balance %d, want %d", bal, 150_00+12345)
	}
	// The same key with another amount is refused, not applied.
	r := do(t, "POST", pub.URL+PathInstantTransfer, write("rent-2026-12"), strings.Replace(body, "12345", "99", 1))
	if r.status != 422 || !strings.HasSuffix(r.problem(t).Type, "idempotency-key-reused") {
		t.Errorf("key reuse: %d %s", r.status, r.body)
	}
}

func TestChannelsHappyPath(t *testing.T) {
	e, pub, ops := newTestEstate(t, nil)
	var acked []string
	pay := func(key, card string, amount int64) Decision {
		t.Helper()
		r := do(t, "POST", pub.URL+PathCardAuthorize, write(key),
			fmt.Sprintf(`{"card":%q,"amount":%d,"merchant":"Boulangerie","channel":"shop"}`, card, amount))
		if r.status != 200 {
			t.Fatalf("card: %d %s", r.status, r.body)
		}
		var d Decision
		json.Unmarshal(r.body, &d)
		return d
	}
	if d := pay("p1", aliceCard, 3000); !d.Approved || d.Balance != 2_500_00-3000 {
		t.Errorf("alice's payment: %+v", d)
	}
	acked = append(acked, "p1")
	if d := pay("p2", brunoCard, 200_00); d.Approved || d.Reason != ledger.ReasonInsufficientFunds {
		t.Errorf("bruno's payment above his balance: %+v", d)
	}
	r := do(t, "POST", pub.URL+PathATMWithdraw, write("w1"), `{"card":"`+aliceCard+`","amount":5000,"atm":"PARIS-01"}`)
	var d Decision
	json.Unmarshal(r.body, &d)
	if r.status != 200 || !d.Approved || d.Balance != 2_500_00-8000 {
		t.Errorf("atm: %d %s", r.status, r.body)
	}
	acked = append(acked, "w1")

	// 3-D Secure: the OTP goes to the SMS outbox, the ops API reads it back.
	r = do(t, "POST", pub.URL+PathThreeDSChallenge, write("c1"), `{"card":"`+aliceCard+`","amount":4200,"merchant":"Librairie"}`)
	var ch ThreeDSChallengeResult
	json.Unmarshal(r.body, &ch)
	if r.status != 201 || ch.ChallengeID == "" || !strings.HasSuffix(ch.SentTo, "78") || strings.Contains(ch.SentTo, "12 34") {
		t.Fatalf("challenge: %d %s", r.status, r.body)
	}
	r = do(t, "GET", ops.URL+"/ops/estate/sms?to="+urlQuery("+33 6 12 34 56 78"), nil, "")
	var box struct{ Messages []SMS }
	json.Unmarshal(r.body, &box)
	if len(box.Messages) != 1 {
		t.Fatalf("sms outbox: %s", r.body)
	}
	otp := box.Messages[0].Text[len("Code 3-D Secure ") : len("Code 3-D Secure ")+6]
	wrong := "000000"
	if otp == wrong {
		wrong = "111111"
	}
	var v ThreeDSVerifyResult
	r = do(t, "POST", pub.URL+PathThreeDSVerify, write("v1"), `{"challenge_id":"`+ch.ChallengeID+`","otp":"`+wrong+`"}`)
	json.Unmarshal(r.body, &v)
	if v.Verified || v.AttemptsRemaining != 2 {
		t.Errorf("wrong otp: %s", r.body)
	}
	r = do(t, "POST", pub.URL+PathThreeDSVerify, write("v2"), `{"challenge_id":"`+ch.ChallengeID+`","otp":"`+otp+`"}`)
	json.Unmarshal(r.body, &v)
	if !v.Verified {
		t.Errorf("right otp: %s", r.body)
	}
	// A replay of the challenge does not send a second SMS.
	do(t, "POST", pub.URL+PathThreeDSChallenge, write("c1"), `{"card":"`+aliceCard+`","amount":4200,"merchant":"Librairie"}`)
	if n := len(e.SMS().Latest("+33 6 12 34 56 78", 10)); n != 1 {
		t.Errorf("%d SMS after a replayed challenge, want 1", n)
	}

	for _, path := range []string{"/v1/customers/alice/accounts", "/v1/accounts/A-alice/balance",
		"/v1/accounts/A-alice/transactions?limit=5", "/v1/customers/C00000042/documents", "/v1/parcels/LP123456789FR"} {
		if r := do(t, "GET", pub.URL+path, nil, ""); r.status != 200 || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: %d %s", path, r.status, r.body)
		}
	}
	r = do(t, "POST", ops.URL+"/ops/estate/check", map[string]string{"Content-Type": "application/json"},
		`{"acknowledged":["p1","w1","never-sent"]}`)
	if r.status != 409 || !strings.Contains(string(r.body), "never-sent") {
		t.Errorf("check with an unknown acknowledged key: %d %s", r.status, r.body)
	}
	mustCheck(t, e, acked)
}

func urlQuery(s string) string {
	return strings.NewReplacer("+", "%2B", " ", "%20").Replace(s)
}

func TestFaultsThroughOpsAPI(t *testing.T) {
	e, pub, ops := newTestEstate(t, nil)
	put := func(component, body string) reply {
		return do(t, "PUT", ops.URL+"/ops/estate/faults/"+component, map[string]string{"Content-Type": "application/json"}, body)
	}
	for _, tc := range []struct {
		name, component, body string
		status                int
	}{
		{"bad slowdown", "core", `{"slowdown":0.5}`, 400},
		{"bad error rate", "core", `{"error_rate":2}`, 400},
		{"unknown field", "core", `{"slow":2}`, 400},
		{"unknown component", "mainframe", `{"down":true}`, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := put(tc.component, tc.body); r.status != tc.status {
				t.Errorf("%d %s", r.status, r.body)
			}
			if f := e.Core().Faults(); f != (core.Faults{}) {
				t.Errorf("a refused change altered the faults: %+v", f)
			}
		})
	}
	if r := put("core", `{"down":true}`); r.status != 200 {
		t.Fatalf("set down: %d %s", r.status, r.body)
	}
	r := do(t, "POST", pub.URL+PathCardAuthorize, write("x1"), `{"card":"`+aliceCard+`","amount":100,"merchant":"m","channel":"online"}`)
	if r.status != 503 || !strings.HasSuffix(r.problem(t).Type, "core-down") {
		t.Errorf("core down: %d %s", r.status, r.body)
	}
	// 3-D Secure runs beside the core, as on the day.
	if r := do(t, "POST", pub.URL+PathThreeDSChallenge, write("c9"), `{"card":"`+aliceCard+`","amount":100,"merchant":"m"}`); r.status != 201 {
		t.Errorf("3ds with the core down: %d %s", r.status, r.body)
	}
	put("core", `{}`)
	if r := do(t, "POST", pub.URL+PathCardAuthorize, write("x1"), `{"card":"`+aliceCard+`","amount":100,"merchant":"m","channel":"online"}`); r.status != 200 {
		t.Errorf("core back up: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", ops.URL+"/ops/estate/stats", nil, ""); r.status != 200 || !strings.Contains(string(r.body), `"workers":16`) {
		t.Errorf("stats: %s", r.body)
	}
}

// TestLockContentionDeadlocks shows the estate really gridlocks under
// concurrent writes when lock contention is on, so the protections built in
// front of it have something real to protect.
func TestLockContentionDeadlocks(t *testing.T) {
	e, pub, _ := newTestEstate(t, func(c *Config) { c.Core.LockTimeout = 200 * time.Millisecond })
	run := func(prefix string) (ok, lockTimeouts int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Go(func() {
				body := fmt.Sprintf(`{"from":"A%08d","to":"A%08d","amount":100}`, i, i+1000)
				r := do(t, "POST", pub.URL+PathInstantTransfer, write(fmt.Sprintf("%s-%d", prefix, i)), body)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case r.status == 200:
					ok++
				case r.status == 503 && strings.Contains(string(r.body), "core-lock-timeout"):
					lockTimeouts++
				default:
					t.Errorf("unexpected reply %d %s", r.status, r.body)
				}
			})
		}
		wg.Wait()
		return ok, lockTimeouts
	}
	if ok, lt := run("calm"); ok != 40 || lt != 0 {
		t.Fatalf("without contention: %d ok, %d lock time-outs", ok, lt)
	}
	// Slow each write so they overlap, then let the database deadlock past 2
	// concurrent writers.
	if err := e.Core().SetFaults(core.Faults{Slowdown: 100, LockContention: 2}); err != nil {
		t.Fatal(err)
	}
	ok, lt := run("storm")
	if lt < 20 {
		t.Errorf("with contention: %d ok, %d lock time-outs; want most writes to time out on the lock", ok, lt)
	}
	e.Core().SetFaults(core.Faults{})
	mustCheck(t, e, nil)
}

// TestInvariantAfterFaultsOnAndOff runs a mixed write load while flipping
// faults, then checks that money is conserved and every acknowledged write is
// in the ledger exactly once.
func TestInvariantAfterFaultsOnAndOff(t *testing.T) {
	e, pub, _ := newTestEstate(t, func(c *Config) { c.Core.LockTimeout = 20 * time.Millisecond })
	faults := []core.Faults{{}, {ErrorRate: 0.3}, {Slowdown: 20, LockContention: 3}, {Down: true}, {}}
	var mu sync.Mutex
	var acked []string
	for round, f := range faults {
		if err := e.Core().SetFaults(f); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range 30 {
			wg.Go(func() {
				key := fmt.Sprintf("r%d-%d", round, i)
				var path, body string
				switch i % 3 {
				case 0:
					path, body = PathInstantTransfer, fmt.Sprintf(`{"from":"A%08d","to":"A%08d","amount":%d}`, i%7, 7+i%5, 100+i)
				case 1:
					path, body = PathCardAuthorize, fmt.Sprintf(`{"card":%q,"amount":%d,"merchant":"m","channel":"shop"}`, aliceCard, 100+i)
				default:
					path, body = PathATMWithdraw, fmt.Sprintf(`{"card":%q,"amount":2000,"atm":"A1"}`, e.Population().Nth(i).Card)
				}
				// Each request is retried once with the same key, as a
				// careful client would after an error.
				for range 2 {
					r := do(t, "POST", pub.URL+path, write(key), body)
					if r.status == 200 {
						mu.Lock()
						acked = append(acked, key)
						mu.Unlock()
						return
					}
				}
			})
		}
		wg.Wait()
	}
	e.Core().SetFaults(core.Faults{})
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged")
	}
	mustCheck(t, e, acked)
}

func TestCoreErrorsMapToProblems(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		slug   string
	}{
		{core.ErrDown, 503, "core-down"},
		{core.ErrQueueFull, 503, "core-overloaded"},
		{core.ErrLockTimeout, 503, "core-lock-timeout"},
		{core.ErrInjected, 500, "core-error"},
		{context.DeadlineExceeded, 504, "core-timeout"},
		{fmt.Errorf("apply: %w", ledger.ErrKeyReused), 422, "idempotency-key-reused"},
		{errors.New("boom"), 500, "internal"},
	} {
		t.Run(tc.slug, func(t *testing.T) {
			w := httptest.NewRecorder()
			fail(w, tc.err)
			var d problem.Details
			json.Unmarshal(w.Body.Bytes(), &d)
			if w.Code != tc.status || !strings.HasSuffix(d.Type, tc.slug) {
				t.Errorf("%v -> %d %+v", tc.err, w.Code, d)
			}
			if strings.Contains(w.Body.String(), "boom") {
				t.Error("internal error text leaked to the caller")
			}
		})
	}
}
