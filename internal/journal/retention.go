package journal

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/telemetry"
)

// PurgerConfig configures a Purger. Zero fields take the defaults below.
type PurgerConfig struct {
	// Store is the journal to purge. Required.
	Store Store
	// Retention is how long a done entry is kept after it was completed.
	// Required, positive.
	Retention time.Duration
	// Every is how often the purge runs. Default Retention/24, between a
	// minute and an hour: entries outlive their retention by at most that.
	Every time.Duration
	// Now tells the time; nil means time.Now.
	Now func() time.Time
	// Logger receives purge failures; nil discards.
	Logger *slog.Logger
	// Registerer receives rempart_journal_purged_total; nil registers none.
	Registerer prometheus.Registerer
}

// Purger deletes done entries once their retention has passed, so the
// journal keeps what it holds on a card only as long as it is needed:
// answering a retried key, rebuilding the day's stand-in limits.
type Purger struct {
	cfg    PurgerConfig
	log    *slog.Logger
	purged prometheus.Counter
}

// NewPurger returns a purger; Run starts it.
func NewPurger(cfg PurgerConfig) (*Purger, error) {
	if cfg.Store == nil || cfg.Retention <= 0 {
		return nil, fmt.Errorf("purger needs a store and a positive retention: %w", ErrInvalid)
	}
	if cfg.Every <= 0 {
		cfg.Every = min(max(cfg.Retention/24, time.Minute), time.Hour)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	purged, err := telemetry.Register(cfg.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rempart_journal_purged_total",
		Help: "Done journal entries deleted after their retention (journal.retention).",
	}))
	if err != nil {
		return nil, fmt.Errorf("purger metrics: %w", err)
	}
	return &Purger{cfg: cfg, log: log.With("component", "journal-purge"), purged: purged}, nil
}

// Run purges at once, then every cfg.Every, until ctx ends.
func (p *Purger) Run(ctx context.Context) {
	t := time.NewTicker(p.cfg.Every)
	defer t.Stop()
	for {
		if _, err := p.Purge(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("journal purge failed; next try at the next tick", "err", err)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// Purge deletes the done entries completed more than Retention ago and
// returns how many.
func (p *Purger) Purge(ctx context.Context) (int, error) {
	n, err := p.cfg.Store.Purge(ctx, p.cfg.Now().Add(-p.cfg.Retention))
	p.purged.Add(float64(n))
	if n > 0 {
		p.log.Info("purged done journal entries", "entries", n, "retention", p.cfg.Retention)
	}
	return n, err
}
