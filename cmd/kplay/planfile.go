package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/ui"
)

// planFormat is the version of the plan file's format.
const planFormat = 1

// maxPlanFile bounds the plan file run --plan reads.
const maxPlanFile = 64 << 20

// planFile is a reviewed plan (kplay check --out): what the playbook
// was, with which vars, against which machine, and for each step a hash
// of the state it expects before it and of what it will write. Every
// hash is an HMAC-SHA256 keyed with the plan key (planKeyPath), so that
// the file holds no secret and no hash a short secret can be found from.
type planFile struct {
	Format   int        `json:"format"`
	Kplay    string     `json:"kplay"`
	Playbook string     `json:"playbook"`
	Target   planTarget `json:"target"`
	// KeyCheck is the hash of a fixed text: run --plan tells a plan made
	// with another plan key from one whose every hash differs.
	KeyCheck string       `json:"key_check"`
	Tags     []string     `json:"tags"`
	SkipTags []string     `json:"skip_tags"`
	Prune    bool         `json:"prune"`
	Ledger   string       `json:"ledger"`
	Sources  []planSource `json:"sources"`
	Vars     []planVar    `json:"vars"`
	Steps    []planStep   `json:"steps"`
}

// planTarget is the machine a plan was made against: the --root
// directory, or this machine's machine-id and hostname for --root /.
type planTarget struct {
	Root      string `json:"root,omitempty"`
	MachineID string `json:"machine_id,omitempty"`
	Hostname  string `json:"hostname,omitempty"`
}

type planSource struct {
	Path string `json:"path"`
	Hash string `json:"hash"`
}

// planVar is a var given to the playbook: its value, or for a secret
// its hash only.
type planVar struct {
	Name      string `json:"name"`
	Value     string `json:"value,omitempty"`
	Sensitive bool   `json:"sensitive,omitempty"`
	Hash      string `json:"hash,omitempty"`
}

// planStep is one step of the plan. Before and After are empty for a
// step whose Diff did not run (not selected, an on_change that did not
// fire, a restart on an offline root).
type planStep struct {
	Key    string `json:"key"`
	Pos    string `json:"position"`
	Kind   string `json:"kind"`
	Target string `json:"target"`
	Action string `json:"action"`
	Before string `json:"before"`
	After  string `json:"after"`
}

// planKeyPath is the key plan hashes are keyed with: $KPLAY_PLAN_KEY, or
// kplay/plan.key in the user's configuration directory, made (0600) by
// the first check --out. run --plan must use the same key.
func planKeyPath() (string, error) {
	if p := os.Getenv("KPLAY_PLAN_KEY"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("plan key: %w (set KPLAY_PLAN_KEY to a file)", err)
	}
	return filepath.Join(dir, "kplay", "plan.key"), nil
}

// planKeySize is the plan key's size in bytes.
const planKeySize = 32

// readPlanKey reads the plan key, making it if create and it is missing.
// The key must be a regular file (not a symlink) that the user running
// kplay owns and no one else may read or write, in a directory no one
// else may write in: whoever could read it could try secrets against a
// plan's hashes, and whoever could swap it, read them.
func readPlanKey(create bool) ([]byte, error) {
	p, err := planKeyPath()
	if err != nil {
		return nil, err
	}
	_, err = os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) && create {
		if err := makePlanKey(p); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("plan key %s: %w", p, err)
		}
		// Made now, or by a kplay that ran at the same time: read it.
	} else if err != nil {
		return nil, fmt.Errorf("plan key %s: %w (check --out makes it; run --plan needs the key that check --out used)", p, err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, fmt.Errorf("plan key %s: %w", p, err)
	}
	if err := ownedPrivate(p, fi, 0o077); err != nil {
		return nil, err
	}
	dir, err := os.Lstat(filepath.Dir(p))
	if err != nil {
		return nil, fmt.Errorf("plan key %s: %w", p, err)
	}
	if err := ownedPrivate(filepath.Dir(p), dir, 0o022); err != nil {
		return nil, err
	}
	text, err := host.ReadRegular(nil, p, 1024)
	if err != nil {
		return nil, fmt.Errorf("plan key %s: %w", p, err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(text)))
	if err != nil || len(key) != planKeySize {
		return nil, fmt.Errorf("plan key %s: not a key kplay made (%d hex digits); remove it and make the plan again", p, 2*planKeySize)
	}
	return key, nil
}

