package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/kplay-dev/kplay/host"
)

// DefaultMaxSteps bounds the work one evaluation may do. A playbook such as
// master.star needs well under a million; an endless loop reaches the
// bound in well under a second.
const DefaultMaxSteps = 20_000_000

// stepStride is how many steps apart evaluation notes where it is: about
// 20 µs of work, so the note costs nothing measurable.
const stepStride = 1 << 10

// fileOptions are the Starlark dialect of playbooks: top-level if/for (to
// toggle sections with `if CALICO:`), sets; no while, no recursion, no
// reassigning a global, so every loop ends and every name has one value.
var fileOptions = syntax.FileOptions{Set: true, TopLevelControl: true}

// EvalOptions says what to evaluate.
type EvalOptions struct {
	// Playbook is the path of the playbook as the user gave it; positions
	// in messages use it. load() may reach files in its directory tree only.
	Playbook string
	// Vars are the values from --var and --vars-file.
	Vars map[string]string
	// VarOrigin says where a value of Vars came from when it was not a
	// --var ("--vars-file site.yaml"), for messages.
	VarOrigin map[string]string
	// Builtins are the predeclared names besides Starlark's universe.
	Builtins starlark.StringDict
	// MaxSteps bounds evaluation; 0 means DefaultMaxSteps.
	MaxSteps uint64
	// MaxMemory bounds the heap, in bytes, while the playbook is
	// evaluated; 0 means DefaultMaxMemory.
	MaxMemory uint64
	// Timeout bounds evaluation in wall-clock time; 0 means
	// DefaultEvalTimeout.
	Timeout time.Duration
	// Print receives the output of print(); nil discards it.
	Print func(pos Pos, msg string)
	// KeepGoing makes missing or bad vars no error, for `kplay vars`.
	KeepGoing bool
	// WorkDir is the directory relative path vars are resolved against
	// (the working directory of kplay); "" leaves them relative.
	WorkDir string
}

// Plan is the result of evaluating a playbook: its steps in declaration
// order and the vars it declares.
type Plan struct {
	Playbook string
	Steps    []Step
	Vars     []*VarDecl
	// Secrets are the values of the vars declared sensitive=True: Apply
	// keeps them out of every output, and so must any other printer of
	// the plan's text (Secrets.Redact).
	Secrets *Secrets
	// Ledger, when set, records what a run manages in the root and
	// removes what the plan no longer declares (see LedgerOptions);
	// nil keeps no ledger.
	Ledger *LedgerOptions
	// Sources are the playbook files the evaluation read: the playbook
	// and every module it loaded, each once, sorted, as paths relative to
	// the working directory (or absolute) the way Playbook is given. A
	// fleet run ships them, with every step's LocalSources, to each host.
	Sources []string
	// Stopped, with EvalOptions.KeepGoing, is the error that ended the
	// evaluation early when Evaluate returned no error because vars
	// were missing or bad (the error is most likely their placeholder's
	// doing): Steps holds only the steps before it. Redacted, as every
	// error of Evaluate is.
	Stopped error
}

const localKey = "kplay.evaluation"

// evaluation is the state of one Evaluate call; it lives in the thread.
type evaluation struct {
	opts    EvalOptions
	dir     *os.Root // the playbook's directory: load() reads through it
	dirName string   // that directory as the user named it
	plan    *Plan
	vars    *varSet
	modules map[string]*module // by path relative to dir
	loading []string           // the chain of modules being loaded, for cycles
	scanned []*VarDecl         // var() calls found in the syntax of the modules read
	claims  map[string]claim   // by resource, for Claimer steps
	// predeclared are the builtins with Starlark's universe functions
	// checked (boundedPredeclared).
	predeclared starlark.StringDict
	maxMemory   uint64
	// at is where the last checked call started: the position of an
	// error when a call does not return once cancelled.
	at  atomic.Pointer[Pos]
	err error // of the playbook's module
	// octalModes are the calls given mode= as an octal literal, by the
	// position of their "(" (scanModes).
	octalModes map[Pos]bool
}

