package core

import (
	"errors"
	"fmt"
)

// Faults are the switches a drill flips on a running core. The zero value is a
// healthy core.
type Faults struct {
	// Slowdown multiplies every service time: 1 is normal, 10 is a core ten
	// times slower. 0 is treated as 1. Otherwise it must be between 1 and 1000.
	Slowdown float64 `json:"slowdown"`
	// ErrorRate is the probability, 0 to 1, that a call fails with ErrInjected
	// after it has used its full service time (a failing core still burns
	// capacity).
	ErrorRate float64 `json:"error_rate"`
	// Down makes every call fail at once with ErrDown.
	Down bool `json:"down"`
	// LockContention is K, the number of writes in flight at which the database
	// starts to deadlock; 0 turns it off. A write that gets a worker while K or
	// more writes already hold one joins the lock convoy: it keeps its worker
	// for Config.LockTimeout and then fails with ErrLockTimeout. This is the
	// deadlock behind the identity provider in the incident.
	LockContention int `json:"lock_contention"`
}

// validate names every bad field, so an operator fixing a drill sees all of
// them at once.
func (f Faults) validate() error {
	var errs []error
	// Written as negated ranges so that NaN, which fails every comparison, is
	// rejected too.
	if f.Slowdown != 0 && !(f.Slowdown >= 1 && f.Slowdown <= 1000) {
		errs = append(errs, fmt.Errorf("slowdown: must be between 1 and 1000, got %v", f.Slowdown))
	}
	if !(f.ErrorRate >= 0 && f.ErrorRate <= 1) {
		errs = append(errs, fmt.Errorf("error_rate: must be between 0 and 1, got %v", f.ErrorRate))
	}
	if f.LockContention < 0 {
		errs = append(errs, fmt.Errorf("lock_contention: must not be negative, got %d", f.LockContention))
	}
	return errors.Join(errs...)
}

// slowdown is the effective multiplier.
func (f Faults) slowdown() float64 {
	if f.Slowdown == 0 {
		return 1
	}
	return f.Slowdown
}

// SetFaults replaces the faults of a running core in one step: a call sees
// either the old set or the new one, never a mix. Invalid faults are refused
// and the current ones kept.
func (c *Core) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return fmt.Errorf("invalid faults: %w", err)
	}
	c.faults.Store(&f)
	return nil
}

// Faults returns the faults in force, as they were set.
func (c *Core) Faults() Faults {
	return *c.faults.Load()
}
