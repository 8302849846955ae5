package drill

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rempart/rempart/internal/tier"
)

// Options configure a Run.
type Options struct {
	// Scenario is the day to replay (ParseScenario, BuiltinScenario).
	Scenario *Scenario
	// Arms are run one after another, each with the same schedule and faults.
	Arms []Arm
	// OutDir receives results.json and report.html; empty writes nothing.
	OutDir string
	// Quiet silences the progress lines.
	Quiet bool
	// Progress receives one line per second; default os.Stderr.
	Progress io.Writer
	// Customers derives customers from indexes; default the estate's
	// derivation with its default seed (EstateCustomers).
	Customers Customers
	// Usage samples an arm's processes; default ProcUsage.
	Usage UsageFunc
}

// leadTime separates an arm's first faults from its first arrival, so the
// schedule does not start while the switches are still being flipped.
const leadTime = 100 * time.Millisecond

// stopTimeout bounds an arm's Stop, also when the drill was interrupted.
const stopTimeout = 30 * time.Second

// Run replays the scenario against every arm in turn and returns what was
// measured; with OutDir set it writes results.json and report.html there. An
// arm that fails to start is recorded (and fails its SLO lines); Run itself
// fails only on bad options, interruption or when the outputs cannot be
// written.
func Run(ctx context.Context, o Options) (*Results, error) {
	if o.Scenario == nil || len(o.Scenario.plan) == 0 {
		return nil, errors.New("drill: no scenario (use ParseScenario or BuiltinScenario)")
	}
	if len(o.Arms) == 0 {
		return nil, errors.New("drill: no arm to run")
	}
	seen := make(map[string]bool)
	for _, a := range o.Arms {
		if seen[a.Name()] {
			return nil, fmt.Errorf("drill: two arms named %q", a.Name())
		}
		seen[a.Name()] = true
	}
	if o.Customers == nil {
		o.Customers = EstateCustomers(estateSeed, o.Scenario.Customers)
	}
	if o.Usage == nil {
		o.Usage = ProcUsage
	}
	if o.Progress == nil {
		o.Progress = os.Stderr
	}
	if o.Quiet {
		o.Progress = io.Discard
	}
	if o.OutDir != "" {
		if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
			return nil, fmt.Errorf("drill: %w", err)
		}
	}

	s := o.Scenario
	chans := channels(s)
	res := newResults(s, chans)
	res.Started = time.Now()
	for i, arm := range o.Arms {
		if ctx.Err() != nil {
			break // write what was measured so far
		}
		ar, rec := runArm(ctx, o, arm, chans, fmt.Sprintf("%d/%d", i+1, len(o.Arms)))
		res.Arms = append(res.Arms, ar)
		res.SLOs = append(res.SLOs, judge(s, ar.Name, ar.Error, rec, chans)...)
	}
	res.Finished = time.Now()
	if o.OutDir != "" {
		if err := res.WriteJSON(o.OutDir); err != nil {
			return res, fmt.Errorf("drill: %w", err)
		}
		if err := res.WriteHTML(o.OutDir); err != nil {
			return res, fmt.Errorf("drill: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("drill interrupted: %w", err)
	}
	return res, nil
}

// channels lists the channels the scenario's populations send to, most
// critical tier first.
// Attack channels come last, under the tier "attack": they are not
// service a customer gets.
func channels(s *Scenario) []ChannelInfo {
	tiers := make(map[string]tier.Tier)
	attack := make(map[string]bool)
	for _, p := range s.Populations {
		for name := range p.Requests {
			t := s.targets[name]
			tiers[t.Channel] = t.Tier
			attack[t.Channel] = attack[t.Channel] || t.Attack != ""
		}
	}
	var out []ChannelInfo
	for _, name := range sortedKeys(tiers) {
		c := ChannelInfo{Name: name, Tier: tiers[name].String()}
		if attack[name] {
			c.Tier, c.Attack = TierAttack, true
		}
		out = append(out, c)
	}
	slices.SortStableFunc(out, func(a, b ChannelInfo) int {
		if a.Attack != b.Attack {
			return cmp.Compare(boolInt(a.Attack), boolInt(b.Attack))
		}
		return cmp.Compare(tiers[a.Name], tiers[b.Name])
	})
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// armRun is the state of one arm while its schedule is sent.
type armRun struct {
	o      Options
	arm    Arm
	eng    *engine
	chans  []ChannelInfo
	ops    atomic.Pointer[ops]
	pids   atomic.Pointer[[]int]
	start  time.Time
	mu     sync.Mutex
	result *ArmResult
}

// runArm starts an arm, sends it the schedule with the faults, checks the
// ledger and stops it. The recorder is returned for the SLO verdicts.
func runArm(ctx context.Context, o Options, arm Arm, chans []ChannelInfo, ordinal string) (ar ArmResult, rec *recorder) {
	s := o.Scenario
	ar = ArmResult{Name: arm.Name(), Series: []Series{}, Latency: []LatencySeries{}, Phases: []PhaseResult{},
		Usage: []UsageSample{}, Faults: []FaultEvent{}}
	fmt.Fprintf(o.Progress, "drill %s · arm %s (%s) · starting\n", s.Name, arm.Name(), ordinal)
	eps, err := arm.Start(ctx)
	if err != nil {
		ar.Error = fmt.Sprintf("start: %v", err)
		fmt.Fprintf(o.Progress, "drill %s · arm %s · %s\n", s.Name, arm.Name(), ar.Error)
		return ar, nil
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
		defer cancel()
		if err := arm.Stop(sctx); err != nil && ar.Error == "" {
			ar.Error = fmt.Sprintf("stop: %v", err)
		}
	}()
	nsec := int((s.Duration() + time.Second - 1) / time.Second)
	idx := make(map[string]int, len(chans))
	for i, c := range chans {
		idx[c.Name] = i
	}
	rec = newRecorder(nsec, len(chans), len(s.Populations), len(s.Phases))
	r := &armRun{o: o, arm: arm, eng: newEngine(s, rec, idx, o.Customers), chans: chans, result: &ar}
	defer r.eng.close()
	if err := r.setEndpoints(eps); err != nil {
		ar.Error = err.Error()
		return ar, nil
	}
	if a, ok := arm.(Authorizer); ok {
		r.eng.authorize = a.Authorize
	}
	seeder, _ := arm.(Seeder)
	if seeder != nil {
		if err := seeder.Seeding(ctx, true); err != nil {
			ar.Error = fmt.Sprintf("seeding: %v", err)
			return ar, nil
		}
	}
	ar.Sessions = r.eng.seedSessions(ctx, o.Progress, fmt.Sprintf("drill %s · arm %s", s.Name, arm.Name()))
	if seeder != nil {
		if err := seeder.Seeding(ctx, false); err != nil {
			ar.Error = fmt.Sprintf("seeding: %v", err)
			return ar, nil
		}
	}

	// Phase 0's faults go in before the first arrival, from a healthy state.
	r.start = time.Now().Add(leadTime)
	initial := s.Phases[0].Faults
	initial.Core = cmp.Or(initial.Core, &Component{Slowdown: 1})
	initial.Services = cmp.Or(initial.Services, &Component{Slowdown: 1})
	r.applyFaults(ctx, 0, initial)

	lctx, stopLoops := context.WithCancel(ctx)
	var loops sync.WaitGroup
	loops.Go(func() { r.faultLoop(lctx) })
	loops.Go(func() { r.sampleLoop(lctx, rec) })
	r.eng.run(ctx, r.start)
	stopLoops()
	loops.Wait()

	// Heal the estate before checking it: the invariant must hold after
	// the storm, and a core left down could not answer the check.
	r.applyFaults(ctx, -1, healing(s))
	if op := r.ops.Load(); op != nil {
		ar.Ledger = op.check(ctx, r.eng.acknowledged())
	}
	rec.fill(&ar, s, chans)
	_, ar.Generator.SharedProcess = r.sharedProcess()
	fmt.Fprintf(o.Progress, "drill %s · arm %s · done: %s\n", s.Name, arm.Name(), summaryLine(ar))
	return ar, rec
}

// healing is the switches that bring an arm back to health after the
// scenario: the estate's components, and any switch the last phases left on.
func healing(s *Scenario) Faults {
	f := Faults{Core: &Component{Slowdown: 1}, Services: &Component{Slowdown: 1}}
	off := false
	var identity, redis bool
	for _, p := range s.Phases {
		if p.Faults.IdentityStoreStuck != nil {
			identity = *p.Faults.IdentityStoreStuck
		}
		if p.Faults.RedisLost != nil {
			redis = *p.Faults.RedisLost
		}
	}
	if identity {
		f.IdentityStoreStuck = &off
	}
	if redis {
		f.RedisLost = &off
	}
	return f
}

func (r *armRun) setEndpoints(eps Endpoints) error {
	pub, err := loopbackURL(eps.Public)
	if err != nil {
		return fmt.Errorf("arm %s: public %w", r.arm.Name(), err)
	}
	if pub == "" {
		return fmt.Errorf("arm %s: no public endpoint", r.arm.Name())
	}
	opsURL, err := loopbackURL(eps.Ops)
	if err != nil {
		return fmt.Errorf("arm %s: ops %w", r.arm.Name(), err)
	}
	r.eng.setBase(pub)
	tlsURL, err := loopbackURL(eps.PublicTLS)
	if err != nil {
		return fmt.Errorf("arm %s: public TLS %w", r.arm.Name(), err)
	}
	r.eng.setPartners(tlsURL, eps.TLS, eps.Partners)
	// The ops API gets its own connections: a fault must not queue behind
	// the load it is meant to disturb.
	op := &ops{base: opsURL, token: eps.OpsToken, client: &http.Client{Transport: &http.Transport{DisableCompression: true}}, settle: checkSettle}
	r.ops.Store(op)
	r.eng.otp = op.phoneOTP
	r.eng.block = op.blockCustomer
	pids := slices.Clone(eps.PIDs)
	r.pids.Store(&pids)
	return nil
}

// sharedProcess returns the arm's processes, and whether the drill's own
// process is among them (so its figures include the load generator).
func (r *armRun) sharedProcess() ([]int, bool) {
	var pids []int
	if p := r.pids.Load(); p != nil {
		pids = *p
	}
	return pids, len(pids) == 0 || slices.Contains(pids, os.Getpid())
}

// faultLoop switches each later phase's faults at its start.
func (r *armRun) faultLoop(ctx context.Context) {
	for i := 1; i < len(r.o.Scenario.Phases); i++ {
		if !sleep(ctx, time.Until(r.start.Add(r.o.Scenario.plan[i].start))) {
			return
		}
		r.applyFaults(ctx, i, r.o.Scenario.Phases[i].Faults)
	}
}

// applyFaults switches faults and logs each switch; phase -1 is the healing
// after the run.
func (r *armRun) applyFaults(ctx context.Context, phase int, f Faults) {
	name := "after"
	if phase >= 0 {
		name = r.o.Scenario.Phases[phase].Name
	}
	asked := time.Now()
	logf := func(fault, detail string, err error) {
		ev := FaultEvent{At: asked.Sub(r.start).Seconds(), Took: time.Since(asked).Seconds(), Phase: name, Fault: fault, Detail: detail}
		switch {
		case errors.Is(err, errUnsupported):
			ev.Unsupported = true
		case err != nil:
			ev.Error = err.Error()
		}
		r.mu.Lock()
		r.result.Faults = append(r.result.Faults, ev)
		r.mu.Unlock()
	}
	op := r.ops.Load()
	for _, c := range []struct {
		name string
		c    *Component
	}{{FaultCore, f.Core}, {FaultServices, f.Services}} {
		if c.c == nil {
			continue
		}
		detail := fmt.Sprintf("slowdown %g, error rate %g, down %t, lock contention %d", c.c.Slowdown, c.c.ErrorRate, c.c.Down, c.c.LockContention)
		logf(c.name, detail, op.setFault(ctx, c.name, *c.c))
	}
	for _, sw := range []struct {
		name string
		on   *bool
	}{{FaultIdentityStoreStuck, f.IdentityStoreStuck}, {FaultRedisLost, f.RedisLost}} {
		if sw.on == nil {
			continue
		}
		err := errUnsupported
		if s, ok := r.arm.(Switcher); ok {
			err = s.Switch(ctx, sw.name, *sw.on)
		}
		logf(sw.name, onOff(*sw.on), err)
	}
	if f.KillRestart {
		err := errUnsupported
		if k, ok := r.arm.(Restarter); ok {
			var eps Endpoints
			if eps, err = k.KillRestart(ctx); err == nil {
				err = r.setEndpoints(eps)
			}
		}
		logf(FaultKillRestart, "SIGKILL and restart", err)
	}
}

// errUnsupported marks a fault the arm has no switch for: recorded, not an
// error of the arm.
var errUnsupported = errors.New("not supported by this arm")

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// sampleLoop samples the arm's CPU and memory and prints progress, once a
// second until the load is over.
func (r *armRun) sampleLoop(ctx context.Context, rec *recorder) {
	var last Usage
	var lastAt time.Time
	sample := func() {
		// A tick that waited behind a slow sample comes at once; a few
		// clock ticks of CPU over a few milliseconds would read as
		// thousands of percent. The next sample covers the interval.
		if !lastAt.IsZero() && time.Since(lastAt) < time.Second/2 {
			return
		}
		pids, _ := r.sharedProcess()
		u, err := r.o.Usage(pids)
		now := time.Now()
		if err != nil {
			return
		}
		if !lastAt.IsZero() && u.CPU >= last.CPU {
			r.mu.Lock()
			r.result.Usage = append(r.result.Usage, UsageSample{
				At:    now.Sub(r.start).Seconds(),
				CPU:   100 * (u.CPU - last.CPU).Seconds() / now.Sub(lastAt).Seconds(),
				RSSMB: float64(u.RSS) / (1 << 20),
			})
			r.mu.Unlock()
		}
		last, lastAt = u, now
	}
	sample()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			sample()
			r.progress(rec.takeLive())
		}
	}
}
