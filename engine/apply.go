package engine

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/kplay-dev/kplay/host"
)

// Status says what became of a step in one pass over the plan.
type Status int

// The statuses of a step.
const (
	Unchanged Status = iota // Diff found nothing to do, or nothing it watches changed
	Changed                 // Diff found a change; Apply made it (on the dry host in check)
	Skipped                 // not selected by --tags/--skip-tags
)

var statusNames = [...]string{Unchanged: "unchanged", Changed: "changed", Skipped: "skipped"}

func (s Status) String() string { return statusNames[s] }

// Result is what happened to one step.
type Result struct {
	Step   Step
	Status Status
	Change Change
	Reason string // why a step was skipped or left alone without a diff, for a person
	// Cause is why, for programs: code decides by it, never by Reason's
	// text.
	Cause Cause
}

// Changes reports whether r changed something, or would in check: the
// one rule of what counts as a change (check's exit status 2, the
// "changed" of the JSON document, ui's count line).
func (r Result) Changes() bool { return r.Status == Changed && r.Change.Action.Changes() }

// Changes counts the results that change something (Result.Changes).
func Changes(results []Result) int {
	n := 0
	for _, r := range results {
		if r.Changes() {
			n++
		}
	}
	return n
}

// Cause says why a step was skipped or left alone (Result.Cause).
type Cause int

const (
	NoCause Cause = iota
	// NotSelected: --tags or --skip-tags left the step out.
	NotSelected
	// OnChangeQuiet: nothing the step's on_change names changed.
	OnChangeQuiet
	// NoUnitChanged: a daemon-reload with no unit file changed.
	NoUnitChanged
	// OfflineRoot: the step was reached (selected, its on_change fired)
	// but acts on a running system, and the root is offline: a restart
	// that would run on a machine.
	OfflineRoot
	// NotInCheck: check does not do it (a wait).
	NotInCheck
	// DoneElsewhere: once = "cluster", and another host did it.
	DoneElsewhere
)

// causeText is the Reason each Cause gives, where it gives a fixed one.
var causeText = [...]string{NotSelected: "not selected by tags", OnChangeQuiet: "nothing in on_change changed",
	NoUnitChanged: "no unit file changed", OfflineRoot: "offline root", NotInCheck: "check does not wait"}

// String is the cause's reason as a person reads it ("" for NoCause and
// DoneElsewhere, whose Reason names the host).
func (c Cause) String() string {
	if int(c) < len(causeText) {
		return causeText[c]
	}
	return ""
}

// String describes r in one line, "kind target: status", the status being
// the action of a change (create, update, run) or the Status, with the
// Reason in parentheses: "systemctl restart x.service: skipped (offline root)".
func (r Result) String() string {
	m := r.Step.Meta()
	status := r.Status.String()
	if r.Status == Changed {
		status = r.Change.Action.String()
	}
	if r.Reason != "" {
		status += " (" + r.Reason + ")"
	}
	return m.Kind + " " + m.Target + ": " + status
}

// Selection picks steps by tag: a step runs if Tags is empty or it has one
// of them, and it has none of SkipTags.
type Selection struct {
	Tags     []string
	SkipTags []string
}

func (sel Selection) selects(m *StepMeta) bool {
	if len(sel.Tags) > 0 && !slices.ContainsFunc(m.Tags, func(t string) bool { return slices.Contains(sel.Tags, t) }) {
		return false
	}
	return !slices.ContainsFunc(m.Tags, func(t string) bool { return slices.Contains(sel.SkipTags, t) })
}

// Unused returns a warning for each tag in the selection that no step of
// the plan has, with a suggestion when a tag is close.
func (sel Selection) Unused(p *Plan) []string {
	have := map[string]bool{}
	for _, s := range p.Steps {
		for _, t := range s.Meta().Tags {
			have[t] = true
		}
	}
	var known []string
	for t := range have {
		known = append(known, t)
	}
	sort.Strings(known)
	var warnings []string
	for _, flag := range []struct {
		name string
		tags []string
	}{{"--tags", sel.Tags}, {"--skip-tags", sel.SkipTags}} {
		for _, t := range flag.tags {
			if have[t] {
				continue
			}
			w := fmt.Sprintf("%s %s: no step has this tag", flag.name, t)
			if s := Suggest(t, known); s != "" {
				w += fmt.Sprintf(" (did you mean %s?)", s)
			} else if len(known) > 0 {
				w += fmt.Sprintf(" (tags in this playbook: %s)", strings.Join(known, ", "))
			}
			warnings = append(warnings, w)
		}
	}
	return warnings
}

