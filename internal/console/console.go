package console

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rempart/rempart/internal/tier"
)

// Paths of the console. They sit under the admin login's prefix
// (/ops/admin/), where the ops guard accepts an admin session cookie and
// never the automation token: the console is for people who logged in with
// their key, and scripts have the JSON endpoints and /metrics.
const (
	Path     = "/ops/admin/console"
	PathLive = "/ops/admin/console/live"
)

// Live is what the console reads besides the metrics, on every poll:
// cmd/rempart adapts the scrubber and the simulated estate to it.
type Live interface {
	// ScrubRoutes is the scrubber's state and evidence per route.
	ScrubRoutes() []ScrubRoute
	// Faults are the faults in force, one per component (healthy ones too).
	Faults() []Fault
}

// ScrubRoute is one route's detection state as the console shows it.
type ScrubRoute struct {
	Route    string    `json:"route"`
	State    string    `json:"state"`    // normal, flash_crowd, attack
	Detected string    `json:"detected"` // what detection alone says
	Mode     string    `json:"mode"`     // auto, or the state an operator forced
	Since    time.Time `json:"since"`
	Bits     int       `json:"difficulty_bits"` // proof-of-work asked of unknown clients
	Reason   string    `json:"reason"`          // the evidence in words
}

// Fault is one component's faults in words ("" when healthy).
type Fault struct {
	Component string `json:"component"`
	Detail    string `json:"detail"`
}

// Options configures the console.
type Options struct {
	// Metrics is the registry /metrics serves.
	Metrics prometheus.Gatherer
	// Live reads the scrubber and the faults; nil shows neither.
	Live Live
	// RouteTiers is each route's configured tier: fallback answers are
	// counted per route (rempart_breaker_fallback_answers_total has no
	// tier) and summed into the tier of their route.
	RouteTiers map[string]string
	// Now tells the time; nil means time.Now.
	Now func() time.Time
}

// Console serves the page and its live JSON.
type Console struct {
	opts Options
	mux  *http.ServeMux
}

// New returns the console for opts.
func New(opts Options) *Console {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Console{opts: opts, mux: http.NewServeMux()}
	c.mux.HandleFunc("GET "+Path, c.page)
	c.mux.HandleFunc("GET "+PathLive, c.live)
	return c
}

// ServeHTTP serves Path and PathLive.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

// Counts are cumulative answers since the server started; the page turns
// two polls into rates, so any number of admins can watch at once without
// the server keeping a sample per viewer.
type Counts struct {
	Name     string  `json:"name"`
	Tier     string  `json:"tier,omitempty"`
	Served   float64 `json:"served"`   // 2xx and 3xx, fallback answers included
	Shed     float64 `json:"shed"`     // 429 and 503: "not now"
	Refused  float64 `json:"refused"`  // other 4xx
	Errors   float64 `json:"errors"`   // other 5xx
	Fallback float64 `json:"fallback"` // answered by a fallback instead of the upstream
}

// Snapshot is one poll.
type Snapshot struct {
	At       float64            `json:"at"` // Unix seconds
	Tiers    []Counts           `json:"tiers"`
	Routes   []Counts           `json:"routes"`
	Room     map[string]float64 `json:"waiting_room,omitempty"`
	Breakers []Breaker          `json:"breakers"`
	Journal  []Backlog          `json:"journal"`
	Scrub    []ScrubRoute       `json:"scrub"`
	Faults   []Fault            `json:"faults"`
}

// Breaker is one upstream's circuit breaker.
type Breaker struct {
	Upstream string `json:"upstream"`
	State    string `json:"state"` // closed, half-open, open
}

// Backlog is the journal's entries waiting for the core, by kind.
type Backlog struct {
	Kind    string  `json:"kind"`
	Pending float64 `json:"pending"`
}

