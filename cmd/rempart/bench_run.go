package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/rempart/rempart/internal/drill"
)

// benchTarget is one URL the bench loads and what it measures there.
type benchTarget struct {
	name string // "direct", "nginx", "rempart normal", ...
	url  string
	pid  int // the proxy's process, with its descendants; 0: CPU not measured

	// rempart only: its ops listener, automation token and route name, for
	// allocations and status codes per run.
	ops, token, route string
	// profile: take the CPU profile during this target's last run.
	profile bool
}

// benchRow is one target's measured run.
type benchRow struct {
	Run    int
	Target string
	Rate   float64 // > 0: paced at this rate, not closed-loop
	Load   string  // load average when the run started
	loadResult
	CPUPerReq    time.Duration      // < 0: not measured
	AllocsPerReq float64            // < 0: not measured
	Codes        map[string]float64 // rempart's non-2xx answers by status code
	// Limit and Sched are rempart's admission limit and scheduling latency
	// p90 read at the end of the run; < 0: not read.
	Limit float64
	Sched time.Duration
}

// bench alternates load over its targets.
type bench struct {
	loader   loader
	runs     int
	duration time.Duration
	warmup   time.Duration
	conns    int
	profile  string    // CPU profile path, "" for none
	progress io.Writer // one line per run
	// paced adds, to each run, the proxies paced at half of nginx's rate
	// in that run, with the built-in generator: latency below saturation.
	paced bool
}

// run loads every target once per run, in the same order each time, so a
// neighbour's burst on the shared machine lands on one run of each rather
// than on every run of one.
func (b *bench) run(ctx context.Context, targets []*benchTarget) ([]benchRow, error) {
	var rows []benchRow
	for run := 1; run <= b.runs; run++ {
		for _, t := range targets {
			if b.warmup > 0 {
				if _, err := b.loader.Load(ctx, t.url, b.warmup, b.conns); err != nil {
					return rows, fmt.Errorf("bench: warm-up of %s: %w", t.name, err)
				}
			}
			row, err := b.measure(ctx, run, t, b.loader)
			if err != nil {
				return rows, fmt.Errorf("bench: run %d, %s: %w", run, t.name, err)
			}
			rows = append(rows, row)
			b.printProgress(row)
		}
		if !b.paced {
			continue
		}
		var nginx float64
		for _, r := range rows {
			if r.Run == run && r.Target == "nginx" && r.Rate == 0 {
				nginx = r.RPS
			}
		}
		if nginx <= 0 {
			continue
		}
		for _, t := range targets {
			if t.name == "direct" {
				continue
			}
			ld := goLoader{rate: nginx / 2}
			row, err := b.measure(ctx, run, t, ld)
			if err != nil {
				return rows, fmt.Errorf("bench: run %d, %s paced: %w", run, t.name, err)
			}
			row.Rate = ld.rate
			rows = append(rows, row)
			b.printProgress(row)
		}
	}
	return rows, ctx.Err()
}

func (b *bench) printProgress(r benchRow) {
	name := r.Target
	if r.Rate > 0 {
		name += fmt.Sprintf(" @%.0f/s", r.Rate)
	}
	fmt.Fprintf(b.progress, "bench: run %d/%d %-24s %8.0f req/s, p99 %s, non-2xx %d (load %s)\n",
		r.Run, b.runs, name, r.RPS, fmtLatency(r.P99), r.Non2xx, r.Load)
}