// ownedPrivate says why the plan key or its directory p cannot be
// trusted: a symlink, another owner, or permission bits in mask.
func ownedPrivate(p string, fi fs.FileInfo, mask fs.FileMode) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("plan key: %s is a symlink; give the key's own path", p)
	case mask == 0o077 && !fi.Mode().IsRegular():
		return fmt.Errorf("plan key: %s is not a regular file", p)
	case !ok || int(st.Uid) != os.Geteuid():
		return fmt.Errorf("plan key: %s belongs to another user; use a key of your own (KPLAY_PLAN_KEY, or remove it and make the plan again)", p)
	case fi.Mode().Perm()&mask != 0:
		return fmt.Errorf("plan key: others may read or change %s (mode %04o); chmod %04o it, or remove the key and make the plan again", p, fi.Mode().Perm(), fi.Mode().Perm()&^mask)
	}
	return nil
}

// makePlanKey makes a new plan key at p, whole or not at all: written to
// a temporary file, then linked to p, which fails if p exists.
func makePlanKey(p string) error {
	key := make([]byte, planKeySize)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".plan.key-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write([]byte(hex.EncodeToString(key) + "\n"))
	if err := errors.Join(werr, tmp.Chmod(0o600), tmp.Sync(), tmp.Close()); err != nil {
		return err
	}
	return os.Link(tmp.Name(), p)
}

// planHasher hashes the parts of a plan with the plan key.
type planHasher struct{ key []byte }

