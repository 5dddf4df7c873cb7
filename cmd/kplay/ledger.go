package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/ui"
)

// newLedgerCmd is `kplay ledger`: what the ledgers of a root list.
func newLedgerCmd(o *options, stdout io.Writer) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "ledger [PLAYBOOK]",
		Short: "List what kplay manages in the root for each playbook",
		Long: `ledger lists what the ledgers under /var/lib/kplay/managed in the root
record: for each playbook, the files, manifests, units, drop-ins, directories
and enables a run wrote or made. A run removes what its playbook's ledger
lists and the playbook no longer declares (unless --prune=false), and never
what another playbook's ledger lists. With PLAYBOOK or --ledger, only that
playbook's ledger; else every one.`,
		Example: "  kplay ledger --root /tmp/r\n  kplay ledger playbooks/master.star --root /tmp/r\n  kplay ledger --ledger site --root /tmp/r --output json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			real, err := host.OpenReal(o.root, false)
			if err != nil {
				return err
			}
			defer real.Close()
			ctx := cmd.Context()
			var names []string
			switch {
			case name != "" || len(args) == 1:
				playbook := ""
				if len(args) == 1 {
					playbook = args[0]
				}
				n, err := ledgerName(&options{ledger: name}, playbook)
				if err != nil {
					return err
				}
				names = []string{n}
			default:
				if names, err = engine.LedgerNames(ctx, real); err != nil {
					return err
				}
			}
			ledgers := make([]jsonLedger, 0, len(names))
			for _, n := range names {
				if _, err := real.Lstat(ctx, engine.LedgerPath(n)); err != nil && len(names) == 1 {
					return fmt.Errorf("no ledger named %q in root %s (kplay ledger --root %s lists those there)", n, o.root, o.root)
				}
				objs, err := engine.ReadLedger(ctx, real, n)
				if err != nil {
					return err
				}
				ledgers = append(ledgers, jsonLedger{Name: n, Path: engine.LedgerPath(n), Objects: objs})
			}
			if o.output == "json" {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(ledgers)
			}
			return writeLedgersText(stdout, ledgers)
		},
	}
	cmd.Flags().StringVar(&name, "ledger", "", "the ledger to list (default: PLAYBOOK's file name, or every ledger)")
	return cmd
}

// jsonLedger is one ledger as `kplay ledger --output json` prints it.
type jsonLedger struct {
	Name    string          `json:"name"`
	Path    string          `json:"path"`
	Objects []engine.Object `json:"objects"`
}

// writeLedgersText prints each ledger: a heading, then one object a line.
func writeLedgersText(w io.Writer, ledgers []jsonLedger) error {
	if len(ledgers) == 0 {
		_, err := fmt.Fprintln(w, "no ledger in this root (a run makes one)")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, l := range ledgers {
		noun := "objects"
		if len(l.Objects) == 1 {
			noun = "object"
		}
		fmt.Fprintf(tw, "%s (%s): %d %s\n", l.Name, l.Path, len(l.Objects), noun)
		for _, o := range l.Objects {
			note := ""
			if o.Created {
				note = "made by kplay"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", o.Kind, ui.Visible(o.Target), note)
		}
	}
	return tw.Flush()
}