// measure runs the load once on t with CPU, allocations and status codes
// read before and after.
func (b *bench) measure(ctx context.Context, run int, t *benchTarget, ld loader) (benchRow, error) {
	row := benchRow{Run: run, Target: t.name, Load: loadAverage(), CPUPerReq: -1, AllocsPerReq: -1, Limit: -1, Sched: -1}
	var cpu0 drill.Usage
	if t.pid > 0 {
		var err error
		if cpu0, err = drill.ProcUsage([]int{t.pid}); err != nil {
			return row, err
		}
	}
	var before rempartCounters
	if t.ops != "" {
		var err error
		if before, err = scrapeRempart(ctx, t.ops, t.token, t.route); err != nil {
			return row, err
		}
	}
	profiled := make(chan error, 1)
	if t.profile && run == b.runs && b.profile != "" && ld == b.loader {
		// The profile ends a second before the load, so it sees only load.
		secs := max(1, int(b.duration/time.Second)-1)
		go func() { profiled <- fetchProfile(ctx, t.ops, t.token, secs, b.profile) }()
	} else {
		profiled <- nil
	}
	res, err := ld.Load(ctx, t.url, b.duration, b.conns)
	if perr := <-profiled; err == nil && perr != nil {
		err = perr
	}
	if err != nil {
		return row, err
	}
	row.loadResult = res
	if t.pid > 0 {
		cpu1, err := drill.ProcUsage([]int{t.pid})
		if err != nil {
			return row, err
		}
		row.CPUPerReq = cpuPerRequest(cpu1.CPU-cpu0.CPU, res.Requests)
	}
	if t.ops != "" {
		after, err := scrapeRempart(ctx, t.ops, t.token, t.route)
		if err != nil {
			return row, err
		}
		row.Limit = after.limit
		if after.sched >= 0 {
			row.Sched = time.Duration(after.sched * float64(time.Second))
		}
		if res.Requests > 0 {
			row.AllocsPerReq = (after.mallocs - before.mallocs) / float64(res.Requests)
		}
		row.Codes = map[string]float64{}
		for code, n := range after.codes {
			if d := n - before.codes[code]; d > 0 && !strings.HasPrefix(code, "2") {
				row.Codes[code] = d
			}
		}
	}
	return row, nil
}

// cpuPerRequest spreads cpu over n requests (/proc counts in 10 ms ticks:
// over a run of seconds, a fraction of a percent).
func cpuPerRequest(cpu time.Duration, n int64) time.Duration {
	if n <= 0 {
		return -1
	}
	return cpu / time.Duration(n)
}

// ratios are, per rempart target and run, its goodput (2xx/s) over
// nginx's in the same run, closed-loop rows only. A run without nginx has
// none.
func ratios(rows []benchRow) map[string]map[int]float64 {
	nginx := map[int]float64{}
	for _, r := range rows {
		if r.Target == "nginx" && r.Rate == 0 {
			nginx[r.Run] = r.Goodput()
		}
	}
	out := map[string]map[int]float64{}
	for _, r := range rows {
		if base, ok := nginx[r.Run]; ok && base > 0 && r.Rate == 0 && strings.HasPrefix(r.Target, "rempart") {
			if out[r.Target] == nil {
				out[r.Target] = map[int]float64{}
			}
			out[r.Target][r.Run] = r.Goodput() / base
		}
	}
	return out
}

// paceHeld is the share of the paced rate a run must reach for its
// latencies to be those of that rate.
const paceHeld = 0.95

// behind reports whether a paced row fell behind its rate.
func (r benchRow) behind() bool { return r.Rate > 0 && r.RPS < paceHeld*r.Rate }

// addedP99 is, per rempart target and run, its p99 latency minus nginx's
// in the same run, both paced at the same rate (half of nginx's
// closed-loop rate). A run where nginx itself fell behind the pace (the
// generator or the machine could not send it) has none: its latencies are
// the generator's queue, not nginx's.
func addedP99(rows []benchRow) map[string]map[int]time.Duration {
	nginx := map[int]time.Duration{}
	for _, r := range rows {
		if r.Target == "nginx" && r.Rate > 0 && !r.behind() {
			nginx[r.Run] = r.P99
		}
	}
	out := map[string]map[int]time.Duration{}
	for _, r := range rows {
		if base, ok := nginx[r.Run]; ok && r.Rate > 0 && strings.HasPrefix(r.Target, "rempart") {
			if out[r.Target] == nil {
				out[r.Target] = map[int]time.Duration{}
			}
			out[r.Target][r.Run] = r.P99 - base
		}
	}
	return out
}

// benchHeader describes the whole bench for its report.
type benchHeader struct {
	Loader             string
	PartnerLoopback    bool
	Conns, Runs        int
	Duration           time.Duration
	LoadStart, LoadEnd string
}

