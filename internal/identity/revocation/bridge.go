// Package revocation carries token and grant revocations between the nodes
// of a cluster through Redis, so that a revocation made on one node is
// refused by every node within about a second.
//
// Each node runs a Bridge next to its *identity.Revocations. Local
// revocations are written to a sorted set (member: the id, score: the
// instant it may be forgotten, in Unix milliseconds) and published on a
// channel; every other node applies what it receives. Pub/sub delivers
// only to the connected, so a node also loads the sorted set when it starts
// and each time its subscription is re-established: a node that was
// partitioned catches up on what it missed.
package revocation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rempart/rempart/internal/identity"
)

// Defaults of Options.
const (
	DefaultChannel = "rempart:revocations"
	DefaultKey     = "rempart:revocations:set"
)

// Options configures a Bridge. The zero value works.
type Options struct {
	// Channel is the pub/sub channel; empty means DefaultChannel.
	Channel string
	// Key is the sorted set of live revocations; empty means DefaultKey.
	Key string
	// NodeID names this node in the messages it publishes, so that it can
	// ignore its own; empty means a random id.
	NodeID string
	// Logger receives errors of the background loops; nil means
	// slog.Default().
	Logger *slog.Logger
	// Now tells the time, for pruning the sorted set; nil means time.Now.
	Now func() time.Time
}

// message is what travels on the channel.
type message struct {
	Node  string `json:"n"`
	ID    string `json:"id"`
	Until int64  `json:"u"` // Unix nanoseconds
}

type revocation struct {
	id    string
	until time.Time
}

// Bridge connects a local revocation list to the cluster. Close stops it.
type Bridge struct {
	rdb    *redis.Client
	revs   *identity.Revocations
	opts   Options
	log    *slog.Logger
	ps     *redis.PubSub
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	// applying counts the revocations being applied from the cluster, so the
	// local subscriber, called synchronously by Revoke, does not publish
	// them back.
	applyMu  sync.Mutex
	applying map[revocation]int

	// pending holds local revocations not yet written to Redis.
	pendMu  sync.Mutex
	pending []revocation
	wake    chan struct{}
}

// Start subscribes to the channel, loads the live revocations from the
// sorted set into revs, and starts forwarding revocations both ways. It
// fails if Redis cannot be reached; once started, the Bridge reconnects by
// itself and catches up after each reconnection.
func Start(ctx context.Context, rdb *redis.Client, revs *identity.Revocations, opts Options) (*Bridge, error) {
	if rdb == nil || revs == nil {
		return nil, errors.New("revocation: nil Redis client or revocation list")
	}
	if opts.Channel == "" {
		opts.Channel = DefaultChannel
	}
	if opts.Key == "" {
		opts.Key = DefaultKey
	}
	if opts.NodeID == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		opts.NodeID = hex.EncodeToString(b[:])
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	b := &Bridge{
		rdb: rdb, revs: revs, opts: opts, log: opts.Logger,
		applying: map[revocation]int{}, wake: make(chan struct{}, 1),
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	b.log = b.log.With("component", "revocation-bridge", "node", opts.NodeID)

	// Subscribe before loading the set, so that nothing revoked in between
	// is missed.
	ps := rdb.Subscribe(ctx, opts.Channel)
	if _, err := ps.Receive(ctx); err != nil { // the subscription confirmation
		_ = ps.Close()
		return nil, fmt.Errorf("revocation: subscribe %s: %w", opts.Channel, err)
	}
	if err := b.load(ctx); err != nil {
		_ = ps.Close()
		return nil, err
	}
	b.ps = ps

	// Forward local revocations. Revocations has no unsubscribe: after
	// Close the callback is a no-op.
	revs.Subscribe(b.local)

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.cancel = cancel
	b.wg.Add(2)
	go b.receive(runCtx)
	go b.publish(runCtx)
	return b, nil
}

// NodeID returns the id this node publishes under.
func (b *Bridge) NodeID() string { return b.opts.NodeID }

// Close stops the Bridge after trying, for up to two seconds, to write the
// local revocations not yet sent. It is safe to call more than once.
func (b *Bridge) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := b.ps.Close() // unblocks receive
	b.cancel()
	b.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if ferr := b.flush(ctx); ferr != nil {
		err = errors.Join(err, ferr)
	}
	if errors.Is(err, redis.ErrClosed) {
		err = nil
	}
	return err
}

