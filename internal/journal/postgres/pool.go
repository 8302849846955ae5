package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// pool is a fixed set of connection slots. pgxpool would do, but it brings
// a dependency (puddle) the module does not carry, and the journal needs no
// more than this: a few connections, each reconnected after it breaks.
type pool struct {
	cfg   *pgx.ConnConfig
	slots chan *pgx.Conn // a nil slot is free: it connects on acquire
}

func newPool(cfg *pgx.ConnConfig, size int) *pool {
	p := &pool{cfg: cfg, slots: make(chan *pgx.Conn, size)}
	for range size {
		p.slots <- nil
	}
	return p
}

// acquire takes a slot, connecting it if it is free or its connection broke.
func (p *pool) acquire(ctx context.Context) (*pgx.Conn, error) {
	var c *pgx.Conn
	select {
	case c = <-p.slots:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if c != nil && !c.IsClosed() {
		return c, nil
	}
	c, err := pgx.ConnectConfig(ctx, p.cfg)
	if err != nil {
		p.slots <- nil
		return nil, fmt.Errorf("connect: %w", err)
	}
	return c, nil
}

// release gives the slot back. pgx closes a connection whose query was
// interrupted, and acquire replaces a closed one, so nothing is checked here.
func (p *pool) release(c *pgx.Conn) { p.slots <- c }

// close closes every connection, waiting for those in use.
func (p *pool) close(ctx context.Context) error {
	var first error
	for range cap(p.slots) {
		if c := <-p.slots; c != nil {
			if err := c.Close(ctx); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}