// Observer is told about each step as soon as it is done.
type Observer func(Result)

// Apply diffs and applies the plan's steps in order against h, stopping
// at the first error. It returns the results of the steps done before
// the error, and the error as *Error at the failing step's position.
//
// Besides the plan's steps it runs the daemon-reloads that changed unit
// files need: one before the next step that talks to systemd, or at the
// end of the plan, reported as a step of its own (ID -1).
func Apply(ctx context.Context, p *Plan, h host.Host, sel Selection, observe Observer) ([]Result, error) {
	return apply(ctx, p, h, sel, observe, false, nil)
}

// apply is Apply; with makeKey, the first sensitive change makes the
// root's FingerprintKeyFile if it has none.
func apply(ctx context.Context, p *Plan, h host.Host, sel Selection, observe Observer, makeKey bool, checked []Result) ([]Result, error) {
	journal, err := loadPending(ctx, h)
	if err != nil {
		return nil, err
	}
	key, fi, err := readState(ctx, h, FingerprintKeyFile)
	switch {
	case errors.Is(err, fs.ErrPermission) && !makeKey:
		key = nil // a check by another user than root: no fingerprints
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, err
	case fi.Perm()&0o077 != 0 || len(key) != fingerprintKeySize || !ownKey(ctx, h, fi):
		key = nil // others could read it, or it is not ours: a run makes a new one
	}
	ctx = context.WithValue(ctx, secretsKey{}, p.Secrets)
	// Progress lines (waits, jobs) quote URLs and servers' answers.
	report := Progress(ctx)
	ctx = WithProgress(ctx, func(msg string) { report(p.Secrets.Redact(msg)) })
	a := &applier{h: h, real: h, sel: sel, observe: observe, status: make([]Status, len(p.Steps)),
		journal: journal, watchers: map[int][]string{}, reloadPending: journal.has(reloadKey),
		secrets: p.Secrets, key: key, makeKey: makeKey}
	a.committer, _ = h.(host.Committer)
	if observe != nil {
		a.start = stepStart(ctx) // a pass that observes is one a person watches
	}
	if p.Ledger != nil {
		if a.ledger, err = loadLedger(ctx, h, p, *p.Ledger); err != nil {
			return nil, err
		}
		if makeKey {
			byStep := map[Step]Result{}
			var parents []string
			for _, r := range checked {
				byStep[r.Step] = r
				if r.Status == Changed {
					parents = append(parents, r.Change.Parents...)
				}
			}
			// Before the first write of the run, not before: a run that
			// writes nothing leaves no ledger behind.
			a.intend = func() error { return a.ledger.intend(ctx, a.stateHost(), p, sel, byStep, parents) }
		}
	}
	known := map[string]bool{reloadKey: true}
	a.groupOf, a.groupChanged = map[int]string{}, map[string]bool{}
	for _, s := range p.Steps {
		m := s.Meta()
		if g, ok := s.(Grouper); ok && g.Group() != "" {
			a.groupOf[m.ID] = g.Group()
		}
		for _, id := range m.OnChange {
			a.watchers[id] = append(a.watchers[id], m.Key())
		}
		if len(m.OnChange) > 0 {
			known[m.Key()] = true
		}
	}
	// An action owed by a step this plan no longer has (a section turned
	// off since) cannot run: forget it.
	if err := journal.keepOnly(ctx, known); err != nil {
		return nil, err
	}
	var pruneFirst, pruneLast []Step
	if a.ledger != nil {
		pruneFirst, pruneLast = a.ledger.pruneSteps(p, sel)
	}
	for _, s := range slices.Concat(pruneFirst, p.Steps, pruneLast) {
		m := s.Meta()
		if err := ctx.Err(); err != nil {
			if err := a.commit(ctx); err != nil {
				return a.results, err
			}
			return a.results, &Error{Pos: m.Pos, Err: &Interrupted{Cause: err}}
		}
		if a.reloadPending && m.Reload == NeedsReload && sel.selects(m) {
			if err := a.do(ctx, &reloadStep{meta: StepMeta{Kind: "systemctl", Target: "daemon-reload", Resource: "daemon-reload", ID: -1, Pos: m.Pos, Reload: IsReload}}); err != nil {
				return a.results, err
			}
		}
		if err := a.do(ctx, s); err != nil {
			var e *Error
			if ctx.Err() != nil && errors.As(err, &e) && e.Pos == m.Pos {
				// The step failed because it was cut short: say so,
				// rather than "context canceled".
				return a.results, &Error{Pos: m.Pos, Err: &Interrupted{Cause: ctx.Err(), During: true}}
			}
			return a.results, err
		}
	}
	if a.reloadPending {
		// At the last step, or at the playbook's top if it has none (a
		// reload owed by an earlier run).
		pos := Pos{File: p.Playbook, Line: 1, Col: 1}
		if len(p.Steps) > 0 {
			pos = p.Steps[len(p.Steps)-1].Meta().Pos
		}
		if err := a.do(ctx, &reloadStep{meta: StepMeta{Kind: "systemctl", Target: "daemon-reload", Resource: "daemon-reload", ID: -1, Pos: pos, Reload: IsReload}}); err != nil {
			return a.results, err
		}
	}
	if err := a.commit(ctx); err != nil {
		return a.results, err
	}
	if a.ledger != nil && makeKey {
		// Only a run records: check writes nothing of its own. Every
		// step is done: record it even if a signal came meanwhile.
		if err := a.ledger.save(context.WithoutCancel(ctx), h); err != nil {
			return a.results, err
		}
	}
	return a.results, nil
}