type claim struct {
	fingerprint string
	pos         Pos
}

type module struct {
	globals starlark.StringDict
	err     error
	done    bool
}

// Evaluate runs the playbook in a sandboxed thread and returns its plan. It
// does no I/O but reading the playbook and the files it loads. Errors are
// *Error with a position, or VarErrors listing every problem with vars.
//
// Evaluation is bounded in steps, heap, wall-clock time and the nesting
// of values (see bounds.go); passing a bound is an *Error wrapping a
// *BoundError. When ctx ends (an interrupt) or the time is up, the
// thread is cancelled; if a builtin call does not return within
// abandonAfter, Evaluate returns without it and its goroutine is left to
// the process's exit.
func Evaluate(ctx context.Context, opts EvalOptions) (*Plan, error) {
	dirName := filepath.Dir(opts.Playbook)
	dir, err := os.OpenRoot(dirName)
	if err != nil {
		return nil, fmt.Errorf("open playbook %s: %w", opts.Playbook, unwrapPathError(err))
	}
	defer dir.Close()
	e := &evaluation{
		opts:    opts,
		dir:     dir,
		dirName: dirName,
		plan:    &Plan{Playbook: opts.Playbook, Secrets: &Secrets{}},
		vars:    newVarSet(opts.Vars, opts.VarOrigin, opts.WorkDir),
		modules: map[string]*module{},
		claims:  map[string]claim{},

		octalModes:  map[Pos]bool{},
		predeclared: boundedPredeclared(opts.Builtins),
		maxMemory:   cmp.Or(opts.MaxMemory, DefaultMaxMemory),
	}
	maxSteps := opts.MaxSteps
	if maxSteps == 0 {
		maxSteps = DefaultMaxSteps
	}
	thread := &starlark.Thread{Name: "kplay", Load: e.load}
	thread.Print = func(t *starlark.Thread, msg string) {
		if opts.Print != nil {
			opts.Print(callerPos(t), e.plan.Secrets.Redact(msg))
		}
	}
	thread.SetLocal(localKey, e)
	// The step bound is reached a stride at a time: at each stride the
	// thread notes where it is, the position of an error if it then
	// gets stuck in a call that never returns (see execBounded).
	thread.SetMaxExecutionSteps(min(stepStride, maxSteps))
	thread.OnMaxSteps = func(t *starlark.Thread) {
		if t.ExecutionSteps() >= maxSteps {
			t.Cancel(fmt.Sprintf("evaluation passed %d steps; is there an endless loop?", maxSteps))
			return
		}
		p := callerPos(t)
		e.at.Store(&p)
		t.SetMaxExecutionSteps(min(t.ExecutionSteps()+stepStride, maxSteps))
	}
	timeout := cmp.Or(opts.Timeout, DefaultEvalTimeout)
	bounded, cancel := context.WithTimeoutCause(ctx, timeout, &BoundError{Msg: fmt.Sprintf("evaluation took longer than %s", timeout), Flag: "--eval-timeout"})
	defer cancel()
	if err := e.execBounded(bounded, thread, filepath.Base(opts.Playbook)); err != nil {
		return &Plan{Playbook: opts.Playbook, Secrets: &Secrets{}}, err
	}
	return e.finish(opts)
}

