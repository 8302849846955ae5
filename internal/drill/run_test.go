package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const miniYAML = `
name: mini
description: A two-and-a-half-second day for the end-to-end test.
seed: 42
compression: 60
max_in_flight: 256
populations:
  - name: returning
    requests: {balance: 3, card_authorize: 1}
    session: true
  - name: partners
    requests: {atm_withdraw: 1, instant_transfer: 1}
  - name: bots
    requests: {login_flood: 1}
    sources: 64
  - name: naive
    requests: {balance: 1}
    retry: {policy: immediate, attempts: 3}
phases:
  - name: calm
    duration: 60s
    rates: {returning: 40, partners: 20}
  - name: attack
    duration: 60s
    rates: {bots: 60, naive: 20}
    faults:
      core: {slowdown: 3}
      identity_store_stuck: true
  - name: recovery
    duration: 30s
    rates: {bots: 0}
    faults:
      core: {}
      identity_store_stuck: false
slos:
  - {channel: atm_withdraw, phase: attack, min_success: 0.99}
  - {channel: login, min_success: 0.5}
  - {channel: balance, population: returning, max_p99: 5s}
  - {arm: elsewhere, channel: balance, min_success: 0.1}
`

type brokenArm struct{}

func (brokenArm) Name() string { return "broken" }
func (brokenArm) Start(context.Context) (Endpoints, error) {
	return Endpoints{}, errors.New("no such binary")
}
func (brokenArm) Stop(context.Context) error { return nil }

