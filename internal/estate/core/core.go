package core

import (
	"container/list"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Errors a call to the core can fail with, besides the caller's own ctx error
// and whatever the call's function returns.
var (
	// ErrDown: the core is switched off (Faults.Down).
	ErrDown = errors.New("core down")
	// ErrInjected: a failure injected by Faults.ErrorRate.
	ErrInjected = errors.New("core injected failure")
	// ErrLockTimeout: the write waited Config.LockTimeout in a lock convoy.
	ErrLockTimeout = errors.New("core lock wait timeout")
	// ErrQueueFull: more than Config.QueueLimit calls were already waiting.
	ErrQueueFull = errors.New("core queue full")
)

// Kind tells reads from writes; only writes take the database locks that can
// convoy.
type Kind int

const (
	Read  Kind = iota // never takes a write lock, so never joins a convoy
	Write             // counts towards Faults.LockContention
)

func (k Kind) String() string {
	if k == Write {
		return "write"
	}
	return "read"
}

// Config sizes the core. Zero or negative values take the default.
type Config struct {
	// Workers is the fixed number of calls the core serves at once. Default 64.
	Workers int
	// MedianService is the median time a call holds its worker; service times
	// are lognormal around it. Default 8ms.
	MedianService time.Duration
	// Sigma is the lognormal shape: 0.5 puts a sixth of calls above 1.65 times
	// the median. Default 0.5.
	Sigma float64
	// QueueLimit is how many calls may wait for a worker; one more is refused
	// at once with ErrQueueFull. Default 4096.
	QueueLimit int
	// LockTimeout is how long a write in a lock convoy holds its worker before
	// it fails with ErrLockTimeout. Default 5s.
	LockTimeout time.Duration
	// Seed seeds the service-time and error draws; the same seed gives the same
	// sequence of draws.
	Seed int64
}

func (cfg Config) withDefaults() Config {
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.MedianService <= 0 {
		cfg.MedianService = 8 * time.Millisecond
	}
	if cfg.Sigma <= 0 {
		cfg.Sigma = 0.5
	}
	if cfg.QueueLimit <= 0 {
		cfg.QueueLimit = 4096
	}
	if cfg.LockTimeout <= 0 {
		cfg.LockTimeout = 5 * time.Second
	}
	return cfg
}

// Core is a simulated legacy banking core. It is safe for concurrent use.
type Core struct {
	cfg    Config
	faults atomic.Pointer[Faults]

	rngMu sync.Mutex // rand.Rand is not safe for concurrent use
	rng   *rand.Rand

	mu     sync.Mutex
	busy   int        // workers held, including by lock convoys
	writes int        // writes holding a worker
	queue  *list.List // of *waiter, oldest first

	completed atomic.Int64
	failed    [numReasons]atomic.Int64
	abandoned atomic.Int64
}

// waiter is a call queued for a worker.
type waiter struct {
	kind    Kind
	granted bool      // set under Core.mu when a worker is handed over
	ready   chan bool // receives convoy, once, when granted
}

// New returns a healthy core sized by cfg.
func New(cfg Config) *Core {
	cfg = cfg.withDefaults()
	c := &Core{
		cfg:   cfg,
		rng:   rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(cfg.Seed)^0x9e3779b97f4a7c15)),
		queue: list.New(),
	}
	c.faults.Store(&Faults{})
	return c
}