// isEngineReload reports whether m is a daemon-reload the engine added
// (ID -1): before a selected step that needs one, or at the end for a
// unit file changed or a reload owed. Tags never leave it out: the step
// that needs it was selected, or the reload is owed.
func isEngineReload(m *StepMeta) bool { return m.ID < 0 && m.Reload == IsReload }

// applier is the state of one pass over a plan.
type applier struct {
	h             host.Host // where steps run: real, or the open batch's dry host
	real          host.Host // the host of the pass
	committer     host.Committer
	batch         *batch // the open batch; nil when none is
	emitted       int    // how many results observe was given
	sel           Selection
	observe       Observer
	start         func(*StepMeta) // WithStepStart's hook, or nil
	results       []Result
	status        []Status // by step ID, for on_change
	reloadPending bool
	journal       *pending
	watchers      map[int][]string // step ID → the actions whose on_change names it
	groupOf       map[int]string   // step ID → its Grouper's group
	groupChanged  map[string]bool  // groups a prune step changed
	secrets       *Secrets         // the plan's, for the flow rule
	key           []byte           // of fingerprints; nil if the root has none yet
	makeKey       bool             // make the key at the first sensitive change
	ledger        *ledger          // nil without Plan.Ledger
	intend        func() error     // records the ledger's intent before the first Apply; then nil
}

// step does one step and records its result.
func (a *applier) step(ctx context.Context, s Step) error {
	r, err := a.result(ctx, s)
	if err != nil {
		m := s.Meta()
		return &Error{Pos: m.Pos, Err: a.secrets.redactError(fmt.Errorf("%s %s: %w", m.Kind, m.Target, err))}
	}
	r.Reason = a.secrets.Redact(r.Reason)
	m := s.Meta()
	if m.ID >= 0 {
		a.status[m.ID] = r.Status
	}
	switch {
	case m.Reload == UnitFile && r.Status == Changed:
		a.reloadPending = true
	case m.Reload == IsReload && r.Status != Unchanged && r.Cause != NotSelected:
		// Done, or not applicable here (an offline root). A daemon-
		// reload of the playbook's that the tags left out has not run:
		// the reload stays owed.
		a.reloadPending = false
		if err := a.journal.done(ctx, reloadKey); err != nil {
			return &Error{Pos: m.Pos, Err: err}
		}
	}
	if len(m.OnChange) > 0 && r.Cause != NotSelected {
		// Ran, found nothing to do, or cannot run here: no longer owed.
		if err := a.journal.done(ctx, m.Key()); err != nil {
			return &Error{Pos: m.Pos, Err: err}
		}
	}
	if a.ledger != nil {
		a.ledger.record(s, r)
	}
	if g := groupOf(s); g != "" && r.Status == Changed && r.Change.Action == Delete {
		a.groupChanged[g] = true // a drop-in or unit file that went
	}
	a.results = append(a.results, r)
	return nil
}

