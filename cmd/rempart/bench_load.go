package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The load generators of `rempart bench proxy`: wrk when it is installed
// (written in C, it leaves more of the two cores to the proxies), else a
// closed-loop generator in Go. Both keep every connection alive and report
// the same loadResult.

// loadResult is one load run against one URL.
type loadResult struct {
	Requests int64         // answers received
	Seconds  float64       // how long the load ran
	RPS      float64       // answers a second
	Mean     time.Duration // mean latency
	P99      time.Duration // 99th percentile latency
	Non2xx   int64         // answers that were not 2xx (wrk: not 2xx or 3xx)
	Errors   int64         // connect, read, write errors and time-outs
}

// Goodput is the 2xx answers a second: RPS's share of them.
func (r loadResult) Goodput() float64 {
	if r.Requests <= 0 {
		return 0
	}
	return r.RPS * float64(r.Requests-r.Non2xx) / float64(r.Requests)
}

// loader runs closed-loop load: conns connections, each sending its next
// request when the previous answer is in, for d.
type loader interface {
	Name() string
	Load(ctx context.Context, url string, d time.Duration, conns int) (loadResult, error)
}

// wrkLoader runs the wrk binary.
type wrkLoader struct {
	bin     string
	threads int
}

func (w wrkLoader) Name() string { return fmt.Sprintf("wrk -t%d", w.threads) }

func (w wrkLoader) Load(ctx context.Context, url string, d time.Duration, conns int) (loadResult, error) {
	// wrk stops itself after -d; the bound is for a wrk that hangs.
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	secs := max(1, int(d.Round(time.Second)/time.Second))
	cmd := exec.CommandContext(ctx, w.bin, "-t", strconv.Itoa(w.threads), "-c", strconv.Itoa(conns),
		"-d", strconv.Itoa(secs)+"s", "--timeout", "5s", "--latency", url)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return loadResult{}, fmt.Errorf("wrk: %s: %w", strings.TrimSpace(string(ee.Stderr)), err)
		}
		return loadResult{}, fmt.Errorf("wrk: %w", err)
	}
	return parseWrk(string(out))
}

var (
	wrkRequests = regexp.MustCompile(`(?m)^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),`)
	wrkRPS      = regexp.MustCompile(`(?m)^Requests/sec:\s+([\d.]+)`)
	wrkMean     = regexp.MustCompile(`(?m)^\s+Latency\s+([\d.]+)(us|ms|s|m|h)\s`)
	wrkP99      = regexp.MustCompile(`(?m)^\s+99(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$`)
	wrkNon2xx   = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses: (\d+)`)
	wrkSocket   = regexp.MustCompile(`(?m)^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// wrkUnits are wrk's time units (its format_time).
var wrkUnits = map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second,
	"m": time.Minute, "h": time.Hour}

func wrkDuration(num, unit string) (time.Duration, error) {
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("wrk output: %q: %w", num, err)
	}
	return time.Duration(f * float64(wrkUnits[unit])), nil
}

// parseWrk reads wrk's report (run with --latency): the request count and
// time, requests a second, mean and p99 latency, non-2xx answers and socket
// errors. A report without its count, rate or latency lines is an error.
func parseWrk(out string) (loadResult, error) {
	var r loadResult
	m := wrkRequests.FindStringSubmatch(out)
	if m == nil {
		return r, errors.New("wrk output: no \"N requests in T\" line")
	}
	r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	d, err := wrkDuration(m[2], m[3])
	if err != nil {
		return r, err
	}
	r.Seconds = d.Seconds()
	if m = wrkRPS.FindStringSubmatch(out); m == nil {
		return r, errors.New("wrk output: no Requests/sec line")
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	if m = wrkMean.FindStringSubmatch(out); m == nil {
		return r, errors.New("wrk output: no Latency line")
	}
	if r.Mean, err = wrkDuration(m[1], m[2]); err != nil {
		return r, err
	}
	if m = wrkP99.FindStringSubmatch(out); m == nil {
		return r, errors.New("wrk output: no 99% line (run wrk with --latency)")
	}
	if r.P99, err = wrkDuration(m[1], m[2]); err != nil {
		return r, err
	}
	if m = wrkNon2xx.FindStringSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m = wrkSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.Errors += n
		}
	}
	return r, nil
}

// goLoader is the built-in generator. It shares the harness's process (and
// the echo back end's cores), so its figures are lower than wrk's; the
// ratios of one run still compare like with like.
type goLoader struct {
	// maxRequests, when > 0, ends the run after that many answers (tests).
	maxRequests int64
	// rate, when > 0, paces the load: rate requests a second in all, each
	// connection on its own schedule, and a latency counts from when its
	// request was due, so a proxy that falls behind is charged its queue
	// (no coordinated omission). 0: closed loop.
	rate float64
}

func (g goLoader) Name() string {
	if g.rate > 0 {
		return fmt.Sprintf("built-in Go load generator at %.0f/s", g.rate)
	}
	return "built-in Go load generator"
}

func (g goLoader) Load(ctx context.Context, url string, d time.Duration, conns int) (loadResult, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()

	var (
		sent         atomic.Int64
		mu           sync.Mutex
		lat          []time.Duration
		non2xx, errs int64
		wg           sync.WaitGroup
	)
	start := time.Now()
	var every time.Duration // each connection's interval when paced
	if g.rate > 0 {
		every = time.Duration(float64(conns) / g.rate * float64(time.Second))
	}
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			var bad, failed int64
			// Paced connections start spread over one interval.
			due := start.Add(every * time.Duration(i) / time.Duration(conns))
			for ctx.Err() == nil && (g.maxRequests <= 0 || sent.Add(1) <= g.maxRequests) {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if err != nil {
					failed++
					break
				}
				t0 := time.Now()
				if every > 0 {
					if wait := time.Until(due); wait > 0 {
						select {
						case <-time.After(wait):
						case <-ctx.Done():
							continue
						}
					}
					t0, due = due, due.Add(every)
				}
				resp, err := hc.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						failed++
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mine = append(mine, time.Since(t0))
				if resp.StatusCode/100 != 2 {
					bad++
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			non2xx += bad
			errs += failed
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(lat) == 0 {
		return loadResult{}, fmt.Errorf("load %s: no answer in %s (%d errors)", url, elapsed.Round(time.Millisecond), errs)
	}
	return summarize(lat, elapsed, non2xx, errs), nil
}

// summarize turns latencies into a loadResult.
func summarize(lat []time.Duration, elapsed time.Duration, non2xx, errs int64) loadResult {
	slices.Sort(lat)
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	n := len(lat)
	// Nearest rank: the smallest latency at or above 99 % of the answers.
	rank := max(0, (99*n+99)/100-1)
	return loadResult{
		Requests: int64(n), Seconds: elapsed.Seconds(), RPS: float64(n) / elapsed.Seconds(),
		Mean: sum / time.Duration(n), P99: lat[rank], Non2xx: non2xx, Errors: errs,
	}
}