func (c *Console) live(w http.ResponseWriter, r *http.Request) {
	s, err := c.Snapshot()
	if err != nil {
		http.Error(w, "metrics: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(s)
}

// Snapshot reads the metrics and the live sources once.
func (c *Console) Snapshot() (Snapshot, error) {
	s := Snapshot{At: float64(c.opts.Now().UnixMilli()) / 1000,
		Tiers: []Counts{}, Routes: []Counts{}, Breakers: []Breaker{}, Journal: []Backlog{}, Scrub: []ScrubRoute{}, Faults: []Fault{}}
	if c.opts.Metrics != nil {
		fams, err := c.opts.Metrics.Gather()
		if err != nil {
			return s, err
		}
		c.fromMetrics(&s, fams)
	}
	if c.opts.Live != nil {
		s.Scrub = append(s.Scrub, c.opts.Live.ScrubRoutes()...)
		s.Faults = append(s.Faults, c.opts.Live.Faults()...)
	}
	return s, nil
}

// waitingRoomGauges are the waiting room's metrics the console shows, by
// the name the page knows them by.
var waitingRoomGauges = map[string]string{
	"rempart_waitroom_waiting":             "waiting",
	"rempart_waitroom_in_flight":           "in_flight",
	"rempart_waitroom_admit_rate":          "admit_rate",
	"rempart_waitroom_oldest_wait_seconds": "oldest_wait_seconds",
	"rempart_waitroom_admitted_total":      "admitted",
	"rempart_waitroom_rejected_total":      "rejected",
	"rempart_waitroom_given_up_total":      "given_up",
	"rempart_waitroom_issued_total":        "issued",
}

var breakerStates = map[float64]string{0: "closed", 1: "half-open", 2: "open"}

func (c *Console) fromMetrics(s *Snapshot, fams []*dto.MetricFamily) {
	tiers := map[string]*Counts{}
	routes := map[string]*Counts{}
	get := func(m map[string]*Counts, name, tier string) *Counts {
		if m[name] == nil {
			m[name] = &Counts{Name: name, Tier: tier}
		}
		return m[name]
	}
	for _, f := range fams {
		name := f.GetName()
		for _, m := range f.GetMetric() {
			l := labels(m)
			switch {
			case name == "rempart_requests_total":
				v := m.GetCounter().GetValue()
				rt := get(routes, l["route"], c.opts.RouteTiers[l["route"]])
				t := get(tiers, l["tier"], "")
				for _, x := range []*Counts{rt, t} {
					classify(x, l["code"], v)
				}
			case name == "rempart_breaker_fallback_answers_total":
				v := m.GetCounter().GetValue()
				get(routes, l["route"], c.opts.RouteTiers[l["route"]]).Fallback += v
				if t := c.opts.RouteTiers[l["route"]]; t != "" {
					get(tiers, t, "").Fallback += v
				}
			case name == "rempart_breaker_state":
				st, ok := breakerStates[m.GetGauge().GetValue()]
				if !ok {
					st = "unknown"
				}
				s.Breakers = append(s.Breakers, Breaker{Upstream: l["upstream"], State: st})
			case name == "rempart_journal_pending":
				s.Journal = append(s.Journal, Backlog{Kind: l["kind"], Pending: m.GetGauge().GetValue()})
			case waitingRoomGauges[name] != "":
				if s.Room == nil {
					s.Room = map[string]float64{}
				}
				s.Room[waitingRoomGauges[name]] = value(m)
			}
		}
	}
	for _, t := range tiers {
		s.Tiers = append(s.Tiers, *t)
	}
	for _, r := range routes {
		s.Routes = append(s.Routes, *r)
	}
	// Most critical first, as everywhere else in rempart.
	slices.SortFunc(s.Tiers, func(a, b Counts) int { return tierRank(a.Name) - tierRank(b.Name) })
	slices.SortFunc(s.Routes, func(a, b Counts) int {
		if d := tierRank(a.Tier) - tierRank(b.Tier); d != 0 {
			return d
		}
		return strings.Compare(a.Name, b.Name)
	})
	slices.SortFunc(s.Breakers, func(a, b Breaker) int { return strings.Compare(a.Upstream, b.Upstream) })
	slices.SortFunc(s.Journal, func(a, b Backlog) int { return strings.Compare(a.Kind, b.Kind) })
}

func tierRank(name string) int {
	if t, err := tier.Parse(name); err == nil {
		return int(t)
	}
	return len(tier.All)
}

// classify adds v answers with status code to c.
func classify(c *Counts, code string, v float64) {
	switch {
	case code == "429" || code == "503":
		c.Shed += v
	case strings.HasPrefix(code, "2") || strings.HasPrefix(code, "3"):
		c.Served += v
	case strings.HasPrefix(code, "4"):
		c.Refused += v
	default:
		c.Errors += v
	}
}

func labels(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	}
	return 0
}
