package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kplay-dev/kplay/builtins"
	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/fleet"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/etcdv2"
	"github.com/kplay-dev/kplay/host/live"
	"github.com/kplay-dev/kplay/ui"
)

// Exit codes.
const (
	exitOK      = 0
	exitError   = 1
	exitChanges = 2 // check found changes
)

// flagValue matches a flag's =value in pflag's errors.
var flagValue = regexp.MustCompile(`(-{1,2}[A-Za-z][A-Za-z0-9_-]*)=\S*`)

// errChanges is returned by check when the plan would change something.
var errChanges = errors.New("changes found")

// options are the global flags.
type options struct {
	root     string
	vars     []string
	varsFile string
	tags     []string
	skipTags []string
	output   string
	// lockTimeout is how long run waits for another run on the same root.
	lockTimeout time.Duration
	// maxMemory and evalTimeout bound evaluation (engine.EvalOptions).
	maxMemory   memorySize
	evalTimeout time.Duration
	// ledger names the ledger of what the playbook manages ("" for the
	// playbook's file name); prune removes what it no longer declares.
	ledger string
	prune  bool
	// verbose, quiet and diffLimit shape the text output of check and
	// run (ui.Options).
	verbose, quiet bool
	diffLimit      int
	// planOut (check --out) is where to write the reviewed plan;
	// planIn (run --plan), the plan a run must follow.
	planOut, planIn string
	// fleet are the flags of a fleet run (--inventory, --hosts, ...).
	fleet fleetFlags
	// The agent's (kplay agent) settings, from the job the controller
	// sent: resolved vars in place of --var and --vars-file, the
	// controller's working directory, the shipped src= files.
	varMap  map[string]string
	workDir string
	local   *host.LocalSources
}

// memorySize is a flag value of bytes, written as Kubernetes writes a
// memory quantity (512Mi, 2Gi, 1G).
type memorySize uint64

// minMaxMemory is the least --max-memory: what kplay itself needs.
const minMaxMemory = 64 << 20

// maxMaxMemory is the most --max-memory: 1Pi, four times the 256 TiB
// that Go's heap can address on 64-bit Linux (48-bit heap addresses,
// whatever the page tables allow), so no bound kplay could reach is
// refused. A larger one can only be a mistake (99999999999Gi; 8Ei, which
// does not even fit in an int64).
const maxMaxMemory = 1 << 50

func (m *memorySize) String() string {
	return resource.NewQuantity(int64(*m), resource.BinarySI).String()
}

// Set takes a Kubernetes quantity of whole bytes from 64Mi to 1Pi:
// 1.5Gi is 1610612736 bytes, but 1.5 or 1m (a thousandth) is not a
// whole number of bytes.
func (m *memorySize) Set(s string) error {
	q, err := resource.ParseQuantity(s)
	if err != nil || q.Sign() <= 0 {
		return fmt.Errorf("want a size such as 2Gi or 512Mi")
	}
	if q.Cmp(*resource.NewQuantity(maxMaxMemory, resource.BinarySI)) > 0 {
		return fmt.Errorf("larger than 1Pi, more than kplay can address on any machine (want a size such as 2Gi)")
	}
	n := q.Value() // rounded up to a whole byte
	if q.Cmp(*resource.NewQuantity(n, resource.BinarySI)) != 0 {
		if strings.HasSuffix(s, "m") {
			return fmt.Errorf("not a whole number of bytes: m means thousandths (for mebibytes write Mi, such as 512Mi)")
		}
		return fmt.Errorf("not a whole number of bytes (want a size such as 2Gi or 1536Mi)")
	}
	if n < minMaxMemory {
		return fmt.Errorf("want a size of at least 64Mi, such as 2Gi")
	}
	*m = memorySize(n)
	return nil
}

func (m *memorySize) Type() string { return "size" }

// run executes the kplay command line and returns the exit code. A panic
// is a bug of kplay: it is reported as one and exits 1, never 2, which
// check uses for "changes found".
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newRootCmd(stdout, stderr)
	cmd.SetArgs(args)
	return execute(ctx, cmd, stderr)
}

