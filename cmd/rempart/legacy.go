package main

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/spf13/cobra"

	"github.com/rempart/rempart/internal/config"
	"github.com/rempart/rempart/internal/estate"
	"github.com/rempart/rempart/internal/estate/core"
	"github.com/rempart/rempart/internal/gateway"
	"github.com/rempart/rempart/internal/identity"
	"github.com/rempart/rempart/internal/legacy"
	"github.com/rempart/rempart/internal/session/memory"
	"github.com/rempart/rempart/internal/telemetry"
)

func newLegacyCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "legacy",
		Short: "Run the 2025 architecture that failed (the drill's 2025 arm), in front of the simulated bank",
		Long: `legacy runs what the drill compares rempart with: the same simulated bank and the
same OpenID provider (login, SMS code, tokens, password costs), arranged as in 2025:
sessions and the customer directory live in an identity database (a capacity model
of its own), every app request's token is checked against it, logins meet no
admission, waiting room or scrubbing, and every route has one fixed 10 s time-out.
Partner channels (cards, ATMs, 3-D Secure, instant payments) skip the token check,
as they did on the day. Not for production: it exists to fail.

Its ops API is the estate's (/ops/estate/...) plus /ops/identity/faults, where
user_store_stuck hangs the identity database (sessions and directory). It
has no ops authentication: keep --ops-listen on loopback.`,
		Args: cobra.NoArgs,
		RunE: runUntilSignal(&f, runLegacy),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:7070", "public listener")
	fl.StringVar(&f.opsListen, "ops-listen", "127.0.0.1:7071", "ops listener (no authentication: loopback only)")
	fl.StringVar(&f.dataDir, "data-dir", "./rempart-legacy-data", "directory of the ledger and signing keys")
	fl.StringVar(&f.config, "config", "", "YAML configuration file (its estate: and identity: sections are used)")
	fl.StringVar(&f.logFormat, "log-format", "", "text or json")
	return cmd
}

// identityDB sizes the 2025 identity database: a quarter of the bank
// core's workers at half its service time, a mid-range database server of
// its own; its lock time-out is the core's.
func identityDB(cfg *config.Config) core.Config {
	c := cfg.Estate.Core
	return core.Config{Workers: max(c.Workers/4, 4), MedianService: c.MedianService / 2,
		LockTimeout: c.LockTimeout, Seed: int64(cfg.Estate.Seed) + 1}
}

// runLegacy wires the 2025 architecture from cfg and serves it until ctx ends.
func runLegacy(ctx context.Context, cfg *config.Config) error {
	log, err := telemetry.NewLogger(os.Stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	est, err := estate.New(ctx, estateConfig(cfg, log))
	if err != nil {
		return err
	}
	defer est.Close()
	rows, err := memory.Open(ctx, memory.Options{MaxPerSubject: cfg.Sessions.MaxPerCustomer})
	if err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	db := legacy.NewDB(identityDB(cfg))
	sessions := legacy.NewSessionDB(rows, db)
	defer sessions.Close()
	mem, err := newUsers(cfg, est, legacyHashers)
	if err != nil {
		return fmt.Errorf("identity users: %w", err)
	}
	issuer := cfg.Identity.Issuer
	if issuer == "" {
		issuer = "http://" + cfg.Listen
	}
	idp, err := identity.New(ctx, identity.Config{
		Issuer: issuer, DataDir: cfg.DataDir, Sessions: sessions, Users: legacy.NewDirectory(mem, db),
		DerivedCustomers: cfg.Estate.Customers, SMS: outboxSender{est.SMS()},
		Logger: log.With("component", "identity"),
		// 2025 had no backup path: every login waits on the directory.
		BackupWindow: -1,
	})
	if err != nil {
		return err
	}
	defer idp.Close()

	front := &legacy.Front{IdP: idp.Handler(), Bank: est.Handler(), Verifier: idp.Verifier(), Grants: idp,
		Logger: log.With("component", "front")}
	metrics := telemetry.NewMetrics()
	metrics.Registry.MustRegister(est.Collectors()...)
	ops := http.NewServeMux()
	ops.Handle("/ops/estate/", est.OpsHandler())
	faults := identity.FaultsHandler(db.Stuck, db.SetStuck, log)
	ops.Handle("GET /ops/identity/faults", faults)
	ops.Handle("PUT /ops/identity/faults", faults)
	ops.Handle("PUT /ops/identity/users/{id}", identity.DirectoryHandler(mem, log))
	srv := &gateway.Server{Public: front.Handler(), Ops: ops, Metrics: metrics.Handler(),
		PublicAddr: cfg.Listen, OpsAddr: cfg.OpsListen, DrainTimeout: drainDeadline, Logger: log}
	return srv.Run(ctx)
}

// legacyHashers is how many password checks the 2025 provider computes at
// once: one per request thread of a servlet container at its default (200
// threads), where rempart computes one per processor. Every login it takes
// hashes at once, holding the hash's memory meanwhile.
const legacyHashers = 200