func (h planHasher) sum(parts ...[]byte) string {
	m := hmac.New(sha256.New, h.key)
	for _, p := range parts {
		fmt.Fprintf(m, "%d:", len(p)) // length-prefixed: parts cannot run into each other
		m.Write(p)
	}
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// before is the hash of the state a step found: the kind of change its
// Diff says, the content before and the summary (which names a mode or
// owner that changes). Absent is a state: a create's before differs
// from anything present.
func (h planHasher) before(m *engine.StepMeta, c engine.Change, at string) string {
	return h.sum([]byte(m.Key()), []byte(at), []byte(strings.Join(c.Parents, "\x00")),
		[]byte(c.Action.String()), c.Before, []byte(c.Summary))
}

// landing is where a step's target lands in h's root once the symlinks
// of its directories are resolved ("" for a target that is not a path):
// a directory swapped for a symlink since the plan sends a write
// elsewhere, and that is drift.
func landing(ctx context.Context, h host.Host, s engine.Step) string {
	p, ok := engine.RootPath(s)
	if !ok {
		return ""
	}
	at, err := host.Resolve(ctx, h, p)
	if err != nil {
		return "error: " + err.Error()
	}
	return at
}

// after is the hash of what the step will write.
func (h planHasher) after(m *engine.StepMeta, c engine.Change) string {
	return h.sum([]byte(m.Key()), []byte(c.Action.String()), c.After)
}

// stepKey names a step in a plan: its index for a step of the playbook;
// kind and target, and which of that kind and target, for a step the
// engine adds (a daemon-reload, a removal of what the playbook no longer
// declares).
type stepKeys struct {
	mu   sync.Mutex
	seen map[bool]map[string]int
}

func (k *stepKeys) key(m *engine.StepMeta, real bool) string {
	if m.ID >= 0 {
		return fmt.Sprintf("step %d", m.ID)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.seen == nil {
		k.seen = map[bool]map[string]int{false: {}, true: {}}
	}
	name := m.Key()
	k.seen[real][name]++
	return fmt.Sprintf("%s #%d", name, k.seen[real][name])
}

// planRecorder records the Change of each step a check diffs
// (engine.WithStepDiffed), for check --out and run --plan's first check.
type planRecorder struct {
	h     planHasher
	keys  stepKeys
	mu    sync.Mutex
	steps []planStep
}

func (r *planRecorder) record(ctx context.Context, h host.Host, s engine.Step, c engine.Change, real bool) error {
	m := s.Meta()
	st := planStep{Key: r.keys.key(m, real), Pos: m.Pos.String(), Kind: m.Kind, Target: m.Target,
		Action: c.Action.String(), Before: r.h.before(m, c, landing(ctx, h, s)), After: r.h.after(m, c)}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps = append(r.steps, st)
	return nil
}

// makePlanFile builds the plan file of a check: the recorded steps, the
// sources, the vars and the target.
func makePlanFile(ctx context.Context, o *options, plan *engine.Plan, vars map[string]string, rec *planRecorder) (*planFile, error) {
	target, err := planTargetOf(o.root)
	if err != nil {
		return nil, err
	}
	ledger, err := ledgerName(o, plan.Playbook)
	if err != nil {
		return nil, err
	}
	pf := &planFile{Format: planFormat, Kplay: versionLine(), Playbook: plan.Playbook, Target: target,
		KeyCheck: rec.h.sum([]byte("kplay plan key")), Tags: nonNil(o.tags), SkipTags: nonNil(o.skipTags),
		Prune: o.prune, Ledger: ledger, Steps: rec.steps}
	if pf.Sources, err = planSources(ctx, plan, rec.h); err != nil {
		return nil, err
	}
	pf.Vars = planVars(plan, vars, rec.h)
	if pf.Steps == nil {
		pf.Steps = []planStep{}
	}
	return pf, nil
}

func planTargetOf(root string) (planTarget, error) {
	if filepath.Clean(root) != "/" {
		abs, err := filepath.Abs(root)
		return planTarget{Root: abs}, err
	}
	id, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		return planTarget{}, fmt.Errorf("the machine's identity: %w", err)
	}
	name, err := os.Hostname()
	return planTarget{MachineID: strings.TrimSpace(string(id)), Hostname: name}, err
}

// planSources hashes every file the plan read on this machine: the
// playbook and its loads, and the steps' src=, TLS and kubeconfig files.
func planSources(ctx context.Context, plan *engine.Plan, h planHasher) ([]planSource, error) {
	names := localFiles(plan)
	sort.Strings(names)
	var out []planSource
	for _, n := range slices.Compact(names) {
		data, err := host.ReadRegular(nil, n, host.SrcLimit)
		if err != nil {
			return nil, fmt.Errorf("plan: read %s: %w", n, err)
		}
		out = append(out, planSource{Path: n, Hash: h.sum([]byte(n), data)})
	}
	return out, nil
}

// planVars are the vars given, sorted by name: a secret by its hash.
func planVars(plan *engine.Plan, vars map[string]string, h planHasher) []planVar {
	sensitive := map[string]bool{}
	for _, d := range plan.Vars {
		sensitive[d.Name] = d.Sensitive
	}
	out := []planVar{}
	for _, name := range slices.Sorted(maps.Keys(vars)) {
		v := vars[name]
		switch {
		case sensitive[name]:
			out = append(out, planVar{Name: name, Sensitive: true, Hash: h.sum([]byte(name), []byte(v))})
		case host.RedactURLs(v) != v:
			// A password in a URL: shown redacted, compared by hash.
			out = append(out, planVar{Name: name, Value: host.RedactURLs(v), Hash: h.sum([]byte(name), []byte(v))})
		default:
			out = append(out, planVar{Name: name, Value: v})
		}
	}
	return out
}

// writePlanFile writes pf to name, replacing it atomically.
func writePlanFile(name string, pf *planFile) error {
	data, err := json.MarshalIndent(pf, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), ".kplay-plan-*")
	if err != nil {
		return fmt.Errorf("--out %s: %w", name, err)
	}
	_, werr := tmp.Write(append(data, '\n'))
	if err := errors.Join(werr, tmp.Chmod(0o644), tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("--out %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("--out %s: %w", name, err)
	}
	return nil
}

// readPlanFile reads a plan file check --out wrote.
func readPlanFile(name string) (*planFile, error) {
	data, err := readFlagFile("--plan", name, maxPlanFile, "a plan file that kplay check --out wrote")
	if err != nil {
		return nil, err
	}
	var pf planFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pf); err != nil {
		return nil, fmt.Errorf("--plan %s: not a plan file kplay check --out wrote: %v", name, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("--plan %s: not a plan file kplay check --out wrote: data after the plan", name)
	}
	if pf.Format != planFormat {
		return nil, fmt.Errorf("--plan %s: format %d; this kplay reads format %d (make the plan again with this kplay)", name, pf.Format, planFormat)
	}
	if pf.Kplay == "" || pf.Playbook == "" || pf.KeyCheck == "" || pf.Steps == nil || (pf.Target == planTarget{}) {
		return nil, fmt.Errorf("--plan %s: not a whole plan file (kplay, playbook, key_check, target or steps missing)", name)
	}
	return &pf, nil
}

// planMismatch says how what runs now differs from the reviewed plan,
// one problem a line; "" when it does not.
func planMismatch(want, got *planFile) string {
	if want.KeyCheck != got.KeyCheck {
		return "the plan was made with another plan key: run --plan needs the key check --out used (KPLAY_PLAN_KEY, or ~/.config/kplay/plan.key of the user who made it)"
	}
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if want.Prune != got.Prune || want.Ledger != got.Ledger {
		add("ledger: the plan has --ledger %s --prune=%v, this run --ledger %s --prune=%v", want.Ledger, want.Prune, got.Ledger, got.Prune)
	}
	if want.Kplay != got.Kplay {
		add("kplay: the plan was made by %s, this is %s", want.Kplay, got.Kplay)
	}
	if want.Playbook != got.Playbook {
		add("playbook: the plan is of %s, not %s", want.Playbook, got.Playbook)
	}
	if want.Target != got.Target {
		add("target: the plan was made for %s, this is %s", targetText(want.Target), targetText(got.Target))
	}
	if !slices.Equal(want.Tags, got.Tags) || !slices.Equal(want.SkipTags, got.SkipTags) {
		add("tags: the plan has --tags %v --skip-tags %v, this run %v %v", want.Tags, want.SkipTags, got.Tags, got.SkipTags)
	}
	compareByName(want.Sources, got.Sources, func(s planSource) string { return s.Path }, func(a, b planSource) bool { return a.Hash == b.Hash },
		func(name, how string) { add("source %s: %s since the plan", name, how) })
	compareByName(want.Vars, got.Vars, func(v planVar) string { return v.Name }, func(a, b planVar) bool { return a == b },
		func(name, how string) { add("var %s: %s since the plan", name, how) })
	// The steps: the same list, the same actions and the same afters;
	// then each before.
	wantSteps := map[string]planStep{}
	for _, s := range want.Steps {
		wantSteps[s.Key] = s
	}
	gotKeys := map[string]bool{}
	for _, s := range got.Steps {
		gotKeys[s.Key] = true
		w, ok := wantSteps[s.Key]
		switch {
		case !ok || w.Kind != s.Kind || w.Target != s.Target:
			add("%s: %s %s is not in the plan", s.Pos, s.Kind, s.Target)
		case w.Before != s.Before && w.Action != s.Action:
			add("%s: %s %s: drift: the machine changed since the plan (planned: %s; now: %s)", s.Pos, s.Kind, s.Target, actionText(w.Action), actionText(s.Action))
		case w.Before != s.Before:
			add("%s: %s %s: drift: the machine changed since the plan (what the step finds is not what the plan saw)", s.Pos, s.Kind, s.Target)
		case w.Action != s.Action || w.After != s.After:
			add("%s: %s %s would write something else than the plan says", s.Pos, s.Kind, s.Target)
		}
	}
	for _, w := range want.Steps {
		if !gotKeys[w.Key] {
			add("%s: %s %s is in the plan but would not run now", w.Pos, w.Kind, w.Target)
		}
	}
	return strings.Join(out, "\n")
}

func compareByName[T any](want, got []T, name func(T) string, same func(a, b T) bool, report func(name, how string)) {
	w := map[string]T{}
	for _, x := range want {
		w[name(x)] = x
	}
	g := map[string]bool{}
	for _, x := range got {
		g[name(x)] = true
		if old, ok := w[name(x)]; !ok {
			report(name(x), "added")
		} else if !same(old, x) {
			report(name(x), "changed")
		}
	}
	for _, x := range want {
		if !g[name(x)] {
			report(name(x), "gone")
		}
	}
}

func targetText(t planTarget) string {
	if t.Root != "" {
		return "root " + t.Root
	}
	return fmt.Sprintf("machine %s (%s)", t.Hostname, t.MachineID)
}

// planVerifier is the hook of a planned run's Converge: every step's
// Change, in both passes, must be what the plan says, just before it is
// applied.
type planVerifier struct {
	h     planHasher
	keys  stepKeys
	steps map[string]planStep
}

func newPlanVerifier(h planHasher, pf *planFile) *planVerifier {
	v := &planVerifier{h: h, steps: map[string]planStep{}}
	for _, s := range pf.Steps {
		v.steps[s.Key] = s
	}
	return v
}

func (v *planVerifier) verify(ctx context.Context, h host.Host, s engine.Step, c engine.Change, real bool) error {
	m := s.Meta()
	w, ok := v.steps[v.keys.key(m, real)]
	switch {
	case !ok:
		return errors.New("not in the reviewed plan; this step and the ones after it were not applied (make the plan again: kplay check --out)")
	case w.Before != v.h.before(m, c, landing(ctx, h, s)):
		return errors.New("drift: the machine changed since the plan was made; this step and the ones after it were not applied (make the plan again: kplay check --out)")
	case w.Action != c.Action.String() || w.After != v.h.after(m, c):
		return errors.New("would write something else than the reviewed plan says; this step and the ones after it were not applied (make the plan again: kplay check --out)")
	}
	return nil
}

// savePlan writes the plan of a check that recorded its steps to
// --out, and says so on stderr.
func savePlan(ctx context.Context, o *options, plan *engine.Plan, rec *planRecorder, stderr io.Writer) error {
	vars, _, err := readVars(o)
	if err != nil {
		return err
	}
	pf, err := makePlanFile(ctx, o, plan, vars, rec)
	if err != nil {
		return err
	}
	if err := writePlanFile(o.planOut, pf); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "kplay: wrote the plan to %s (kplay run --plan %s applies exactly it)\n", ui.Visible(o.planOut), ui.Visible(o.planOut))
	return nil
}