// execute runs cmd and maps its outcome to an exit code: 0, 2 for
// errChanges, 1 for any error and for a panic, which it reports.
func execute(ctx context.Context, cmd *cobra.Command, stderr io.Writer) (code int) {
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintln(stderr, ui.VisibleMessage(fmt.Sprintf("kplay: internal error: %v (a bug of kplay: please report it with this message)\n%s", p, debug.Stack())))
			code = exitError
		}
	}()
	err := cmd.ExecuteContext(ctx)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errChanges):
		return exitChanges
	}
	fmt.Fprintln(stderr, errorText(err))
	return exitError
}

// errorText is err as stderr shows it. An error can hold a path from the
// root, a string from the playbook or a server's answer, so no part of it
// may move the cursor or start a line that reads like kplay's own. An
// error of a step or of the vars is one line per problem, a newline
// inside it escaped like any control character (ui.Visible), except that
// a failed job's journal lines follow it one per line, indented, each
// escaped. Other errors, of the command line such as cobra's "Did you mean
// this?", keep their lines, indented past the first (ui.VisibleMessage).
func errorText(err error) string {
	// Every problem of the vars or of an inventory, one a line.
	var each []error
	switch errs := err.(type) {
	case engine.VarErrors:
		each = errs
	case fleet.InventoryErrors:
		each = errs
	}
	if each != nil {
		lines := make([]string, len(each))
		for i, e := range each {
			lines[i] = ui.Visible(e.Error())
		}
		return strings.Join(lines, "\n")
	}
	var perr *engine.Error
	var verrs engine.VarErrors
	if !errors.As(err, &perr) && !errors.As(err, &verrs) {
		return ui.VisibleMessage("kplay: " + err.Error())
	}
	// Starts with file:line:col, like a compiler's message.
	msg, journal := err.Error(), ""
	var jerr *live.JobError
	if errors.As(err, &jerr) && len(jerr.Journal) > 0 {
		var raw, shown strings.Builder
		for _, l := range jerr.Journal {
			raw.WriteString("\n    " + l)
			shown.WriteString("\n    " + ui.Visible(l))
		}
		if head, ok := strings.CutSuffix(msg, raw.String()); ok {
			msg, journal = head, shown.String()
		}
	}
	return ui.Visible(msg) + journal
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	o := &options{}
	root := &cobra.Command{
		Use:   "kplay",
		Short: "Provision a machine from a Starlark playbook",
		Long: `kplay converges a machine, or an offline root directory, to what a Starlark
playbook declares. check shows every change it would make as a diff and
changes nothing; run makes the changes. A second run changes nothing.

Exit status: 0 success (for check: nothing to change); 2 check found
changes, and nothing else; 1 any error: bad input, a failed step, an
interrupt, or a bug of kplay (reported as an internal error). A fatal
error of the Go runtime ends kplay with SIGABRT (134), never 2.`,
		Example: `  kplay check playbooks/master.star --root /tmp/r --var ADVERTISE_IP=10.0.0.10
  kplay run   playbooks/master.star --root /tmp/r --var ADVERTISE_IP=10.0.0.10
  kplay vars  playbooks/master.star`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		// pflag quotes the whole argument: -var=DB_PASSWORD=hunter2.
		return errors.New(flagValue.ReplaceAllString(err.Error(), "${1}=…"))
	})
	f := root.PersistentFlags()
	f.StringVar(&o.root, "root", "/", "the root directory to converge (an offline root such as /tmp/r, or / for this machine)")
	f.StringArrayVar(&o.vars, "var", nil, "set a playbook var, NAME=value (repeatable; wins over --vars-file)")
	f.StringVar(&o.varsFile, "vars-file", "", "read vars from a file of NAME=value lines or a YAML mapping")
	f.StringSliceVar(&o.tags, "tags", nil, "apply only steps with one of these tags (comma-separated)")
	f.StringSliceVar(&o.skipTags, "skip-tags", nil, "skip steps with any of these tags (comma-separated)")
	f.StringVarP(&o.output, "output", "o", "text", "output format: text or json")
	f.DurationVar(&o.lockTimeout, "lock-timeout", 30*time.Second, "how long run waits for another run on the same root (check takes no lock)")
	o.maxMemory = engine.DefaultMaxMemory
	f.Var(&o.maxMemory, "max-memory", "the memory evaluating the playbook may use, such as 2Gi")
	f.DurationVar(&o.evalTimeout, "eval-timeout", engine.DefaultEvalTimeout, "how long evaluating the playbook may take")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if o.output != "text" && o.output != "json" {
			return fmt.Errorf("--output %q: want text or json", o.output)
		}
		if o.evalTimeout <= 0 {
			return fmt.Errorf("--eval-timeout %s: want a positive duration such as 1m", o.evalTimeout)
		}
		return nil
	}
	root.AddCommand(
		newApplyCmd(o, "check", stdout, stderr),
		newApplyCmd(o, "run", stdout, stderr),
		newVarsCmd(o, stdout, stderr),
		newLedgerCmd(o, stdout),
		newDocCmd(stdout),
		newFmtCmd(stdout, stderr),
		newLintCmd(o, stdout, stderr),
		newTestCmd(o, stdout, stderr),
		newDiffCmd(o, stdout, stderr),
		newVersionCmd(stdout),
		newAgentCmd(stdout, stderr),
	)
	return root
}

