package admission

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/rempart/rempart/internal/tier"
)

// value returns the value of the series of family name whose labels include
// want, failing the test when there is none.
func value(t *testing.T, mfs []*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("no series %s%v", name, want)
	return 0
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := mustNew(t, Options{Name: "core", Registerer: reg})
	h := c.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	<-send(h, "", tier.Critical, time.Time{})
	<-send(h, "", tier.Sheddable, time.Now().Add(-time.Second))

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"rempart_admission_admitted_total", map[string]string{"upstream": "core", "tier": "critical"}, 1},
		{"rempart_admission_admitted_total", map[string]string{"upstream": "core", "tier": "sheddable"}, 0},
		{"rempart_admission_shed_total", map[string]string{"upstream": "core", "tier": "sheddable", "reason": "deadline"}, 1},
		{"rempart_admission_shed_total", map[string]string{"upstream": "core", "tier": "normal", "reason": "queue_full"}, 0},
		{"rempart_admission_queue_wait_seconds", map[string]string{"upstream": "core", "tier": "critical"}, 1},
		{"rempart_admission_queued", map[string]string{"upstream": "core", "tier": "normal"}, 0},
		{"rempart_admission_in_flight", map[string]string{"upstream": "core", "tier": "critical"}, 0},
		{"rempart_admission_limit", map[string]string{"upstream": "core"}, 20},
		{"rempart_admission_critical_reserved", map[string]string{"upstream": "core"}, 4},
	}
	for _, tt := range tests {
		if got := value(t, mfs, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}

	// Controllers of other upstreams share the registry; a second one for
	// the same upstream is refused.
	if _, err := New(Options{Name: "identity", Registerer: reg}); err != nil {
		t.Errorf("second upstream: %v", err)
	}
	if _, err := New(Options{Name: "core", Registerer: reg}); err == nil || !strings.Contains(err.Error(), `"core"`) {
		t.Errorf("same upstream twice: %v, want an error naming it", err)
	}
}
