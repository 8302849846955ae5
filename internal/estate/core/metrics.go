package core

// Metric is one series the core exposes, described without any metrics
// library so that the estate builds on the standard library alone. The caller
// wraps each one in its registry's function-backed gauge or counter
// (prometheus.NewGaugeFunc / NewCounterFunc with Labels as ConstLabels).
type Metric struct {
	Name    string            // full name, e.g. rempart_estate_core_busy_workers
	Help    string            // one line for the exposition format
	Counter bool              // cumulative counter if true, gauge otherwise
	Labels  map[string]string // constant labels: component, and reason on failures
	Value   func() float64    // read at scrape time
}

// Metrics returns the core's series, labelled component=component so several
// cores (or a core per drill arm) can share one registry.
func (c *Core) Metrics(component string) []Metric {
	const prefix = "rempart_estate_core_"
	labels := func(kv ...string) map[string]string {
		m := map[string]string{"component": component}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	gauge := func(name, help string, v func(Stats) int) Metric {
		return Metric{Name: prefix + name, Help: help, Labels: labels(),
			Value: func() float64 { return float64(v(c.Stats())) }}
	}
	ms := []Metric{
		gauge("workers", "Size of the core's worker pool.", func(s Stats) int { return s.Workers }),
		gauge("busy_workers", "Workers held by a call, lock convoys included.", func(s Stats) int { return s.Busy }),
		gauge("queued", "Calls waiting for a worker.", func(s Stats) int { return s.Queued }),
		gauge("writes_in_flight", "Writes holding a worker.", func(s Stats) int { return s.WritesInFlight }),
		{
			Name: prefix + "completed_total", Help: "Calls that succeeded.", Counter: true, Labels: labels(),
			Value: func() float64 { return float64(c.completed.Load()) },
		},
		{
			Name: prefix + "abandoned_total", Help: "Calls finished after their caller had gone.", Counter: true, Labels: labels(),
			Value: func() float64 { return float64(c.abandoned.Load()) },
		},
	}
	for r := range numReasons {
		ms = append(ms, Metric{
			Name: prefix + "failed_total", Help: "Calls that failed, by reason.", Counter: true,
			Labels: labels("reason", r.String()),
			Value:  func() float64 { return float64(c.failed[r].Load()) },
		})
	}
	return ms
}
