package telemetry

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
)

// family returns the gathered family called name, failing the test when the
// registry has none. (prometheus/testutil needs a module rempart does not
// require, so tests gather from the registry directly.)
func family(t *testing.T, m *Metrics, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

func TestMetrics(t *testing.T) {
	m := NewMetrics()
	m.Requests.WithLabelValues("card-authorize", "critical", "200").Inc()
	m.Duration.WithLabelValues("card-authorize", "critical").Observe(0.003)
	m.InFlight.WithLabelValues("critical").Set(2)

	tests := []struct {
		name   string
		typ    dto.MetricType
		labels map[string]string
	}{
		{"rempart_requests_total", dto.MetricType_COUNTER, map[string]string{"route": "card-authorize", "tier": "critical", "code": "200"}},
		{"rempart_request_duration_seconds", dto.MetricType_HISTOGRAM, map[string]string{"route": "card-authorize", "tier": "critical"}},
		{"rempart_requests_in_flight", dto.MetricType_GAUGE, map[string]string{"tier": "critical"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mf := family(t, m, tt.name)
			if mf.GetType() != tt.typ {
				t.Errorf("type %v, want %v", mf.GetType(), tt.typ)
			}
			if len(mf.GetMetric()) != 1 {
				t.Fatalf("%d series, want 1", len(mf.GetMetric()))
			}
			got := labels(mf.GetMetric()[0])
			if len(got) != len(tt.labels) {
				t.Errorf("labels %v, want %v", got, tt.labels)
			}
			for k, v := range tt.labels {
				if got[k] != v {
					t.Errorf("label %s = %q, want %q", k, got[k], v)
				}
			}
		})
	}

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`rempart_requests_total{code="200",route="card-authorize",tier="critical"} 1`,
		`rempart_request_duration_seconds_bucket{route="card-authorize",tier="critical",le="0.005"} 1`,
		`rempart_requests_in_flight{tier="critical"} 2`,
		"go_goroutines ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestMetricsLint(t *testing.T) {
	m := NewMetrics()
	m.Requests.WithLabelValues("r", "normal", "200").Inc()
	m.Duration.WithLabelValues("r", "normal").Observe(1)
	m.InFlight.WithLabelValues("normal").Inc()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var ours []*dto.MetricFamily
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "rempart_") {
			ours = append(ours, mf)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(ours).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}
