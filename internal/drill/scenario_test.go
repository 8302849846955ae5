package drill

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

const goldenSep = "-- want --\n"

// TestParseScenarioBad reads testdata/bad/*.txt: a scenario, a separator and
// the exact error it must produce, naming line and field.
func TestParseScenarioBad(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			in, want, ok := bytes.Cut(raw, []byte(goldenSep))
			if !ok {
				t.Fatalf("%s: no %q separator", file, strings.TrimSpace(goldenSep))
			}
			name := strings.TrimSuffix(filepath.Base(file), ".txt") + ".yaml"
			_, err = ParseScenario(name, in, nil)
			if err == nil {
				t.Fatalf("ParseScenario accepted a bad scenario")
			}
			got := err.Error() + "\n"
			if *update {
				out := append(append(in, goldenSep...), got...)
				if err := os.WriteFile(file, out, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != string(want) {
				t.Errorf("error mismatch\ngot:\n%s\nwant:\n%s", got, want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.File != name {
				t.Errorf("error %v is not a *FieldError naming %s", err, name)
			}
		})
	}
}

func TestParseScenarioDefaults(t *testing.T) {
	s, err := ParseScenario("ok.yaml", []byte(`
name: ok
compression: 60
populations:
  - name: app
    requests: {balance: 3, card_authorize: 1}
  - name: polite
    requests: {login: 1}
    retry: {policy: backoff}
phases:
  - name: calm
    duration: 2m
    rates: {app: 10}
  - name: busy
    duration: 1m
    rates: {polite: 5}
slos:
  - {channel: [balance, card_authorize], phase: busy, min_success: 0.99}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"customers", s.Customers, defaultCustomers},
		{"max in flight", s.MaxInFlight, defaultMaxInFlight},
		{"timeout", s.Populations[0].Timeout, defaultTimeout},
		{"retry none", s.Populations[0].Retry, Retry{Policy: RetryNone, Attempts: 1, Base: defaultBase, Cap: defaultCap}},
		{"retry backoff", s.Populations[1].Retry, Retry{Policy: RetryBackoff, Attempts: defaultAttempts, Base: defaultBase, Cap: defaultCap}},
		{"duration", s.Duration(), 3 * time.Second},
		{"busy keeps app's rate", s.plan[1].rates[0], 10.0},
		{"busy starts polite", s.plan[1].rates[1], 5.0},
		{"slo line", s.SLOs[0].line, 18},
		{"slo channels", len(s.SLOs[0].Channel), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

// The shipped scenarios must parse and fit their time budgets: the incident
// runs three arms in three minutes, the quick one in one.
func TestBuiltinScenarios(t *testing.T) {
	budget := map[string]time.Duration{"laposte-2025": 55 * time.Second, "quick": 16 * time.Second}
	names := BuiltinScenarios()
	if len(names) != len(budget) {
		t.Errorf("built-in scenarios %v, want %d", names, len(budget))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			s, err := BuiltinScenario(name, nil)
			if err != nil {
				t.Fatal(err)
			}
			if d := s.Duration(); d > budget[name] {
				t.Errorf("%s lasts %v per arm, budget %v", name, d, budget[name])
			}
			if len(s.SLOs) == 0 {
				t.Errorf("%s has no SLO lines", name)
			}
			var peak float64
			for _, p := range s.plan {
				var sum float64
				for _, r := range p.rates {
					sum += r
				}
				peak = max(peak, sum)
			}
			// What a two-core machine can send while also running the arm.
			if peak > 2000 {
				t.Errorf("%s peaks at %.0f req/s, more than a 2-core machine can drive", name, peak)
			}
		})
	}
	if _, err := BuiltinScenario("nope", nil); err == nil {
		t.Error("BuiltinScenario accepted an unknown name")
	}
}

func FuzzParseScenario(f *testing.F) {
	// The quick scenario has every construct the incident has, in fewer
	// bytes to mutate.
	quick, err := os.ReadFile("../../scenarios/quick.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(quick)
	files, _ := filepath.Glob("testdata/bad/*.txt")
	for _, file := range files {
		raw, _ := os.ReadFile(file)
		in, _, _ := bytes.Cut(raw, []byte(goldenSep))
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseScenario("fuzz.yaml", data, nil)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		if s.Duration() <= 0 || s.Duration() > maxDrillLength {
			t.Errorf("accepted a drill of %v", s.Duration())
		}
		// A valid scenario's schedule must be generable.
		sc := newSchedule(s)
		for range 100 {
			if _, ok := sc.Next(); !ok {
				break
			}
		}
	})
}
