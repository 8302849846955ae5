package drill

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// Scenario is a replayable day: who sends what, when the faults hit, and the
// service levels an arm must hold. It is read from YAML by ParseScenario; the
// field comments below are the documentation of that file format.
//
// A phase lists what changes at its start; everything it does not mention
// (a population's rate, a fault) carries over from the phase before.
type Scenario struct {
	// Name identifies the scenario in the report, e.g. "laposte-2025".
	Name string `yaml:"name" json:"name"`
	// Description is one paragraph for the top of the report.
	Description string `yaml:"description" json:"description,omitempty"`
	// Seed makes the arrival schedule reproducible: same seed, same requests at
	// the same intended times, for every arm.
	Seed uint64 `yaml:"seed" json:"seed"`
	// Compression is how many seconds of the replayed day one second of drill
	// stands for. Phase durations are written in day time and divided by it;
	// rates are not scaled (they are what the drill really sends). Default 1.
	Compression float64 `yaml:"compression" json:"compression"`
	// Customers is how many customer ids requests are drawn from, uniformly and
	// without per-customer state. Default 10,000,000 (ids C00000000..C09999999).
	Customers int `yaml:"customers" json:"customers"`
	// MaxInFlight bounds the requests outstanding against one arm. An arrival
	// that finds the bound reached is counted as client-dropped, never queued
	// or silently skipped. Default 4096.
	MaxInFlight int `yaml:"max_in_flight" json:"max_in_flight"`
	// Populations are the kinds of clients; phases give each a rate.
	Populations []Population `yaml:"populations" json:"populations"`
	// Phases run in order; their durations add up to the drill's length.
	Phases []Phase `yaml:"phases" json:"phases"`
	// SLOs are the lines each arm is judged on.
	SLOs []SLO `yaml:"slos" json:"slos"`

	file    string     // where the scenario was read from, for error messages
	root    *yaml.Node // the parsed document, to locate fields by line
	targets Targets    // the request mix the populations' names resolve in
	plan    []phasePlan
	// sourceBase is each population's first source index: populations never
	// share an address, as a botnet and a bank's customers do not.
	sourceBase []int
}

// Population is one kind of client. Its behaviour is entirely described by
// what it asks for, how it retries and where it connects from.
type Population struct {
	// Name is how phases and SLO lines refer to the population.
	Name string `yaml:"name" json:"name"`
	// Description says who these clients are, for the report.
	Description string `yaml:"description" json:"description,omitempty"`
	// Requests maps a target name (see DefaultTargets) to its weight in the
	// population's mix, e.g. {balance: 40, card_authorize: 20}.
	Requests map[string]float64 `yaml:"requests" json:"requests"`
	// Session marks clients that already hold a session. Before the load
	// starts, the drill logs Sessions customers in through the arm's own
	// login (password and SMS code, as a customer would) and the
	// population's requests carry their access tokens; arms implementing
	// Authorizer attach a session of their own instead. The population's
	// logins, if its mix has any, are those customers logging in again
	// from the device of that first login.
	Session bool `yaml:"session" json:"session,omitempty"`
	// Sessions is how many customers hold a session, spread over the whole
	// population; the population's requests are drawn from them. Default
	// 200 when Session is set.
	Sessions int `yaml:"sessions" json:"sessions,omitempty"`
	// Devices, on a population that logs in, is how many customers log in
	// from a device they logged in from before: the drill logs each in once
	// before the load, keeps the device cookie the provider set, and every
	// login of the population is one of them on that device. Zero (the
	// default) logs in from devices the provider has never seen.
	Devices int `yaml:"devices" json:"devices,omitempty"`
	// Blocked, with Devices, blocks those customers in the arm's directory
	// once their devices have logged in (PUT /ops/identity/users/{id}),
	// before the load: the population is someone holding a blocked
	// customer's phone and password. Its logins are attacks (blocked_login):
	// any that succeeds is a breach.
	Blocked bool `yaml:"blocked" json:"blocked,omitempty"`
	// Sources is how many distinct loopback addresses (127.64.0.1 upwards)
	// the population's requests come from, drawn per request; each address
	// keeps its own keep-alive connection for 5 s, as a phone app or a
	// flood bot does. 0 means the default address with one shared pool of
	// connections, as a partner network or an app backend.
	Sources int `yaml:"sources" json:"sources,omitempty"`
	// Partner marks a partner network's traffic (card schemes, the 3-D
	// Secure server, the ATM network, the instant-payment scheme): every
	// target in Requests must be a channel a partner owns, and on an arm
	// that publishes partner TLS (Endpoints.Partners) each request goes
	// over TLS with the certificate of the partner owning its channel, on
	// that partner's pool of keep-alive connections. Elsewhere it goes in
	// plain HTTP, as partners reached the 2025 bank. Partners connect from
	// the default address: no sources, no sessions, no SDK.
	Partner bool `yaml:"partner" json:"partner,omitempty"`
	// Timeout is the client's per-attempt time-out. Default 2s.
	Timeout time.Duration `yaml:"timeout" json:"timeout"`
	// Retry is what the client does when an attempt fails.
	Retry Retry `yaml:"retry" json:"retry"`
}

