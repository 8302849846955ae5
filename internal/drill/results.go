package drill

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Results is everything a drill measured. It is written as results.json, and
// the HTML report is rendered from this same value, so every figure in the
// report can be found in the JSON.
type Results struct {
	Scenario    ScenarioInfo     `json:"scenario"`
	Started     time.Time        `json:"started"`
	Finished    time.Time        `json:"finished"`
	Channels    []ChannelInfo    `json:"channels"`
	Populations []PopulationInfo `json:"populations"`
	Phases      []PhaseInfo      `json:"phases"`
	Arms        []ArmResult      `json:"arms"`
	SLOs        []SLOResult      `json:"slos"`
}

// ScenarioInfo describes the scenario that was run.
type ScenarioInfo struct {
	Name        string  `json:"name"`
	Description string  `json:"description,omitempty"`
	File        string  `json:"file"`
	Seed        uint64  `json:"seed"`
	Compression float64 `json:"compression"`
	Seconds     float64 `json:"seconds"`      // drill time per arm
	Day         string  `json:"day_duration"` // day time replayed
	Customers   int     `json:"customers"`
	MaxInFlight int     `json:"max_in_flight"`
}

// ChannelInfo is a channel requests were counted in, most critical first.
type ChannelInfo struct {
	Name string `json:"name"`
	Tier string `json:"tier"` // the route's tier, or TierAttack
	// Attack marks a channel of attacks (Target.Attack): its requests
	// should be refused, and Counts.Breaches counts those that were not.
	Attack bool `json:"attack,omitempty"`
}

// TierAttack is the tier reported for attack channels.
const TierAttack = "attack"

// PopulationInfo is a population as configured, defaults filled in.
type PopulationInfo struct {
	Name        string             `json:"name"`
	Description string             `json:"description,omitempty"`
	Requests    map[string]float64 `json:"requests"`
	Session     bool               `json:"session,omitempty"`
	Sources     int                `json:"sources,omitempty"`
	Timeout     string             `json:"timeout"`
	Retry       string             `json:"retry"`
	// Hostile marks a population whose every request is an attack or a
	// bot's (Target.Attack, Target.Bot): the report counts it apart from
	// the customers.
	Hostile bool `json:"hostile,omitempty"`
}

// PhaseInfo is a phase in drill time with the rates and faults in force.
type PhaseInfo struct {
	Name        string             `json:"name"`
	Description string             `json:"description,omitempty"`
	Start       float64            `json:"start_s"`
	End         float64            `json:"end_s"`
	Day         string             `json:"day_duration"`
	Rates       map[string]float64 `json:"rates"`  // every population's rate, carried over
	Faults      Faults             `json:"faults"` // what the phase switches at its start
}

// ArmResult is one arm's run.
type ArmResult struct {
	Name string `json:"name"`
	// Error says why the arm could not be run; its figures are then empty.
	Error   string `json:"error,omitempty"`
	Seconds int    `json:"seconds"` // length of every per-second series
	// Series counts requests per second of intended send time, per channel
	// and population.
	Series []Series `json:"series"`
	// Latency is per channel and second, all populations pooled.
	Latency   []LatencySeries `json:"latency"`
	Phases    []PhaseResult   `json:"phases"`
	Usage     []UsageSample   `json:"usage"`
	Faults    []FaultEvent    `json:"faults"`
	Ledger    LedgerCheck     `json:"ledger"`
	Generator GeneratorStats  `json:"generator"`
	// Sessions are the logins made before the load, per population holding
	// sessions.
	Sessions []SessionSeed `json:"sessions,omitempty"`
	// Attacks are the attack channels over the whole drill: what was sent,
	// what got through (Breaches) and how the rest was answered.
	Attacks []AttackResult `json:"attacks,omitempty"`
}

// AttackResult is one kind of attack (an attack channel) on one arm.
type AttackResult struct {
	Kind string `json:"kind"`
	Counts
	// Statuses counts final outcomes by HTTP status, "timeout",
	// "transport" or "client_dropped".
	Statuses map[string]int64 `json:"statuses,omitempty"`
}

// Series is one channel × population over time.
type Series struct {
	Channel    string    `json:"channel"`
	Population string    `json:"population"`
	Seconds    []Counts  `json:"seconds"`
	Latency    []Latency `json:"latency"` // per second, as Seconds
}

// LatencySeries is one channel's latency over time.
type LatencySeries struct {
	Channel string    `json:"channel"`
	Seconds []Latency `json:"seconds"`
}

// PhaseResult is one phase of one arm: per channel (populations pooled)
// and per channel × population.
type PhaseResult struct {
	Phase    string `json:"phase"`
	Total    Counts `json:"total"`
	Channels []Cell `json:"channels"`
	Cells    []Cell `json:"cells"`
}

// Cell is the counts and latency of a selection within a phase.
type Cell struct {
	Channel    string `json:"channel"`
	Population string `json:"population,omitempty"`
	Counts
	Latency Latency `json:"latency"`
	// Statuses counts final outcomes by HTTP status, "timeout", "transport"
	// or "client_dropped" (per channel cells only).
	Statuses map[string]int64 `json:"statuses,omitempty"`
}

