package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rempart/rempart/internal/session"
)

// Options configures a Store.
type Options struct {
	// Prefix starts every key the store writes. Give each deployment its
	// own when several share a Redis. Empty means "rempart:session:".
	Prefix string
	// MaxPerSubject is how many live sessions one subject may hold; Create
	// evicts the subject's oldest beyond it. Zero means
	// session.DefaultMaxPerSubject.
	MaxPerSubject int
	// Timeout bounds each read and write of Open's client (see
	// ClientOptions). Zero means DefaultTimeout. The caller's deadline,
	// when shorter, wins.
	Timeout time.Duration
}

// DefaultTimeout bounds a session call: a login or a refresh makes a few in
// sequence, each well under a millisecond on a healthy Redis, so a stalled
// one costs the request at most this before the provider answers 503
// (go-redis would otherwise wait out its own 3-5 s defaults, then retry).
const DefaultTimeout = 100 * time.Millisecond

// Store is the Redis session.Store.
//
// Keys: <prefix>s:<id> is a hash per session (j: the session as JSON,
// l: LastSeen in Unix nanoseconds, x: ExpiresAt and i: IdleTimeout in
// milliseconds for the scripts, s: the subject), expiring at the session's
// deadline; <prefix>u:<subject> is a sorted set of the subject's session
// IDs scored by CreatedAt in milliseconds, expiring with its longest-lived
// member. Members whose session expired are dropped lazily by the scripts.
type Store struct {
	c      *goredis.Client
	prefix string
	max    int

	create, touch, update, del, delSubject *goredis.Script
}

var _ session.Store = (*Store)(nil)

// New returns a store on c and takes ownership of it: Close closes it.
// c may be a plain or a Sentinel (failover) client; Redis Cluster is not
// supported because the scripts touch keys they compute.
func New(c *goredis.Client, opts Options) *Store {
	s := &Store{
		c:          c,
		prefix:     opts.Prefix,
		max:        opts.MaxPerSubject,
		create:     goredis.NewScript(createScript),
		touch:      goredis.NewScript(touchScript),
		update:     goredis.NewScript(updateScript),
		del:        goredis.NewScript(deleteScript),
		delSubject: goredis.NewScript(deleteSubjectScript),
	}
	if s.prefix == "" {
		s.prefix = "rempart:session:"
	}
	if s.max <= 0 {
		s.max = session.DefaultMaxPerSubject
	}
	return s
}

// Open connects to the Redis at url (redis://host:port/db, see
// goredis.ParseURL), checks it answers and returns a store on it.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	o, err := ClientOptions(url, opts.Timeout)
	if err != nil {
		return nil, err
	}
	c := goredis.NewClient(o)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("ping redis: %w", err)
	}
	return New(c, opts), nil
}

// ClientOptions parses a Redis URL into options that fail fast: every call
// bounded by the caller's context (ContextTimeoutEnabled), reads and writes
// by timeout, dialling and the pool wait by five times timeout, where the URL
// does not set them (dial_timeout, pool_timeout, read_timeout,
// write_timeout), and no retries (a retry would come after the deadline that
// matters). A stopped Redis still accepts connections (its kernel does) and
// holds a pooled connection no longer than a read, so reads are what it
// stalls; a dial or a pool wait past timeout is a saturated node's scheduler
// more often than Redis, and failing it would turn a busy node's logins into
// errors (seen at 100 ms in the conformance tests under -race).
func ClientOptions(url string, timeout time.Duration) (*goredis.Options, error) {
	o, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("parse redis url: %w", err)
	}
	o.ContextTimeoutEnabled = true
	for _, d := range []struct {
		p *time.Duration
		v time.Duration
	}{{&o.ReadTimeout, timeout}, {&o.WriteTimeout, timeout}, {&o.DialTimeout, 5 * timeout}, {&o.PoolTimeout, 5 * timeout}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
	o.MaxRetries = -1
	o.DialerRetries = 1
	return o, nil
}

func (s *Store) sessionKey(id string) string      { return s.prefix + "s:" + id }
func (s *Store) subjectKey(subject string) string { return s.prefix + "u:" + subject }

// Create implements session.Store. The bound check, the evictions and the
// write are one script, so concurrent logins of one customer cannot
// overshoot the bound.
func (s *Store) Create(ctx context.Context, in session.Session) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := in.Validate(); err != nil {
		return err
	}
	in.CreatedAt, in.ExpiresAt = in.CreatedAt.UTC(), in.ExpiresAt.UTC()
	if in.LastSeen.IsZero() {
		in.LastSeen = in.CreatedAt
	}
	in.LastSeen = in.LastSeen.UTC()
	j, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encode session: %w", err)
	}
	n, err := s.create.Run(ctx, s.c,
		[]string{s.sessionKey(in.ID), s.subjectKey(in.Subject)},
		in.ID, j,
		in.LastSeen.UnixNano(), in.LastSeen.UnixMilli(),
		in.ExpiresAt.UnixMilli(), in.IdleTimeout.Milliseconds(),
		in.CreatedAt.UnixMilli(), s.max, s.prefix+"s:", in.Subject,
	).Int64()
	if err != nil {
		return fmt.Errorf("redis create session: %w", err)
	}
	if n < 0 {
		return session.ErrAlreadyExists
	}
	return nil
}

// Get implements session.Store. Redis's own expiry decides liveness, on the
// server's clock, to the millisecond (deadlines are rounded down).
func (s *Store) Get(ctx context.Context, id string) (session.Session, error) {
	if err := ctx.Err(); err != nil {
		return session.Session{}, err
	}
	v, err := s.c.HMGet(ctx, s.sessionKey(id), "j", "l").Result()
	if err != nil {
		return session.Session{}, fmt.Errorf("redis get session: %w", err)
	}
	return decode(v[0], v[1])
}