// local is the callback given to Revocations.Subscribe.
func (b *Bridge) local(id string, until time.Time) {
	if b.closed.Load() {
		return
	}
	r := revocation{id, until}
	b.applyMu.Lock()
	if n := b.applying[r]; n > 0 { // our own application of a remote revocation
		b.applyMu.Unlock()
		return
	}
	b.applyMu.Unlock()
	b.pendMu.Lock()
	b.pending = append(b.pending, r)
	b.pendMu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// apply revokes id locally without publishing it again.
func (b *Bridge) apply(id string, until time.Time) {
	if id == "" || !b.opts.Now().Before(until) {
		return
	}
	r := revocation{id, until}
	b.applyMu.Lock()
	b.applying[r]++
	b.applyMu.Unlock()
	b.revs.Revoke(id, until)
	b.applyMu.Lock()
	if b.applying[r]--; b.applying[r] <= 0 {
		delete(b.applying, r)
	}
	b.applyMu.Unlock()
}

// load prunes the sorted set and applies every live revocation in it.
func (b *Bridge) load(ctx context.Context) error {
	now := b.opts.Now().UnixMilli()
	pipe := b.rdb.Pipeline()
	pipe.ZRemRangeByScore(ctx, b.opts.Key, "-inf", strconv.FormatInt(now, 10))
	zs := pipe.ZRangeByScoreWithScores(ctx, b.opts.Key, &redis.ZRangeBy{Min: "(" + strconv.FormatInt(now, 10), Max: "+inf"})
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("revocation: load %s: %w", b.opts.Key, err)
	}
	for _, z := range zs.Val() {
		id, _ := z.Member.(string)
		b.apply(id, time.UnixMilli(int64(z.Score)))
	}
	return nil
}

// receive applies the revocations published by other nodes, and reloads the
// sorted set each time the subscription is re-established.
func (b *Bridge) receive(ctx context.Context) {
	defer b.wg.Done()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		msg, err := b.ps.ReceiveTimeout(ctx, 15*time.Second)
		if err != nil {
			if ctx.Err() != nil || b.closed.Load() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Quiet channel: ping so that a dead connection is noticed
				// (and replaced) on the next receive.
				_ = b.ps.Ping(ctx)
				continue
			}
			b.log.Warn("revocation channel", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" { // (re)connected: catch up
				if err := b.load(ctx); err != nil && ctx.Err() == nil {
					b.log.Warn("revocation catch-up", "err", err)
				}
			}
		case *redis.Message:
			b.received(m.Payload)
		}
	}
}

// received applies a message from the channel: anything that is not one of
// ours, from another node, is dropped.
func (b *Bridge) received(payload string) {
	var mm message
	if err := json.Unmarshal([]byte(payload), &mm); err != nil {
		b.log.Warn("revocation message", "err", err)
		return
	}
	if mm.Node == b.opts.NodeID {
		return
	}
	b.apply(mm.ID, time.Unix(0, mm.Until))
}

// publish writes local revocations to Redis, retrying until it succeeds or
// the Bridge is closed.
func (b *Bridge) publish(ctx context.Context) {
	defer b.wg.Done()
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
		}
		for {
			err := b.flush(ctx)
			if err == nil || ctx.Err() != nil {
				break
			}
			b.log.Warn("revocation publish", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
		backoff = 100 * time.Millisecond
	}
}

// flush sends the pending revocations in one pipeline; on failure they stay
// pending.
func (b *Bridge) flush(ctx context.Context) error {
	b.pendMu.Lock()
	batch := b.pending
	b.pending = nil
	b.pendMu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	now := b.opts.Now()
	pipe := b.rdb.Pipeline()
	for _, r := range batch {
		if !now.Before(r.until) {
			continue
		}
		// Round up to the millisecond: never forget early.
		score := float64(r.until.UnixMilli())
		if r.until.UnixNano()%int64(time.Millisecond) != 0 {
			score++
		}
		pipe.ZAddGT(ctx, b.opts.Key, redis.Z{Score: score, Member: r.id})
		payload, _ := json.Marshal(message{Node: b.opts.NodeID, ID: r.id, Until: r.until.UnixNano()})
		pipe.Publish(ctx, b.opts.Channel, payload)
	}
	pipe.ZRemRangeByScore(ctx, b.opts.Key, "-inf", strconv.FormatInt(now.UnixMilli(), 10))
	if _, err := pipe.Exec(ctx); err != nil {
		b.pendMu.Lock()
		b.pending = append(batch, b.pending...)
		b.pendMu.Unlock()
		return err
	}
	return nil
}