// Do runs fn as one call of kind k on the core: it waits for a worker, holds
// it for a service time, then calls fn.
//
// While the call waits in the queue it honours ctx: if ctx ends, Do returns
// ctx.Err() and no worker is used. Once the call holds a worker it no longer
// looks at ctx, because a real legacy core does not know that its caller gave
// up: the full service time is spent, fn runs with ctx's values but without
// its cancellation (the core commits what it was asked to commit), and the
// worker is only freed at the end. That is why timeouts followed by retries
// multiply the load on an overloaded core, and why a write may be applied even
// though its caller saw a timeout.
//
// A nil fn is a call that only uses capacity.
func (c *Core) Do(ctx context.Context, k Kind, fn func(ctx context.Context) error) error {
	if c.faults.Load().Down {
		return c.fail(reasonDown, ErrDown)
	}
	convoy, err := c.acquire(ctx, k)
	if err != nil {
		return err
	}
	defer c.release(k)

	// Faults may have changed while the call was queued; a core that went
	// down meanwhile refuses it too.
	f := c.faults.Load()
	if f.Down {
		return c.fail(reasonDown, ErrDown)
	}
	if convoy {
		time.Sleep(c.cfg.LockTimeout)
		c.noteAbandoned(ctx)
		return c.fail(reasonLockTimeout, ErrLockTimeout)
	}

	d, injected := c.draw(f)
	time.Sleep(d)
	c.noteAbandoned(ctx)
	if injected {
		return c.fail(reasonInjected, ErrInjected)
	}
	if fn != nil {
		if err := fn(context.WithoutCancel(ctx)); err != nil {
			return c.fail(reasonCall, err)
		}
	}
	c.completed.Add(1)
	return nil
}

// acquire takes a worker for a call of kind k, waiting in FIFO order if none
// is free. convoy reports that the call is a write that arrived on a worker
// while the lock-contention threshold was already reached.
func (c *Core) acquire(ctx context.Context, k Kind) (convoy bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, c.fail(reasonCanceled, err)
	}
	c.mu.Lock()
	// A free worker goes to the head of the queue, never to a newcomer.
	if c.busy < c.cfg.Workers && c.queue.Len() == 0 {
		c.busy++
		convoy = c.admitLocked(k)
		c.mu.Unlock()
		return convoy, nil
	}
	if c.queue.Len() >= c.cfg.QueueLimit {
		c.mu.Unlock()
		return false, c.fail(reasonQueueFull, ErrQueueFull)
	}
	w := &waiter{kind: k, ready: make(chan bool, 1)}
	e := c.queue.PushBack(w)
	c.mu.Unlock()

	select {
	case convoy = <-w.ready:
		return convoy, nil
	case <-ctx.Done():
	}
	c.mu.Lock()
	if !w.granted {
		c.queue.Remove(e)
		c.mu.Unlock()
		return false, c.fail(reasonCanceled, ctx.Err())
	}
	c.mu.Unlock()
	// A worker was handed over just as ctx ended: the caller is gone before
	// the call started, so pass the worker on unused.
	<-w.ready
	c.release(k)
	return false, c.fail(reasonCanceled, ctx.Err())
}

// admitLocked records a call of kind k taking a worker and decides whether it
// joins the lock convoy. c.mu must be held.
func (c *Core) admitLocked(k Kind) (convoy bool) {
	if k != Write {
		return false
	}
	kk := c.faults.Load().LockContention
	convoy = kk > 0 && c.writes >= kk
	c.writes++
	return convoy
}

// release frees the worker of a call of kind k, handing it straight to the
// oldest waiter if there is one.
func (c *Core) release(k Kind) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k == Write {
		c.writes--
	}
	front := c.queue.Front()
	if front == nil {
		c.busy--
		return
	}
	w := c.queue.Remove(front).(*waiter)
	w.granted = true
	w.ready <- c.admitLocked(w.kind)
}

// draw picks a service time under faults f and whether the call fails.
func (c *Core) draw(f *Faults) (time.Duration, bool) {
	c.rngMu.Lock()
	n := c.rng.NormFloat64()
	injected := f.ErrorRate > 0 && c.rng.Float64() < f.ErrorRate
	c.rngMu.Unlock()
	return c.serviceTime(n, f.slowdown()), injected
}

// serviceTime turns a standard normal draw n into a lognormal service time
// whose median is MedianService × slowdown.
func (c *Core) serviceTime(n, slowdown float64) time.Duration {
	return time.Duration(float64(c.cfg.MedianService) * slowdown * math.Exp(c.cfg.Sigma*n))
}

func (c *Core) noteAbandoned(ctx context.Context) {
	if ctx.Err() != nil {
		c.abandoned.Add(1)
	}
}

func (c *Core) fail(r reason, err error) error {
	c.failed[r].Add(1)
	return err
}
