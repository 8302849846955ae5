package drill

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Metrics an SLO line can set.
const (
	MetricMinSuccess = "min_success"
	MetricMaxP99     = "max_p99"
	// MetricMaxBreaches judges a count: attacks that got what they wanted.
	MetricMaxBreaches = "max_breaches"
	// MetricRecoverWithin judges seconds: how long the selection took to
	// be back to its baseline success.
	MetricRecoverWithin = "recover_within"
)

// RecoveredShare is the share of the baseline's success a second must
// reach to count as recovered; recoverMinOffered the requests it must hold
// to count at all.
const (
	RecoveredShare    = 0.95
	recoverMinOffered = 3
)

// judge evaluates the scenario's SLO lines on one arm's recorder; rec is nil
// when the arm could not run, which fails every line that applies to it.
func judge(s *Scenario, arm string, armErr string, rec *recorder, chans []ChannelInfo) []SLOResult {
	var out []SLOResult
	for _, o := range s.SLOs {
		if o.Arm != "" && o.Arm != arm {
			continue
		}
		sel := func(ph, ch, pop int) bool {
			return o.Phase.has(s.Phases[ph].Name) && o.Channel.has(chans[ch].Name) && o.Population.has(s.Populations[pop].Name)
		}
		var got Counts
		var lat Latency
		if rec != nil {
			h, c := rec.phaseHist(sel)
			got, lat = c, summarise(h)
		}
		v := SLOResult{Line: o.line, Name: o.Name, Arm: arm, Offered: got.Offered}
		note := func() string {
			switch {
			case armErr != "":
				return "the arm did not run: " + armErr
			case got.Offered == 0:
				return "no requests in scope: nothing to judge"
			}
			return ""
		}
		if o.MinSuccess != nil {
			v := v
			v.Metric, v.Want, v.SLO = MetricMinSuccess, *o.MinSuccess, o.describe()
			v.Got, _ = got.Success()
			v.Note = note()
			v.Pass = v.Note == "" && v.Got >= v.Want
			out = append(out, v)
		}
		if o.MaxBreaches != nil {
			v := v
			v.Metric, v.Want, v.SLO = MetricMaxBreaches, float64(*o.MaxBreaches), o.describe()
			v.Got = float64(got.Breaches)
			v.Note = note()
			v.Pass = v.Note == "" && v.Got <= v.Want
			out = append(out, v)
		}
		if o.RecoverWithin != nil {
			v := v
			v.Metric, v.Want, v.SLO = MetricRecoverWithin, o.RecoverWithin.Seconds(), o.describe()
			v.Note = note()
			back := false
			if v.Note == "" {
				v.Got, back, v.Note = recovery(s, o, rec, chans)
			}
			// Never back fails whatever the bound: a bound longer than the
			// phase must not pass a selection that never recovered.
			v.Pass = v.Note == "" && back && v.Got <= v.Want
			if v.Note == "" && !back {
				v.Note = "never back to " + pct(RecoveredShare) + " of the baseline's success in the phase"
			}
			out = append(out, v)
		}
		if o.MaxP99 != nil {
			v := v
			v.Metric, v.Want, v.SLO = MetricMaxP99, ms(*o.MaxP99), o.describe()
			v.Got = lat.P99
			v.Note = note()
			if v.Note == "" && lat.N == 0 {
				v.Note = "no request was answered: no latency to judge"
			}
			v.Pass = v.Note == "" && v.Got <= v.Want
			out = append(out, v)
		}
	}
	return out
}

// recovery measures a RecoverWithin line: the seconds from the start of
// its phase to the end of the first second whose success share is back to
// RecoveredShare of the baseline phase's, and true; or the whole phase and
// false if none is.
func recovery(s *Scenario, o SLO, rec *recorder, chans []ChannelInfo) (float64, bool, string) {
	in := func(ch, pop int) bool {
		return o.Channel.has(chans[ch].Name) && o.Population.has(s.Populations[pop].Name)
	}
	_, base := rec.phaseHist(func(ph, ch, pop int) bool { return s.Phases[ph].Name == o.Baseline && in(ch, pop) })
	want, ok := base.Success()
	if !ok {
		return 0, false, "no requests in scope during the baseline " + o.Baseline + ": nothing to compare with"
	}
	ph := slices.IndexFunc(s.Phases, func(p Phase) bool { return p.Name == o.Phase[0] })
	pl := s.plan[ph]
	first := int(pl.start / time.Second)
	last := min(int((pl.end+time.Second-1)/time.Second), rec.nsec)
	for sec := first; sec < last; sec++ {
		var c Counts
		for ch := range rec.nch {
			for pop := range rec.npop {
				if in(ch, pop) {
					c.add(rec.counts[(sec*rec.nch+ch)*rec.npop+pop].load())
				}
			}
		}
		if got, ok := c.Success(); ok && c.Offered >= recoverMinOffered && got >= RecoveredShare*want {
			return (time.Duration(sec+1)*time.Second - pl.start).Seconds(), true, ""
		}
	}
	return (pl.end - pl.start).Seconds(), false, ""
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// describe puts an SLO line into words for the report.
func (o SLO) describe() string {
	var parts []string
	sel := func(n Names, all string) string {
		if len(n) == 0 {
			return all
		}
		return strings.Join(n, ", ")
	}
	parts = append(parts, sel(o.Channel, "all channels"))
	if len(o.Population) > 0 {
		parts = append(parts, "for "+sel(o.Population, ""))
	}
	var want []string
	if o.MinSuccess != nil {
		want = append(want, fmt.Sprintf("success ≥ %s", pct(*o.MinSuccess)))
	}
	if o.MaxP99 != nil {
		want = append(want, fmt.Sprintf("p99 ≤ %v", *o.MaxP99))
	}
	if o.MaxBreaches != nil {
		want = append(want, fmt.Sprintf("at most %d successful attacks", *o.MaxBreaches))
	}
	if o.RecoverWithin != nil {
		want = append(want, fmt.Sprintf("back to %s of its success in %s within %v", pct(RecoveredShare), o.Baseline, *o.RecoverWithin))
	}
	parts = append(parts, strings.Join(want, " and "))
	parts = append(parts, "during "+sel(o.Phase, "the whole drill"))
	return strings.Join(parts, " ")
}

// pct formats a share as a percentage with as many decimals as it needs.
func pct(v float64) string {
	s := fmt.Sprintf("%.2f", v*100)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + " %"
}