func newApplyCmd(o *options, mode string, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:               mode + " PLAYBOOK",
		Args:              onePlaybook,
		ValidArgsFunction: starFiles,
	}
	if mode == "check" {
		cmd.Short = "Show every change the playbook would make, as diffs; change nothing"
		cmd.Long = `check evaluates the playbook and diffs every step against the root, applying
the plan to a dry host that keeps every write in memory, so later steps see
what earlier ones would do. Nothing in the root is written.
Exit status: 0 nothing to change, 2 changes found, 1 error.

With --inventory or --hosts, check runs on every host over SSH and shows
each distinct change once with the hosts it is on (docs/fleet.md); it
exits 2 only when every host finished, 1 when any failed or was
unreachable.`
		cmd.Example = "  kplay check demo.star --root /tmp/r --var NAME=value\n  kplay check demo.star --root /tmp/r --output json\n" +
			"  kplay check demo.star --root /tmp/r --out plan.json   # a reviewed plan (docs/plans.md)\n  kplay check playbooks/master.star --inventory masters.yaml"
	} else {
		cmd.Short = "Converge the root to what the playbook declares"
		cmd.Long = `run evaluates the playbook, checks the whole plan first (so bad input stops
it before the first write), then applies the steps in order, stopping at
the first error. Exit status: 0 success, 1 error.

run records what it wrote, made or enabled in the playbook's ledger
(/var/lib/kplay/managed/<name>.json in the root; kplay ledger lists it), and
removes what the ledger lists and the playbook no longer declares: files,
manifests and drop-ins are deleted, units stopped, disabled and deleted,
enables disabled, directories kplay made deleted when empty. A service
whose restart names a removed drop-in's unit restarts. What another
playbook's ledger lists stays; etcd keys and API objects, cluster state
that every master shares, are only listed as left in place. A symlink in
the root that now leads a recorded path elsewhere keeps it.
--prune=false keeps everything; so does a run with --tags.

With --inventory or --hosts, run converges every host over SSH: kplay
sends itself and the playbook, runs the same run there, and reports each
host (docs/fleet.md). once = "cluster" steps run on one host, rolling
restarts take turns through etcd; exit 1 when any host failed or was
unreachable.`
		cmd.Example = "  kplay run demo.star --root /tmp/r --var NAME=value\n  kplay run demo.star --root /tmp/r --skip-tags api\n" +
			"  kplay run demo.star --root /tmp/r --plan plan.json     # exactly the reviewed plan, or nothing\n" +
			"  kplay run playbooks/master.star --inventory masters.yaml --serial 1\n  kplay run playbooks/master.star --hosts root@10.0.0.11,root@10.0.0.12"
	}
	cmd.Flags().BoolVarP(&o.verbose, "verbose", "v", false, "list every step, unchanged and skipped ones too (default: only the steps that change something)")
	cmd.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "print only the closing count line, and errors")
	cmd.Flags().IntVar(&o.diffLimit, "diff-limit", defaultDiffLimit, "the most lines of one diff to show, about a screen; 0 shows all")
	cmd.MarkFlagsMutuallyExclusive("verbose", "quiet")
	if mode == "check" {
		cmd.Flags().StringVar(&o.planOut, "out", "", "also write the plan to this file, for review and for run --plan (docs/plans.md)")
	} else {
		cmd.Flags().StringVar(&o.planIn, "plan", "", "apply exactly this reviewed plan (check --out): refuse, before the first write, if anything differs (docs/plans.md)")
	}
	cmd.Flags().StringVar(&o.ledger, "ledger", "", "the name of the ledger of what this playbook manages in the root (default: the playbook's file name without .star)")
	cmd.Flags().BoolVar(&o.prune, "prune", true, "remove what the ledger lists and the playbook no longer declares (--prune=false keeps it)")
	addFleetFlags(cmd, o)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if o.fleet.on() && (o.planOut != "" || o.planIn != "") {
			return errors.New("--out and --plan are for one machine: a fleet run has no reviewed plan yet")
		}
		if mode == "check" && cmd.Flags().Changed("out") {
			if err := checkOut(o.planOut); err != nil {
				return err
			}
		}
		if mode == "run" && cmd.Flags().Changed("plan") && o.planIn == "" {
			return errors.New("--plan: give the plan file that kplay check --out wrote")
		}
		if o.fleet.on() {
			err := fleetApply(cmd.Context(), o, mode, args[0], stdout, stderr)
			if err != nil && o.output == "json" && !o.fleet.reported {
				// A script reading stdout gets a document with the
				// error, as from a run on one machine.
				_ = fleet.WriteJSONError(stdout, mode, args[0], err)
			}
			return err
		}
		return apply(cmd.Context(), o, mode, args[0], stdout, stderr)
	}
	return cmd
}

