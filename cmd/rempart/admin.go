package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/rempart/rempart/internal/identity/admin"
)

func newAdminCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Manage the ops console's admins (WebAuthn only)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newAdminEnrolTokenCmd())
	return cmd
}

func newAdminEnrolTokenCmd() *cobra.Command {
	var f serveFlags
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "enrol-token",
		Short: "Issue a one-time token to enrol an admin's security key",
		Long: `enrol-token writes a new one-time enrolment token into the data directory's admin
store and prints it. A running "rempart serve" accepts it at once: open the ops console's
/ops/admin/enrol page, enter the token and touch the security key. Any token issued
before is withdrawn. Anyone who can run this command on the host can make an admin:
that is the trust root, as it is for the data directory itself.

The data directory is found as serve finds it: give the same --config and --data-dir
(none: ./rempart-data). The address printed is the one the last serve on that directory
announced there, unless --ops-listen says otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, f)
			if err != nil {
				return err
			}
			dir := filepath.Join(cfg.DataDir, "admin")
			// A token written anywhere but the server's own directory
			// enrols nobody, so a missing directory is a wrong guess of
			// serve's flags, not a first run to set up.
			if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("no admin directory at %s: run this with the --config or --data-dir that serve runs with (serve creates it on first start)", dir)
			}
			origin, err := consoleOrigin(dir, f.opsListen, cfg.OpsListen)
			if err != nil {
				return err
			}
			tok, exp, err := admin.IssueEnrolToken(dir, ttl, time.Now())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if origin != "" {
				fmt.Fprintf(out, "Enrol at %s%s before %s with this one-time token:\n", origin, admin.PathEnrol, exp.Format(time.RFC3339))
			} else {
				fmt.Fprintf(out, "Enrol at the ops console's %s before %s with this one-time token:\n", admin.PathEnrol, exp.Format(time.RFC3339))
			}
			fmt.Fprintln(out, tok)
			if origin != "" && !answers(cmd.Context(), origin) {
				fmt.Fprintf(cmd.ErrOrStderr(), "rempart: no server answers at %s now; the token works once serve runs on %s\n", origin, cfg.DataDir)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "YAML configuration file serve runs with (its data_dir and ops_listen are used)")
	fl.StringVar(&f.dataDir, "data-dir", "", "data directory serve runs with (overrides the config; default ./rempart-data)")
	fl.StringVar(&f.opsListen, "ops-listen", "", "ops listener address to print (default: the one serve announced in the data directory)")
	fl.DurationVar(&ttl, "ttl", time.Hour, "how long the token stays valid")
	return cmd
}

// consoleOrigin is where the enrolment page is: an --ops-listen given here,
// else what the last serve on dir recorded, else what the configuration
// says ("" when none of them names a usable console address).
func consoleOrigin(dir, flagAddr, cfgAddr string) (string, error) {
	if flagAddr == "" {
		o, err := admin.Origin(dir)
		if err != nil || o != "" {
			return o, err
		}
		flagAddr = cfgAddr
	}
	if _, origins, err := admin.DefaultRP(flagAddr); err == nil {
		return origins[0], nil
	}
	return "", nil
}

// answers reports whether anything listens at origin, so the printed
// address is not taken for a live one when serve is down. A dial, not a
// request: a console on https need not have a certificate this host trusts.
func answers(ctx context.Context, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
