package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/config"
	"github.com/rempart/rempart/internal/drill"
	"github.com/rempart/rempart/internal/estate"
	"github.com/rempart/rempart/scenarios"
)

// TestDrillQuickBothArms builds rempart, runs a shortened quick scenario
// against the 2025 and rempart arms as child processes (and nginx when it is
// installed) and checks the outputs. It does not
// require the SLO lines to pass: that is the drill's verdict to report (and
// CI's gate on `rempart drill --quick`), not a property of the wiring.
func TestDrillQuickBothArms(t *testing.T) {
	if testing.Short() {
		t.Skip("builds rempart and runs a drill of about 20 s")
	}
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := buildRempart(ctx, t)
	arms := defaultArms(findNginx())

	// The quick scenario at twice its compression: 7 s per arm.
	b, err := scenarios.FS.ReadFile("quick.yaml")
	if err != nil {
		t.Fatal(err)
	}
	short := strings.Replace(string(b), "compression: 600", "compression: 1200", 1)
	if short == string(b) {
		t.Fatal("quick.yaml no longer says compression: 600; update the test")
	}
	scen := filepath.Join(tmp, "quick-short.yaml")
	if err := os.WriteFile(scen, []byte(short), 0o644); err != nil {
		t.Fatal(err)
	}

	outDir := filepath.Join(tmp, "out")
	root := newRoot()
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs([]string{"drill", "--scenario", scen, "--out", outDir, "--arms", arms, "--quiet", "--rempart-bin", bin})
	start := time.Now()
	err = root.ExecuteContext(ctx)
	t.Logf("drill took %s:\n%s", time.Since(start).Round(time.Millisecond), stdout.String())
	if err != nil && !strings.Contains(err.Error(), "SLO line(s) of the rempart arm failed") {
		t.Fatalf("drill: %v\nstderr:\n%s", err, stderr.String())
	}

	files := []string{"results.json", "report.html", "arm-rempart.log", "arm-2025.log"}
	if strings.Contains(arms, "nginx") {
		files = append(files, "arm-nginx-backend.log")
		// nginx's own log is empty when it had nothing to warn about.
		if _, err := os.Stat(filepath.Join(outDir, "arm-nginx.log")); err != nil {
			t.Error(err)
		}
	}
	for _, f := range files {
		if st, err := os.Stat(filepath.Join(outDir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: missing or empty (%v)", f, err)
		}
	}
	raw, err := os.ReadFile(filepath.Join(outDir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res drill.Results
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	for _, name := range strings.Split(arms, ",") {
		a, ok := res.Arm(name)
		if !ok {
			t.Fatalf("arm %s: no result", name)
		}
		if a.Error != "" {
			t.Errorf("arm %s: %s", name, a.Error)
		}
		var offered, ok2xx int64
		for _, s := range a.Series {
			for _, c := range s.Seconds {
				offered += c.Offered
				ok2xx += c.OK
			}
		}
		if offered == 0 || ok2xx == 0 {
			t.Errorf("arm %s: %d offered, %d answered 2xx", name, offered, ok2xx)
		}
		// Every arm logs some customers in: the flow's redirects and forms
		// pass whatever stands in front of the identity provider.
		var logins drill.Counts
		for _, p := range a.Phases {
			for _, c := range p.Channels {
				if c.Channel == drill.ChannelLogin {
					logins.OK += c.OK
					logins.Offered += c.Offered
				}
			}
		}
		if logins.Offered > 0 && logins.OK == 0 {
			t.Errorf("arm %s: none of %d logins succeeded", name, logins.Offered)
		}
		if len(a.Usage) == 0 {
			t.Errorf("arm %s: no CPU/RSS sample of the child", name)
		}
		if name == "rempart" {
			if !a.Ledger.OK || a.Ledger.Skipped {
				t.Errorf("arm rempart: ledger check: %+v", a.Ledger)
			}
			// The identity fault goes through the arm's Switcher.
			for _, f := range a.Faults {
				if f.Fault == drill.FaultIdentityStoreStuck && (f.Unsupported || f.Error != "") {
					t.Errorf("arm rempart: identity fault not applied: %+v", f)
				}
			}
		}
	}
	if len(res.SLOs) == 0 {
		t.Error("no SLO verdict")
	}
}

// The drill's partner populations present, for each channel, the demo
// certificate of a partner that rempart's default configuration admits on
// that channel's route: a partner name out of step with config.DemoPartners
// would send every partner request with a certificate the gateway refuses.
func TestDrillPartnersMatchDemoPartners(t *testing.T) {
	routes := map[string][]string{} // partner -> routes
	for _, p := range config.DemoPartners() {
		routes[p.Name] = p.Routes
	}
	route := map[string]string{} // "METHOD path" -> route name
	for _, c := range estate.Channels() {
		route[c.Pattern] = c.Name
	}
	for name, tg := range drill.DefaultTargets() {
		if tg.Partner == "" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			r, ok := route[tg.Method+" "+tg.Path]
			if !ok {
				t.Fatalf("%s %s is no estate channel", tg.Method, tg.Path)
			}
			if !slices.Contains(routes[tg.Partner], r) {
				t.Errorf("partner %q (routes %v) may not call route %s", tg.Partner, routes[tg.Partner], r)
			}
		})
	}
}