// ledgerName is the name of the playbook's ledger: --ledger, else the
// playbook's file name without ".star".
func ledgerName(o *options, playbook string) (string, error) {
	name := o.ledger
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(playbook), ".star")
	}
	if err := engine.CheckLedgerName(name); err != nil {
		if o.ledger == "" {
			return "", fmt.Errorf("%v: give one with --ledger", err)
		}
		return "", fmt.Errorf("--ledger: %v", err)
	}
	return name, nil
}

// lowerGCGoal bounds the memory of a plan of bigSteps steps or more,
// whose live heap grows with it (steps, results, the ledger, and on a
// root that already holds the files the contents read to compare them):
//
//   - the garbage collector runs when the heap has grown by half since
//     the last collection, rather than doubled (GOGC=100), unless GOGC
//     is set;
//   - a soft memory limit (debug.SetMemoryLimit) of limitBase plus
//     limitPerStep a step, unless GOMEMLIMIT is set, has the runtime give
//     freed memory back to the system before it asks for more, where by
//     default it keeps it for a while.
//
// On a run of 10,000 files into an empty root the peak resident size
// goes from 54 MB to 41 MB (12 MB of it the binary's own pages). The
// limit must stay above the live heap of a check or run on a root that
// holds the files already (about 2.5 KB a step): near it, the collector
// runs on and on, and a limit of 1.5 KB a step made the check of 10,000
// unchanged files 40% slower (docs/performance.md). A small plan keeps
// the defaults: its heap stays near Go's minimum goal, which halving
// would make the collector run twice as often in a 20 ms process.
func lowerGCGoal(steps int) {
	const (
		bigSteps     = 1000
		limitBase    = 12 << 20
		limitPerStep = 2816
	)
	if steps < bigSteps {
		return
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(50)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(limitBase + int64(steps)*limitPerStep)
	}
}

// defaultDiffLimit is --diff-limit's default: about a screen of lines.
const defaultDiffLimit = 50

// checkDiffLimit refuses a negative --diff-limit.
func checkDiffLimit(o *options) error {
	if o.diffLimit < 0 {
		return fmt.Errorf("--diff-limit %d: want a number of lines, or 0 for all", o.diffLimit)
	}
	return nil
}

// printerOptions are the ui.Options of check or run (mode) for o.
func printerOptions(o *options, mode string, stdout, stderr io.Writer) (ui.Options, error) {
	if err := checkDiffLimit(o); err != nil {
		return ui.Options{}, err
	}
	opts := ui.Options{JSON: o.output == "json", Color: useColor(stdout), Mode: mode, DiffLimit: o.diffLimit}
	switch {
	case o.verbose:
		opts.Verbosity = ui.Every
	case o.quiet:
		opts.Verbosity = ui.Quiet
	}
	if !opts.JSON && !o.quiet && useColor(stderr) && useColor(stdout) {
		// The n/N line, when both go to a terminal without NO_COLOR:
		// with stdout piped (kplay run | less) it would mix with it.
		opts.Progress = stderr
	}
	return opts, nil
}

