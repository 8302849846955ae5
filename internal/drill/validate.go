package drill

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Limits on what a scenario may ask for. They keep a typo from turning into a
// drill that cannot run on a laptop, not from expressing a real day.
const (
	defaultCustomers   = 10_000_000
	maxCustomers       = 100_000_000 // ids are C%08d
	defaultMaxInFlight = 4096
	// maxMaxInFlight stays under the 20,000 open files this machine allows
	// (ulimit -n), leaving room for the arm's own sockets when in-process.
	maxMaxInFlight = 16_384
	maxSources     = 254 << 14 // 254 hosts in each of the 16,384 /24s of 127.64.0.0/10
	// Sessions and devices are real logins made before the load: each costs the arm a
	// password hash, so a few thousand is the most that stays quick.
	defaultSessions = 200
	maxSessions     = 5000
	defaultTimeout  = 2 * time.Second
	maxTimeout      = time.Minute
	maxAttempts     = 20
	defaultBase     = 100 * time.Millisecond
	defaultCap      = 2 * time.Second
	maxRate         = 50_000 // per population, req/s
	maxDrillLength  = 2 * time.Hour
	minPhaseLength  = 10 * time.Millisecond
	maxSlowdown     = 1000
	defaultAttempts = 3
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// validate fills defaults, checks every field and resolves the phase plan.
// Errors carry the field's path and line.
func (s *Scenario) validate() []*FieldError {
	var errs []*FieldError
	bad := func(p path, format string, args ...any) {
		errs = append(errs, &FieldError{Line: lineOf(s.root, p), Field: p.String(), Msg: fmt.Sprintf(format, args...)})
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

	if strings.TrimSpace(s.Name) == "" {
		bad(path{"name"}, "required")
	}
	switch {
	case s.Compression == 0:
		s.Compression = 1
	case !finite(s.Compression) || s.Compression < 0:
		bad(path{"compression"}, "must be a positive number of day seconds per drill second")
	}
	switch {
	case s.Customers == 0:
		s.Customers = defaultCustomers
	case s.Customers < 0 || s.Customers > maxCustomers:
		bad(path{"customers"}, "must be 1..%d", maxCustomers)
	}
	switch {
	case s.MaxInFlight == 0:
		s.MaxInFlight = defaultMaxInFlight
	case s.MaxInFlight < 0 || s.MaxInFlight > maxMaxInFlight:
		bad(path{"max_in_flight"}, "must be 1..%d", maxMaxInFlight)
	}

	pops := make(map[string]int)
	channels := make(map[string]bool)
	if len(s.Populations) == 0 {
		bad(path{"populations"}, "at least one population is required")
	}
	for i := range s.Populations {
		pp := path{"populations", i}
		p := &s.Populations[i]
		if !nameRE.MatchString(p.Name) {
			bad(pp.with("name"), "want a name of letters, digits, '-', '_' or '.', got %q", p.Name)
		} else if _, dup := pops[p.Name]; dup {
			bad(pp.with("name"), "population %q is defined twice", p.Name)
		}
		pops[p.Name] = i
		if len(p.Requests) == 0 {
			bad(pp.with("requests"), "required: target names with weights, e.g. {balance: 3, card_authorize: 1}")
		}
		for _, name := range sortedKeys(p.Requests) {
			w := p.Requests[name]
			t, ok := s.targets[name]
			switch {
			case !ok:
				bad(pp.with("requests").with(name), "unknown target (known: %s)", strings.Join(sortedKeys(s.targets), ", "))
			case !finite(w) || w <= 0:
				bad(pp.with("requests").with(name), "weight must be a positive number")
			default:
				channels[t.Channel] = true
			}
		}
		if p.Sources < 0 || p.Sources > maxSources {
			bad(pp.with("sources"), "must be 0..%d", maxSources)
		}
		switch {
		case p.Sessions != 0 && !p.Session:
			bad(pp.with("sessions"), "only with session: true")
		case p.Session && p.Sessions == 0:
			p.Sessions = defaultSessions
		case p.Sessions < 0 || p.Sessions > maxSessions || (s.Customers > 0 && p.Sessions > s.Customers):
			bad(pp.with("sessions"), "must be 1..%d and at most customers", maxSessions)
		}
		switch {
		case p.Devices == 0:
		case p.Session:
			bad(pp.with("devices"), "not with session: true (a population holding sessions logs in again from its sessions' devices)")
		case !logsIn(s, p):
			bad(pp.with("devices"), "only on a population that logs in (a login target in requests)")
		case p.Devices < 0 || p.Devices > maxSessions || (s.Customers > 0 && p.Devices > s.Customers):
			bad(pp.with("devices"), "must be 1..%d and at most customers", maxSessions)
		}
		if p.Blocked && p.Devices == 0 {
			bad(pp.with("blocked"), "only with devices (the customers to block are those whose devices logged in)")
		}
		if p.Partner {
			for _, name := range sortedKeys(p.Requests) {
				if t, ok := s.targets[name]; ok && (t.Partner == "" || t.Attack != "") {
					bad(pp.with("requests").with(name), "a partner population sends only to partners' channels (%s)", strings.Join(partnerTargets(s.targets), ", "))
				}
			}
			switch {
			case p.Sources != 0:
				bad(pp.with("sources"), "not with partner: true (a partner network connects from one address, on pooled connections)")
			case p.Session:
				bad(pp.with("session"), "not with partner: true (partners authenticate by certificate, not by a customer's session)")
			case p.Retry.Policy == RetrySDK:
				bad(pp.with("retry").with("policy"), "sdk is a customer app's client, not with partner: true")
			}
		}
		switch {
		case p.Timeout == 0:
			p.Timeout = defaultTimeout
		case p.Timeout < 0 || p.Timeout > maxTimeout:
			bad(pp.with("timeout"), "must be more than 0 and at most %v", maxTimeout)
		}
		errs = append(errs, p.Retry.validate(s, pp.with("retry"))...)
	}

	holdsSessions := slices.ContainsFunc(s.Populations, func(p Population) bool { return p.Session })
	for i, p := range s.Populations {
		for _, name := range sortedKeys(p.Requests) {
			if t, ok := s.targets[name]; ok && t.Stolen && !holdsSessions {
				bad(path{"populations", i, "requests", name}, "a stolen-token attack needs a population holding sessions (session: true) to steal from")
			}
		}
	}

	s.sourceBase = s.sourceBase[:0]
	total := 0
	for _, p := range s.Populations {
		s.sourceBase = append(s.sourceBase, total)
		total += max(p.Sources, 0)
	}
	if total > maxSources && len(errs) == 0 {
		bad(path{"populations"}, "%d sources in all, more than the %d loopback addresses of 127.64.0.0/10", total, maxSources)
	}

	phases := make(map[string]bool)
	if len(s.Phases) == 0 {
		bad(path{"phases"}, "at least one phase is required")
	}
	rates := make([]float64, len(s.Populations))
	var at time.Duration
	anyTraffic := false
	s.plan = s.plan[:0]
	for i := range s.Phases {
		pp := path{"phases", i}
		ph := &s.Phases[i]
		if !nameRE.MatchString(ph.Name) {
			bad(pp.with("name"), "want a name of letters, digits, '-', '_' or '.', got %q", ph.Name)
		} else if phases[ph.Name] {
			bad(pp.with("name"), "phase %q is defined twice", ph.Name)
		}
		phases[ph.Name] = true
		length := time.Duration(float64(ph.Duration) / s.Compression)
		if ph.Duration <= 0 {
			bad(pp.with("duration"), "required and more than 0 (day time, e.g. 90m)")
		} else if s.Compression > 0 && length < minPhaseLength {
			bad(pp.with("duration"), "%v of day at compression %g is %v of drill, less than %v", ph.Duration, s.Compression, length, minPhaseLength)
		}
		for _, name := range sortedKeys(ph.Rates) {
			r := ph.Rates[name]
			anyTraffic = anyTraffic || r > 0
			idx, ok := pops[name]
			switch {
			case !ok:
				bad(pp.with("rates").with(name), "unknown population (known: %s)", strings.Join(sortedKeys(pops), ", "))
			case !finite(r) || r < 0 || r > maxRate:
				bad(pp.with("rates").with(name), "rate must be 0..%d requests per second", maxRate)
			default:
				rates[idx] = r
			}
		}
		errs = append(errs, ph.Faults.validate(s, pp.with("faults"))...)
		s.plan = append(s.plan, phasePlan{start: at, end: at + length, rates: slices.Clone(rates)})
		at += length
	}
	if at > maxDrillLength {
		bad(path{"phases"}, "the drill would last %v, more than %v", at.Round(time.Second), maxDrillLength)
	}
	if len(s.Phases) > 0 && len(s.Populations) > 0 && !anyTraffic {
		bad(path{"phases"}, "no phase gives any population a rate above 0")
	}

	for i := range s.SLOs {
		pp := path{"slos", i}
		o := &s.SLOs[i]
		for _, c := range o.Channel {
			if !channels[c] {
				bad(pp.with("channel"), "no population sends to channel %q (sent: %s)", c, strings.Join(sortedKeys(channels), ", "))
			}
		}
		for _, p := range o.Population {
			if _, ok := pops[p]; !ok {
				bad(pp.with("population"), "unknown population %q", p)
			}
		}
		for _, p := range o.Phase {
			if !phases[p] {
				bad(pp.with("phase"), "unknown phase %q", p)
			}
		}
		if o.MinSuccess == nil && o.MaxP99 == nil && o.MaxBreaches == nil && o.RecoverWithin == nil {
			bad(pp, "needs min_success, max_p99, max_breaches or recover_within")
		}
		if o.RecoverWithin != nil {
			switch {
			case *o.RecoverWithin <= 0:
				bad(pp.with("recover_within"), "must be more than 0")
			case len(o.Phase) != 1:
				bad(pp.with("phase"), "recover_within is measured from the start of one phase: name exactly one")
			case !phases[o.Baseline]:
				bad(pp.with("baseline"), "recover_within needs the phase to compare with: unknown phase %q", o.Baseline)
			}
		} else if o.Baseline != "" {
			bad(pp.with("baseline"), "only recover_within uses a baseline")
		}
		if o.MaxBreaches != nil && *o.MaxBreaches < 0 {
			bad(pp.with("max_breaches"), "must be 0 or more attacks")
		}
		if o.MinSuccess != nil && (!finite(*o.MinSuccess) || *o.MinSuccess < 0 || *o.MinSuccess > 1) {
			bad(pp.with("min_success"), "must be a share between 0 and 1, e.g. 0.999")
		}
		if o.MaxP99 != nil && *o.MaxP99 <= 0 {
			bad(pp.with("max_p99"), "must be more than 0")
		}
	}
	return errs
}

func (r *Retry) validate(s *Scenario, p path) []*FieldError {
	var errs []*FieldError
	bad := func(f string, format string, args ...any) {
		errs = append(errs, &FieldError{Line: lineOf(s.root, p.with(f)), Field: p.with(f).String(), Msg: fmt.Sprintf(format, args...)})
	}
	switch r.Policy {
	case "", RetryNone:
		r.Policy = RetryNone
		if r.Attempts == 0 {
			r.Attempts = 1
		}
		if r.Attempts != 1 {
			bad("attempts", "policy none makes one attempt; use policy immediate, backoff or sdk to retry")
		}
	case RetryImmediate, RetryBackoff, RetrySDK:
		if r.Attempts == 0 {
			r.Attempts = defaultAttempts
		}
		if r.Attempts < 1 || r.Attempts > maxAttempts {
			bad("attempts", "must be 1..%d", maxAttempts)
		}
	default:
		bad("policy", "want none, immediate, backoff or sdk, got %q", r.Policy)
	}
	if r.Base == 0 {
		r.Base = defaultBase
	}
	if r.Cap == 0 {
		r.Cap = max(defaultCap, r.Base)
	}
	if r.Base < 0 {
		bad("base", "must be more than 0")
	}
	if r.Cap < r.Base {
		bad("cap", "must be at least base (%v)", r.Base)
	}
	return errs
}

func (f *Faults) validate(s *Scenario, p path) []*FieldError {
	var errs []*FieldError
	for name, c := range map[string]*Component{FaultCore: f.Core, FaultServices: f.Services} {
		if c == nil {
			continue
		}
		bad := func(field, format string, args ...any) {
			fp := p.with(name).with(field)
			errs = append(errs, &FieldError{Line: lineOf(s.root, fp), Field: fp.String(), Msg: fmt.Sprintf(format, args...)})
		}
		if c.Slowdown == 0 {
			c.Slowdown = 1
		}
		if math.IsNaN(c.Slowdown) || c.Slowdown < 1 || c.Slowdown > maxSlowdown {
			bad("slowdown", "must be 1 (healthy) .. %d", maxSlowdown)
		}
		if math.IsNaN(c.ErrorRate) || c.ErrorRate < 0 || c.ErrorRate > 1 {
			bad("error_rate", "must be a share between 0 and 1")
		}
		if c.LockContention < 0 {
			bad("lock_contention", "must be 0 (off) or a number of concurrent writes")
		}
	}
	return errs
}

// sortedKeys returns a map's keys in order: every walk over a scenario's maps
// goes through it so that the schedule does not depend on map order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// logsIn says whether a population's mix has a login flow.
func logsIn(s *Scenario, p *Population) bool {
	for name := range p.Requests {
		if t, ok := s.targets[name]; ok && t.Login != nil {
			return true
		}
	}
	return false
}

// partnerTargets lists the targets a partner population may send.
func partnerTargets(targets Targets) []string {
	var out []string
	for _, name := range sortedKeys(targets) {
		if t := targets[name]; t.Partner != "" && t.Attack == "" {
			out = append(out, name)
		}
	}
	return out
}
