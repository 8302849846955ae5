package drill

import (
	"strings"
	"testing"
)

const recoveryYAML = `
name: recovery
seed: 3
populations:
  - name: customers
    requests: {login: 1}
phases:
  - {name: peak, duration: 2s, rates: {customers: 10}}
  - {name: outage, duration: 2s}
  - {name: recovery, duration: 6s}
slos:
  - {channel: login, phase: recovery, recover_within: 3s, baseline: peak}
  - {channel: login, phase: recovery, recover_within: 1m, baseline: peak}
`

// TestRecoverWithin: the line measures from the start of its phase to the
// end of the first second back to 95 % of the baseline's success; a second
// with too few requests says nothing; a phase that never gets back fails
// with its whole length, even under a bound longer than the phase.
func TestRecoverWithin(t *testing.T) {
	tests := []struct {
		name string
		// ok is the requests answered 2xx in each second of the drill, of
		// 10 offered (0 offered where -1).
		ok       []int
		got      float64
		pass     bool
		wantNote string
	}{
		{"back in the second second", []int{10, 10, 0, 0, 2, 10, 10, 10, 10, 10}, 2, true, ""},
		{"back at once", []int{10, 10, 0, 0, 10, 10, 10, 10, 10, 10}, 1, true, ""},
		{"an empty second says nothing", []int{10, 10, 0, 0, -1, -1, 10, 10, 10, 10}, 3, true, ""},
		{"back too late (9 of 10 is not back)", []int{10, 10, 0, 0, 0, 0, 0, 9, 10, 10}, 5, false, ""},
		{"never back", []int{10, 10, 0, 0, 5, 5, 5, 5, 5, 5}, 6, false, "never back"},
		{"no baseline", []int{-1, -1, 0, 0, 10, 10, 10, 10, 10, 10}, 0, false, "nothing to compare with"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustScenario(t, recoveryYAML)
			_, rec, chans := newTestEngine(t, s)
			ch := -1
			for i, c := range chans {
				if c.Name == "login" {
					ch = i
				}
			}
			for sec, ok := range tt.ok {
				if ok < 0 {
					continue
				}
				ph := min(sec/2, 2) // phases of 2 s, then the recovery's 6
				for _, c := range []*counter{&rec.counts[(sec*rec.nch+ch)*rec.npop], &rec.phase[(ph*rec.nch+ch)*rec.npop]} {
					c.offered.Add(10)
					c.ok.Add(int64(ok))
				}
			}
			v := judge(s, "arm", "", rec, chans)
			if len(v) != 2 || v[0].Metric != MetricRecoverWithin {
				t.Fatalf("verdicts %+v, want two recover_within lines", v)
			}
			if v[0].Got != tt.got || v[0].Pass != tt.pass || !strings.Contains(v[0].Note, tt.wantNote) {
				t.Errorf("got %v s, pass %v, note %q; want %v s, pass %v, note with %q", v[0].Got, v[0].Pass, v[0].Note, tt.got, tt.pass, tt.wantNote)
			}
			// Under a minute's bound, only a selection that never got back fails.
			if back := tt.got < 6 && !strings.Contains(tt.wantNote, "compare"); v[1].Pass != back {
				t.Errorf("the 1-minute line: pass %v, want %v", v[1].Pass, back)
			}
		})
	}
}

// TestRecoverWithinValidated: the line needs one phase and a known baseline.
func TestRecoverWithinValidated(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{`{channel: login, phase: [outage, recovery], recover_within: 3s, baseline: peak}`, "name exactly one"},
		{`{channel: login, phase: recovery, recover_within: 3s, baseline: lunch}`, `unknown phase "lunch"`},
		{`{channel: login, phase: recovery, recover_within: 0s, baseline: peak}`, "more than 0"},
		{`{channel: login, phase: recovery, min_success: 0.9, baseline: peak}`, "only recover_within"},
	} {
		y := strings.Replace(recoveryYAML, `{channel: login, phase: recovery, recover_within: 3s, baseline: peak}`, tc.line, 1)
		if _, err := ParseScenario("r.yaml", []byte(y), nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.line, err, tc.want)
		}
	}
}