// execBounded runs the playbook's module in its own goroutine, so that a
// builtin call that ignores the thread's cancellation cannot hold kplay
// past an interrupt or its time bound. It returns an error only when
// that happened; otherwise the outcome is in e.err.
func (e *evaluation) execBounded(ctx context.Context, thread *starlark.Thread, rel string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopWatch := watch(e.maxMemory, cancel)
	defer stopWatch()
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		_, e.err = e.exec(thread, rel)
	}()
	var p any
	select {
	case p = <-done:
	case <-ctx.Done():
		thread.Cancel(cancelReason(ctx))
		select {
		case p = <-done:
		case <-time.After(abandonAfter):
			var pos Pos
			if at := e.at.Load(); at != nil {
				pos = *at
			}
			if !pos.IsValid() {
				pos = Pos{File: e.display(rel), Line: 1, Col: 1}
			}
			return &Error{Pos: pos, Err: fmt.Errorf("%s; %w", cancelReason(ctx), errAbandoned)}
		}
	}
	if p != nil {
		panic(p) // a bug of kplay: the CLI reports it as one
	}
	return nil
}

// cancelReason says why ctx ended: a bound's message, or an interrupt.
func cancelReason(ctx context.Context) string {
	var b *BoundError
	if errors.As(context.Cause(ctx), &b) {
		return b.Error()
	}
	return "interrupted"
}

// finish turns the outcome of the evaluation into Evaluate's result.
func (e *evaluation) finish(opts EvalOptions) (*Plan, error) {
	// A var declared sensitive anywhere, even in a module loaded after a
	// message quoted its value (its int did not parse), keeps that value
	// out of every message: its text as given joins the secrets.
	for _, d := range append(slices.Clone(e.vars.decls), e.scanned...) {
		if text, given := opts.Vars[d.Name]; given && text != "" && (d.Sensitive || e.vars.byName[d.Name] != nil && e.vars.byName[d.Name].Sensitive) {
			e.plan.Secrets.add(starlark.String(text))
		}
	}
	for i, verr := range e.vars.errs {
		e.vars.errs[i] = e.plan.Secrets.redactError(verr)
	}
	err := e.plan.Secrets.redactError(e.err)
	// Targets are redacted once every sensitive var is known: a var can
	// turn sensitive after a step used it (a module loaded later declares
	// it so).
	for _, st := range e.plan.Steps {
		m := st.Meta()
		m.Target, m.Resource = e.plan.Secrets.Redact(m.Target), e.plan.Secrets.Redact(m.Resource)
	}
	if err != nil {
		// Evaluation stopped early: vars it never reached still count,
		// so that every missing one is reported now, not one per try.
		for _, d := range e.scanned {
			if _, seen := e.vars.byName[d.Name]; !seen && !e.vars.rejected[d.Name] && slices.Contains(VarTypes, d.Type) {
				_, _ = e.vars.declare(d)
			}
		}
	}
	e.plan.Vars = e.vars.decls
	for rel := range e.modules {
		e.plan.Sources = append(e.plan.Sources, e.display(rel))
	}
	slices.Sort(e.plan.Sources)
	switch {
	case len(e.vars.conflicts) > 0:
		return e.plan, append(VarErrors(e.vars.conflicts), e.vars.errs...)
	case opts.KeepGoing:
		// kplay vars: the declarations are what matters. An error after
		// a missing var is most likely its consequence.
		if err != nil && len(e.vars.errs) == 0 {
			return e.plan, err
		}
		e.plan.Stopped = err
		return e.plan, nil
	case len(e.vars.errs) > 0:
		// A missing or bad var gets a placeholder value, so a later error
		// is most likely a consequence: report the vars, which the user
		// can fix, and only them.
		verrs := append(VarErrors(e.vars.errs), e.vars.unknown(e.scanned)...)
		if err != nil {
			verrs = append(verrs, fmt.Errorf("(evaluation stopped early, most likely because of the vars above: %v)", err))
		}
		return e.plan, verrs
	case err != nil:
		// A var that is declared after the error was never seen, so
		// unknown --vars cannot be told apart yet.
		return e.plan, err
	}
	if unknown := e.vars.unknown(e.scanned); len(unknown) > 0 {
		return e.plan, VarErrors(unknown)
	}
	return e.plan, nil
}