func (a *applier) result(ctx context.Context, s Step) (Result, error) {
	m := s.Meta()
	if !a.sel.selects(m) && !isEngineReload(m) {
		return Result{Step: s, Status: Skipped, Reason: NotSelected.String(), Cause: NotSelected}, nil
	}
	owed := a.journal.has(m.Key())
	if len(m.OnChange) > 0 && !owed && !slices.ContainsFunc(m.OnChange, a.changed) {
		return Result{Step: s, Status: Unchanged, Reason: OnChangeQuiet.String(), Cause: OnChangeQuiet}, nil
	}
	if m.Reload == IsReload && !a.reloadPending {
		return Result{Step: s, Status: Unchanged, Reason: NoUnitChanged.String(), Cause: NoUnitChanged}, nil
	}
	if l, ok := s.(Lander); ok && !a.makeKey {
		// Where it lands now, with the links earlier steps left: a
		// later step may remove the link that leads into kplay's state.
		// Checked on the dry host only (Check, and the check that
		// starts Converge), which follows the same steps in the same
		// order: the real pass would pay a lookup of every path for
		// nothing.
		if at, err := l.Land(ctx, a.h); err == nil {
			if serr := StatePathError(at); serr != nil {
				return Result{}, fmt.Errorf("a symlink in the root makes it %s: %w", at, serr)
			}
		}
	}
	c, err := s.Diff(ctx, a.h)
	if cause := skipCause(err); cause != NoCause {
		return Result{Step: s, Status: Skipped, Reason: cause.String(), Cause: cause}, nil
	}
	if err != nil {
		return Result{}, err
	}
	if c, err = a.protect(ctx, m, c); err != nil {
		return Result{}, err
	}
	if diffed := stepDiffed(ctx); diffed != nil {
		if err := diffed(ctx, a.h, s, c, a.makeKey); err != nil {
			return Result{}, err
		}
	}
	if c.Action == None {
		r := Result{Step: s, Status: Unchanged, Change: c}
		if c.Keep {
			r.Reason = c.Summary // why a removal leaves it
		}
		return r, nil
	}
	if owed && !slices.ContainsFunc(m.OnChange, a.changed) {
		c.Summary = "owed by an earlier run that stopped before it"
	}
	if err := a.owe(ctx, s, c); err != nil {
		return Result{}, err
	}
	if a.intend != nil {
		err := a.intend()
		if a.intend = nil; err != nil {
			return Result{}, err
		}
	}
	doneBy, err := a.coordinate(ctx, s, c)
	if doneBy != "" {
		return Result{Step: s, Status: Unchanged, Change: c, Reason: "done by " + doneBy, Cause: DoneElsewhere}, nil
	}
	if err != nil {
		var nc *NoChange
		if errors.As(err, &nc) {
			return Result{Step: s, Status: Unchanged, Change: c, Reason: nc.Reason}, nil
		}
		if cause := skipCause(err); cause != NoCause {
			return Result{Step: s, Status: Skipped, Change: c, Reason: cause.String(), Cause: cause}, nil
		}
		return Result{}, err
	}
	if !c.Action.Changes() {
		return Result{Step: s, Status: Unchanged, Change: c, Reason: "waited"}, nil
	}
	return Result{Step: s, Status: Changed, Change: c}, nil
}

// ownKey reports whether the fingerprint key (described by key) and the
// directory it is in belong to the user running kplay (root, on a
// machine) and no one else may write there: a key someone else made or
// could swap in, they know, and with it they could try every short
// secret against a fingerprint.
func ownKey(ctx context.Context, h host.Host, key host.FileInfo) bool {
	// The directory too: whoever may write in it could swap the key for
	// one of theirs between this check and the read.
	dir, err := h.Lstat(ctx, StateDir)
	return err == nil && dir.UID == os.Geteuid() && dir.Perm()&0o022 == 0 && key.UID == os.Geteuid()
}

