package main

import (
	"fmt"
	"strings"

	"github.com/rempart/rempart/internal/console"
	"github.com/rempart/rempart/internal/estate/core"
)

// buildConsole mounts the ops console's live page, reading the registry
// /metrics serves, the scrubber and the faults switches of this stack.
func (s *stack) buildConsole() {
	tiers := make(map[string]string, len(s.routes))
	for _, r := range s.routes {
		tiers[r.Name] = r.Tier.String()
	}
	c := console.New(console.Options{Metrics: s.metrics.Registry, Live: consoleLive{s}, RouteTiers: tiers})
	s.ops.Handle(console.Path, c)
	s.ops.Handle(console.PathLive, c)
}

// consoleLive adapts the scrubber and the fault switches to the console.
type consoleLive struct{ s *stack }

var _ console.Live = consoleLive{}

func (l consoleLive) ScrubRoutes() []console.ScrubRoute {
	if l.s.scrubber == nil {
		return nil
	}
	var out []console.ScrubRoute
	for _, r := range l.s.scrubber.States() {
		out = append(out, console.ScrubRoute{Route: r.Route, State: r.State.String(), Detected: r.Detected.String(),
			Mode: r.Mode.String(), Since: r.Since, Bits: r.DifficultyBits, Reason: r.Evidence.Reason})
	}
	return out
}

func (l consoleLive) Faults() []console.Fault {
	var out []console.Fault
	if e := l.s.estate; e != nil {
		out = append(out, console.Fault{Component: "core", Detail: faultWords(e.Core().Faults())},
			console.Fault{Component: "services", Detail: faultWords(e.Services().Faults())})
	}
	if l.s.users != nil {
		f := console.Fault{Component: "identity user directory"}
		if l.s.users.Stuck() {
			f.Detail = "stuck (every lookup hangs)"
		}
		out = append(out, f)
	}
	return out
}

// faultWords says a component's faults as the ops API sets them; "" when
// it is healthy.
func faultWords(f core.Faults) string {
	var parts []string
	if f.Down {
		parts = append(parts, "down")
	}
	if f.Slowdown > 1 {
		parts = append(parts, fmt.Sprintf("slowdown ×%g", f.Slowdown))
	}
	if f.ErrorRate > 0 {
		parts = append(parts, fmt.Sprintf("errors %g %%", 100*f.ErrorRate))
	}
	if f.LockContention > 0 {
		parts = append(parts, fmt.Sprintf("lock contention past %d writes", f.LockContention))
	}
	return strings.Join(parts, ", ")
}
