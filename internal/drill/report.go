package drill

import (
	_ "embed"
	"fmt"
	"html/template"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
)

//go:embed report.html.tmpl
var reportTemplate string

// WriteHTML writes report.html into dir: one self-contained page (inline
// CSS and SVG, no scripts, no fetches) rendered from r alone.
func (r *Results) WriteHTML(dir string) error {
	t, err := template.New("report").Funcs(template.FuncMap{
		"pct":     func(v float64) string { return pct(v) },
		"num":     func(v any) string { return groupDigits(toInt64(v)) },
		"ms":      fmtMS,
		"rate":    trimFloat,
		"heat":    heatClass,
		"success": func(c Counts) string { v, ok := c.Success(); return pctOrDash(v, ok) },
		"css":     func(s string) template.CSS { return template.CSS(s) },
		"inc":     func(i int) int { return i + 1 },
		"deref":   func(b *bool) bool { return *b },
		"secs":    func(v float64) string { return trimFloat(v) + " s" },
		"trim":    trimFloat,
		"healthy": func(c *Component) bool { return *c == Component{Slowdown: 1} },
	}).Parse(reportTemplate)
	if err != nil {
		return fmt.Errorf("report template: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "report.html"))
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := t.Execute(f, newReport(r)); err != nil {
		f.Close()
		return fmt.Errorf("render report: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// report is the view the template renders. Every figure in it is read from
// Results (or computed from its counts); nothing is measured here.
type report struct {
	*Results
	Legend   []legendItem // channel colours
	ArmsKey  []legendItem // arm colours
	Outcomes []legendItem
	Compare  []tierChart
	Verdicts []verdictRow
	Attacks  []attackRow
	ArmNames []string
	Arms     []armView
	Failed   int
}

type legendItem struct {
	Name, Color string
	// Dash is the line's SVG stroke-dasharray ("" for a solid line), so
	// the key draws the line as the chart does.
	Dash string
}

type tierChart struct {
	Tier   string
	SVG    template.HTML
	Legend []legendItem // the arms drawn in it
}

type verdictRow struct {
	Line  int    // in the scenario file, for the reader who edits it
	Name  string // the line's name, or the line in words
	SLO   string
	Want  string
	Cells []verdictCell // one per arm, in run order
}

// attackRow is one kind of attack across the arms.
type attackRow struct {
	Kind  string
	Cells []attackCell // one per arm, in run order
}

type attackCell struct {
	Sent     bool
	Breaches string // "0 of 12"
	Refused  string // how the rest was answered, e.g. "401 ×7 · 403 ×5"
	Pass     bool   // no breach
}

type verdictCell struct {
	Judged bool
	Pass   bool
	Got    string
	Note   string
}

type armView struct {
	*ArmResult
	Anchor string
	// Total is the customers' requests: attack channels and hostile
	// populations (PopulationInfo.Hostile) are in Hostile, so refusing a
	// bot never lowers, nor serving one raises, what customers were served.
	Total       Counts
	Success     string
	Hostile     Counts
	HostileOK   int64 // hostile requests on customer channels answered 2xx (a bot's login that got in)
	Heat        []heatRow
	SuccessSVG  template.HTML
	LatencySVG  template.HTML
	OutcomesSVG template.HTML
	CPUSVG      template.HTML
	RSSSVG      template.HTML
	CPUAvg      string
	CPUMax      string
	RSSMax      string
	Pass, Fail  int
}

type heatRow struct {
	Channel, Tier, Color string
	// Hostile is the bots' row of a channel customers share with them
	// (the login): its success is not the customers' and is not coloured
	// as a verdict.
	Hostile bool
	Cells   []heatCell
}

type heatCell struct {
	Text, Class, Title string
}

func newReport(r *Results) report {
	v := report{Results: r}
	for i, c := range r.Channels {
		if !c.Attack {
			v.Legend = append(v.Legend, legendItem{Name: c.Name, Color: cssColor(paletteColor(i)), Dash: cssDash(seriesDash(i))})
		}
	}
	v.Attacks = attackRows(r)
	for i, a := range r.Arms {
		v.ArmNames = append(v.ArmNames, a.Name)
		v.ArmsKey = append(v.ArmsKey, legendItem{Name: a.Name, Color: cssColor(armColor(i)), Dash: cssDash(seriesDash(i))})
	}
	v.Outcomes = []legendItem{
		{Name: "ok", Color: cssColor(colorOK)}, {Name: "shed (Retry-After)", Color: cssColor(colorShed)},
		{Name: "errors", Color: cssColor(colorError)}, {Name: "time-outs", Color: cssColor(colorTimeout)},
		{Name: "client-dropped", Color: cssColor(colorDropped)},
	}
	v.Verdicts = verdictRows(r)
	for _, s := range r.SLOs {
		if !s.Pass {
			v.Failed++
		}
	}
	v.Compare = compareCharts(r)
	for i := range r.Arms {
		v.Arms = append(v.Arms, newArmView(r, &r.Arms[i]))
	}
	return v
}

// armColor keeps arms apart from channels: the compare charts use these.
func armColor(i int) color.RGBA {
	arms := []color.RGBA{{0xc0, 0x39, 0x2b, 0xff}, {0x27, 0xae, 0x60, 0xff}, {0x29, 0x80, 0xb9, 0xff}, {0x8e, 0x44, 0xad, 0xff}, {0xd3, 0x54, 0x00, 0xff}}
	return arms[i%len(arms)]
}

func verdictRows(r *Results) []verdictRow {
	type key struct {
		line        int
		slo, metric string
	}
	var rows []verdictRow
	index := make(map[key]int)
	for _, s := range r.SLOs {
		k := key{s.Line, s.SLO, s.Metric}
		i, ok := index[k]
		if !ok {
			want := "success ≥ " + pct(s.Want)
			switch s.Metric {
			case MetricMaxP99:
				want = "p99 ≤ " + fmtMS(s.Want)
			case MetricMaxBreaches:
				want = fmt.Sprintf("successful attacks ≤ %.0f", s.Want)
			case MetricRecoverWithin:
				want = fmt.Sprintf("recovered ≤ %.0f s", s.Want)
			}
			name := s.Name
			if name == "" {
				name = s.SLO
			}
			rows = append(rows, verdictRow{Line: s.Line, Name: name, SLO: s.SLO, Want: want, Cells: make([]verdictCell, len(r.Arms))})
			i = len(rows) - 1
			index[k] = i
		}
		got := pctOrDash(s.Got, true)
		switch s.Metric {
		case MetricMaxP99:
			got = fmtMS(s.Got)
		case MetricMaxBreaches:
			got = fmt.Sprintf("%.0f of %s", s.Got, groupDigits(s.Offered))
		case MetricRecoverWithin:
			got = fmt.Sprintf("%.1f s", s.Got)
		}
		if s.Note != "" {
			got = "—"
		}
		for j, a := range r.Arms {
			if a.Name == s.Arm {
				rows[i].Cells[j] = verdictCell{Judged: true, Pass: s.Pass, Got: got, Note: s.Note}
			}
		}
	}
	return rows
}

// compareCharts plots, per tier, every arm's success over time for the
// customers (bots and attackers left out).
func compareCharts(r *Results) []tierChart {
	var tiers []string
	for _, c := range r.Channels {
		if !slices.Contains(tiers, c.Tier) {
			tiers = append(tiers, c.Tier)
		}
	}
	var out []tierChart
	for _, t := range tiers {
		if t == TierAttack {
			continue // the attacks have their own table
		}
		c := newChart("success (%)", r.Phases, r.Scenario.Seconds)
		c.p.Y.Min, c.p.Y.Max = 0, 112
		var key []legendItem
		for i, a := range r.Arms {
			ys := successSeries(&a, func(s Series) bool { return tierOf(r, s.Channel) == t && !isHostile(r, s.Population) })
			if ys != nil {
				c.line(ys, armColor(i), 1.6, seriesDash(i))
				key = append(key, legendItem{Name: a.Name, Color: cssColor(armColor(i)), Dash: cssDash(seriesDash(i))})
			}
		}
		if key != nil {
			out = append(out, tierChart{Tier: t, SVG: c.svg(), Legend: key})
		}
	}
	return out
}

func isAttack(r *Results, channel string) bool { return tierOf(r, channel) == TierAttack }

// isHostile reports whether the population is bots or attackers.
func isHostile(r *Results, population string) bool {
	for _, p := range r.Populations {
		if p.Name == population {
			return p.Hostile
		}
	}
	return false
}

// customers reports whether a cell or series counts in what customers
// were served: a customer channel, a population of customers.
func customers(r *Results, channel, population string) bool {
	return !isAttack(r, channel) && !isHostile(r, population)
}

// attackRows is the attacks table: per kind and arm, how many got through.
func attackRows(r *Results) []attackRow {
	var rows []attackRow
	for _, c := range r.Channels {
		if !c.Attack {
			continue
		}
		row := attackRow{Kind: c.Name, Cells: make([]attackCell, len(r.Arms))}
		for j, a := range r.Arms {
			for _, at := range a.Attacks {
				if at.Kind != c.Name || at.Offered == 0 {
					continue
				}
				var refused []string
				for _, k := range sortedKeys(at.Statuses) {
					refused = append(refused, fmt.Sprintf("%s ×%d", k, at.Statuses[k]))
				}
				row.Cells[j] = attackCell{Sent: true, Pass: at.Breaches == 0,
					Breaches: fmt.Sprintf("%s of %s", groupDigits(at.Breaches), groupDigits(at.Offered)),
					Refused:  strings.Join(refused, " · ")}
			}
		}
		rows = append(rows, row)
	}
	return rows
}

func tierOf(r *Results, channel string) string {
	for _, c := range r.Channels {
		if c.Name == channel {
			return c.Tier
		}
	}
	return ""
}

// successSeries pools the selected series per second: % of offered answered
// 2xx, NaN for seconds without traffic; nil when nothing was selected.
func successSeries(a *ArmResult, sel func(Series) bool) []float64 {
	if a.Seconds == 0 {
		return nil
	}
	sum := make([]Counts, a.Seconds)
	found := false
	for _, s := range a.Series {
		if !sel(s) {
			continue
		}
		found = true
		for i, c := range s.Seconds {
			sum[i].add(c)
		}
	}
	if !found {
		return nil
	}
	ys := make([]float64, len(sum))
	for i, c := range sum {
		v, ok := c.Success()
		ys[i] = math.NaN()
		if ok {
			ys[i] = 100 * v
		}
	}
	return ys
}

func newArmView(r *Results, a *ArmResult) armView {
	v := armView{ArmResult: a, Anchor: "arm-" + a.Name}
	for _, p := range a.Phases {
		for _, c := range p.Cells {
			switch {
			case customers(r, c.Channel, c.Population):
				v.Total.add(c.Counts)
			case isAttack(r, c.Channel):
				v.Hostile.add(c.Counts)
			default:
				v.Hostile.add(c.Counts)
				v.HostileOK += c.OK
			}
		}
	}
	s, ok := v.Total.Success()
	v.Success = pctOrDash(s, ok)
	for _, s := range r.SLOs {
		if s.Arm != a.Name {
			continue
		}
		if s.Pass {
			v.Pass++
		} else {
			v.Fail++
		}
	}
	v.Heat = heatRows(r, a)
	if a.Seconds == 0 {
		return v
	}
	end := r.Scenario.Seconds

	sc := newChart("success (%)", r.Phases, end)
	sc.p.Y.Min, sc.p.Y.Max = 0, 112
	lc := newChart("latency (ms, log)", r.Phases, end)
	lc.p.Y.Scale = plot.LogScale{}
	lc.p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	lo, hi := math.Inf(1), 0.0
	for i, c := range r.Channels {
		if c.Attack {
			continue
		}
		clr, dash := paletteColor(i), seriesDash(i)
		if ys := successSeries(a, func(s Series) bool { return s.Channel == c.Name && !isHostile(r, s.Population) }); ys != nil {
			sc.line(ys, clr, 1.6, dash)
		}
		for _, ls := range a.Latency {
			if ls.Channel != c.Name {
				continue
			}
			p50, p99 := make([]float64, len(ls.Seconds)), make([]float64, len(ls.Seconds))
			for j, l := range ls.Seconds {
				p50[j], p99[j] = math.NaN(), math.NaN()
				if l.N > 0 {
					p50[j], p99[j] = math.Max(l.P50, 0.01), math.Max(l.P99, 0.01)
					lo, hi = math.Min(lo, p50[j]), math.Max(hi, p99[j])
				}
			}
			lc.line(p99, clr, 1.6, dash)
			// The median is the same colour and dash, thin and pale: a
			// second pattern per channel would make twenty to tell apart.
			pale := clr
			pale.A = 0x70
			lc.line(p50, pale, 0.7, dash)
		}
	}
	v.SuccessSVG = sc.svg()
	if hi > 0 {
		// Decades around the data, with room above for the phase names.
		lc.p.Y.Min = math.Pow(10, math.Floor(math.Log10(lo)))
		lc.p.Y.Max = math.Pow(10, math.Ceil(math.Log10(hi*1.5)))
		v.LatencySVG = lc.svg()
	}

	// Outcomes per second, stacked: the top edge is what was offered.
	oc := newChart("requests per second", r.Phases, end)
	layers := make([][]float64, 5)
	for i := range layers {
		layers[i] = make([]float64, a.Seconds)
	}
	peak := 0.0
	for _, s := range a.Series {
		if !customers(r, s.Channel, s.Population) {
			continue
		}
		for i, c := range s.Seconds {
			acc := 0.0
			for j, n := range []int64{c.OK, c.Shed, c.Errors, c.Timeouts, c.Dropped} {
				acc += float64(n)
				layers[j][i] += acc
			}
		}
	}
	for i := range a.Seconds {
		peak = math.Max(peak, layers[4][i])
	}
	for j, clr := range []color.Color{colorDropped, colorTimeout, colorError, colorShed, colorOK} {
		oc.area(layers[4-j], clr)
	}
	oc.p.Y.Min, oc.p.Y.Max = 0, math.Max(peak*1.15, 1)
	v.OutcomesSVG = oc.svg()

	if len(a.Usage) > 0 {
		var at, cpu, rss []float64
		var sum, peakCPU, peakRSS float64
		for _, u := range a.Usage {
			at, cpu, rss = append(at, u.At), append(cpu, u.CPU), append(rss, u.RSSMB)
			sum += u.CPU
			peakCPU, peakRSS = math.Max(peakCPU, u.CPU), math.Max(peakRSS, u.RSSMB)
		}
		v.CPUAvg = fmt.Sprintf("%.0f %%", sum/float64(len(a.Usage)))
		v.CPUMax = fmt.Sprintf("%.0f %%", peakCPU)
		v.RSSMax = fmt.Sprintf("%.0f MB", peakRSS)
		cc := newChart("CPU (% of one core)", r.Phases, end)
		cc.w, cc.h = plotWidth/2, plotHeight*3/4
		cc.xyLine(at, cpu, armColor(0))
		cc.p.Y.Min, cc.p.Y.Max = 0, math.Max(peakCPU*1.2, 10)
		v.CPUSVG = cc.svg()
		mc := newChart("resident memory (MB)", r.Phases, end)
		mc.w, mc.h = plotWidth/2, plotHeight*3/4
		mc.xyLine(at, rss, armColor(2))
		mc.p.Y.Min, mc.p.Y.Max = 0, math.Max(peakRSS*1.2, 10)
		v.RSSSVG = mc.svg()
	}
	return v
}

// heatRows is the "who stayed served" table: success per channel and phase,
// for the customers, and on a channel bots share with them (the login) a row
// of the bots' own.
func heatRows(r *Results, a *ArmResult) []heatRow {
	var rows []heatRow
	for i, c := range r.Channels {
		if c.Attack {
			continue
		}
		customerRow := -1
		for _, hostile := range []bool{false, true} {
			row := heatRow{Channel: c.Name, Tier: c.Tier, Color: cssColor(paletteColor(i)), Hostile: hostile}
			sent := false
			for _, p := range a.Phases {
				var cc Cell
				for _, pc := range p.Cells {
					if pc.Channel == c.Name && isHostile(r, pc.Population) == hostile {
						cc.add(pc.Counts)
					}
				}
				cell := heatCell{Text: "", Class: "none"}
				if cc.Offered > 0 {
					sent = true
					v, ok := cc.Success()
					cell.Text = pctOrDash(v, ok)
					cell.Class = heatClass(v, ok)
					if hostile {
						cell.Class = "bots"
					}
					cell.Title = fmt.Sprintf("%s ok of %s offered · shed %s · errors %s · time-outs %s · client-dropped %s",
						groupDigits(cc.OK), groupDigits(cc.Offered), groupDigits(cc.Shed), groupDigits(cc.Errors),
						groupDigits(cc.Timeouts), groupDigits(cc.Dropped))
					// Percentiles do not pool: the channel's latency is the
					// customers' only when no bot sent on it in the phase.
					for _, pc := range p.Channels {
						if pc.Channel == c.Name && pc.Offered == cc.Offered {
							cell.Title += fmt.Sprintf(" · p50 %s · p99 %s", fmtMS(pc.Latency.P50), fmtMS(pc.Latency.P99))
						}
					}
				}
				row.Cells = append(row.Cells, cell)
			}
			switch {
			case !hostile:
				customerRow = len(rows)
				rows = append(rows, row)
			case sent:
				if !slices.ContainsFunc(rows[customerRow].Cells, func(c heatCell) bool { return c.Text != "" }) {
					rows = slices.Delete(rows, customerRow, customerRow+1) // only bots sent there
				}
				rows = append(rows, row)
			}
		}
	}
	return rows
}

func heatClass(v float64, ok bool) string {
	switch {
	case !ok:
		return "none"
	case v >= 0.999:
		return "h5"
	case v >= 0.99:
		return "h4"
	case v >= 0.95:
		return "h3"
	case v >= 0.8:
		return "h2"
	case v >= 0.5:
		return "h1"
	}
	return "h0"
}

// pctOrDash shows a success share rounded down (99.96 % is not 100 %).
func pctOrDash(v float64, ok bool) string {
	if !ok {
		return "—"
	}
	switch {
	case v >= 1:
		return "100 %"
	case v >= 0.99:
		return fmt.Sprintf("%.2f %%", math.Floor(v*10000)/100)
	}
	return fmt.Sprintf("%.1f %%", math.Floor(v*1000)/10)
}

func fmtMS(v float64) string {
	switch {
	case v == 0:
		return "—"
	case v < 10:
		return fmt.Sprintf("%.1f ms", v)
	case v < 10_000:
		return fmt.Sprintf("%.0f ms", v)
	}
	return fmt.Sprintf("%.1f s", v/1000)
}

// trimFloat writes 2.0 as 2 and 2.5 as 2.5.
func trimFloat(v float64) string { return strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0") }

func toInt64(v any) int64 {
	switch v := v.(type) {
	case int:
		return int64(v)
	case int64:
		return v
	}
	return 0
}

// groupDigits writes 1234567 as 1 234 567 (thin spaces, as in French).
func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString("\u202f")
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