// checkPlan is run --plan's check before the first write: the playbook,
// vars, target and sources must be the plan's, and a check of the
// machine now must find every step as the plan saw it. It returns the
// verifier that holds each step of the run to the plan.
func checkPlan(ctx context.Context, o *options, plan *engine.Plan, real host.Host, sel engine.Selection) (*planVerifier, error) {
	want, err := readPlanFile(o.planIn)
	if err != nil {
		return nil, err
	}
	key, err := readPlanKey(false)
	if err != nil {
		return nil, err
	}
	rec := &planRecorder{h: planHasher{key}}
	if _, err := engine.Check(engine.WithStepDiffed(ctx, rec.record), plan, real, sel, nil); err != nil {
		return nil, err
	}
	vars, _, err := readVars(o)
	if err != nil {
		return nil, err
	}
	got, err := makePlanFile(ctx, o, plan, vars, rec)
	if err != nil {
		return nil, err
	}
	if msg := planMismatch(want, got); msg != "" {
		return nil, fmt.Errorf("--plan %s: refused, nothing was written; what differs from the reviewed plan:\n%s", o.planIn, msg)
	}
	return newPlanVerifier(rec.h, want), nil
}

// actionText names a planned action in a message.
func actionText(a string) string {
	if a == engine.None.String() {
		return "nothing to do"
	}
	return a
}