func TestRunEndToEnd(t *testing.T) {
	s := mustScenario(t, miniYAML)
	small := &fakeBank{name: "small", capacity: 3, service: 20 * time.Millisecond}
	big := &fakeBank{name: "big", service: 2 * time.Millisecond}
	dir := t.TempDir()
	if keep := os.Getenv("DRILL_KEEP_REPORT"); keep != "" {
		dir = keep // to look at the report: DRILL_KEEP_REPORT=/tmp/r go test -run TestRunEndToEnd
	}
	var progress bytes.Buffer
	var cpu time.Duration
	res, err := Run(context.Background(), Options{
		Scenario: s,
		Arms:     []Arm{small, big, brokenArm{}},
		OutDir:   dir,
		Progress: &progress,
		Usage: func([]int) (Usage, error) {
			cpu += 300 * time.Millisecond
			return Usage{CPU: cpu, RSS: 64 << 20}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("results.json", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(dir, "results.json"))
		if err != nil {
			t.Fatal(err)
		}
		var back Results
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if len(back.Arms) != 3 || len(back.Phases) != 3 || len(back.SLOs) != len(res.SLOs) {
			t.Fatalf("results.json has %d arms, %d phases, %d verdicts", len(back.Arms), len(back.Phases), len(back.SLOs))
		}
		wantChans := []string{"atm_withdraw", "card_authorize", "instant_transfer", "balance", "login"}
		var chans []string
		for _, c := range back.Channels {
			chans = append(chans, c.Name)
		}
		if !slices.Equal(chans, wantChans) {
			t.Errorf("channels %v, want %v (critical first)", chans, wantChans)
		}
		for _, a := range back.Arms[:2] {
			if a.Error != "" || a.Seconds != 3 || len(a.Series) == 0 || len(a.Latency) == 0 || len(a.Usage) == 0 {
				t.Errorf("arm %s: error %q, %d seconds, %d series, %d latency series, %d usage samples",
					a.Name, a.Error, a.Seconds, len(a.Series), len(a.Latency), len(a.Usage))
			}
			for _, s := range a.Series {
				if len(s.Seconds) != a.Seconds || len(s.Latency) != a.Seconds {
					t.Errorf("arm %s series %s/%s: %d seconds of counts, %d of latency", a.Name, s.Channel, s.Population, len(s.Seconds), len(s.Latency))
				}
			}
			if !a.Ledger.OK || a.Ledger.Acknowledged == 0 || a.Ledger.Attempts != 1 {
				t.Errorf("arm %s: ledger %+v", a.Name, a.Ledger)
			}
			var perSecond, perPhase int64
			for _, s := range a.Series {
				for _, c := range s.Seconds {
					perSecond += c.Offered
				}
			}
			for _, p := range a.Phases {
				perPhase += p.Total.Offered
			}
			if perSecond == 0 || perSecond != perPhase || perPhase != a.Generator.Arrivals {
				t.Errorf("arm %s: %d offered per second, %d per phase, %d arrivals", a.Name, perSecond, perPhase, a.Generator.Arrivals)
			}
		}
		if back.Arms[2].Error == "" {
			t.Error("the broken arm has no error")
		}
	})

	t.Run("same load for every arm", func(t *testing.T) {
		a, b := res.Arms[0], res.Arms[1]
		if a.Generator.Arrivals != b.Generator.Arrivals {
			t.Errorf("arrivals %d vs %d", a.Generator.Arrivals, b.Generator.Arrivals)
		}
	})

	t.Run("overload is shed", func(t *testing.T) {
		var shed int64
		for _, p := range res.Arms[0].Phases {
			shed += p.Total.Shed
		}
		if shed == 0 {
			t.Error("the small bank shed nothing")
		}
	})

	t.Run("faults and clients reached the arm", func(t *testing.T) {
		faults, sessions, sources := big.received()
		for _, want := range []string{"core", "services", "identity_store_stuck=true", "core", "identity_store_stuck=false", "core", "services"} {
			i := slices.Index(faults, want)
			if i < 0 {
				t.Fatalf("faults received %v, missing %s in order", faults, want)
			}
			faults = faults[i+1:]
		}
		big.mu.Lock()
		checked := big.checked
		big.mu.Unlock()
		if checked != res.Arms[1].Ledger.Acknowledged || checked == 0 {
			t.Errorf("the check received %d keys, the drill acknowledged %d", checked, res.Arms[1].Ledger.Acknowledged)
		}
		if sessions == 0 {
			t.Error("no request carried a session")
		}
		if sources < 10 {
			t.Errorf("requests came from %d addresses, want the bots' many", sources)
		}
	})

	t.Run("verdicts", func(t *testing.T) {
		type key struct {
			arm, slo string
			pass     bool
		}
		got := make(map[key]bool)
		for _, v := range res.SLOs {
			got[key{v.Arm, v.Metric + " " + v.SLO, v.Pass}] = true
			if v.Arm == "elsewhere" || strings.Contains(v.SLO, "elsewhere") {
				t.Errorf("a line for arm elsewhere was judged: %+v", v)
			}
		}
		for _, k := range []key{
			{"big", "min_success atm_withdraw success ≥ 99 % during attack", true},
			{"big", "min_success login success ≥ 50 % during the whole drill", false},
			{"big", "max_p99 balance for returning p99 ≤ 5s during the whole drill", true},
			{"broken", "min_success atm_withdraw success ≥ 99 % during attack", false},
		} {
			if !got[k] {
				t.Errorf("no verdict %+v in %+v", k, res.SLOs)
			}
		}
		for _, f := range res.Failed() {
			if f.Pass {
				t.Errorf("Failed() returned a pass: %+v", f)
			}
		}
		if len(res.Failed()) < 4 {
			t.Errorf("Failed() = %d verdicts, want the login lines and every broken-arm line", len(res.Failed()))
		}
	})

	t.Run("report.html", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(dir, "report.html"))
		if err != nil {
			t.Fatal(err)
		}
		html := string(b)
		for _, want := range []string{"<svg", "Verdicts", "Who stayed served", "Arm small", "Arm big", "no such binary", "ledger ok", "atm_withdraw"} {
			if !strings.Contains(html, want) {
				t.Errorf("report lacks %q", want)
			}
		}
		// Self-contained: it must open offline.
		for _, bad := range []string{"<script", "<link", `src="http`, "url(http", "{{"} {
			if strings.Contains(html, bad) {
				t.Errorf("report contains %q", bad)
			}
		}
	})

	// Bots count apart from customers: refusing a login flood is the arm
	// doing its job, not a customer left unserved.
	t.Run("customers and bots", func(t *testing.T) {
		for _, p := range res.Populations {
			if want := p.Name == "bots"; p.Hostile != want {
				t.Errorf("population %s: hostile %v, want %v", p.Name, p.Hostile, want)
			}
		}
		a := &res.Arms[1]
		var customers, bots Counts
		for _, p := range a.Phases {
			for _, c := range p.Cells {
				if c.Population == "bots" {
					bots.add(c.Counts)
				} else {
					customers.add(c.Counts)
				}
			}
		}
		v := newArmView(res, a)
		if bots.Offered == 0 || v.Total != customers || v.Hostile != bots {
			t.Errorf("arm %s: headline %+v and %+v, want customers %+v and bots %+v", a.Name, v.Total, v.Hostile, customers, bots)
		}
		var loginRows []bool
		for _, h := range v.Heat {
			if h.Channel == ChannelLogin {
				loginRows = append(loginRows, h.Hostile)
			}
		}
		// In the mini scenario only bots log in.
		if !slices.Equal(loginRows, []bool{true}) {
			t.Errorf("login rows (hostile?) %v, want the bots' only", loginRows)
		}
	})

	t.Run("progress", func(t *testing.T) {
		out := progress.String()
		for _, want := range []string{"arm small (1/3)", "small · calm 1/3", "big · done", "bal "} {
			if !strings.Contains(out, want) && !strings.Contains(strings.ReplaceAll(out, "drill mini · ", ""), want) {
				t.Errorf("progress lacks %q:\n%s", want, out)
			}
		}
	})
}

