package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rempart/rempart/internal/drill"
)

type drillFlags struct {
	scenario, out, arms, bin string
	quick, quiet             bool
}

func newDrillCmd() *cobra.Command {
	var f drillFlags
	cmd := &cobra.Command{
		Use:   "drill",
		Short: "Replay the December-2025 incident against the 2025 architecture, nginx in front of it, and rempart, with a report",
		Long: `drill replays a scenario (default laposte-2025: holiday peak, botnet on the login
path, retry storm, slow then deadlocked core, stuck identity store, recovery) against
each arm in turn, with the same seeded load and the same faults, and writes
results.json, report.html and each arm's log (arm-NAME.log) to --out.

Arms, each a child process of the drill on a fresh data directory:
  2025     rempart legacy: the same bank and identity provider arranged as in 2025
           (sessions in the core database, a token check on it per request, no admission)
  nginx    the 2025 backend behind nginx (limit_req/limit_conn on the login path,
           time-outs); run by default when nginx is installed (` + nginxInstall + `)
  rempart  rempart serve: the gateway in front of its in-process estate

It prints one verdict per SLO line and fails when an SLO of the rempart arm fails.
--scenario takes a built-in name or a YAML file; --quick is --scenario quick.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDrill(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.scenario, "scenario", "laposte-2025", "built-in scenario ("+strings.Join(drill.BuiltinScenarios(), ", ")+") or a YAML file")
	fl.BoolVar(&f.quick, "quick", false, "run the quick scenario (what CI runs)")
	fl.StringVar(&f.out, "out", "drill-out", "directory for results.json and report.html")
	fl.StringVar(&f.arms, "arms", defaultArms(findNginx()), "arms to run, in order (nginx when installed)")
	fl.BoolVar(&f.quiet, "quiet", false, "no progress lines")
	fl.StringVar(&f.bin, "rempart-bin", "", "rempart binary the arms run (default: this one, or $"+drillBinEnv+")")
	return cmd
}

// defaultArms are all the arms this machine can run.
func defaultArms(nginx string) string {
	if nginx == "" {
		return "2025,rempart"
	}
	return "2025,nginx,rempart"
}

// loadDrillScenario resolves a built-in name or a file.
func loadDrillScenario(name string) (*drill.Scenario, error) {
	if slices.Contains(drill.BuiltinScenarios(), name) {
		return drill.BuiltinScenario(name, drill.DefaultTargets())
	}
	if _, err := os.Stat(name); err != nil {
		return nil, fmt.Errorf("--scenario: %q is neither a built-in scenario (%s) nor a readable file",
			name, strings.Join(drill.BuiltinScenarios(), ", "))
	}
	return drill.LoadScenario(name, drill.DefaultTargets())
}

func runDrill(cmd *cobra.Command, f drillFlags) error {
	name := f.scenario
	if f.quick {
		name = "quick"
	}
	s, err := loadDrillScenario(name)
	if err != nil {
		return err
	}
	bin, err := drillBinary(f.bin)
	if err != nil {
		return fmt.Errorf("rempart binary: %w", err)
	}
	nginx := findNginx()
	if nginx == "" && !cmd.Flags().Changed("arms") {
		fmt.Fprintln(cmd.ErrOrStderr(), "drill: the nginx arm is skipped: nginx is neither on PATH nor in /usr/sbin ("+nginxInstall+")")
	}
	var arms []drill.Arm
	for _, n := range strings.Split(f.arms, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		a, err := newArm(n, bin, nginx, s.Customers, f.out)
		if err != nil {
			return err
		}
		arms = append(arms, a)
	}
	if len(arms) == 0 {
		return errors.New("--arms: no arm to run")
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	started := time.Now()
	res, runErr := drill.Run(ctx, drill.Options{Scenario: s, Arms: arms, OutDir: f.out, Quiet: f.quiet,
		Progress: cmd.ErrOrStderr()})
	if res == nil {
		return runErr
	}
	out := cmd.OutOrStdout()
	for _, a := range res.Arms {
		if a.Error != "" {
			fmt.Fprintf(out, "arm %s: %s\n", a.Name, a.Error)
		}
		switch lc := a.Ledger; {
		case lc.Skipped:
			fmt.Fprintf(out, "arm %s: ledger check skipped: %s\n", a.Name, lc.Error)
		case lc.OK:
			fmt.Fprintf(out, "arm %s: ledger check ok (%d acknowledged writes)\n", a.Name, lc.Acknowledged)
		default:
			fmt.Fprintf(out, "arm %s: ledger check FAILED: %s %s\n", a.Name, lc.Error, lc.Body)
		}
	}
	for _, v := range res.SLOs {
		fmt.Fprintln(out, verdictLine(v))
	}
	report := filepath.Join(f.out, "report.html")
	if abs, err := filepath.Abs(report); err == nil {
		report = abs
	}
	fmt.Fprintf(out, "report: %s (%s)\n", report, time.Since(started).Round(time.Second))
	if runErr != nil {
		return runErr
	}
	var failed []string
	for _, v := range res.Failed() {
		if v.Arm == "rempart" {
			failed = append(failed, sloName(v))
		}
	}
	if a, ok := res.Arm("rempart"); ok && a.Error != "" && len(failed) == 0 {
		failed = append(failed, "arm error: "+a.Error)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d SLO line(s) of the rempart arm failed: %s", len(failed), strings.Join(failed, "; "))
	}
	return nil
}

// sloName is the line's name in the scenario with what it says, or only
// what it says when it has no name.
func sloName(v drill.SLOResult) string {
	if v.Name == "" {
		return v.SLO
	}
	return v.Name + " (" + v.SLO + ")"
}

// verdictLine is one SLO verdict in words.
func verdictLine(v drill.SLOResult) string {
	mark := "PASS"
	if !v.Pass {
		mark = "FAIL"
	}
	var got, want string
	switch v.Metric {
	case drill.MetricMaxP99:
		got, want = fmt.Sprintf("%.0f ms", v.Got), fmt.Sprintf("≤ %.0f ms", v.Want)
	case drill.MetricMaxBreaches:
		got, want = fmt.Sprintf("%.0f got through", v.Got), fmt.Sprintf("≤ %.0f", v.Want)
	case drill.MetricRecoverWithin:
		got, want = fmt.Sprintf("back after %.1f s", v.Got), fmt.Sprintf("≤ %.1f s", v.Want)
	default:
		got, want = fmt.Sprintf("%.3f %%", 100*v.Got), fmt.Sprintf("≥ %.3g %%", 100*v.Want)
	}
	line := fmt.Sprintf("%s %-8s %s: %s (want %s, %d requests)", mark, v.Arm, sloName(v), got, want, v.Offered)
	if v.Note != "" {
		line += " — " + v.Note
	}
	return line
}
