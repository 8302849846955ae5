package drill

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// outcome is what finally happened to one offered request.
type outcome int

const (
	outOK      outcome = iota // 2xx
	outShed                   // 429 or 503 carrying Retry-After: an honest "not now"
	outError                  // any other status, or the connection failed
	outTimeout                // the client's time-out fired
	outDropped                // never sent: the arm's in-flight bound was reached
)

// Counts are what happened to the requests of one cell (arm × channel ×
// population × second or phase). Requests are logical: a request retried
// three times is offered once, with three attempts, and counted by its final
// outcome. Offered = OK + Shed + Errors + Timeouts + Dropped once it is over.
type Counts struct {
	Offered  int64 `json:"offered"`
	OK       int64 `json:"ok"`
	Shed     int64 `json:"shed"`
	Errors   int64 `json:"errors"`
	Timeouts int64 `json:"timeouts"`
	Dropped  int64 `json:"client_dropped"`
	Attempts int64 `json:"attempts"`
	// Breaches counts attacks that got what the attacker wanted (Target.Attack).
	Breaches int64 `json:"breaches,omitempty"`
}

func (c *Counts) add(o Counts) {
	c.Offered += o.Offered
	c.OK += o.OK
	c.Shed += o.Shed
	c.Errors += o.Errors
	c.Timeouts += o.Timeouts
	c.Dropped += o.Dropped
	c.Attempts += o.Attempts
	c.Breaches += o.Breaches
}

// Success is the share of offered requests answered 2xx; false when none
// were offered.
func (c Counts) Success() (float64, bool) {
	if c.Offered == 0 {
		return 0, false
	}
	return float64(c.OK) / float64(c.Offered), true
}