// apply evaluates the playbook and checks or runs it.
func apply(ctx context.Context, o *options, mode, playbook string, stdout, stderr io.Writer) error {
	opts, err := printerOptions(o, mode, stdout, stderr)
	if err != nil {
		return err
	}
	plan, err := evaluate(ctx, o, playbook, stderr, false)
	if plan != nil {
		opts.Total = len(plan.Steps)
	}
	p := ui.New(stdout, opts)
	if err != nil {
		if o.output == "json" {
			// A script reading stdout gets a document with the error.
			_ = p.Finish(playbook, nil, err)
		}
		return err
	}
	lowerGCGoal(len(plan.Steps))
	name, err := ledgerName(o, playbook)
	if err != nil {
		return err
	}
	var keptOnce sync.Once // run's check pass and its apply pass both say it
	plan.Ledger = &engine.LedgerOptions{Name: name, Prune: o.prune, Pruner: builtins.Pruner, Kept: func(objs []engine.Object) {
		keptOnce.Do(func() {
			why := "--prune=false"
			if o.prune {
				why = "--tags"
			}
			noun := "objects"
			if len(objs) == 1 {
				noun = "object"
			}
			p.Note(stderr, fmt.Sprintf("kplay: %s: kept %d %s the playbook no longer declares (kplay ledger --ledger %s lists them)", why, len(objs), noun, name))
		})
	}}
	sel := engine.Selection{Tags: o.tags, SkipTags: o.skipTags}
	for _, w := range sel.Unused(plan) {
		fmt.Fprintf(stderr, "kplay: warning: %s\n", ui.Visible(w))
	}
	hostOpts := []host.Option{host.WithLockTimeout(o.lockTimeout), host.WithKube(kubeClient), host.WithEtcd(etcdv2.New)}
	if o.local != nil {
		hostOpts = append(hostOpts, host.WithLocalSources(o.local))
	}
	if filepath.Clean(o.root) == "/" && live.Running() {
		// This machine runs systemd: talk to it rather than edit its
		// unit links offline, through the bus or systemd's private
		// socket; never fall back to offline.
		sd, err := live.DialRunning(ctx)
		if err != nil {
			return err
		}
		defer sd.Close()
		sd.Progress = func(msg string) { p.Note(stderr, msg) }
		hostOpts = append(hostOpts, host.WithSystemd(sd))
	}
	real, err := host.OpenReal(o.root, mode == "run", hostOpts...)
	if err != nil {
		return err
	}
	defer real.Close()
	// Long waits (wait_http) report progress on stderr.
	ctx = engine.WithProgress(ctx, func(msg string) { p.Note(stderr, msg) })
	ctx = engine.WithStepStart(ctx, p.Start)
	var rec *planRecorder
	switch {
	case mode == "check" && o.planOut != "":
		if err := checkOutNotSource(o, plan); err != nil {
			return err
		}
		key, err := readPlanKey(true)
		if err != nil {
			return err
		}
		rec = &planRecorder{h: planHasher{key}}
		ctx = engine.WithStepDiffed(ctx, rec.record)
	case mode == "run" && o.planIn != "":
		// The lock first: no other run may change the root between the
		// plan's check and the writes.
		unlock, err := real.Lock(ctx)
		if err != nil {
			return err
		}
		defer unlock()
		verifier, err := checkPlan(ctx, o, plan, real, sel)
		if err != nil {
			if o.output == "json" {
				_ = p.Finish(playbook, nil, err)
			}
			return err
		}
		ctx = engine.WithLockHeld(engine.WithReviewedPlan(engine.WithStepDiffed(ctx, verifier.verify)))
	}
	var results []engine.Result
	if mode == "run" {
		results, err = engine.Converge(ctx, plan, real, sel, p.Observe(ctx))
	} else {
		results, err = engine.Check(ctx, plan, real, sel, p.Observe(ctx))
	}
	if rec != nil && err == nil {
		err = savePlan(ctx, o, plan, rec, stderr)
	}
	// A signal while the last results were printed: the engine was done,
	// but kplay was not.
	err = interruption(ctx, mode, results, err)
	if ferr := p.Finish(playbook, results, err); ferr != nil && err == nil {
		err = ferr
	}
	// Exit 2 says "changes found" and nothing else, and 0 that all went
	// well: neither once a signal came, even during the last line.
	if err := interruption(ctx, mode, results, err); err != nil {
		return err
	}
	if mode == "check" && engine.Changes(results) > 0 {
		return errChanges
	}
	return nil
}

