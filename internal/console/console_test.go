package console

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type fakeLive struct{}

func (fakeLive) ScrubRoutes() []ScrubRoute {
	return []ScrubRoute{{Route: "login-password", State: "attack", Mode: "auto", Reason: "credential stuffing"}}
}
func (fakeLive) Faults() []Fault { return []Fault{{Component: "core", Detail: "down"}} }

// TestSnapshot reads the counters the gateway, the breakers, the journal
// and the waiting room register, as /metrics serves them.
func TestSnapshot(t *testing.T) {
	reg := prometheus.NewRegistry()
	req := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rempart_requests_total"}, []string{"route", "tier", "code"})
	fb := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rempart_breaker_fallback_answers_total"}, []string{"upstream", "route", "kind"})
	br := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rempart_breaker_state"}, []string{"upstream"})
	jp := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rempart_journal_pending"}, []string{"kind"})
	wr := prometheus.NewGauge(prometheus.GaugeOpts{Name: "rempart_waitroom_waiting"})
	reg.MustRegister(req, fb, br, jp, wr)
	req.WithLabelValues("card-authorize", "critical", "200").Add(10)
	req.WithLabelValues("card-authorize", "critical", "503").Add(2)
	req.WithLabelValues("card-authorize", "critical", "401").Add(1)
	req.WithLabelValues("balance", "important", "200").Add(5)
	req.WithLabelValues("balance", "normal", "502").Add(3)
	req.WithLabelValues("balance", "normal", "429").Add(4)
	fb.WithLabelValues("estate/card-authorize", "card-authorize", "standin").Add(7)
	br.WithLabelValues("estate/card-authorize").Set(2)
	jp.WithLabelValues("standin").Set(7)
	wr.Set(42)

	c := New(Options{Metrics: reg, Live: fakeLive{}, RouteTiers: map[string]string{"card-authorize": "critical", "balance": "normal"},
		Now: func() time.Time { return time.Unix(1000, 500e6) }})
	s, err := c.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	want := Snapshot{At: 1000.5,
		Tiers: []Counts{{Name: "critical", Served: 10, Shed: 2, Refused: 1, Fallback: 7}, {Name: "important", Served: 5},
			{Name: "normal", Shed: 4, Errors: 3}},
		Routes: []Counts{{Name: "card-authorize", Tier: "critical", Served: 10, Shed: 2, Refused: 1, Fallback: 7},
			{Name: "balance", Tier: "normal", Served: 5, Shed: 4, Errors: 3}},
		Room:     map[string]float64{"waiting": 42},
		Breakers: []Breaker{{Upstream: "estate/card-authorize", State: "open"}},
		Journal:  []Backlog{{Kind: "standin", Pending: 7}},
		Scrub:    fakeLive{}.ScrubRoutes(), Faults: fakeLive{}.Faults()}
	g, _ := json.Marshal(s)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("snapshot\n got %s\nwant %s", g, w)
	}
}

// TestPageCSP: the page's one script and one style carry the nonce the
// policy names, a new one on every load, and nothing else may run.
func TestPageCSP(t *testing.T) {
	srv := httptest.NewServer(New(Options{}))
	defer srv.Close()
	var nonces []string
	for range 2 {
		res, err := http.Get(srv.URL + Path)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		buf := make([]byte, 64<<10)
		for {
			n, err := res.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		res.Body.Close()
		csp := res.Header.Get("Content-Security-Policy")
		m := regexp.MustCompile(`script-src 'nonce-([A-Za-z0-9_-]+)'`).FindStringSubmatch(csp)
		if m == nil || !strings.Contains(csp, "default-src 'none'") {
			t.Fatalf("CSP %q", csp)
		}
		html := b.String()
		if strings.Count(html, "<script") != 1 || !strings.Contains(html, `<script nonce="`+m[1]+`">`) || !strings.Contains(html, `<style nonce="`+m[1]+`">`) {
			t.Errorf("script or style without the policy's nonce %s", m[1])
		}
		for _, bad := range []string{"src=\"http", "href=\"http", "innerHTML"} {
			if strings.Contains(html, bad) {
				t.Errorf("page contains %q", bad)
			}
		}
		nonces = append(nonces, m[1])
	}
	if nonces[0] == nonces[1] {
		t.Error("the same nonce twice")
	}
}
