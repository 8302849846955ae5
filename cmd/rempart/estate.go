package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/rempart/rempart/internal/config"
	"github.com/rempart/rempart/internal/estate"
	"github.com/rempart/rempart/internal/estate/customer"
	"github.com/rempart/rempart/internal/estate/ledger"
	"github.com/rempart/rempart/internal/gateway"
	"github.com/rempart/rempart/internal/telemetry"
)

func newEstateCmd() *cobra.Command {
	var listen, opsListen, dataDir, cfgFile, logFormat string
	cmd := &cobra.Command{
		Use:   "estate",
		Short: "Run the simulated bank on its own, so the gateway can front it over HTTP",
		Long: `estate runs the simulated bank (legacy core with a capacity model and faults,
SQLite ledger, SMS gateway, channels) without any protection in front of it.
Point a gateway at it with an upstream url in the gateway's config.

Its ops API (faults, stats, invariant check, SMS outbox) is on --ops-listen.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, serveFlags{config: cfgFile, dataDir: dataDir, logFormat: logFormat})
			if err != nil {
				return err
			}
			log, err := telemetry.NewLogger(os.Stderr, cfg.LogFormat, cfg.LogLevel)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			est, err := estate.New(ctx, estateConfig(cfg, log))
			if err != nil {
				return err
			}
			defer est.Close()
			metrics := telemetry.NewMetrics()
			metrics.Registry.MustRegister(est.Collectors()...)
			ops := http.NewServeMux()
			ops.Handle("/ops/estate/", est.OpsHandler())
			srv := &gateway.Server{Public: est.Handler(), Ops: ops, Metrics: metrics.Handler(),
				PublicAddr: listen, OpsAddr: opsListen, DrainTimeout: drainDeadline, Logger: log}
			return srv.Run(ctx)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&listen, "listen", "127.0.0.1:7070", "address of the bank's channels")
	fl.StringVar(&opsListen, "ops-listen", "127.0.0.1:7071", "address of the estate's ops API")
	fl.StringVar(&dataDir, "data-dir", "./rempart-estate-data", "directory of the ledger database")
	fl.StringVar(&cfgFile, "config", "", "YAML configuration file (its estate: section is used)")
	fl.StringVar(&logFormat, "log-format", "", "text or json")
	cmd.AddCommand(newEstateCheckCmd())
	return cmd
}

func newEstateCheckCmd() *cobra.Command {
	var dataDir string
	var seed uint64
	var customers int
	cmd := &cobra.Command{
		Use:   "check [acknowledged-keys-file]",
		Short: "Check the ledger invariant: balances sum unchanged, every acknowledged transfer present once",
		Long: `check opens the ledger in --data-dir and verifies that the sum of all balances is
unchanged, that every account's balance matches its entries, and, when a file of
idempotency keys (one per line) is given, that each of them is present exactly once.
It exits non-zero when the invariant does not hold. Stop the estate first, or use
GET /ops/estate/check on a running one.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var acked []string
			if len(args) == 1 {
				b, err := os.ReadFile(args[0])
				if err != nil {
					return fmt.Errorf("acknowledged-keys-file: %w", err)
				}
				acked = splitLines(string(b))
			}
			path := filepath.Join(dataDir, "ledger.db")
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("--data-dir: no ledger at %s", path)
			}
			led, err := ledger.Open(cmd.Context(), path, customer.New(seed, customers), ledger.Options{})
			if err != nil {
				return err
			}
			defer led.Close()
			rep, err := led.Check(context.WithoutCancel(cmd.Context()), acked)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			enc.Encode(rep)
			if !rep.OK {
				return fmt.Errorf("ledger invariant violated")
			}
			return nil
		},
	}
	def := config.Default()
	cmd.Flags().StringVar(&dataDir, "data-dir", def.DataDir, "directory holding ledger.db")
	cmd.Flags().Uint64Var(&seed, "seed", def.Estate.Seed, "customer population seed the ledger was written with")
	cmd.Flags().IntVar(&customers, "customers", def.Estate.Customers, "customer population size")
	return cmd
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '\n' {
			line := s[start:i]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			if line != "" {
				out = append(out, line)
			}
			start = i + 1
		}
	}
	return out
}