// Latency summarises a histogram of latencies in milliseconds; all zero when
// nothing was answered.
type Latency struct {
	N   int64   `json:"n"`
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// Histogram bounds: microseconds from 1 µs to 2 minutes at two significant
// digits (1 % error), about 21 KB each.
const (
	histMax    = int64(2 * time.Minute / time.Microsecond)
	histDigits = 2
)

func newHist() *hdr.Histogram { return hdr.New(1, histMax, histDigits) }

func record(h *hdr.Histogram, d time.Duration) {
	us := min(max(d.Microseconds(), 1), histMax)
	_ = h.RecordValue(us) // in range by construction
}

func summarise(h *hdr.Histogram) Latency {
	if h == nil || h.TotalCount() == 0 {
		return Latency{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{N: h.TotalCount(), P50: ms(h.ValueAtQuantile(50)), P99: ms(h.ValueAtQuantile(99)), Max: ms(h.Max())}
}

// result is one finished request, as the load engine reports it.
type result struct {
	out      outcome
	status   string // HTTP status code, "timeout" or "transport"
	latency  time.Duration
	attempts int
	breach   bool // an attack that got what it wanted
}

// counter is Counts updated concurrently.
type counter struct {
	offered, ok, shed, errors, timeouts, dropped, attempts, breaches atomic.Int64
}

func (c *counter) count(o outcome, attempts int, breach bool) {
	if breach {
		c.breaches.Add(1)
	}
	switch o {
	case outOK:
		c.ok.Add(1)
	case outShed:
		c.shed.Add(1)
	case outError:
		c.errors.Add(1)
	case outTimeout:
		c.timeouts.Add(1)
	case outDropped:
		c.dropped.Add(1)
	}
	c.attempts.Add(int64(attempts))
}

func (c *counter) load() Counts {
	return Counts{Offered: c.offered.Load(), OK: c.ok.Load(), Shed: c.shed.Load(), Errors: c.errors.Load(),
		Timeouts: c.timeouts.Load(), Dropped: c.dropped.Load(), Attempts: c.attempts.Load(), Breaches: c.breaches.Load()}
}

// take reads and resets; fields are read one by one, which is exact enough
// for a progress line.
func (c *counter) take() Counts {
	return Counts{Offered: c.offered.Swap(0), OK: c.ok.Swap(0), Shed: c.shed.Swap(0), Errors: c.errors.Swap(0),
		Timeouts: c.timeouts.Swap(0), Dropped: c.dropped.Swap(0), Attempts: c.attempts.Swap(0), Breaches: c.breaches.Swap(0)}
}

// recorder collects one arm's run. Counts are dense arrays of atomic
// counters indexed by second, channel and population, so that the
// dispatcher never waits on a lock: under a few thousand finishing requests a
// shared mutex forms a convoy, and every lock handoff costs a scheduling
// delay (measured: dispatch lag p99 235 ms at 1,800 req/s with one mutex).
// Latency histograms, which are not safe for concurrent use, are guarded per
// channel and allocated on first use: per second × channel (the plots),
// per second × channel × population, and per phase × channel × population
// (SLO lines, which pool any selection by merging).
type recorder struct {
	nsec, nch, npop, nphase int

	counts []counter      // [sec][ch][pop]
	phase  []counter      // [phase][ch][pop]
	live   []counter      // [ch], since the last progress tick
	lag    *hdr.Histogram // dispatch lag; written by the dispatcher only

	chMu     []sync.Mutex       // [ch], guards the four below
	secLat   []*hdr.Histogram   // [sec][ch]
	cellLat  []*hdr.Histogram   // [sec][ch][pop]
	phaseLat []*hdr.Histogram   // [phase][ch][pop]
	statuses []map[string]int64 // [phase][ch]
}

func newRecorder(nsec, nch, npop, nphase int) *recorder {
	return &recorder{
		nsec: nsec, nch: nch, npop: npop, nphase: nphase,
		counts:   make([]counter, nsec*nch*npop),
		phase:    make([]counter, nphase*nch*npop),
		live:     make([]counter, nch),
		lag:      newHist(),
		chMu:     make([]sync.Mutex, nch),
		secLat:   make([]*hdr.Histogram, nsec*nch),
		cellLat:  make([]*hdr.Histogram, nsec*nch*npop),
		phaseLat: make([]*hdr.Histogram, nphase*nch*npop),
		statuses: make([]map[string]int64, nphase*nch),
	}
}

func (r *recorder) sec(a arrival) int { return min(int(a.at/time.Second), r.nsec-1) }

// offer counts an arrival; a dropped one is final at once. Only the
// dispatcher calls it.
func (r *recorder) offer(a arrival, ch int, lag time.Duration, dropped bool) {
	record(r.lag, lag)
	cells := [...]*counter{&r.counts[(r.sec(a)*r.nch+ch)*r.npop+a.pop], &r.phase[(a.phase*r.nch+ch)*r.npop+a.pop]}
	for _, c := range cells {
		c.offered.Add(1)
		if dropped {
			c.dropped.Add(1)
		}
	}
	if dropped {
		r.live[ch].offered.Add(1)
		r.live[ch].dropped.Add(1)
	}
}

// done records a sent request's final outcome.
func (r *recorder) done(a arrival, ch int, res result) {
	s := r.sec(a)
	r.counts[(s*r.nch+ch)*r.npop+a.pop].count(res.out, res.attempts, res.breach)
	r.phase[(a.phase*r.nch+ch)*r.npop+a.pop].count(res.out, res.attempts, res.breach)
	r.live[ch].count(res.out, res.attempts, res.breach)
	r.live[ch].offered.Add(1)

	r.chMu[ch].Lock()
	defer r.chMu[ch].Unlock()
	m := &r.statuses[a.phase*r.nch+ch]
	if *m == nil {
		*m = make(map[string]int64)
	}
	(*m)[res.status]++
	for _, h := range [...]**hdr.Histogram{&r.secLat[s*r.nch+ch], &r.cellLat[(s*r.nch+ch)*r.npop+a.pop], &r.phaseLat[(a.phase*r.nch+ch)*r.npop+a.pop]} {
		if *h == nil {
			*h = newHist()
		}
		record(*h, res.latency)
	}
}

// takeLive returns per-channel counts since the last call, for progress.
func (r *recorder) takeLive() []Counts {
	out := make([]Counts, r.nch)
	for i := range r.live {
		out[i] = r.live[i].take()
	}
	return out
}

// phaseHist merges the phase histograms a selection covers. It is called
// once the load is over.
func (r *recorder) phaseHist(sel func(phase, ch, pop int) bool) (*hdr.Histogram, Counts) {
	h := newHist()
	var c Counts
	for ph := range r.nphase {
		for ch := range r.nch {
			for pop := range r.npop {
				if !sel(ph, ch, pop) {
					continue
				}
				i := (ph*r.nch+ch)*r.npop + pop
				c.add(r.phase[i].load())
				if r.phaseLat[i] != nil {
					h.Merge(r.phaseLat[i])
				}
			}
		}
	}
	return h, c
}

// Usage is the cumulative CPU time and resident memory of an arm's processes.
type Usage struct {
	CPU time.Duration
	RSS int64 // bytes
}

// UsageFunc samples an arm's processes, each with its descendants (an
// nginx master and its workers); no pid means the drill's own process.
type UsageFunc func(pids []int) (Usage, error)

// Linux reports utime and stime in clock ticks of USER_HZ, which is 100 on
// every architecture (see proc(5), "sysconf(_SC_CLK_TCK)").
const clockTicks = 100

// procStat is what ProcUsage reads from one /proc/PID/stat.
type procStat struct {
	ppid  int
	ticks int64 // utime + stime
	dead  int64 // cutime + cstime: children that exited and were reaped
	pages int64 // rss
}

func readStat(name string) (procStat, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return procStat{}, fmt.Errorf("read process stat: %w", err)
	}
	// The command name is in parentheses and may contain spaces; fields
	// are counted from the closing one: state is field 3 of proc(5).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parse %s: no command name", name)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 22 {
		return procStat{}, fmt.Errorf("parse %s: %d fields", name, len(f))
	}
	num := func(k int) int64 { v, _ := strconv.ParseInt(string(f[k-3]), 10, 64); return v }
	return procStat{ppid: int(num(4)), ticks: num(14) + num(15), dead: num(16) + num(17), pages: num(24)}, nil
}

// ProcUsage reads /proc/self/stat when pids is empty. Otherwise it sums over
// the processes and all their descendants, found by their parent in
// /proc/*/stat: CPU includes the reaped children of each (cutime, cstime), so
// a worker that exited keeps its share; RSS is the sum of each live
// process's, which counts pages the processes share (an nginx master's and
// workers' binary and shared zones) once per process, an overestimate of a
// few megabytes. The processes found are read again together at the end:
// the scan of /proc can take a second on a saturated machine, and a CPU
// figure read at its start would be charged to the wrong interval.
func ProcUsage(pids []int) (Usage, error) {
	usage := func(ticks, pages int64) Usage {
		return Usage{CPU: time.Duration(ticks) * time.Second / clockTicks, RSS: pages * int64(os.Getpagesize())}
	}
	if len(pids) == 0 {
		// Not cutime: the drill's reaped children are other arms.
		st, err := readStat("/proc/self/stat")
		return usage(st.ticks, st.pages), err
	}
	all := make(map[int]procStat)
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return Usage{}, fmt.Errorf("list processes: %w", err)
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if st, err := readStat("/proc/" + d.Name() + "/stat"); err == nil {
			all[pid] = st
		} // else it exited since the listing
	}
	members, err := tree(all, pids)
	if err != nil {
		return Usage{}, err
	}
	var ticks, pages int64
	for _, pid := range members {
		st, err := readStat("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			if slices.Contains(pids, pid) {
				return Usage{}, err
			}
			continue // a descendant that exited since the scan
		}
		ticks += st.ticks + st.dead
		pages += st.pages
	}
	return usage(ticks, pages), nil
}

