// Command rempart keeps a bank's digital estate open through overload, an L7
// DDoS and a stuck identity store: see README.md.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "rempart:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "rempart",
		Short: "An overload-aware gateway that keeps a bank's critical channels open",
		Long: `rempart stands in front of a bank's channels and keeps card payments, 3-D Secure,
ATMs and instant transfers served while everything else is overloaded, attacked or stuck.

Run "rempart serve" to start the gateway in front of an in-process simulated bank
(embedded defaults: no database server needed), "rempart estate" to run the
simulated bank on its own, and "rempart version" to print the build.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(), newEstateCmd(), newAdminCmd(), newVersionCmd(), newDrillCmd(), newLegacyCmd(), newBenchCmd())
	return root
}
