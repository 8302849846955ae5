package telemetry

import (
	"context"
	"math"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// schedLatencies is the runtime's histogram of how long goroutines waited,
// runnable, for a processor: the process's own measure of CPU saturation.
const schedLatencies = "/sched/latencies:seconds"

// SchedLatency samples the Go scheduler's latency once a period: the 90th
// percentile of the time goroutines spent runnable before they ran, over the
// last period. On a process with CPU to spare it is microseconds; when the
// machine's cores are all busy it climbs to tens of milliseconds, for every
// request alike, whatever its tier (measured in the full drill: 30-200 ms
// through the retry storm and the slow core, when every route's latency
// rose together).
type SchedLatency struct {
	p90 atomic.Int64 // nanoseconds, last period
}

// NewSchedLatency starts sampling every period until ctx ends.
func NewSchedLatency(ctx context.Context, period time.Duration) *SchedLatency {
	s := &SchedLatency{}
	sample := []metrics.Sample{{Name: schedLatencies}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return s // not measured by this runtime: never saturated
	}
	prev := copyCounts(sample[0].Value.Float64Histogram().Counts)
	go func() {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			metrics.Read(sample)
			h := sample[0].Value.Float64Histogram()
			s.p90.Store(int64(percentile(h.Buckets, h.Counts, prev, 0.9) * 1e9))
			prev = copyCounts(h.Counts)
		}
	}()
	return s
}

// P90 is the 90th percentile of the scheduler latency over the last period.
func (s *SchedLatency) P90() time.Duration { return time.Duration(s.p90.Load()) }

func copyCounts(c []uint64) []uint64 { return append([]uint64(nil), c...) }

// percentile returns the q-quantile of the counts added since prev, as the
// upper bound of the bucket it falls in (buckets[i] to buckets[i+1] holds
// counts[i]); zero when nothing was counted.
func percentile(buckets []float64, counts, prev []uint64, q float64) float64 {
	var total uint64
	for i := range counts {
		total += counts[i] - prev[i]
	}
	if total == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i := range counts {
		seen += counts[i] - prev[i]
		if seen >= want {
			up := buckets[i+1]
			if math.IsInf(up, 1) {
				up = buckets[i]
			}
			return up
		}
	}
	return 0
}
