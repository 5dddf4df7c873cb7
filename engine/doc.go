// Package engine turns a playbook into changes: it evaluates the
// Starlark, plans the steps the builtins record, and checks or applies
// them against a host.Host. It is the first package to read; the order
// below is the order of a run.
//
//  1. Evaluate (eval.go) runs the playbook in a bounded, sandboxed
//     Starlark thread (bounds.go: steps, memory, time, nesting) with the
//     builtins' predeclared names and the vars (vars.go, varsfile.go).
//     Each builtin call records a Step (step.go: Record), with its
//     StepMeta: kind, target, position, tags, on_change. The result is a
//     Plan: the steps in declaration order, the var declarations and the
//     secrets (secret.go), whose values no output may show.
//  2. Check (apply.go) applies the plan to a host.Dry over the real host:
//     every Step's Diff reads the machine and returns a Change (the
//     action, the content before and after, a one-line summary), and its
//     Apply writes into the Dry's memory, so that later steps see what
//     earlier ones would do. Nothing is written. The Results (a Status,
//     the Change, and for a step skipped or left alone its Cause and
//     Reason) are what kplay check prints.
//  3. Converge is kplay run: Check, then the run lock (host.Locker), then
//     Apply on the real host, diffing each step again just before it
//     applies it. Files of consecutive steps are written in batches
//     (batch.go) and made durable together.
//  4. The journal (pending.go) records actions that are owed before the
//     write that makes them owed (a restart whose unit file changed), so
//     a run that dies in between does them next time. It names a step by
//     its Key (kind and canonical Resource), never by the Target shown
//     to a person. The ledger
//     (ledger.go) records what a run manages, and removes what a playbook
//     no longer declares.
//
// Types to read first: Plan, Step and StepMeta, Change, Result and Cause,
// Selection. Hooks given through the context: WithProgress and
// WithStepStart (the ui's progress lines), WithCoordinator (a fleet run's
// once and rolling steps, coord.go), WithStepDiffed, WithReviewedPlan and
// WithLockHeld (a reviewed plan, kplay run --plan).
package engine
