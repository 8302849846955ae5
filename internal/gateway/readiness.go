package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Dependency is something the node calls that can fail on its own: a Redis,
// a PostgreSQL. The gateway owns this small contract; cmd/rempart builds the
// checks.
type Dependency struct {
	// Name labels it in /readyz, e.g. redis or postgres.
	Name string
	// Check returns nil while the dependency answers within ctx.
	Check func(ctx context.Context) error
}

// checkTimeout bounds each dependency check of one /readyz.
const checkTimeout = 250 * time.Millisecond

// What /readyz tells a balancer. Its status code answers one question:
// should this node get traffic? 503 only while the node itself cannot serve
// (starting, draining, a listener lost). A dependency down is reported in the
// body (status "degraded", the dependency "down" with its error) and on the
// metrics, but the answer stays 200: Redis and PostgreSQL are shared by every
// node, so a balancer that took a node out for them would take every node out
// at once, and each node still serves through its fallbacks (local limits,
// stand-in, 503 temporarily_unavailable on refresh) what it can. A balancer
// should therefore act on the code only, and alert on the body.
type readiness struct {
	Status       string                `json:"status"` // ready, degraded or not_ready
	Dependencies map[string]depReading `json:"dependencies,omitempty"`
}

type depReading struct {
	Status string `json:"status"` // up or down
	Error  string `json:"error,omitempty"`
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	out := readiness{Status: "ready"}
	if len(s.Dependencies) > 0 {
		out.Dependencies = make(map[string]depReading, len(s.Dependencies))
		var mu sync.Mutex
		var wg sync.WaitGroup
		ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
		defer cancel()
		for _, d := range s.Dependencies {
			wg.Go(func() {
				rd := depReading{Status: "up"}
				if err := d.Check(ctx); err != nil {
					rd = depReading{Status: "down", Error: err.Error()}
				}
				mu.Lock()
				out.Dependencies[d.Name] = rd
				if rd.Status == "down" {
					out.Status = "degraded"
				}
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	code := http.StatusOK
	if !s.ready.Load() {
		out.Status, code = "not_ready", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(out)
}