// UsageSample is an arm's processes (summed) at one second.
type UsageSample struct {
	At    float64 `json:"t_s"`
	CPU   float64 `json:"cpu_pct"` // percent of one core over the last second
	RSSMB float64 `json:"rss_mb"`
}

// FaultEvent is a fault switched on an arm: asked for at At, answered Took
// seconds later (a saturated arm can be slow to take its own faults).
type FaultEvent struct {
	At     float64 `json:"t_s"`
	Took   float64 `json:"took_s"`
	Phase  string  `json:"phase"`
	Fault  string  `json:"fault"`
	Detail string  `json:"detail"`
	Error  string  `json:"error,omitempty"`
	// Unsupported means the arm has no switch for this fault (it does not
	// implement Switcher or Restarter): the phase ran without it.
	Unsupported bool `json:"unsupported,omitempty"`
}

// GeneratorStats let a reader judge the load generator itself: how late it
// sent (the latencies include this lag) and whose CPU was measured.
type GeneratorStats struct {
	Arrivals      int64   `json:"arrivals"`
	ClientDropped int64   `json:"client_dropped"`
	LagP50        float64 `json:"lag_p50_ms"`
	LagP99        float64 `json:"lag_p99_ms"`
	LagMax        float64 `json:"lag_max_ms"`
	// SharedProcess is true when the arm ran inside the drill's process, so
	// its CPU and memory include the load generator's.
	SharedProcess bool `json:"shared_process"`
}

// SLOResult is the verdict of one SLO line on one arm.
type SLOResult struct {
	Line    int     `json:"line,omitempty"` // in the scenario file
	Name    string  `json:"name,omitempty"` // the line's name in the scenario
	SLO     string  `json:"slo"`            // the line in words
	Arm     string  `json:"arm"`
	Metric  string  `json:"metric"` // "min_success" or "max_p99"
	Want    float64 `json:"want"`   // a share, or milliseconds
	Got     float64 `json:"got"`
	Offered int64   `json:"offered"` // requests the line covers
	Pass    bool    `json:"pass"`
	Note    string  `json:"note,omitempty"`
}

// Failed returns the verdicts that failed, for every arm; a command gating
// on one arm (rempart) filters on SLOResult.Arm.
func (r *Results) Failed() []SLOResult {
	var out []SLOResult
	for _, v := range r.SLOs {
		if !v.Pass {
			out = append(out, v)
		}
	}
	return out
}

// Arm returns the named arm's result.
func (r *Results) Arm(name string) (*ArmResult, bool) {
	for i := range r.Arms {
		if r.Arms[i].Name == name {
			return &r.Arms[i], true
		}
	}
	return nil, false
}

// WriteJSON writes results.json into dir.
func (r *Results) WriteJSON(dir string) error {
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// newResults describes the scenario; arms and verdicts are added as they run.
func newResults(s *Scenario, chans []ChannelInfo) *Results {
	var day time.Duration
	for _, p := range s.Phases {
		day += p.Duration
	}
	r := &Results{
		Scenario: ScenarioInfo{
			Name: s.Name, Description: strings.TrimSpace(s.Description), File: s.file, Seed: s.Seed,
			Compression: s.Compression, Seconds: s.Duration().Seconds(), Day: shortDuration(day),
			Customers: s.Customers, MaxInFlight: s.MaxInFlight,
		},
		Channels: chans,
		SLOs:     []SLOResult{},
	}
	for _, p := range s.Populations {
		retry := p.Retry.Policy
		if p.Retry.Policy != RetryNone {
			retry = fmt.Sprintf("%s ×%d", p.Retry.Policy, p.Retry.Attempts)
		}
		if p.Retry.Policy == RetryBackoff || p.Retry.Policy == RetrySDK {
			retry += fmt.Sprintf(" (%v..%v)", p.Retry.Base, p.Retry.Cap)
		}
		hostile := len(p.Requests) > 0
		for name := range p.Requests {
			if t := s.targets[name]; t.Attack == "" && !t.Bot {
				hostile = false
			}
		}
		r.Populations = append(r.Populations, PopulationInfo{
			Name: p.Name, Description: strings.TrimSpace(p.Description), Requests: p.Requests,
			Session: p.Session, Sources: p.Sources, Timeout: p.Timeout.String(), Retry: retry, Hostile: hostile,
		})
	}
	for i, p := range s.Phases {
		pl := s.plan[i]
		rates := make(map[string]float64, len(s.Populations))
		for j, pop := range s.Populations {
			rates[pop.Name] = pl.rates[j]
		}
		r.Phases = append(r.Phases, PhaseInfo{
			Name: p.Name, Description: strings.TrimSpace(p.Description),
			Start: pl.start.Seconds(), End: pl.end.Seconds(), Day: shortDuration(p.Duration),
			Rates: rates, Faults: p.Faults,
		})
	}
	return r
}

// shortDuration writes 1h10m0s as 1h10m and 50m0s as 50m.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