// interruptedError is the error of a check or run that a signal stopped
// where the engine's own error (engine.Interrupted) does not say the
// whole of it; it unwraps to the context's error.
type interruptedError struct {
	msg   string
	cause error
}

func (e *interruptedError) Error() string { return e.msg }
func (e *interruptedError) Unwrap() error { return e.cause }

// interruption returns the error of a check or run (mode) whose ctx was
// cancelled by a signal, given its results and error so far: err itself if
// ctx is not done, or if err is a failure of its own that came before the
// signal. A check says it changed nothing, at the step where the engine
// stopped if it did. A run that the engine finished says every step is
// done; a run stopped before any step (waiting for the lock) says no step
// was applied; a run the engine stopped at a step keeps the engine's
// error, which says the steps before it are done.
func interruption(ctx context.Context, mode string, results []engine.Result, err error) error {
	cause := ctx.Err()
	if cause == nil {
		return err
	}
	var ie *interruptedError
	var stopped *engine.Interrupted
	switch {
	case errors.As(err, &ie):
		return err // said already
	case err != nil && !errors.As(err, &stopped) && !errors.Is(err, cause):
		return err
	case mode == "check":
		ie = &interruptedError{msg: "check interrupted; nothing was changed (check never writes)", cause: cause}
		var at *engine.Error
		if stopped != nil && errors.As(err, &at) {
			return &engine.Error{Pos: at.Pos, Err: ie}
		}
		return ie
	case err == nil:
		return &interruptedError{msg: "run interrupted after its last step; every step is done", cause: cause}
	case stopped == nil && len(results) == 0:
		return &interruptedError{msg: err.Error() + "; no step was applied", cause: err}
	}
	return err
}

// evaluate reads the vars and evaluates the playbook.
func evaluate(ctx context.Context, o *options, playbook string, stderr io.Writer, keepGoing bool) (*engine.Plan, error) {
	if o.varMap != nil {
		return evaluateWith(ctx, o, playbook, o.varMap, nil, stderr, keepGoing)
	}
	vars, origin, err := readVars(o)
	if err != nil {
		return nil, err
	}
	return evaluateWith(ctx, o, playbook, vars, origin, stderr, keepGoing)
}