// tree lists the processes of a process table (pid to stat) that are pids
// or descend from one; every one of pids must be in the table.
func tree(all map[int]procStat, pids []int) ([]int, error) {
	children := make(map[int][]int)
	for pid, st := range all {
		children[st.ppid] = append(children[st.ppid], pid)
	}
	for _, pid := range pids {
		if _, ok := all[pid]; !ok {
			return nil, fmt.Errorf("process %d: not running", pid)
		}
	}
	var members []int
	queue := slices.Clone(pids)
	seen := make(map[int]bool)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if !seen[pid] {
			seen[pid] = true
			members = append(members, pid)
			queue = append(queue, children[pid]...)
		}
	}
	slices.Sort(members)
	return members, nil
}

// fill writes the recorder's figures into an arm's result. Cells that never
// saw a request are left out.
func (r *recorder) fill(a *ArmResult, s *Scenario, chans []ChannelInfo) {
	a.Seconds = r.nsec
	a.Series, a.Latency, a.Phases = []Series{}, []LatencySeries{}, []PhaseResult{}
	for ch := range r.nch {
		for pop := range r.npop {
			sr := Series{Channel: chans[ch].Name, Population: s.Populations[pop].Name,
				Seconds: make([]Counts, r.nsec), Latency: make([]Latency, r.nsec)}
			var seen bool
			for sec := range r.nsec {
				i := (sec*r.nch+ch)*r.npop + pop
				c := r.counts[i].load()
				sr.Seconds[sec], sr.Latency[sec] = c, summarise(r.cellLat[i])
				seen = seen || c.Offered > 0
			}
			if seen {
				a.Series = append(a.Series, sr)
			}
		}
		ls := LatencySeries{Channel: chans[ch].Name, Seconds: make([]Latency, r.nsec)}
		var seen bool
		for sec := range r.nsec {
			ls.Seconds[sec] = summarise(r.secLat[sec*r.nch+ch])
			seen = seen || ls.Seconds[sec].N > 0
		}
		if seen {
			a.Latency = append(a.Latency, ls)
		}
	}
	for ph := range r.nphase {
		pr := PhaseResult{Phase: s.Phases[ph].Name, Channels: []Cell{}, Cells: []Cell{}}
		for ch := range r.nch {
			chCell := Cell{Channel: chans[ch].Name, Statuses: r.statuses[ph*r.nch+ch]}
			chHist := newHist()
			for pop := range r.npop {
				i := (ph*r.nch+ch)*r.npop + pop
				c := r.phase[i].load()
				if c.Offered == 0 {
					continue
				}
				pr.Cells = append(pr.Cells, Cell{Channel: chans[ch].Name, Population: s.Populations[pop].Name,
					Counts: c, Latency: summarise(r.phaseLat[i])})
				chCell.add(c)
				if r.phaseLat[i] != nil {
					chHist.Merge(r.phaseLat[i])
				}
			}
			if chCell.Dropped > 0 {
				if chCell.Statuses == nil {
					chCell.Statuses = make(map[string]int64)
				}
				chCell.Statuses["client_dropped"] = chCell.Dropped
			}
			if chCell.Offered > 0 {
				chCell.Latency = summarise(chHist)
				pr.Channels = append(pr.Channels, chCell)
				pr.Total.add(chCell.Counts)
			}
		}
		a.Phases = append(a.Phases, pr)
	}
	for _, c := range chans {
		if !c.Attack {
			continue
		}
		ar := AttackResult{Kind: c.Name, Statuses: map[string]int64{}}
		for _, p := range a.Phases {
			for _, cell := range p.Channels {
				if cell.Channel != c.Name {
					continue
				}
				ar.add(cell.Counts)
				for k, n := range cell.Statuses {
					ar.Statuses[k] += n
				}
			}
		}
		a.Attacks = append(a.Attacks, ar)
	}
	a.Generator.LagP50 = float64(r.lag.ValueAtQuantile(50)) / 1000
	a.Generator.LagP99 = float64(r.lag.ValueAtQuantile(99)) / 1000
	a.Generator.LagMax = float64(r.lag.Max()) / 1000
	for _, p := range a.Phases {
		a.Generator.Arrivals += p.Total.Offered
		a.Generator.ClientDropped += p.Total.Dropped
	}
}