func TestRunOptions(t *testing.T) {
	s := mustScenario(t, miniYAML)
	tests := []struct {
		name string
		o    Options
	}{
		{"no scenario", Options{Arms: []Arm{brokenArm{}}}},
		{"no arms", Options{Scenario: s}},
		{"duplicate arms", Options{Scenario: s, Arms: []Arm{brokenArm{}, brokenArm{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Run(context.Background(), tt.o); err == nil {
				t.Error("Run accepted bad options")
			}
		})
	}
}

func TestLoopbackOnly(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080", true},
		{"http://localhost:9090/", "http://127.0.0.1:9090", true},
		{"http://[::1]:80", "", false},
		{"http://10.0.0.1:8080", "", false},
		{"http://example.com", "", false},
		{"https://localhost:8443", "https://127.0.0.1:8443", true},
		{"https://10.0.0.1", "", false},
		{"ftp://127.0.0.1", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := loopbackURL(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("loopbackURL(%q) = %q, %v", tt.in, got, err)
			}
		})
	}
}

// A ledger that lost an acknowledged write fails the check, after the check
// was repeated while stand-in writes could still be arriving.
func TestLedgerCheck(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		ok       bool
		attempts int
		err      bool
	}{
		{"ok", http.StatusOK, `{"ok":true,"transfers":2}`, true, 1, false},
		{"missing key", http.StatusConflict, `{"ok":false,"missing":["drill-1"]}`, false, 3, false},
		{"no check", http.StatusNotFound, `not found`, false, 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var body struct{ Acknowledged []string }
				json.NewDecoder(r.Body).Decode(&body)
				got = body.Acknowledged
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			defer srv.Close()
			o := ops{base: srv.URL, client: srv.Client(), settle: 1500 * time.Millisecond}
			lc := o.check(context.Background(), []string{"drill-1", "drill-2"})
			if lc.OK != tt.ok || lc.Attempts != tt.attempts || (lc.Error != "") != tt.err || lc.Acknowledged != 2 {
				t.Errorf("check = %+v", lc)
			}
			if !slices.Equal(got, []string{"drill-1", "drill-2"}) {
				t.Errorf("the estate received %v", got)
			}
		})
	}
}

func TestHealing(t *testing.T) {
	s := mustScenario(t, `
name: heal
populations:
  - name: app
    requests: {balance: 1}
phases:
  - name: a
    duration: 1s
    rates: {app: 1}
    faults: {redis_lost: true, identity_store_stuck: true}
  - name: b
    duration: 1s
    faults: {identity_store_stuck: false}
`)
	f := healing(s)
	if f.IdentityStoreStuck != nil || f.RedisLost == nil || *f.RedisLost || *f.Core != (Component{Slowdown: 1}) {
		t.Errorf("healing = %+v: want the core and services healthy and redis back, identity untouched", f)
	}
}