// readFlagFile reads the file a flag names (--vars-file, --inventory):
// a regular file of at most limit bytes. Errors name the flag and the
// file, and say what to give (want) when the file is not one.
func readFlagFile(flag, name string, limit int64, want string) ([]byte, error) {
	data, err := host.ReadRegular(nil, name, limit)
	var nr *host.NotRegularError
	var big *host.FileSizeError
	var pe *fs.PathError
	switch {
	case errors.As(err, &nr), errors.As(err, &big):
		return nil, fmt.Errorf("%s %s: %w (give %s)", flag, name, err, want)
	case errors.As(err, &pe):
		return nil, fmt.Errorf("%s: open %s: %w", flag, pe.Path, pe.Err)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return data, nil
}

// readVars reads --vars-file and --var: the values, and where each came
// from when not from --var.
func readVars(o *options) (vars, origin map[string]string, err error) {
	vars, origin = map[string]string{}, map[string]string{}
	if o.varsFile != "" {
		data, err := readFlagFile("--vars-file", o.varsFile, host.VarsFileLimit, "a file of NAME=value lines or a YAML mapping")
		if err != nil {
			return nil, nil, err
		}
		if vars, err = engine.ParseVarsFile(o.varsFile, data); err != nil {
			return nil, nil, fmt.Errorf("--vars-file %w", err)
		}
		for k := range vars {
			origin[k] = "--vars-file " + o.varsFile
		}
	}
	flags, err := engine.ParseVarFlags(o.vars)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range flags {
		vars[k] = v
		delete(origin, k)
	}
	return vars, origin, nil
}

// evaluateWith evaluates the playbook with vars; relative path vars
// resolve against o.workDir, else the working directory.
func evaluateWith(ctx context.Context, o *options, playbook string, vars, origin map[string]string, stderr io.Writer, keepGoing bool) (*engine.Plan, error) {
	wd := o.workDir
	if wd == "" {
		var err error
		if wd, err = os.Getwd(); err != nil {
			return nil, err
		}
	}
	return engine.Evaluate(ctx, engine.EvalOptions{
		WorkDir:   wd,
		Playbook:  playbook,
		Vars:      vars,
		VarOrigin: origin,
		Builtins:  builtins.Predeclared(),
		KeepGoing: keepGoing,
		MaxMemory: uint64(o.maxMemory),
		Timeout:   o.evalTimeout,
		Print: func(pos engine.Pos, msg string) {
			fmt.Fprintf(stderr, "%s: %s\n", ui.Visible(pos.String()), ui.VisibleMessage(msg))
		},
	})
}

// onePlaybook checks that a command got exactly one playbook.
func onePlaybook(cmd *cobra.Command, args []string) error {
	switch len(args) {
	case 1:
		return nil
	case 0:
		return fmt.Errorf("%s needs a playbook (kplay %s PLAYBOOK.star; see kplay %s --help)", cmd.Name(), cmd.Name(), cmd.Name())
	}
	// A NAME=value given without --var may hold a secret: its value is
	// not shown.
	shown := make([]string, len(args))
	for i, a := range args {
		switch name, _, ok := strings.Cut(a, "="); {
		case ok:
			a = name + "=…"
		case strings.Contains(a, "@"):
			// a host of --hosts given with a space: no secret
		case !strings.HasSuffix(a, ".star"):
			a = "…" // a value typed after --var NAME with a space
		}
		shown[i] = a
	}
	for _, a := range args[1:] {
		if strings.Contains(a, "@") && !strings.Contains(a, "=") {
			return fmt.Errorf("%s takes one playbook, got %d arguments: %s (separate --hosts with commas: --hosts root@10.0.0.11,root@10.0.0.12)", cmd.Name(), len(args), strings.Join(shown, " "))
		}
	}
	return fmt.Errorf("%s takes one playbook, got %d arguments: %s (give vars as --var NAME=value)", cmd.Name(), len(args), strings.Join(shown, " "))
}

// useColor reports whether w is a terminal that wants colors.
func useColor(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && os.Getenv("NO_COLOR") == "" && term.IsTerminal(int(f.Fd()))
}

func starFiles(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return []string{"star"}, cobra.ShellCompDirectiveFilterFileExt
}

func newVarsCmd(o *options, stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:               "vars PLAYBOOK",
		Short:             "List the vars a playbook declares",
		Long:              "vars lists each var() of the playbook: name, type, default, whether it is required, its doc and where it is declared.",
		Example:           "  kplay vars playbooks/master.star\n  kplay vars playbooks/master.star --output json",
		Args:              onePlaybook,
		ValidArgsFunction: starFiles,
		RunE: func(cmd *cobra.Command, args []string) error {
			plan, err := evaluate(cmd.Context(), o, args[0], stderr, true)
			if err != nil {
				return err
			}
			if o.output == "json" {
				return writeVarsJSON(stdout, plan.Vars, plan.Secrets.Redact)
			}
			return writeVarsText(stdout, plan.Vars, plan.Secrets.Redact)
		},
	}
}

type jsonVar struct {
	Name     string  `json:"name"`
	Type     string  `json:"type"`
	Default  *string `json:"default"` // null when required, "(sensitive)" for a sensitive var
	Required bool    `json:"required"`
	Doc      string  `json:"doc"`
	Position string  `json:"position"`
	// Sensitive is var(sensitive=True): its value is never shown.
	Sensitive bool `json:"sensitive"`
}

// shownDefault is the default of d as kplay vars shows it: "(sensitive)"
// for a sensitive var, else the default with secrets (another var's
// sensitive value, URL credentials) redacted.
func shownDefault(d *engine.VarDecl, redact func(string) string) string {
	if d.Sensitive {
		return "(sensitive)"
	}
	return redact(d.Default)
}

