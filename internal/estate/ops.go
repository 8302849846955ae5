package estate

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/estate/core"
	"github.com/rempart/rempart/internal/problem"
)

// OpsHandler serves the estate's operations API, meant for the ops listener:
//
//	GET  /ops/estate/faults              the faults in force, per component
//	PUT  /ops/estate/faults/{component}  replace a component's faults (core, services)
//	GET  /ops/estate/stats               workers, queues, counters
//	GET  /ops/estate/check               ledger invariant check
//	POST /ops/estate/sms                 send a text ({"to","text"}): a remote gateway's login codes
//	POST /ops/estate/check               same, with {"acknowledged": [keys]} to check
//	GET  /ops/estate/sms?to=&limit=      the simulated SMS outbox, newest first
func (e *Estate) OpsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ops/estate/faults", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]core.Faults{"core": e.core.Faults(), "services": e.services.Faults()})
	})
	mux.HandleFunc("PUT /ops/estate/faults/{component}", e.putFaults)
	mux.HandleFunc("GET /ops/estate/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"core": e.core.Stats(), "services": e.services.Stats(),
			"open_3ds_challenges": e.acs.Open(), "uptime_seconds": int(time.Since(e.started).Seconds()),
		})
	})
	mux.HandleFunc("GET /ops/estate/check", func(w http.ResponseWriter, r *http.Request) { e.check(w, r, nil) })
	mux.HandleFunc("POST /ops/estate/check", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Acknowledged []string `json:"acknowledged"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			problem.Write(w, jsonProblem(err))
			return
		}
		e.check(w, r, body.Acknowledged)
	})
	mux.HandleFunc("GET /ops/estate/sms", func(w http.ResponseWriter, r *http.Request) {
		limit := 20
		if s := r.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 1000 {
				problem.Write(w, invalid("limit", "limit must be a whole number between 1 and 1000"))
				return
			}
			limit = n
		}
		writeJSON(w, http.StatusOK, map[string]any{"messages": e.sms.Latest(r.URL.Query().Get("to"), limit)})
	})
	// The SMS gateway for a gateway in front of this estate over HTTP
	// (rempart serve with estate.ops_url): its login codes go out here,
	// beside the 3-D Secure codes, and are read back where they are.
	mux.HandleFunc("POST /ops/estate/sms", func(w http.ResponseWriter, r *http.Request) {
		var m struct {
			To   string `json:"to"`
			Text string `json:"text"`
		}
		if p := decodeJSON(r, &m); p != nil {
			problem.Write(w, p)
			return
		}
		switch {
		case m.To == "" || len(m.To) > 32:
			problem.Write(w, invalid("to", "to must be a phone number of 1 to 32 characters"))
			return
		case m.Text == "" || len(m.Text) > 480:
			problem.Write(w, invalid("text", "text must be 1 to 480 characters (three SMS)"))
			return
		}
		e.sms.Send(m.To, m.Text, time.Now())
		w.WriteHeader(http.StatusAccepted)
	})
	return mux
}

func (e *Estate) putFaults(w http.ResponseWriter, r *http.Request) {
	var c *core.Core
	switch r.PathValue("component") {
	case "core":
		c = e.core
	case "services":
		c = e.services
	default:
		problem.Write(w, problem.New(http.StatusNotFound, "unknown-component",
			`component must be "core" or "services"`).WithField("component"))
		return
	}
	var f core.Faults
	if p := decodeJSON(r, &f); p != nil {
		problem.Write(w, p)
		return
	}
	if err := c.SetFaults(f); err != nil {
		problem.Error(w, http.StatusBadRequest, "invalid-faults", err.Error())
		return
	}
	e.log.Warn("estate faults changed", "component", r.PathValue("component"),
		"slowdown", f.Slowdown, "error_rate", f.ErrorRate, "down", f.Down, "lock_contention", f.LockContention)
	writeJSON(w, http.StatusOK, c.Faults())
}

func (e *Estate) check(w http.ResponseWriter, r *http.Request, acked []string) {
	rep, err := e.ledger.Check(r.Context(), acked)
	if err != nil {
		problem.Error(w, http.StatusInternalServerError, "check-failed", "the invariant check could not run: "+err.Error())
		return
	}
	status := http.StatusOK
	if !rep.OK {
		status = http.StatusConflict
	}
	writeJSON(w, status, rep)
}

// Collectors exposes the estate's cores as Prometheus collectors.
func (e *Estate) Collectors() []prometheus.Collector {
	var out []prometheus.Collector
	for comp, c := range map[string]*core.Core{"core": e.core, "services": e.services} {
		for _, m := range c.Metrics(comp) {
			opts := prometheus.Opts{Name: m.Name, Help: m.Help, ConstLabels: m.Labels}
			if m.Counter {
				out = append(out, prometheus.NewCounterFunc(prometheus.CounterOpts(opts), m.Value))
			} else {
				out = append(out, prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts), m.Value))
			}
		}
	}
	return out
}
