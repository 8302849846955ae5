package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// What `rempart bench proxy` reads about the processes it measures beside
// their CPU time (drill.ProcUsage): the machine's load average, and
// rempart's own counters from its /metrics.

// loadAverage is /proc/loadavg's three averages, or "?" where there is none.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

// rempartCounters are the counters bench reads from rempart's /metrics.
type rempartCounters struct {
	mallocs float64            // go_memstats_mallocs_total
	codes   map[string]float64 // rempart_requests_total of one route, by code
	// limit is the admission limit learnt for the bench's upstream (gauge
	// rempart_admission_limit{upstream="echo/echo"}, the lowest if the
	// upstream is in several pools), -1 when absent.
	limit float64
	// sched is rempart_sched_latency_p90_seconds, -1 when absent.
	sched float64
}

var promLabel = regexp.MustCompile(`(\w+)="([^"]*)"`)

// promLabels are a sample's labels: name{a="x",b="y"}.
func promLabels(sample string) map[string]string {
	labels := map[string]string{}
	for _, m := range promLabel.FindAllStringSubmatch(sample, -1) {
		labels[m[1]] = m[2]
	}
	return labels
}

// parseRempartMetrics reads the Prometheus text exposition for the Go
// runtime's malloc count, route's answers by status code, the admission
// limit and the scheduling latency.
func parseRempartMetrics(r io.Reader, route string) (rempartCounters, error) {
	c := rempartCounters{codes: map[string]float64{}, limit: -1, sched: -1}
	found := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		name, value := line[:sp], line[sp+1:]
		switch {
		case name == "go_memstats_mallocs_total":
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				return c, fmt.Errorf("metrics: %s: %w", name, err)
			}
			c.mallocs, found = v, true
		case name == "rempart_sched_latency_p90_seconds":
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				return c, fmt.Errorf("metrics: %s: %w", name, err)
			}
			c.sched = v
		case strings.HasPrefix(name, "rempart_admission_limit{"):
			// The label is the pool and upstream, "echo/echo" today.
			if up := promLabels(name)["upstream"]; up != benchUpstream && !strings.HasPrefix(up, benchUpstream+"/") {
				continue
			}
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				return c, fmt.Errorf("metrics: %s: %w", name, err)
			}
			if c.limit < 0 || v < c.limit {
				c.limit = v
			}
		case strings.HasPrefix(name, "rempart_requests_total{"):
			labels := promLabels(name)
			if labels["route"] != route {
				continue
			}
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				return c, fmt.Errorf("metrics: %s: %w", name, err)
			}
			c.codes[labels["code"]] += v
		}
	}
	if err := sc.Err(); err != nil {
		return c, fmt.Errorf("metrics: %w", err)
	}
	if !found {
		return c, fmt.Errorf("metrics: no go_memstats_mallocs_total")
	}
	return c, nil
}

// scrapeRempart reads rempart's counters from its ops listener.
func scrapeRempart(ctx context.Context, opsAddr, token, route string) (rempartCounters, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+opsAddr+"/metrics", nil)
	if err != nil {
		return rempartCounters{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return rempartCounters{}, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return rempartCounters{}, fmt.Errorf("metrics: status %d", resp.StatusCode)
	}
	return parseRempartMetrics(resp.Body, route)
}

// fetchProfile saves a CPU profile of secs seconds from rempart's ops
// listener (behind the admin login: the automation token) to path.
func fetchProfile(ctx context.Context, opsAddr, token string, secs int, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs+30)*time.Second)
	defer cancel()
	url := fmt.Sprintf("http://%s/ops/debug/pprof/profile?seconds=%d", opsAddr, secs)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("cpu profile: status %d: %s", resp.StatusCode, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("cpu profile: %w", err)
	}
	return f.Close()
}