// exec evaluates the module at rel (relative to the playbook's directory)
// once and caches its globals.
func (e *evaluation) exec(thread *starlark.Thread, rel string) (starlark.StringDict, error) {
	if m, ok := e.modules[rel]; ok {
		if !m.done {
			cycle := append(slices.Clone(e.loading[slices.Index(e.loading, rel):]), rel)
			for i, c := range cycle {
				cycle[i] = e.display(c)
			}
			return nil, fmt.Errorf("load cycle: %s", strings.Join(cycle, " → "))
		}
		return m.globals, m.err
	}
	m := &module{}
	e.modules[rel] = m
	e.loading = append(e.loading, rel)
	defer func() { e.loading = e.loading[:len(e.loading)-1] }()

	src, err := host.ReadRegular(e.dir, rel, host.PlaybookLimit)
	var nr *host.NotRegularError
	var big *host.FileSizeError
	switch {
	case errors.As(err, &nr):
		m.err = fmt.Errorf("read %s: %v (a playbook is a regular file)", e.display(rel), nr)
	case errors.As(err, &big):
		m.err = fmt.Errorf("read %s: %v for a playbook", e.display(rel), big)
	case err != nil:
		m.err = fmt.Errorf("read %s: %w", e.display(rel), unwrapPathError(err))
	default:
		m.globals, m.err = e.run(thread, e.display(rel), src)
	}
	m.done = true
	return m.globals, m.err
}

// run parses, scans for var() calls and executes one module.
func (e *evaluation) run(thread *starlark.Thread, filename string, src []byte) (starlark.StringDict, error) {
	f, err := fileOptions.Parse(filename, src, 0)
	if err != nil {
		return nil, evalError(err)
	}
	if err := checkSyntaxDepth(f); err != nil {
		return nil, err
	}
	e.scanned = append(e.scanned, scanVars(f)...)
	octal, err := scanModes(f)
	if err != nil {
		return nil, err
	}
	maps.Copy(e.octalModes, octal)
	rewrite(f, e.predeclared.Has)
	prog, err := starlark.FileProgram(f, e.predeclared.Has)
	if err != nil {
		return nil, e.withSuggestion(evalError(err))
	}
	globals, err := prog.Init(thread, e.predeclared)
	if err != nil {
		return nil, evalError(err)
	}
	// Freezing walks every value recursively: a value nested a million
	// deep would overflow the stack. One walk serves all the globals, so
	// a value two of them share is walked once.
	w := newDepthWalk()
	for _, name := range globals.Keys() {
		if _, err := w.measure(globals[name]); err != nil {
			return nil, &Error{Pos: Pos{File: filename, Line: 1, Col: 1}, Err: fmt.Errorf("global %s: %w", name, err)}
		}
	}
	globals.Freeze()
	return globals, nil
}

// withSuggestion adds "did you mean" to an "undefined: name" error when a
// builtin or a name of Starlark's universe is close.
func (e *evaluation) withSuggestion(err error) error {
	var perr *Error
	if !errors.As(err, &perr) {
		return err
	}
	name, ok := strings.CutPrefix(perr.Err.Error(), "undefined: ")
	if !ok {
		return err
	}
	names := slices.Collect(maps.Keys(e.opts.Builtins))
	names = append(names, slices.Collect(maps.Keys(starlark.Universe))...)
	slices.Sort(names)
	if s := Suggest(name, names); s != "" {
		return &Error{Pos: perr.Pos, Err: fmt.Errorf("undefined: %s (did you mean %s?)", name, s)}
	}
	return err
}