// protect applies the secret rule to a change that Diff returned (see
// Sensitivity): it marks it sensitive by the step's setting, its content
// and the plan's secrets, redacts the summary, and fingerprints sensitive
// content.
func (a *applier) protect(ctx context.Context, m *StepMeta, c Change) (Change, error) {
	// What a step replaces counts whatever sensitive= says: it speaks of
	// what the playbook writes, not of the key it overwrites.
	if m.Sensitive == SensitiveYes || SensitiveContent(c.Before) ||
		(m.Sensitive == SensitiveAuto && SensitiveContent(c.After)) ||
		a.secrets.In(c.Before) || a.secrets.In(c.After) {
		c.Sensitive = true
	}
	c.Summary = a.secrets.Redact(c.Summary)
	if !c.Sensitive {
		return c, nil
	}
	if a.key == nil && a.makeKey {
		key := make([]byte, fingerprintKeySize)
		if _, err := rand.Read(key); err != nil {
			return c, fmt.Errorf("make %s: %w", FingerprintKeyFile, err)
		}
		// Durable before any change of the batch, and so before a
		// fingerprint made with it is printed.
		if err := a.stateHost().WriteFile(ctx, FingerprintKeyFile, key, stateMode, -1, -1); err != nil {
			return c, err
		}
		a.key = key
	}
	if c.Action == Delete {
		c.Fingerprint = fingerprint(a.key, c.Before) // what goes
	} else {
		c.Fingerprint = fingerprint(a.key, c.After)
	}
	return c, nil
}

// owe writes in the journal, before a change, the actions it will owe:
// the restarts watching the step, and a daemon-reload for a unit file.
// changed reports whether the step id changed in this pass, or a step
// that removed part of its group did (Grouper).
func (a *applier) changed(id int) bool {
	return a.status[id] == Changed || a.groupOf[id] != "" && a.groupChanged[a.groupOf[id]]
}

// watchersOf returns the actions owed when s makes change c: those whose
// on_change names s; and when c deletes a file of a group (a pruned or
// absent drop-in), those whose on_change names any step of the group.
func (a *applier) watchersOf(s Step, c Change) []string {
	m := s.Meta()
	keys := slices.Clone(a.watchers[m.ID])
	g := groupOf(s)
	if c.Action != Delete || g == "" {
		return keys
	}
	for _, id := range slices.Sorted(maps.Keys(a.groupOf)) {
		if a.groupOf[id] == g {
			for _, k := range a.watchers[id] {
				if !slices.Contains(keys, k) {
					keys = append(keys, k)
				}
			}
		}
	}
	return keys
}

// groupOf is the group of s (Grouper), seen through a prune step; "" for
// none.
func groupOf(s Step) string {
	if g, ok := inner(s).(Grouper); ok {
		return g.Group()
	}
	return ""
}

func (a *applier) owe(ctx context.Context, s Step, c Change) error {
	m := s.Meta()
	if !c.Action.Changes() {
		return nil
	}
	keys := a.watchersOf(s, c)
	if m.Reload == UnitFile {
		keys = append(slices.Clone(keys), reloadKey)
	}
	if len(keys) == 0 {
		return nil
	}
	return a.journal.add(ctx, keys...)
}

// skipCause says why a step whose Diff or Apply returned err is listed
// as skipped, or NoCause if err is not such a reason.
func skipCause(err error) Cause {
	switch {
	case errors.Is(err, host.ErrNotApplicable):
		return OfflineRoot
	case errors.Is(err, host.ErrNotInCheck):
		return NotInCheck
	}
	return NoCause
}

// reloadStep is the daemon-reload the engine adds after unit file changes.
type reloadStep struct{ meta StepMeta }

func (s *reloadStep) Meta() *StepMeta { return &s.meta }

func (s *reloadStep) Diff(ctx context.Context, h host.Host) (Change, error) {
	if !h.Systemd().Live() {
		return Change{}, host.ErrNotApplicable
	}
	return Change{Action: Run, Summary: "unit files changed"}, nil
}

func (s *reloadStep) Apply(ctx context.Context, h host.Host, c Change) error {
	return h.Systemd().DaemonReload(ctx)
}