// writeVarsJSON writes decls as JSON; redact keeps secrets (another var's
// sensitive value, URL credentials) out of the defaults.
func writeVarsJSON(w io.Writer, decls []*engine.VarDecl, redact func(string) string) error {
	out := []jsonVar{}
	for _, d := range decls {
		v := jsonVar{Name: d.Name, Type: d.Type, Required: d.Required, Doc: d.Doc, Position: d.Pos.String(), Sensitive: d.Sensitive}
		if !d.Required {
			def := shownDefault(d, redact)
			v.Default = &def
		}
		out = append(out, v)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// writeVarsText writes decls as a table; redact as for writeVarsJSON.
func writeVarsText(w io.Writer, decls []*engine.VarDecl, redact func(string) string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tDEFAULT\tREQUIRED\tDOC\tDECLARED AT")
	for _, d := range decls {
		def, req := shownDefault(d, redact), "no"
		switch {
		case d.Required:
			def, req = "-", "yes"
		case !d.Sensitive:
			def = fmt.Sprintf("%q", def)
		}
		// A cell holds no tab or newline of its own, so the columns stay.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n",
			ui.Visible(d.Name), ui.Visible(d.Type), ui.Visible(def), req, ui.Visible(d.Doc), ui.Visible(d.Pos.String()))
	}
	return tw.Flush()
}

func newDocCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "doc [BUILTIN]",
		Short: "Show the reference of the playbook builtins",
		Long:  "doc lists every builtin with its signature, or prints the whole reference of one.",
		Example: `  kplay doc
  kplay doc file`,
		Args: cobra.MaximumNArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			var names []string
			for _, b := range builtins.List() {
				names = append(names, b.Name)
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				for _, b := range builtins.List() {
					sig, _, _ := strings.Cut(b.Doc, "\n")
					fmt.Fprintln(stdout, ui.Visible(sig))
				}
				fmt.Fprintln(stdout, "\nkplay doc BUILTIN shows one in full.")
				return nil
			}
			b, ok := builtins.Lookup(args[0])
			if !ok {
				var names []string
				for _, b := range builtins.List() {
					names = append(names, b.Name)
				}
				if s := engine.Suggest(args[0], names); s != "" {
					return fmt.Errorf("doc: no builtin %q (did you mean %s?)", args[0], s)
				}
				return fmt.Errorf("doc: no builtin %q (builtins: %s)", args[0], strings.Join(names, ", "))
			}
			fmt.Fprintln(stdout, ui.VisibleText(b.Doc))
			return nil
		},
	}
}

// version, commit and date are kplay's version, the commit it was built
// from and that commit's time, stamped by .ci/release with -ldflags -X
// (main.version=v0.1.0 …). A build without them reads what it can from
// the binary's build info: the module version, or "(devel)", and the
// commit and its time that go build records from a git checkout. The
// date is the commit's time, not the moment of the build, so that two
// builds of one commit are the same bytes.
var version, commit, date string

// versionLine is what kplay version prints: "kplay v0.1.0 (commit
// 1a2b3c4d5e6f, 2026-12-01T10:00:00Z)"; "-dirty" marks a build from a
// checkout with uncommitted changes.
func versionLine() string {
	v, c, d, dirty := version, commit, date, false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && commit == "":
				c = s.Value
			case s.Key == "vcs.time" && date == "":
				d = s.Value
			case s.Key == "vcs.modified" && commit == "":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	var info []string
	if len(c) > 12 {
		c = c[:12]
	}
	// A pseudo-version (v0.0.0-20261201…-1a2b3c4d5e6f) names the
	// commit already.
	if c != "" && !strings.Contains(v, c) {
		if dirty {
			c += "-dirty"
		}
		info = append(info, "commit "+c)
	}
	if d != "" {
		info = append(info, d)
	}
	if len(info) == 0 {
		return "kplay " + v
	}
	return fmt.Sprintf("kplay %s (%s)", v, strings.Join(info, ", "))
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print kplay's version, commit and the commit's date",
		Example: "  kplay version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintln(stdout, ui.Visible(versionLine()))
			return err
		},
	}
}
