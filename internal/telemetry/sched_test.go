package telemetry

import (
	"math"
	"testing"
)

func TestPercentile(t *testing.T) {
	buckets := []float64{0, 0.001, 0.01, 0.1, math.Inf(1)}
	tests := []struct {
		name   string
		counts []uint64
		prev   []uint64
		q      float64
		want   float64
	}{
		{"nothing new", []uint64{5, 5, 5, 5}, []uint64{5, 5, 5, 5}, 0.9, 0},
		{"all fast", []uint64{100, 0, 0, 0}, []uint64{0, 0, 0, 0}, 0.9, 0.001},
		{"a tenth slow is the 90th", []uint64{90, 0, 10, 0}, []uint64{0, 0, 0, 0}, 0.9, 0.001},
		{"over a tenth slow", []uint64{80, 0, 20, 0}, []uint64{0, 0, 0, 0}, 0.9, 0.1},
		{"only the counts since prev", []uint64{1000, 0, 20, 0}, []uint64{1000, 0, 0, 0}, 0.9, 0.1},
		{"the open last bucket reads as its lower bound", []uint64{0, 0, 0, 7}, []uint64{0, 0, 0, 0}, 0.5, 0.1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(buckets, tt.counts, tt.prev, tt.q); got != tt.want {
				t.Errorf("percentile = %v, want %v", got, tt.want)
			}
		})
	}
}