// Check applies the plan to a dry host over real: every change is
// computed and kept in memory, and real is never written. The selected
// steps that are Prefetchers start their network reads at once.
func Check(ctx context.Context, p *Plan, real host.Host, sel Selection, observe Observer) ([]Result, error) {
	if _, ok := real.(host.Locker); ok {
		// check takes no lock, but says what would stop run from
		// taking it: a symlink on the way to the lock file.
		if err := host.CheckStatePath(ctx, real, "lock", host.LockFile); err != nil {
			return nil, err
		}
	}
	dry := host.NewDry(real)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the prefetches that no Diff waited for
	for _, s := range p.Steps {
		if pf, ok := s.(Prefetcher); ok && sel.selects(s.Meta()) {
			go func() {
				// A panic here would end the process with exit 2; the
				// step's Diff does the same work in the caller's
				// goroutine, where the CLI turns it into an error.
				defer func() { _ = recover() }()
				pf.Prefetch(ctx, dry)
			}()
		}
	}
	results, err := Apply(ctx, p, dry, sel, observe)
	var in *Interrupted
	if errors.As(err, &in) {
		in.Checking = true
	}
	if err != nil {
		return results, err
	}
	return results, verify(ctx, p, dry, sel)
}

// verify calls Verify of every selected Verifier of p on the dry host
// that the plan's Diffs left, and refuses two selected Landers that land
// on one path with different claims; it returns the first error, at its
// step.
func verify(ctx context.Context, p *Plan, dry host.Host, sel Selection) error {
	type landing struct {
		resource, fingerprint string
		pos                   Pos
	}
	landed := map[string]landing{}
	for _, s := range p.Steps {
		m := s.Meta()
		if !sel.selects(m) {
			continue
		}
		if l, ok := s.(Lander); ok {
			resource, fingerprint := l.Claim()
			at, err := l.Land(ctx, dry)
			if serr := StatePathError(at); err == nil && serr != nil {
				return &Error{Pos: m.Pos, Err: fmt.Errorf("%s %s: a symlink in the root makes it %s: %w", m.Kind, m.Target, at, serr)}
			}
			if prev, ok := landed[at]; err == nil && ok && prev.resource != resource && prev.fingerprint != fingerprint {
				return &Error{Pos: m.Pos, Err: fmt.Errorf("%s %s: is declared twice, differently: a symlink in the root makes it %s, which %s at %s declares too (keep one, or make them the same)",
					m.Kind, m.Target, at, prev.resource, prev.pos)}
			}
			if err == nil {
				landed[at] = landing{resource, fingerprint, m.Pos}
			}
		}
		if v, ok := s.(Verifier); ok {
			if err := v.Verify(ctx, dry); err != nil {
				return &Error{Pos: m.Pos, Err: p.Secrets.redactError(fmt.Errorf("%s %s: %w", m.Kind, m.Target, err))}
			}
		}
	}
	return nil
}

// Converge converges real to the plan. It first checks the whole plan on a dry
// host, so that bad input found by any step's Diff stops the run before
// the first write; then, holding real's lock if it has one (host.Locker),
// it applies the plan to real.
func Converge(ctx context.Context, p *Plan, real host.Host, sel Selection, observe Observer) ([]Result, error) {
	checked, err := Check(ctx, p, real, sel, nil)
	if err != nil {
		return nil, err
	}
	if l, ok := real.(host.Locker); ok && !lockHeld(ctx) {
		unlock, err := l.Lock(ctx)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	return apply(ctx, p, real, sel, observe, true, checked)
}

// Interrupted is the error of a check or run stopped by its context (an
// interrupt) before or During a step. Applying to the real host, the
// steps before it are done, each whole; Checking (check, or the check
// that starts a run), nothing was changed.
type Interrupted struct {
	Cause    error
	During   bool
	Checking bool
}

func (e *Interrupted) Error() string {
	when := "before"
	if e.During {
		when = "during"
	}
	if e.Checking {
		return "interrupted " + when + " this step of the check; nothing was changed"
	}
	return "interrupted " + when + " this step; the steps before it are done (run again to finish)"
}

func (e *Interrupted) Unwrap() error { return e.Cause }
