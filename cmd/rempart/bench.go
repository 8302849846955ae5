package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

type benchFlags struct {
	duration, warmup     time.Duration
	conns, threads, runs int
	quick, builtin, lo   bool
	paced                bool
	bin, cpuprofile, log string
	profileTier          string
}

func newBenchCmd() *cobra.Command {
	bench := &cobra.Command{
		Use:   "bench",
		Short: "Measure rempart against a baseline on this machine",
		Args:  cobra.NoArgs,
	}
	bench.AddCommand(newBenchProxyCmd())
	return bench
}

func newBenchProxyCmd() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Proxy a fast echo back end through nginx and through rempart, runs alternated, and print the ratios",
		Long: `proxy starts a fast echo back end (in this process: a few hundred bytes of JSON per
answer, keep-alive), nginx as a plain reverse proxy in front of it (when installed,
` + nginxInstall + `), and "rempart serve" as a child process with two routes to it,
one of tier normal and one of tier critical, every protection on its defaults. It
then loads each in turn (the back end directly, nginx, rempart normal, rempart
critical), --runs times, with wrk when installed (else a built-in Go generator):
--connections connections kept alive, each sending its next request when the last
answer is in, for --duration. All load stays on loopback.

It prints per run requests/s, 2xx/s, mean and p99 latency, non-2xx answers (with
rempart's status codes: shed answers are 503 or 429), CPU per request of each proxy
process (from /proc, nginx's master and workers together) and, for rempart, heap
allocations per request (the Go runtime's malloc counter over the run, background
work included). Then rempart's goodput as a ratio of nginx's in the same run, per
tier. With --paced (the default but in --quick) each run then sends nginx and rempart
the same paced load, half of nginx's rate in that run, with the built-in generator
(latency counted from when each request was due), and prints rempart's p99 minus
nginx's. A measurement, not a test: it fails only when the harness itself fails.

The machine is shared: compare the ratios of one run, not absolute figures across
runs. The load average is printed with each run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchProxy(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&f.duration, "duration", 6*time.Second, "load time per target and run (wrk rounds it to seconds)")
	fl.DurationVar(&f.warmup, "warmup", time.Second, "load before each measured run, not counted (0: none)")
	fl.IntVar(&f.conns, "connections", 64, "connections kept alive by the load generator")
	fl.IntVar(&f.threads, "threads", 2, "wrk threads")
	fl.IntVar(&f.runs, "runs", 3, "alternations: each run loads every target once")
	fl.BoolVar(&f.quick, "quick", false, "one short run, not paced (about 20 s in all; what CI runs) unless --duration, --runs, --warmup or --paced say otherwise")
	fl.BoolVar(&f.paced, "paced", true, "add to each run nginx and rempart paced at half of nginx's rate (built-in generator): added p99 below saturation")
	fl.BoolVar(&f.builtin, "builtin-load", false, "use the built-in Go load generator even when wrk is installed")
	fl.StringVar(&f.bin, "rempart-bin", "", "rempart binary to run as the proxy (default: this one, or $"+drillBinEnv+")")
	fl.StringVar(&f.cpuprofile, "cpuprofile", "", "write a CPU profile of rempart (from its ops listener, with the automation token) during the last closed-loop run of --cpuprofile-tier to this file")
	fl.StringVar(&f.profileTier, "cpuprofile-tier", "critical", "the tier whose run --cpuprofile profiles: critical (its answers are proxied, not shed) or normal")
	fl.BoolVar(&f.lo, "allow-loopback", false, "allow-list the load's source, 127.0.0.1, in rempart's scrubber (/ops/scrub/lists/allow), as an operator would a card scheme's gateway: no per-address limits on it")
	fl.StringVar(&f.log, "rempart-log-level", "info", "rempart's log_level (info is its default; its log goes to a file)")
	return cmd
}

// benchQuick are --quick's settings: four targets of 3.5 s and start-up.
const (
	benchQuickDuration = 3 * time.Second
	benchQuickWarmup   = 500 * time.Millisecond
)

func runBenchProxy(cmd *cobra.Command, f benchFlags) error {
	if f.quick {
		fl := cmd.Flags()
		if !fl.Changed("duration") {
			f.duration = benchQuickDuration
		}
		if !fl.Changed("warmup") {
			f.warmup = benchQuickWarmup
		}
		if !fl.Changed("runs") {
			f.runs = 1
		}
		if !fl.Changed("paced") {
			f.paced = false
		}
	}
	switch {
	case f.duration < time.Second || f.duration > 10*time.Minute:
		return fmt.Errorf("--duration: %s must be between 1s and 10m", f.duration)
	case f.warmup < 0 || f.warmup > time.Minute:
		return fmt.Errorf("--warmup: %s must be between 0 and 1m", f.warmup)
	case f.conns < 1 || f.conns > 4096:
		return fmt.Errorf("--connections: %d must be between 1 and 4096", f.conns)
	case f.threads < 1 || f.threads > f.conns:
		return fmt.Errorf("--threads: %d must be between 1 and --connections", f.threads)
	case f.runs < 1 || f.runs > 100:
		return fmt.Errorf("--runs: %d must be between 1 and 100", f.runs)
	case f.profileTier != "normal" && f.profileTier != "critical":
		return fmt.Errorf("--cpuprofile-tier: %q must be normal or critical", f.profileTier)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	progress := cmd.ErrOrStderr()

	var ld loader = goLoader{}
	if p, err := exec.LookPath("wrk"); err == nil && !f.builtin {
		ld = wrkLoader{bin: p, threads: f.threads}
	} else if !f.builtin {
		fmt.Fprintln(progress, "bench: wrk is not installed (apt-get install wrk): using the built-in Go load generator")
	}

	echo, err := startEcho()
	if err != nil {
		return err
	}
	defer echo.Close()
	targets := []*benchTarget{{name: "direct", url: "http://" + echo.addr + "/echo"}}
	var children []*child
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), childStop+5*time.Second)
		defer cancel()
		for _, c := range children {
			if err := c.stop(stopCtx); err != nil {
				fmt.Fprintln(progress, "bench:", err)
			}
		}
	}()

	if bin := findNginx(); bin == "" {
		fmt.Fprintln(progress, "bench: nginx skipped: neither on PATH nor in /usr/sbin ("+nginxInstall+")")
	} else {
		c, err := newBenchNginx(bin, echo.addr)
		if err != nil {
			return err
		}
		fmt.Fprintln(progress, "bench: starting nginx")
		eps, err := c.start(ctx)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		children = append(children, c)
		targets = append(targets, &benchTarget{name: "nginx", url: "http://" + c.public + "/echo", pid: eps.PIDs[0]})
	}

	bin, err := drillBinary(f.bin)
	if err != nil {
		return err
	}
	c, err := newChild("bench-rempart", bin, "serve", "", benchRempartConfig(echo.addr, f.log))
	if err != nil {
		return err
	}
	data := filepath.Join(c.dir, "data")
	c.token = func() (string, error) {
		b, err := os.ReadFile(filepath.Join(data, "admin", "ops-token"))
		return strings.TrimSpace(string(b)), err
	}
	fmt.Fprintln(progress, "bench: starting rempart serve (log:", c.logPath+")")
	eps, err := c.start(ctx)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	children = append(children, c)
	if f.lo {
		// Source addresses exempt no one by configuration: the operator's
		// allow list is the way to spare one network the per-address limits.
		if err := opsCall(ctx, c.opsAddr, eps.OpsToken, http.MethodPost, "/ops/scrub/lists/allow",
			`{"cidr":"127.0.0.1/32","ttl":"1h","reason":"rempart bench: the load generator"}`, http.StatusCreated); err != nil {
			return fmt.Errorf("bench: allow-list the load's source: %w", err)
		}
	}
	for _, tr := range benchTiers {
		targets = append(targets, &benchTarget{name: "rempart " + tr, url: "http://" + c.public + "/" + tr + "/echo",
			pid: eps.PIDs[0], ops: c.opsAddr, token: eps.OpsToken, route: "bench-" + tr,
			profile: f.cpuprofile != "" && tr == f.profileTier})
	}

	b := &bench{loader: ld, runs: f.runs, duration: f.duration, warmup: f.warmup, conns: f.conns,
		profile: f.cpuprofile, progress: progress, paced: f.paced}
	h := benchHeader{Loader: ld.Name(), PartnerLoopback: f.lo, Conns: f.conns, Duration: f.duration, Runs: f.runs, LoadStart: loadAverage()}
	rows, err := b.run(ctx, targets)
	if err != nil {
		return err
	}
	h.LoadEnd = loadAverage()
	writeBenchReport(cmd.OutOrStdout(), h, rows)
	if f.cpuprofile != "" {
		fmt.Fprintf(progress, "bench: CPU profile of rempart (%s tier, last run) in %s: go tool pprof -top -cum %s\n", f.profileTier, f.cpuprofile, f.cpuprofile)
	}
	return nil
}

// benchUpstream names the echo back end in rempart's configuration, and so
// its admission pool.
const benchUpstream = "echo"

// benchTiers are rempart's two routes to the echo back end, by tier.
var benchTiers = []string{"normal", "critical"}

// benchRempartConfig is rempart's configuration in the bench: the simulated
// estate off, one upstream (the echo back end) and a route per tier; every
// protection (scrubber, admission, breakers, identity provider, TLS with
// plain HTTP from loopback) on its defaults, as a new user finds them. All
// the load comes from 127.0.0.1, one address: --allow-loopback puts it on
// the scrubber's allow list once rempart is up, which the per-address limits
// spare.
func benchRempartConfig(echoAddr, logLevel string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# generated by rempart bench proxy\nlog_level: %s\nestate:\n  enabled: false\n", logLevel)
	fmt.Fprintf(&b, "upstreams:\n  - name: %s\n    url: http://%s\nroutes:\n", benchUpstream, echoAddr)
	for _, tr := range benchTiers {
		fmt.Fprintf(&b, "  - name: bench-%s\n    match: GET /%s/\n    tier: %s\n    upstream: %s\n", tr, tr, tr, benchUpstream)
	}
	return b.String()
}

//go:embed bench_nginx.conf.tmpl
var benchNginxTemplate string

// newBenchNginx prepares nginx as a plain reverse proxy to upstream: the
// drill's nginx child (its prefix directory, ports, command line, process
// group) with the bench's configuration in place of the drill's.
func newBenchNginx(bin, upstream string) (*child, error) {
	c, err := newNginxChild(bin, "", upstream)
	if err != nil {
		return nil, err
	}
	cfg := nginxConfig{Dir: c.dir, Listen: c.public, Status: c.opsAddr, Upstream: upstream}
	if os.Geteuid() == 0 {
		cfg.User = "root"
	}
	conf, err := renderTemplate("bench-nginx.conf", benchNginxTemplate, cfg)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(c.dir, "nginx.conf"), conf, 0o600); err != nil {
		return nil, err
	}
	return c, nil
}

// echoBody is the echo back end's answer: a few hundred bytes of JSON, the
// size of a balance or a card decision.
var echoBody = []byte(`{"account":"A00000042","currency":"EUR","balance":{"amount":254312,"as_of":"2026-01-05T10:00:00Z"},` +
	`"pending":[{"id":"T-000001","amount":-4200,"merchant":"BOULANGERIE"},{"id":"T-000002","amount":-1299,"merchant":"LIBRAIRIE"}],` +
	`"limits":{"daily":100000,"used":5499},"status":"ok","served_by":"rempart bench echo back end"}` + "\n")

// echoServer is the bench's back end, in process: fast and always healthy,
// so whatever a proxy costs is the proxy's.
type echoServer struct {
	addr string
	srv  *http.Server
}

func startEcho() (*echoServer, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("echo back end: %w", err)
	}
	length := fmt.Sprint(len(echoBody))
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			h := w.Header()
			h["Content-Type"] = []string{"application/json"}
			h["Content-Length"] = []string{length}
			w.Write(echoBody)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "bench: echo back end:", err)
		}
	}()
	return &echoServer{addr: ln.Addr().String(), srv: srv}, nil
}

func (e *echoServer) Close() error { return e.srv.Close() }
