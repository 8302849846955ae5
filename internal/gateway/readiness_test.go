package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"
)

// A shared dependency down is reported in /readyz's body, and the node stays
// in the balancer (200): every node shares it, and taking them all out at
// once would be the outage. A check that hangs is cut at checkTimeout.
func TestReadyzReportsDependencies(t *testing.T) {
	up := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("dial tcp 127.0.0.1:6379: connection refused") }
	hung := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	tests := []struct {
		name   string
		deps   []Dependency
		status string
		each   map[string]string
	}{
		{"all up", []Dependency{{"redis", up}, {"postgres", up}}, "ready", map[string]string{"redis": "up", "postgres": "up"}},
		{"redis down", []Dependency{{"redis", down}, {"postgres", up}}, "degraded", map[string]string{"redis": "down", "postgres": "up"}},
		{"postgres hung", []Dependency{{"redis", up}, {"postgres", hung}}, "degraded", map[string]string{"redis": "up", "postgres": "down"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, echo("public"), time.Second, tt.deps...)
			res, err := r.httpClient.Get(r.ops + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var got readiness
			if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != http.StatusOK || got.Status != tt.status {
				t.Fatalf("readyz = %d %+v, want 200 %s", res.StatusCode, got, tt.status)
			}
			for name, want := range tt.each {
				if d := got.Dependencies[name]; d.Status != want || (want == "down") != (d.Error != "") {
					t.Errorf("%s = %+v, want %s", name, d, want)
				}
			}
		})
	}
}