// load implements load(): the module path is relative to the loading file
// and may not leave the playbook's directory tree.
func (e *evaluation) load(thread *starlark.Thread, name string) (starlark.StringDict, error) {
	from := e.loading[len(e.loading)-1]
	if path.IsAbs(name) || strings.Contains(name, `\`) {
		return nil, fmt.Errorf("load path %q must be relative to %s (write it like \"lib/flannel.star\")", name, e.display(from))
	}
	rel := path.Join(path.Dir(from), name)
	if !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("load path %q leaves the playbook's directory %s (keep loaded files beside the playbook)", name, e.dirName)
	}
	g, err := e.exec(thread, rel)
	if err != nil {
		// Keep the inner error's own position: it is where the problem is.
		var perr *Error
		if errors.As(err, &perr) {
			return nil, perr
		}
	}
	return g, err
}

// display names a module the way the user sees it: relative to the
// directory they named the playbook from.
func (e *evaluation) display(rel string) string {
	if e.dirName == "." {
		return rel
	}
	return filepath.Join(e.dirName, rel)
}

func unwrapPathError(err error) error {
	var perr *fs.PathError
	if errors.As(err, &perr) {
		if errors.Is(err, fs.ErrNotExist) {
			return errors.New("no such file")
		}
		return perr.Err
	}
	return err
}

func evaluationOf(thread *starlark.Thread) (*evaluation, error) {
	e, ok := thread.Local(localKey).(*evaluation)
	if !ok {
		return nil, errors.New("builtin called outside a playbook evaluation")
	}
	return e, nil
}

// Record appends a step to the plan being evaluated, stamps it with its
// ID and the caller's position, and returns the step's handle.
func Record(thread *starlark.Thread, s Step) (starlark.Value, error) {
	e, err := evaluationOf(thread)
	if err != nil {
		return nil, err
	}
	m := s.Meta()
	m.ID = len(e.plan.Steps)
	m.Pos = callerPos(thread)
	if c, ok := s.(Claimer); ok {
		resource, fingerprint := c.Claim()
		if prev, ok := e.claims[resource]; ok && prev.fingerprint != fingerprint {
			return nil, fmt.Errorf("%s: %s is declared twice, differently: here and at %s (keep one, or make them the same)", m.Kind, resource, prev.pos)
		}
		e.claims[resource] = claim{fingerprint: fingerprint, pos: m.Pos}
	}
	e.plan.Steps = append(e.plan.Steps, s)
	return &Handle{id: m.ID, kind: m.Kind, target: m.Target}, nil
}

// Dir returns the directory of the playbook being evaluated, as the user
// named it: builtins resolve relative src= paths against it.
func Dir(thread *starlark.Thread) (string, error) {
	e, err := evaluationOf(thread)
	if err != nil {
		return "", err
	}
	return e.dirName, nil
}

// DeclareVar records a var() call and returns its value: the given
// --var, else the default. def is None for a required var. Problems with
// the user's value are collected and reported together at the end of
// evaluation; a problem in the declaration itself is returned at once.
// The value of a sensitive var joins the plan's Secrets, and messages
// never quote it.
func DeclareVar(thread *starlark.Thread, name, typ string, def starlark.Value, doc string, sensitive bool) (starlark.Value, error) {
	e, err := evaluationOf(thread)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(VarTypes, typ) {
		e.vars.rejected[name] = true
		return nil, fmt.Errorf("type %q is not a var type (want one of %s)", typ, strings.Join(VarTypes, ", "))
	}
	// A var declared sensitive anywhere in the modules read so far is
	// sensitive from its first declaration on.
	for _, s := range e.scanned {
		sensitive = sensitive || (s.Name == name && s.Sensitive)
	}
	d := &VarDecl{Name: name, Type: typ, Doc: doc, Pos: callerPos(thread), Required: def == starlark.None, Sensitive: sensitive}
	if !d.Required {
		if d.Default, err = defaultText(typ, def); err != nil {
			e.vars.rejected[name] = true
			if sensitive {
				err = hide(err)
			}
			return nil, err
		}
		if _, err := parseVar(typ, d.Default); err != nil {
			e.vars.rejected[name] = true
			if sensitive {
				return nil, fmt.Errorf("default is not a valid %s (not shown: the var is sensitive)", typ)
			}
			return nil, fmt.Errorf("default %q %v", d.Default, err)
		}
	}
	v, err := e.vars.declare(d)
	if err != nil {
		return v, err
	}
	// The first declaration is the one kept: it takes the sensitivity.
	first := e.vars.byName[name]
	first.Sensitive = first.Sensitive || d.Sensitive
	if first.Sensitive {
		e.plan.Secrets.add(v)
	}
	return v, nil
}

// CheckSyntax parses src, the text of the .star file filename, in the
// dialect of playbooks and returns its syntax error, if any, as check and
// run would report it: filename:line:col: message.
func CheckSyntax(filename string, src []byte) error {
	_, err := fileOptions.Parse(filename, src, 0)
	return err
}

type progressKey struct{}

// WithProgress returns a ctx whose steps report progress of long waits
// (wait_http, systemd jobs) to report; the CLI prints it on stderr.
func WithProgress(ctx context.Context, report func(msg string)) context.Context {
	return context.WithValue(ctx, progressKey{}, report)
}

// Progress returns the progress reporter of ctx, or one that discards.
func Progress(ctx context.Context) func(msg string) {
	if report, ok := ctx.Value(progressKey{}).(func(string)); ok {
		return report
	}
	return func(string) {}
}

type startKey struct{}

// WithStepStart returns a ctx whose check or run calls start with each
// step's metadata just before it diffs the step, for a progress line that
// names the step being applied. Only a pass that observes its results
// calls it: the check that opens a run does not.
func WithStepStart(ctx context.Context, start func(*StepMeta)) context.Context {
	return context.WithValue(ctx, startKey{}, start)
}

// stepStart returns the hook of WithStepStart, or nil.
func stepStart(ctx context.Context) func(*StepMeta) {
	start, _ := ctx.Value(startKey{}).(func(*StepMeta))
	return start
}

type diffedKey struct{}

// WithStepDiffed makes every pass over a plan (check, and both passes of
// a run: the check that starts it and the one that writes, real) call
// diffed with each step's Change right after its Diff, before the step
// is applied. A reviewed plan (kplay check --out, kplay run --plan)
// records the changes, then compares them with what was planned. An
// error stops the pass at that step, before its Apply, and is the step's
// error. Steps that are not reached (not selected, or an on_change that
// did not fire) and steps whose Diff is skipped (an offline root, check
// not waiting) are not passed.
func WithStepDiffed(ctx context.Context, diffed StepDiffed) context.Context {
	return context.WithValue(ctx, diffedKey{}, diffed)
}

// StepDiffed is the hook of WithStepDiffed: h is the host the step s was
// diffed on (the dry host in check), real is set in the pass of a run
// that writes.
type StepDiffed func(ctx context.Context, h host.Host, s Step, c Change, real bool) error

func stepDiffed(ctx context.Context) StepDiffed {
	d, _ := ctx.Value(diffedKey{}).(StepDiffed)
	return d
}

type lockHeldKey struct{}

// WithLockHeld says the caller holds the run lock of the root already
// (host.Locker): Converge does not take it again. kplay run --plan takes
// it before its check of the plan, so that no other run changes the root
// between that check and the writes.
func WithLockHeld(ctx context.Context) context.Context {
	return context.WithValue(ctx, lockHeldKey{}, true)
}

func lockHeld(ctx context.Context) bool {
	b, _ := ctx.Value(lockHeldKey{}).(bool)
	return b
}

type reviewedKey struct{}

// WithReviewedPlan marks ctx as a run of a reviewed plan (kplay run
// --plan): steps that can make their write conditional on what their
// Diff saw do so (etcd_put writes with compare-and-swap), so that a
// change made between the Diff and the write is drift, not overwritten.
func WithReviewedPlan(ctx context.Context) context.Context {
	return context.WithValue(ctx, reviewedKey{}, true)
}

// ReviewedPlan reports whether ctx is a run of a reviewed plan.
func ReviewedPlan(ctx context.Context) bool {
	b, _ := ctx.Value(reviewedKey{}).(bool)
	return b
}
