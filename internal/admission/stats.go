package admission

import (
	"time"

	"github.com/rempart/rempart/internal/tier"
)

// Stats is a snapshot of a controller, for the status page and operators:
// gauges of what it holds now and counters since it was built.
type Stats struct {
	Upstream string `json:"upstream"`
	// Limit is the concurrency learnt for the upstream: other tiers start
	// calls only while fewer are in flight.
	Limit int `json:"limit"`
	// Reserved is how many slots beyond Limit only CRITICAL requests may use.
	Reserved int `json:"reserved"`
	InFlight int `json:"in_flight"`
	Queued   int `json:"queued"`
	// Open reports a queue that sheds only what it must (full at MaxQueue,
	// past MaxWait or a deadline): the upstream has not shown overload
	// lately.
	Open  bool        `json:"open"`
	Tiers []TierStats `json:"tiers"` // most important first
}

// TierStats is one tier's share of a Stats.
type TierStats struct {
	Tier     tier.Tier `json:"tier"`
	Admitted int64     `json:"admitted"` // let through since start
	Shed     int64     `json:"shed"`     // answered 503 since start; the sum of ShedBy
	// ShedBy splits Shed by reason: deadline, queue_full, queue_timeout,
	// preempted, canceled. Reasons that never happened are absent.
	ShedBy   map[string]int64 `json:"shed_by,omitempty"`
	InFlight int              `json:"in_flight"`
	Queued   int              `json:"queued"`
	// LIFO reports a standing queue: served newest first, with QueueTarget
	// as the wait bound.
	LIFO bool `json:"lifo"`
}

// Stats returns a snapshot of the controller.
func (c *Controller) Stats() Stats {
	now := time.Now()
	s := Stats{Upstream: c.opts.Name, Tiers: make([]TierStats, numTiers)}
	c.mu.Lock()
	s.Limit = c.limitLocked()
	s.Reserved = c.reserveFor(s.Limit)
	s.InFlight = c.total
	s.Queued = c.queued
	s.Open = c.openLocked(now)
	for t := range tier.Tier(numTiers) {
		s.Tiers[t] = TierStats{
			Tier:     t,
			InFlight: c.inFlight[t],
			Queued:   c.queues[t].n,
			LIFO:     c.queues[t].standing(now, c.opts.QueueInterval),
		}
	}
	c.mu.Unlock()
	for t := range s.Tiers {
		ts := &s.Tiers[t]
		ts.Admitted = c.admitted[t].Load()
		for r := range numReasons {
			if n := c.shedN[t][r].Load(); n > 0 {
				if ts.ShedBy == nil {
					ts.ShedBy = map[string]int64{}
				}
				ts.ShedBy[r.label()] = n
				ts.Shed += n
			}
		}
	}
	return s
}
