package core

// reason is why a call failed, as counted in Stats and labelled in metrics.
type reason int

const (
	reasonDown reason = iota
	reasonInjected
	reasonLockTimeout
	reasonQueueFull
	reasonCanceled
	reasonCall
	numReasons
)

func (r reason) String() string {
	switch r {
	case reasonDown:
		return "down"
	case reasonInjected:
		return "injected"
	case reasonLockTimeout:
		return "lock_timeout"
	case reasonQueueFull:
		return "queue_full"
	case reasonCanceled:
		return "canceled"
	case reasonCall:
		return "call"
	}
	return "unknown"
}

// Stats is a snapshot of the core: gauges of what it holds now and counters
// since it was built.
type Stats struct {
	Workers        int `json:"workers"`          // size of the pool
	Busy           int `json:"busy"`             // workers held, lock convoys included
	Queued         int `json:"queued"`           // calls waiting for a worker
	WritesInFlight int `json:"writes_in_flight"` // writes holding a worker

	Completed    int64 `json:"completed"`     // calls that returned nil
	Failed       int64 `json:"failed"`        // calls that returned an error, the sum of the counters below
	Down         int64 `json:"down"`          // refused with ErrDown
	Injected     int64 `json:"injected"`      // failed with ErrInjected
	LockTimeouts int64 `json:"lock_timeouts"` // failed with ErrLockTimeout
	QueueFull    int64 `json:"queue_full"`    // refused with ErrQueueFull
	Canceled     int64 `json:"canceled"`      // ctx ended before the call got a worker
	CallErrors   int64 `json:"call_errors"`   // the call's own function returned an error

	// Abandoned counts calls whose ctx had ended by the time the core finished
	// with them: capacity spent for a caller who was no longer there.
	Abandoned int64 `json:"abandoned"`
}

// Stats returns a snapshot of the core.
func (c *Core) Stats() Stats {
	c.mu.Lock()
	s := Stats{
		Workers:        c.cfg.Workers,
		Busy:           c.busy,
		Queued:         c.queue.Len(),
		WritesInFlight: c.writes,
	}
	c.mu.Unlock()
	s.Completed = c.completed.Load()
	s.Down = c.failed[reasonDown].Load()
	s.Injected = c.failed[reasonInjected].Load()
	s.LockTimeouts = c.failed[reasonLockTimeout].Load()
	s.QueueFull = c.failed[reasonQueueFull].Load()
	s.Canceled = c.failed[reasonCanceled].Load()
	s.CallErrors = c.failed[reasonCall].Load()
	s.Failed = s.Down + s.Injected + s.LockTimeouts + s.QueueFull + s.Canceled + s.CallErrors
	s.Abandoned = c.abandoned.Load()
	return s
}