// checkOut checks --out before the check runs: a file to make or
// replace, in a directory that exists. Anything else at that name (a
// device such as /dev/null, a symlink, a directory) is refused: the plan
// replaces what is there.
func checkOut(name string) error {
	switch name {
	case "":
		return errors.New("--out: give the file to write the plan to, such as plan.json")
	case "-":
		return errors.New("--out -: give a file (the check's report is on stdout already)")
	}
	if fi, err := os.Lstat(name); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("--out %s: %s is there, which the plan would replace; give a regular file's name", name, host.Kind(fi.Mode()))
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("--out: %w", err)
	}
	if fi, err := os.Stat(filepath.Dir(name)); err != nil || !fi.IsDir() {
		return fmt.Errorf("--out %s: no directory %s to write it in", name, filepath.Dir(name))
	}
	return nil
}

// checkOutNotSource refuses an --out that names a file the check reads:
// the playbook, a module, a src= file, the vars file.
func checkOutNotSource(o *options, plan *engine.Plan) error {
	out, err := os.Stat(o.planOut)
	if err != nil {
		return nil // not there yet: nothing to overwrite
	}
	names := localFiles(plan)
	if o.varsFile != "" {
		names = append(names, o.varsFile)
	}
	for _, n := range names {
		if fi, err := os.Stat(n); err == nil && os.SameFile(fi, out) {
			return fmt.Errorf("--out %s is %s, which the check reads: give another file for the plan", o.planOut, n)
		}
	}
	return nil
}

// localFiles are the files a plan reads on the machine running kplay:
// the playbook and its modules, and the steps' src=, TLS and kubeconfig
// files.
func localFiles(plan *engine.Plan) []string {
	names := slices.Clone(plan.Sources)
	for _, s := range plan.Steps {
		if ls, ok := s.(engine.LocalSourcer); ok {
			names = append(names, ls.LocalSources()...)
		}
	}
	return names
}
