package legacy

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/rempart/rempart/internal/estate/core"
	"github.com/rempart/rempart/internal/identity"
	"github.com/rempart/rempart/internal/identity/users"
	"github.com/rempart/rempart/internal/session"
)

// DB is the identity database of 2025: one capacity model (a core.Core of
// its own, separate from the bank's core) that every session and directory
// call queues on, and a switch that makes it hang like the deadlocked
// database behind La Poste's provider.
type DB struct {
	core  *core.Core
	stuck atomic.Pointer[chan struct{}]
}

// NewDB returns a healthy identity database of the given capacity.
func NewDB(cfg core.Config) *DB { return &DB{core: core.New(cfg)} }

// SetStuck makes every call hang until its caller gives up, or frees them.
func (db *DB) SetStuck(stuck bool) {
	if stuck {
		ch := make(chan struct{})
		db.stuck.CompareAndSwap(nil, &ch)
		return
	}
	if p := db.stuck.Swap(nil); p != nil {
		close(*p)
	}
}

// Stuck reports whether SetStuck(true) is in force.
func (db *DB) Stuck() bool { return db.stuck.Load() != nil }

// Core is the database's capacity model (for its metrics and stats).
func (db *DB) Core() *core.Core { return db.core }

// call runs fn as one call of kind k on the database.
func (db *DB) call(ctx context.Context, k core.Kind, fn func(ctx context.Context) error) error {
	if p := db.stuck.Load(); p != nil {
		select {
		case <-ctx.Done():
			return fmt.Errorf("identity database: %w", ctx.Err())
		case <-*p:
		}
	}
	var inner error
	err := db.core.Do(ctx, k, func(ctx context.Context) error {
		inner = fn(ctx)
		return nil
	})
	if err != nil {
		return fmt.Errorf("identity database: %w", err)
	}
	return inner
}

// SessionDB is a session store kept in the identity database: every call
// is one call on it (a read or a write), so it queues for the database's
// workers and hangs with it. The rows themselves are kept by inner.
type SessionDB struct {
	inner session.Store
	db    *DB
}

// Interface guards.
var (
	_ session.Store          = (*SessionDB)(nil)
	_ identity.UserDirectory = (*Directory)(nil)
)

// NewSessionDB keeps inner's sessions behind db.
func NewSessionDB(inner session.Store, db *DB) *SessionDB {
	return &SessionDB{inner: inner, db: db}
}

func (s *SessionDB) Create(ctx context.Context, v session.Session) error {
	return s.db.call(ctx, core.Write, func(ctx context.Context) error { return s.inner.Create(ctx, v) })
}

func (s *SessionDB) Get(ctx context.Context, id string) (out session.Session, err error) {
	err = s.db.call(ctx, core.Read, func(ctx context.Context) (e error) { out, e = s.inner.Get(ctx, id); return e })
	return out, err
}

func (s *SessionDB) Touch(ctx context.Context, id string) (out session.Session, err error) {
	err = s.db.call(ctx, core.Write, func(ctx context.Context) (e error) { out, e = s.inner.Touch(ctx, id); return e })
	return out, err
}

func (s *SessionDB) Update(ctx context.Context, id string, f func(*session.Session) error) (out session.Session, err error) {
	err = s.db.call(ctx, core.Write, func(ctx context.Context) (e error) { out, e = s.inner.Update(ctx, id, f); return e })
	return out, err
}

func (s *SessionDB) Delete(ctx context.Context, id string) error {
	return s.db.call(ctx, core.Write, func(ctx context.Context) error { return s.inner.Delete(ctx, id) })
}

func (s *SessionDB) DeleteSubject(ctx context.Context, subject string) (n int, err error) {
	err = s.db.call(ctx, core.Write, func(ctx context.Context) (e error) { n, e = s.inner.DeleteSubject(ctx, subject); return e })
	return n, err
}

func (s *SessionDB) ListSubject(ctx context.Context, subject string) (out []session.Session, err error) {
	err = s.db.call(ctx, core.Read, func(ctx context.Context) (e error) { out, e = s.inner.ListSubject(ctx, subject); return e })
	return out, err
}

// Close closes inner.
func (s *SessionDB) Close() error { return s.inner.Close() }

// Directory is the customer directory in the identity database: each
// password check first reads the customer's row there.
type Directory struct {
	inner identity.UserDirectory
	db    *DB
}

// NewDirectory puts inner's customers behind db.
func NewDirectory(inner identity.UserDirectory, db *DB) *Directory {
	return &Directory{inner: inner, db: db}
}

// Authenticate reads the customer's row, then checks the password.
func (d *Directory) Authenticate(ctx context.Context, id, password string) (users.User, error) {
	if err := d.db.call(ctx, core.Read, func(context.Context) error { return nil }); err != nil {
		return users.User{}, err
	}
	return d.inner.Authenticate(ctx, id, password)
}
