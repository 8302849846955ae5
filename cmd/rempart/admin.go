package main

import (
	"fmt"
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
	var cfgFile, dataDir string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "enrol-token",
		Short: "Issue a one-time token to enrol an admin's security key",
		Long: `enrol-token writes a new one-time enrolment token into the data directory's admin
store and prints it. A running "rempart serve" accepts it at once: open the ops console's
/ops/admin/enrol page, enter the token and touch the security key. Any token issued
before is withdrawn. Anyone who can run this command on the host can make an admin:
that is the trust root, as it is for the data directory itself.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, serveFlags{config: cfgFile, dataDir: dataDir})
			if err != nil {
				return err
			}
			tok, exp, err := admin.IssueEnrolToken(filepath.Join(cfg.DataDir, "admin"), ttl, time.Now())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if _, origins, err := admin.DefaultRP(cfg.OpsListen); err == nil {
				fmt.Fprintf(out, "Enrol at %s%s before %s with this one-time token:\n", origins[0], admin.PathEnrol, exp.Format(time.RFC3339))
			} else {
				fmt.Fprintf(out, "Enrol at the ops console's %s before %s with this one-time token:\n", admin.PathEnrol, exp.Format(time.RFC3339))
			}
			fmt.Fprintln(out, tok)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfgFile, "config", "", "YAML configuration file (its data_dir and ops_listen are used)")
	fl.StringVar(&dataDir, "data-dir", "", "data directory of the rempart serve to enrol on (overrides the config; default ./rempart-data)")
	fl.DurationVar(&ttl, "ttl", time.Hour, "how long the token stays valid")
	return cmd
}
