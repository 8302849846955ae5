package admission

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Controller. The zero value is usable: every zero field
// takes the default named in its comment. None of them is a capacity figure
// to guess: the limit is learnt from the upstream between MinLimit and
// MaxLimit, which only bound it.
type Options struct {
	// Name identifies the upstream: the "upstream" label of every metric and
	// Stats.Upstream. Default "default".
	Name string

	// Registerer receives the controller's metrics
	// (rempart_admission_*{upstream=Name,...}). Nil keeps them unregistered;
	// Stats still works.
	Registerer prometheus.Registerer

	// InitialLimit is the number of concurrent calls allowed before the
	// controller has learnt anything about the upstream. Default 20.
	InitialLimit int
	// MinLimit is the floor of the learnt limit: what a failing upstream
	// still gets, to show when it recovers. Default 1.
	MinLimit int
	// MaxLimit is the ceiling of the learnt limit. Default 1000.
	MaxLimit int
	// SampleWindow is the shortest time over which the limiter gathers
	// latencies before it moves the limit (a window also spans at least four
	// round trips and 32 answers). Shorter reacts faster to an upstream that
	// slows down and is noisier. Default 250ms.
	SampleWindow time.Duration

	// Noise, when set, reports latency the upstream did not cause: the
	// gateway's own scheduling delay (the p90 of how long goroutines wait
	// for a processor, rempart_sched_latency_p90_seconds). A window's
	// median above the upstream's quiet latency by no more than it is not
	// read as queueing in the upstream: a gateway sharing its cores with a
	// fast back end and the clients would otherwise mistake its own CPU
	// saturation for the back end's and cut the limit until it sheds.
	Noise func() time.Duration

	// CriticalReserve sizes the capacity only CRITICAL requests may use, as a
	// share of the current limit, in (0, 1]: other tiers start calls only
	// while fewer than the limit are in flight (CRITICAL included), CRITICAL
	// up to limit × (1 + CriticalReserve), at least one more. Zero takes the
	// default 0.2; a negative value disables the reservation.
	CriticalReserve float64

	// QueueFactor bounds the queue, all tiers together, to QueueFactor × the
	// current limit waiting requests when a request below CRITICAL arrives:
	// about QueueFactor service times of work. When it is full a newcomer
	// takes the place of the oldest waiting request of a less important
	// tier, or is shed. CRITICAL requests are bounded by MaxQueue only.
	// The bound counts the work at the concurrency the upstream served at
	// its baseline in the last 10s when that is above the limit, and applies
	// only once the upstream has shown overload (a 5xx or time-out, or a
	// request the queue had to shed at MaxQueue, MaxWait or its deadline);
	// until then, and again after a sample window at the baseline latency
	// with nothing shed, the queue is open: bounded by MaxQueue, MaxWait and
	// deadlines, served oldest first, never purged at QueueTarget.
	// Default 2.
	QueueFactor float64
	// MaxQueue caps the queue whatever the tier and the limit. Default 1000.
	MaxQueue int
	// MaxWait is the longest a request waits for a slot while its tier's
	// queue drains normally (FIFO). Default 500ms.
	MaxWait time.Duration
	// QueueTarget is the longest a request waits once its tier's queue has
	// stood non-empty for QueueInterval; the queue is then served newest
	// first (LIFO) and requests older than the target are shed. The target
	// is at least two slot releases of the upstream (its service time over
	// the limit), so a slow upstream stretches it. CRITICAL requests are
	// served newest first too but never shed for their wait: they wait
	// while their deadline (and MaxWait) allows. Default 5ms.
	QueueTarget time.Duration
	// QueueInterval is how long a tier's queue must stay non-empty to count
	// as a standing queue. Default 100ms.
	QueueInterval time.Duration

	// RetryAfter is the shortest Retry-After sent with a shed answer, rounded
	// up to whole seconds. Default 1s.
	RetryAfter time.Duration
	// RetryAfterJitter is the spread added to RetryAfter, uniformly in whole
	// seconds, so shed clients do not come back in lockstep. Zero takes the
	// default 2s; a negative value sends RetryAfter exactly.
	RetryAfterJitter time.Duration
}

// maxQueueCap keeps a misconfigured MaxQueue from turning the queue into an
// unbounded buffer: a million parked goroutines is already far past useful.
const maxQueueCap = 1 << 20

func (o Options) withDefaults() (Options, error) {
	if o.Name == "" {
		o.Name = "default"
	}
	if o.InitialLimit == 0 {
		o.InitialLimit = 20
	}
	if o.MinLimit == 0 {
		o.MinLimit = 1
	}
	if o.MaxLimit == 0 {
		o.MaxLimit = 1000
	}
	if o.SampleWindow == 0 {
		o.SampleWindow = 250 * time.Millisecond
	}
	if o.CriticalReserve == 0 {
		o.CriticalReserve = 0.2
	}
	if o.QueueFactor == 0 {
		o.QueueFactor = 2
	}
	if o.MaxQueue == 0 {
		o.MaxQueue = 1000
	}
	if o.MaxWait == 0 {
		o.MaxWait = 500 * time.Millisecond
	}
	if o.QueueTarget == 0 {
		o.QueueTarget = 5 * time.Millisecond
	}
	if o.QueueInterval == 0 {
		o.QueueInterval = 100 * time.Millisecond
	}
	if o.RetryAfter == 0 {
		o.RetryAfter = time.Second
	}
	if o.RetryAfterJitter == 0 {
		o.RetryAfterJitter = 2 * time.Second
	}
	return o, o.validate()
}

func (o Options) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if o.MinLimit < 1 {
		bad("MinLimit", "%d is below 1", o.MinLimit)
	}
	if o.MaxLimit < o.MinLimit {
		bad("MaxLimit", "%d is below MinLimit %d", o.MaxLimit, o.MinLimit)
	}
	if o.InitialLimit < o.MinLimit || o.InitialLimit > o.MaxLimit {
		bad("InitialLimit", "%d is outside [MinLimit %d, MaxLimit %d]", o.InitialLimit, o.MinLimit, o.MaxLimit)
	}
	if o.SampleWindow < 0 {
		bad("SampleWindow", "negative %v", o.SampleWindow)
	}
	if o.CriticalReserve > 1 || math.IsNaN(o.CriticalReserve) {
		bad("CriticalReserve", "%v is over 1", o.CriticalReserve)
	}
	if o.QueueFactor < 0 || math.IsNaN(o.QueueFactor) || math.IsInf(o.QueueFactor, 0) {
		bad("QueueFactor", "%v is not a non-negative number", o.QueueFactor)
	}
	if o.MaxQueue < 0 || o.MaxQueue > maxQueueCap {
		bad("MaxQueue", "%d is outside [0, %d]", o.MaxQueue, maxQueueCap)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"MaxWait", o.MaxWait}, {"QueueTarget", o.QueueTarget}, {"QueueInterval", o.QueueInterval}, {"RetryAfter", o.RetryAfter}} {
		if d.v < 0 {
			bad(d.field, "negative %v", d.v)
		}
	}
	if o.RetryAfterJitter > time.Hour {
		bad("RetryAfterJitter", "%v is over an hour", o.RetryAfterJitter)
	}
	if o.RetryAfter > 24*time.Hour {
		bad("RetryAfter", "%v is over a day", o.RetryAfter)
	}
	if len(errs) > 0 {
		return fmt.Errorf("admission options for upstream %q: %w", o.Name, errors.Join(errs...))
	}
	return nil
}