// Retry policies.
const (
	RetryNone      = "none"      // one attempt
	RetryImmediate = "immediate" // naive apps: try again at once on any failure
	RetryBackoff   = "backoff"   // well-behaved apps: full jitter, honour Retry-After
	RetrySDK       = "sdk"       // apps on the client/ SDK: its retries, budget, breaker, waiting room
)

// Retry is a population's retry policy.
type Retry struct {
	// Policy is none (default), immediate, backoff or sdk. With sdk the
	// requests go through the client/ SDK, which retries as it sees fit
	// within Attempts, Base and Cap, and the population's Timeout bounds
	// the whole call rather than each attempt.
	Policy string `yaml:"policy" json:"policy"`
	// Attempts is the most attempts per request, the first included.
	// Default 1 for none, 3 otherwise.
	Attempts int `yaml:"attempts" json:"attempts"`
	// Base is the backoff before the second attempt; it doubles each time up
	// to Cap, and the wait is drawn uniformly below it (full jitter). A
	// Retry-After from the server replaces the draw. Defaults 100ms and 2s.
	Base time.Duration `yaml:"base" json:"base,omitempty"`
	Cap  time.Duration `yaml:"cap" json:"cap,omitempty"`
}

// Phase is a stretch of the day with its own rates and faults.
type Phase struct {
	// Name labels the phase in plots and SLO lines.
	Name string `yaml:"name" json:"name"`
	// Description says what happens, for the report.
	Description string `yaml:"description" json:"description,omitempty"`
	// Duration is day time ("90m"); the drill spends Duration/Compression.
	Duration time.Duration `yaml:"duration" json:"duration"`
	// Rates sets populations' arrival rates in requests per second of drill
	// (Poisson arrivals). Populations not listed keep their previous rate
	// (0 before the first mention).
	Rates map[string]float64 `yaml:"rates" json:"rates,omitempty"`
	// Faults are switched at the start of the phase.
	Faults Faults `yaml:"faults" json:"faults"`
}

// Faults are the switches a phase flips. Unset switches keep their state.
type Faults struct {
	// Core replaces the legacy core's fault state (estate ops API).
	Core *Component `yaml:"core" json:"core,omitempty"`
	// Services replaces the other estate services' fault state.
	Services *Component `yaml:"services" json:"services,omitempty"`
	// IdentityStoreStuck freezes (true) or frees (false) the identity store.
	IdentityStoreStuck *bool `yaml:"identity_store_stuck" json:"identity_store_stuck,omitempty"`
	// RedisLost takes the session cache away (true) or brings it back.
	RedisLost *bool `yaml:"redis_lost" json:"redis_lost,omitempty"`
	// KillRestart SIGKILLs the arm at the start of the phase and restarts it.
	KillRestart bool `yaml:"kill_restart" json:"kill_restart,omitempty"`
}

// Fault names, as recorded in the fault log and passed to Switcher.
const (
	FaultCore               = "core"
	FaultServices           = "services"
	FaultIdentityStoreStuck = "identity_store_stuck"
	FaultRedisLost          = "redis_lost"
	FaultKillRestart        = "kill_restart"
)

