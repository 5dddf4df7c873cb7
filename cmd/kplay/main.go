// Command kplay provisions a machine, or an offline root, from a Starlark
// playbook: `kplay check` shows every change as a diff, `kplay run` makes
// them.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

func main() {
	noCrashExit2()
	os.Exit(runWithSignals(os.Args[1:], os.Stdout, os.Stderr))
}

// noCrashExit2 makes a fatal error of the Go runtime (out of memory, a
// stack overflow: what recover() cannot catch) end kplay with SIGABRT,
// status 134 in a shell, rather than Go's exit status 2, which check
// uses for "changes found" and nothing else. The bounds of evaluation
// exist so that this never happens; this is the net under them. No core
// file is written: kplay's memory can hold secrets.
func noCrashExit2() {
	_ = syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{})
	debug.SetTraceback("crash")
}

// runWithSignals runs the command line as main does. SIGINT, SIGTERM or
// SIGHUP (the terminal or SSH session went away) cancels the run:
// evaluation stops at once, a run stops before its next step (a step's
// write is atomic, so nothing is left half-written) and kplay exits 1. A
// second signal ends kplay at once, as if it did not catch them.
func runWithSignals(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	context.AfterFunc(ctx, stop)
	return run(ctx, args, stdout, stderr)
}
