package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rempart/rempart/internal/config"
	"github.com/rempart/rempart/internal/estate"
	"github.com/rempart/rempart/internal/estate/core"
	"github.com/rempart/rempart/internal/gateway"
	"github.com/rempart/rempart/internal/telemetry"
	"github.com/rempart/rempart/internal/tier"
)

type serveFlags struct {
	config, listen, opsListen, dataDir, logFormat string
	opsTokenSMS                                   bool
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway (public :8080, ops :9090) in front of the bank's channels",
		Long: `serve runs the gateway. With no --config it fronts an in-process simulated bank
on embedded defaults (SQLite ledger in --data-dir), routing every channel with its tier.

Public listener: the channels (see README.md for the table).
Ops listener (loopback by default): /healthz, /readyz, /metrics, /ops/estate/...`,
		Args: cobra.NoArgs,
		RunE: runUntilSignal(&f, func(ctx context.Context, cfg *config.Config) error { return serve(ctx, cfg, nil) }),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "YAML configuration file (default: embedded defaults)")
	fl.StringVar(&f.listen, "listen", "", "public listener address (overrides the config; default 127.0.0.1:8080)")
	fl.StringVar(&f.opsListen, "ops-listen", "", "ops listener address (overrides the config; default 127.0.0.1:9090)")
	fl.StringVar(&f.dataDir, "data-dir", "", "directory for durable state (overrides the config; default ./rempart-data)")
	fl.StringVar(&f.logFormat, "log-format", "", "text or json (overrides the config; default text)")
	fl.BoolVar(&f.opsTokenSMS, "ops-token-sms", false, "let the automation token read the simulated SMS outbox (demos; sets ops_token_sms)")
	return cmd
}

func loadConfig(cmd *cobra.Command, f serveFlags) (*config.Config, error) {
	cfg := config.Default()
	if f.config != "" {
		var err error
		if cfg, err = config.Load(f.config); err != nil {
			return nil, err
		}
	}
	if f.listen != "" {
		cfg.Listen = f.listen
	}
	if f.opsListen != "" {
		cfg.OpsListen = f.opsListen
	}
	if f.dataDir != "" {
		cfg.DataDir = f.dataDir
	}
	if f.opsTokenSMS {
		cfg.OpsTokenSMS = true
	}
	if f.logFormat != "" {
		if f.logFormat != "text" && f.logFormat != "json" {
			return nil, fmt.Errorf("--log-format: %q must be text or json", f.logFormat)
		}
		cfg.LogFormat = f.logFormat
	}
	return cfg, nil
}

// runUntilSignal is a command's RunE that loads the configuration from the
// flags and runs fn until SIGINT or SIGTERM.
func runUntilSignal(f *serveFlags, fn func(ctx context.Context, cfg *config.Config) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		cfg, err := loadConfig(cmd, *f)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return fn(ctx, cfg)
	}
}

// serve wires the stack from cfg and runs it until ctx ends. started, if not
// nil, receives the bound addresses once both listeners accept.
func serve(ctx context.Context, cfg *config.Config, started func(public, ops string)) error {
	log, err := telemetry.NewLogger(os.Stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	st, err := buildStack(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.admins.Bootstrap(os.Stderr); err != nil {
		return err
	}
	routes := append(st.routes,
		gateway.Route{Name: "status-page", Pattern: "GET /status", Tier: tier.Important, Upstream: http.HandlerFunc(st.board.ServeHTML)},
		gateway.Route{Name: "status-json", Pattern: "GET /status.json", Tier: tier.Important, Upstream: http.HandlerFunc(st.board.ServeJSON)})
	gw, err := gateway.New(routes, gateway.Options{Logger: log, Metrics: st.metrics, MaxBodyBytes: cfg.MaxBodyBytes,
		Observers: []gateway.Observer{boardObserver{st.board}}})
	if err != nil {
		return err
	}
	srv := &gateway.Server{Public: gw, Ops: st.admins.RequireAdmin(st.ops), Metrics: st.metrics.Handler(),
		PublicAddr: cfg.Listen, OpsAddr: cfg.OpsListen, DrainTimeout: cfg.DrainTimeout, Logger: log,
		TLS: st.trust.tls, Plaintext: st.trust.plaintext, Dependencies: st.dependencies()}
	if err := srv.Listen(); err != nil {
		return err
	}
	if started != nil {
		started(srv.Addrs())
	}
	bg, stopBG := context.WithCancel(ctx)
	defer stopBG()
	for _, run := range st.background {
		go run(bg)
	}
	if t := st.trust; t.tls != nil {
		log.Info("public listener speaks TLS; partners authenticate with client certificates",
			"plain_http_from", cfg.TLS.Plaintext)
		if t.demo != nil {
			c, k := t.demo.PartnerFiles("card-schemes")
			log.Info("demo PKI", "ca", t.demo.CAFile(), "card_schemes_cert", c, "card_schemes_key", k)
		}
	}
	log.Info("rempart serving", "routes", len(st.routes), "estate", st.estate != nil,
		"identity", st.identity != nil, "data_dir", cfg.DataDir)
	return srv.Run(ctx)
}

func estateConfig(cfg *config.Config, log *slog.Logger) estate.Config {
	return estate.Config{
		DataDir:    cfg.DataDir,
		Seed:       cfg.Estate.Seed,
		Customers:  cfg.Estate.Customers,
		LedgerSync: cfg.Estate.LedgerSync,
		Logger:     log.With("component", "estate"),
		Core: core.Config{
			Workers:       cfg.Estate.Core.Workers,
			MedianService: cfg.Estate.Core.MedianService,
			QueueLimit:    cfg.Estate.Core.QueueLimit,
			LockTimeout:   cfg.Estate.Core.LockTimeout,
			Seed:          int64(cfg.Estate.Seed),
		},
	}
}

// drainDeadline is how long "estate" waits for in-flight requests on stop.
const drainDeadline = 10 * time.Second