// writeBenchReport prints the runs' table and the ratios.
func writeBenchReport(w io.Writer, h benchHeader, rows []benchRow) {
	fmt.Fprintf(w, "rempart bench proxy: %s, %d connections, %d run(s) of %s per target, runs alternated; %d CPUs, load average %s at start, %s at end\n",
		h.Loader, h.Conns, h.Runs, h.Duration, runtime.NumCPU(), h.LoadStart, h.LoadEnd)
	if h.PartnerLoopback {
		fmt.Fprintln(w, "rempart: the load's source 127.0.0.1 on the scrubber's allow list (--allow-loopback)")
	} else {
		fmt.Fprintln(w, "rempart: default protections; all the load comes from one address, 127.0.0.1 (--allow-loopback allow-lists it)")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\ttarget\treq/s\t2xx/s\tmean\tp99\tnon-2xx\terrors\tCPU/req\tallocs/req\tadm. limit\tsched p90\tvs nginx\tload\t")
	rs, added := ratios(rows), addedP99(rows)
	for _, r := range rows {
		target, vs := r.Target, "-"
		if r.Rate > 0 {
			target += fmt.Sprintf(" @%.0f/s", r.Rate)
			if r.behind() {
				target += " (behind)"
			}
			if v, ok := added[r.Target][r.Run]; ok {
				vs = fmt.Sprintf("%+.2fms p99", float64(v)/float64(time.Millisecond))
			}
		} else if v, ok := rs[r.Target][r.Run]; ok {
			vs = fmt.Sprintf("%.2f×", v)
		}
		sched := "-"
		if r.Sched >= 0 {
			sched = fmtLatency(r.Sched)
		}
		fmt.Fprintf(tw, "%d\t%s\t%.0f\t%.0f\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Run, target, r.RPS, r.Goodput(),
			fmtLatency(r.Mean), fmtLatency(r.P99), fmtNon2xx(r.Non2xx, r.Codes), r.Errors, fmtCPU(r.CPUPerReq),
			fmtAllocs(r.AllocsPerReq), fmtAllocs(r.Limit), sched, vs, r.Load)
	}
	tw.Flush()
	for _, n := range slices.Sorted(maps.Keys(rs)) {
		v := slices.Collect(maps.Values(rs[n]))
		lo, hi := slices.Min(v), slices.Max(v)
		fmt.Fprintf(w, "%s goodput / nginx goodput, same run: %.2f–%.2f× over %d run(s) (goal ≥ 0.80×)\n", n, lo, hi, len(rs[n]))
	}
	if len(rs) == 0 {
		fmt.Fprintln(w, "no nginx runs: no ratios")
	}
	for _, r := range rows {
		if r.Target == "nginx" && r.behind() {
			fmt.Fprintf(w, "run %d: the paced load fell behind on nginx itself (%.0f of %.0f/s): the generator or the machine could not send it, so no added p99 for that run\n",
				r.Run, r.RPS, r.Rate)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(added)) {
		v := slices.Collect(maps.Values(added[n]))
		lo, hi := slices.Min(v), slices.Max(v)
		// A p99 of refusals is not a proxied request's: say how many.
		var refused float64
		for _, r := range rows {
			if r.Target == n && r.Rate > 0 && r.Requests > 0 {
				refused = max(refused, float64(r.Non2xx)/float64(r.Requests))
			}
		}
		fmt.Fprintf(w, "%s p99 minus nginx p99, both paced at half of nginx's rate: %s to %s over %d run(s), up to %.0f %% of its answers not 2xx (goal ≤ +1ms, none shed)\n",
			n, fmtSigned(lo), fmtSigned(hi), len(added[n]), 100*refused)
	}
}

func fmtSigned(d time.Duration) string {
	if d < 0 {
		return "-" + fmtLatency(-d)
	}
	return "+" + fmtLatency(d)
}

func fmtLatency(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%dµs", d/time.Microsecond)
}

func fmtCPU(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
}

func fmtAllocs(a float64) string {
	if a < 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", a)
}

// fmtNon2xx is the count with rempart's status codes, e.g. "1200 (503×1150 429×50)".
func fmtNon2xx(n int64, codes map[string]float64) string {
	s := strconv.FormatInt(n, 10)
	if len(codes) == 0 {
		return s
	}
	keys := slices.Sorted(maps.Keys(codes))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%.0f", k, codes[k])
	}
	return s + " (" + strings.Join(parts, " ") + ")"
}

// renderTemplate executes a configuration template with missing keys an error.
func renderTemplate(name, text string, data any) ([]byte, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%s template: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("%s template: %w", name, err)
	}
	return b.Bytes(), nil
}
