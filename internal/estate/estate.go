package estate

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/rempart/rempart/internal/estate/core"
	"github.com/rempart/rempart/internal/estate/customer"
	"github.com/rempart/rempart/internal/estate/ledger"
)

// Config sizes the simulated bank.
type Config struct {
	// DataDir holds the ledger database (ledger.db).
	DataDir string
	// Seed and Customers define the deterministic customer population.
	Seed      uint64
	Customers int
	// Core is the legacy banking core (accounts, cards, transfers).
	Core core.Config
	// Services is the capacity of the document vault and parcel tracking,
	// separate systems from the banking core. Defaults to 16 workers.
	Services core.Config
	// LedgerSync is "normal" or "full" (see ledger.Options).
	LedgerSync string
	// OTPTTL is how long a 3-D Secure code stays valid. Default 5 minutes.
	OTPTTL time.Duration
	// Logger receives the estate's own events.
	Logger *slog.Logger
}

// Estate is one running simulated bank.
type Estate struct {
	cfg      Config
	log      *slog.Logger
	pop      *customer.Population
	core     *core.Core
	services *core.Core
	ledger   *ledger.Ledger
	sms      *Outbox
	acs      *acs
	started  time.Time
}

// New opens (or creates) the estate's ledger in cfg.DataDir and starts a
// healthy core. It does no per-customer work: customers are derived on demand.
func New(ctx context.Context, cfg Config) (*Estate, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("estate: data dir is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Services.Workers == 0 {
		cfg.Services.Workers = 16
	}
	if cfg.Services.MedianService == 0 {
		cfg.Services.MedianService = 5 * time.Millisecond
	}
	if cfg.OTPTTL == 0 {
		cfg.OTPTTL = 5 * time.Minute
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("estate: data dir: %w", err)
	}
	pop := customer.New(cfg.Seed, cfg.Customers)
	led, err := ledger.Open(ctx, filepath.Join(cfg.DataDir, "ledger.db"), pop, ledger.Options{Sync: cfg.LedgerSync})
	if err != nil {
		return nil, fmt.Errorf("estate: %w", err)
	}
	svc := cfg.Services
	if svc.Seed == 0 {
		svc.Seed = cfg.Core.Seed + 1
	}
	e := &Estate{
		cfg:      cfg,
		log:      cfg.Logger,
		pop:      pop,
		core:     core.New(cfg.Core),
		services: core.New(svc),
		ledger:   led,
		sms:      NewOutbox(10_000),
		started:  time.Now(),
	}
	e.acs = newACS(cfg.OTPTTL, 100_000, e.sms)
	return e, nil
}

// Core returns the banking core, for fault switches from Go.
func (e *Estate) Core() *core.Core { return e.core }

// Services returns the document/parcel back end, for fault switches from Go.
func (e *Estate) Services() *core.Core { return e.services }

// Ledger returns the ledger.
func (e *Estate) Ledger() *ledger.Ledger { return e.ledger }

// Population returns the customer population.
func (e *Estate) Population() *customer.Population { return e.pop }

// SMS returns the simulated SMS gateway's outbox.
func (e *Estate) SMS() *Outbox { return e.sms }

// Check runs the ledger invariant check; acknowledged lists idempotency keys
// (as sent by clients) that were acknowledged and must be present once.
func (e *Estate) Check(ctx context.Context, acknowledged []string) (ledger.Report, error) {
	return e.ledger.Check(ctx, acknowledged)
}

// Close closes the ledger.
func (e *Estate) Close() error { return e.ledger.Close() }
