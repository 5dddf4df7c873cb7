// Command kplay provisions a machine, or an offline root, from a Starlark
// playbook: `kplay check` shows every change as a diff, `kplay run` makes
// them.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(runWithSignals(os.Args[1:], os.Stdout, os.Stderr))
}

// runWithSignals runs the command line as main does. SIGINT or SIGTERM
// cancels the run: evaluation stops at once, a run stops before its next
// step (a step's write is atomic, so nothing is left half-written) and
// kplay exits 1. A second signal ends kplay at once, as if it did not
// catch them.
func runWithSignals(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop)
	return run(ctx, args, stdout, stderr)
}