// Touch implements session.Store. LastSeen is the Redis server's time, the
// same clock that enforces the deadline, so gateways with drifting clocks
// cannot disagree about idleness.
func (s *Store) Touch(ctx context.Context, id string) (session.Session, error) {
	if err := ctx.Err(); err != nil {
		return session.Session{}, err
	}
	v, err := s.touch.Run(ctx, s.c, []string{s.sessionKey(id)}).Slice()
	if errors.Is(err, goredis.Nil) {
		return session.Session{}, session.ErrNotFound
	}
	if err != nil {
		return session.Session{}, fmt.Errorf("redis touch session: %w", err)
	}
	if len(v) != 2 {
		return session.Session{}, fmt.Errorf("redis touch session: unexpected reply of %d values", len(v))
	}
	return decode(v[0], v[1])
}

// updateTries bounds Update's optimistic retries, which back off by a
// random fraction of a millisecond more each time so that writers that
// collided once do not collide again in lockstep. Two writers of one
// session (two gateways serving one login) conflict rarely; a session under
// more contention than this is a bug or an attack, and its writer gets an
// error after at most about 50 ms of back-off rather than a spin.
const updateTries = 16

// Update implements session.Store as an optimistic compare-and-swap: read
// the session, apply f, write only if the stored json is still the one read
// (updateScript), else read again and retry.
func (s *Store) Update(ctx context.Context, id string, f func(*session.Session) error) (session.Session, error) {
	for try := range updateTries {
		if try > 0 {
			time.Sleep(time.Duration(rand.Int64N(int64(try) * int64(400*time.Microsecond))))
		}
		if err := ctx.Err(); err != nil {
			return session.Session{}, err
		}
		v, err := s.c.HMGet(ctx, s.sessionKey(id), "j", "l").Result()
		if err != nil {
			return session.Session{}, fmt.Errorf("redis update session: %w", err)
		}
		prev, err := decode(v[0], v[1])
		if err != nil {
			return session.Session{}, err
		}
		next := prev
		next.AMR = slices.Clone(prev.AMR)
		next.Attrs = maps.Clone(prev.Attrs)
		if err := f(&next); err != nil {
			return session.Session{}, err
		}
		if err := session.CheckUpdate(prev, next); err != nil {
			return session.Session{}, err
		}
		next.ExpiresAt = next.ExpiresAt.UTC()
		j, err := json.Marshal(next)
		if err != nil {
			return session.Session{}, fmt.Errorf("encode session: %w", err)
		}
		n, err := s.update.Run(ctx, s.c, []string{s.sessionKey(id)}, v[0], j, next.ExpiresAt.UnixMilli(), s.prefix+"u:").Int64()
		if err != nil {
			return session.Session{}, fmt.Errorf("redis update session: %w", err)
		}
		switch n {
		case 0:
			return session.Session{}, session.ErrNotFound
		case 1:
			return next, nil
		}
	}
	return session.Session{}, fmt.Errorf("redis update session: %d conflicting writes in a row", updateTries)
}

// decode turns the j and l fields into a session; nil j means not found.
func decode(j, l any) (session.Session, error) {
	js, ok := j.(string)
	if !ok {
		return session.Session{}, session.ErrNotFound
	}
	var out session.Session
	if err := json.Unmarshal([]byte(js), &out); err != nil {
		return session.Session{}, fmt.Errorf("decode session: %w", err)
	}
	if ls, ok := l.(string); ok {
		ns, err := strconv.ParseInt(ls, 10, 64)
		if err != nil {
			return session.Session{}, fmt.Errorf("decode last seen: %w", err)
		}
		out.LastSeen = time.Unix(0, ns).UTC()
	}
	return out, nil
}

// Delete implements session.Store.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n, err := s.del.Run(ctx, s.c, []string{s.sessionKey(id)}, s.prefix+"u:", id).Int64()
	if err != nil {
		return fmt.Errorf("redis delete session: %w", err)
	}
	if n == 0 {
		return session.ErrNotFound
	}
	return nil
}

// DeleteSubject implements session.Store.
func (s *Store) DeleteSubject(ctx context.Context, subject string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n, err := s.delSubject.Run(ctx, s.c, []string{s.subjectKey(subject)}, s.prefix+"s:", subject).Int64()
	if err != nil {
		return 0, fmt.Errorf("redis delete subject: %w", err)
	}
	return int(n), nil
}

// ListSubject implements session.Store: the subject's set, then its
// sessions in one pipeline. Members whose session has expired, or whose ID
// now belongs to another subject, are skipped.
func (s *Store) ListSubject(ctx context.Context, subject string) ([]session.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ids, err := s.c.ZRange(ctx, s.subjectKey(subject), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("redis list subject: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*goredis.SliceCmd, len(ids))
	_, err = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, s.sessionKey(id), "j", "l", "s")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redis list subject: %w", err)
	}
	var out []session.Session
	for _, c := range cmds {
		v := c.Val()
		if sub, _ := v[2].(string); sub != subject {
			continue
		}
		got, err := decode(v[0], v[1])
		if errors.Is(err, session.ErrNotFound) {
			continue // expired between the two round trips
		}
		if err != nil {
			return nil, err
		}
		out = append(out, got)
	}
	return out, nil
}

// Close closes the client.
func (s *Store) Close() error {
	return s.c.Close()
}