// Component is an estate component's fault state, the body of
// PUT /ops/estate/faults/{component}. Omitted fields are healthy.
type Component struct {
	// Slowdown multiplies service times; 1 (or omitted) is healthy.
	Slowdown float64 `yaml:"slowdown" json:"slowdown"`
	// ErrorRate is the share of requests failing with a 5xx, 0..1.
	ErrorRate float64 `yaml:"error_rate" json:"error_rate"`
	// Down makes every request fail.
	Down bool `yaml:"down" json:"down"`
	// LockContention is the number of concurrent writes past which writers
	// wait on locks (and time out); 0 is off.
	LockContention int `yaml:"lock_contention" json:"lock_contention"`
}

// SLO is one service-level line, evaluated for every arm it names. Selectors
// take one name or a list; an empty selector matches everything.
type SLO struct {
	// Name is what the report calls the line, e.g. "card payments through
	// the incident"; without one it shows the line in words.
	Name string `yaml:"name" json:"name,omitempty"`
	// Arm limits the line to one arm; empty judges every arm.
	Arm string `yaml:"arm" json:"arm,omitempty"`
	// Channel selects the channels (e.g. card_authorize) pooled in the line.
	Channel Names `yaml:"channel" json:"channel,omitempty"`
	// Population selects populations; empty pools them all.
	Population Names `yaml:"population" json:"population,omitempty"`
	// Phase selects phases; empty means the whole drill.
	Phase Names `yaml:"phase" json:"phase,omitempty"`
	// MinSuccess is the least share of offered requests answered 2xx, 0..1.
	MinSuccess *float64 `yaml:"min_success" json:"min_success,omitempty"`
	// MaxP99 is the most the 99th percentile latency of answered requests
	// (from intended send time, time-outs included) may be.
	MaxP99 *time.Duration `yaml:"max_p99" json:"max_p99,omitempty"`
	// MaxBreaches is the most attacks in scope (targets with an Attack
	// goal) that may get what the attacker wanted, e.g. 0: the arm refused
	// every one. Requests that are no attacks never count.
	MaxBreaches *int64 `yaml:"max_breaches" json:"max_breaches,omitempty"`
	// RecoverWithin is the longest the selection may take, from the start
	// of its one phase, to be back to the success it had in the Baseline
	// phase: the first second of the phase whose success share is at least
	// RecoveredShare of the baseline's (seconds with fewer than
	// recoverMinOffered requests say nothing and are skipped).
	RecoverWithin *time.Duration `yaml:"recover_within" json:"recover_within,omitempty"`
	// Baseline is the phase whose success RecoverWithin measures against,
	// e.g. the peak before the outage.
	Baseline string `yaml:"baseline" json:"baseline,omitempty"`

	line int // where the line starts in the scenario file
}

// Names is one name or a list of names: `phase: flood` or `phase: [a, b]`.
type Names []string

// UnmarshalYAML accepts a scalar or a sequence of scalars.
func (n *Names) UnmarshalYAML(v *yaml.Node) error {
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			*n = nil
			return nil
		}
		*n = Names{v.Value}
		return nil
	case yaml.SequenceNode:
		out := make(Names, 0, len(v.Content))
		for _, c := range v.Content {
			if c.Kind != yaml.ScalarNode {
				return fmt.Errorf("want a name or a list of names")
			}
			out = append(out, c.Value)
		}
		*n = out
		return nil
	}
	return fmt.Errorf("want a name or a list of names")
}

// has reports whether the selector matches name (empty matches all).
func (n Names) has(name string) bool {
	if len(n) == 0 {
		return true
	}
	for _, v := range n {
		if v == name {
			return true
		}
	}
	return false
}

// phasePlan is a phase resolved against the ones before it: when it runs in
// drill time and the full rate vector in force.
type phasePlan struct {
	start, end time.Duration // offsets from the drill's start
	rates      []float64     // per population, index as Scenario.Populations
}

// Duration is the drill's length (day time divided by compression).
func (s *Scenario) Duration() time.Duration {
	if len(s.plan) == 0 {
		return 0
	}
	return s.plan[len(s.plan)-1].end
}

// File is where the scenario was read from.
func (s *Scenario) File() string { return s.file }
