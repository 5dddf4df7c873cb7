package engine

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/kplay-dev/kplay/host"
)

// LedgerDir holds the ledgers: for each playbook (by name), what kplay
// wrote or enabled for it in the root, so that a run can remove what the
// playbook no longer declares.
const LedgerDir = StateDir + "/managed"

// Object is one thing in the root that a playbook manages.
type Object struct {
	// Kind is the kind of step that manages it: "file", "manifest",
	// "unit", "dropin", "directory", "enable".
	Kind string `json:"kind"`
	// Target is the absolute path, or the unit for "enable".
	Target string `json:"target"`
	// Hash is the SHA-256 of the content written, hex; empty for a
	// sensitive file (a hash of a short secret can be guessed) and for
	// what has no content.
	Hash string `json:"hash,omitempty"`
	// Created is set for a directory that kplay made: only such a
	// directory is removed, and only when it is empty.
	Created bool `json:"created,omitempty"`
	// Sensitive keeps the content of the file out of the output when it
	// is removed.
	Sensitive bool `json:"sensitive,omitempty"`
	// Absent is set by a step that declares the path must not exist:
	// it counts as declared (nothing is pruned there) but is not
	// recorded. Never in a ledger file.
	Absent bool `json:"-"`
}

// key identifies an object in a ledger: its path, whatever builtin
// declared it (a unit() and a file() of one path are one object), or
// "enable <unit>".
func (o Object) key() objKey {
	switch o.Kind {
	case "enable", "etcd_put", "kube_create":
		return objKey{o.Kind, o.Target}
	}
	return objKey{"path", o.Target}
}

// objKey identifies what an Object stands for: the kinds that write a
// path share the class "path" (a file that becomes a directory is the
// same path); the others are their kind. Two strings the Object already
// holds, so a key costs no allocation: a ledger of 10,000 files keeps
// three maps of them.
type objKey struct{ class, target string }

// compareKeys orders keys by class, then target.
func compareKeys(a, b objKey) int {
	if c := strings.Compare(a.class, b.class); c != 0 {
		return c
	}
	return strings.Compare(a.target, b.target)
}

// isPath reports whether o is a path in the root (not an enable, etcd
// key or API object).
func (o Object) isPath() bool { return o.key().class == "path" }

// objectKinds are the kinds a ledger may list.
var objectKinds = []string{"file", "manifest", "unit", "dropin", "directory", "enable", "etcd_put", "kube_create"}

// check refuses an object a ledger must not list: an unknown kind, a path
// that is not absolute and clean, a unit that is not a plain name, or
// kplay's own state. Such an entry is a hand edit or a fault, and acting
// on it could remove what no playbook wrote.
func (o Object) check() error {
	switch {
	case !slices.Contains(objectKinds, o.Kind):
		return fmt.Errorf("%q is not a kind kplay records (one of %s)", o.Kind, strings.Join(objectKinds, ", "))
	case o.Kind == "enable":
		if o.Target == "" || strings.ContainsAny(o.Target, "/\x00") || o.Target == "." || o.Target == ".." {
			return fmt.Errorf("enable %q is not a unit name", o.Target)
		}
	case o.Kind == "etcd_put" || o.Kind == "kube_create":
		if o.Target == "" {
			return fmt.Errorf("%s with no key or name", o.Kind)
		}
	case !path.IsAbs(o.Target) || path.Clean(o.Target) != o.Target || o.Target == "/":
		return fmt.Errorf("%s %q is not an absolute, clean path", o.Kind, o.Target)
	default:
		return StatePathError(o.Target)
	}
	return nil
}

// Manager is a step that manages objects in the root: the ledger
// records them after a run, and pruning removes a recorded object that
// no step manages any more.
type Manager interface {
	Manages() []Object
}

// Pruner returns the step that removes obj, which no step of the plan
// manages any more; ok is false for a kind it cannot remove, which then
// stays in the ledger.
type Pruner func(obj Object) (s Step, ok bool)

// LedgerOptions turn on the ledger for a plan (Plan.Ledger).
type LedgerOptions struct {
	// Name is the ledger's name: LedgerDir/<Name>.json. The CLI takes
	// the playbook's file name without ".star" unless --ledger says.
	Name string
	// Prune removes what the ledger lists and the plan no longer
	// manages; false keeps it (and keeps it listed).
	Prune bool
	// Pruner makes the removing steps.
	Pruner Pruner
	// Kept, if set, is told what the ledger lists and the plan no longer
	// declares when nothing is removed (Prune off, or --tags).
	Kept func(objs []Object)
}

// ledgerNamePattern is what a ledger name may be: a file name.
var ledgerNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// CheckLedgerName refuses a name that is not a plain file name.
func CheckLedgerName(name string) error {
	if !ledgerNamePattern.MatchString(name) {
		return fmt.Errorf("ledger name %q is not a plain name (letters, digits, '.', '_' and '-', at most 100, such as \"master\")", name)
	}
	return nil
}

// LedgerPath is the file of the ledger name.
func LedgerPath(name string) string { return LedgerDir + "/" + name + ".json" }

// ledgerDoc is a ledger file.
type ledgerDoc struct {
	Version int      `json:"version"`
	Name    string   `json:"name"`
	Objects []Object `json:"objects"`
}

// ledgerVersion is the format written; a ledger of another version is an
// error, never rewritten.
const ledgerVersion = 1

// ReadLedger returns the objects of the ledger name in h's root, sorted;
// none (and no error) when there is no such ledger.
func ReadLedger(ctx context.Context, h host.Host, name string) ([]Object, error) {
	p := LedgerPath(name)
	data, _, err := readState(ctx, h, p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var doc ledgerDoc
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err = dec.Decode(&doc)
	switch {
	case err != nil:
	case dec.More():
		err = errors.New("more than one document")
	case doc.Version != ledgerVersion:
		err = fmt.Errorf("version %d, want %d", doc.Version, ledgerVersion)
	case doc.Name != name:
		err = fmt.Errorf("it names the ledger %q, not %q", doc.Name, name)
	}
	for i := 0; err == nil && i < len(doc.Objects); i++ {
		if cerr := doc.Objects[i].check(); cerr != nil {
			err = fmt.Errorf("object %d: %v", i+1, cerr)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %v (it lists what kplay manages for playbook %q; fix it, or remove it: the next run then adopts what the playbook declares and removes nothing)", p, err, name)
	}
	return doc.Objects, nil
}

// LedgerNames returns the names of the ledgers in h's root, sorted.
func LedgerNames(ctx context.Context, h host.Host) ([]string, error) {
	if err := host.CheckStatePath(ctx, h, "read", LedgerDir+"/x"); err != nil {
		return nil, err
	}
	entries, err := h.ReadDir(ctx, LedgerDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e, ".json"); ok && CheckLedgerName(n) == nil {
			names = append(names, n)
		}
	}
	return names, nil
}

// marshalLedger is the text of the ledger name listing objs, sorted by
// kind and target: the JSON of a ledgerDoc, one object a line
// (TestLedgerTextIsTheDocsJSON holds it to encoding/json).
func marshalLedger(name string, objs []Object) ([]byte, error) {
	slices.SortFunc(objs, func(a, b Object) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Target, b.Target)) })
	// One object a line, into one buffer: a person can read and diff
	// it, and a ledger of 10,000 files costs its own size in memory at
	// the end of a run, where MarshalIndent's buffers cost several times
	// that at the run's peak (issue 14's peak RSS).
	quoted, err := json.Marshal(name)
	if err != nil {
		return nil, err
	}
	buf := bytes.NewBuffer(make([]byte, 0, 64+len(quoted)+len(objs)*128))
	fmt.Fprintf(buf, "{\n  \"version\": %d,\n  \"name\": %s,", ledgerVersion, quoted)
	buf.WriteString("\n  \"objects\": [")
	for i, o := range objs {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString("\n    ")
		writeObject(buf, o)
	}
	if len(objs) > 0 {
		buf.WriteString("\n  ")
	}
	buf.WriteString("]\n}\n")
	return buf.Bytes(), nil
}

// writeObject writes o's JSON on one line, as encoding/json writes it but
// with a space after each colon and comma, so that a person (or grep)
// finds "target": "/etc/x" as in an indented document.
func writeObject(buf *bytes.Buffer, o Object) {
	field := func(name string, value any) {
		if buf.Bytes()[buf.Len()-1] != '{' {
			buf.WriteString(", ")
		}
		v, _ := json.Marshal(value) // a string or a bool: never fails
		fmt.Fprintf(buf, "%q: %s", name, v)
	}
	buf.WriteByte('{')
	field("kind", o.Kind)
	field("target", o.Target)
	if o.Hash != "" {
		field("hash", o.Hash)
	}
	if o.Created {
		field("created", true)
	}
	if o.Sensitive {
		field("sensitive", true)
	}
	buf.WriteByte('}')
}

// writeLedger replaces the ledger name with data, atomically (WriteFile),
// refusing a symlink on the way as for every file kplay keeps.
func writeLedger(ctx context.Context, h host.Host, name string, data []byte) error {
	p := LedgerPath(name)
	if err := host.CheckStatePath(ctx, h, "write", p); err != nil {
		return err
	}
	if fi, err := h.Lstat(ctx, p); err == nil {
		if err := host.CheckStateFile("write", p, fi); err != nil {
			return err
		}
	}
	return h.WriteFile(ctx, p, data, stateMode, -1, -1)
}

// ledger is the ledger of one pass.
type ledger struct {
	opts     LedgerOptions
	written  *[sha256.Size]byte  // digest of the file as read or last written, to write only a change
	old      map[objKey]Object   // by key, as read (and as intend left it)
	declared map[objKey]Object   // what the plan's steps manage (or declare absent), by key
	seen     map[objKey]Object   // what this pass found in place or made, by key
	pruned   map[objKey]bool     // keys removed by this pass
	others   map[objKey][]string // ledger names that list a key, besides this one
	adopting bool                // no ledger yet: record all that is declared
}

// loadLedger reads the ledger of opts and the others in h's root, and
// notes what p declares.
func loadLedger(ctx context.Context, h host.Host, p *Plan, opts LedgerOptions) (*ledger, error) {
	if err := CheckLedgerName(opts.Name); err != nil {
		return nil, err
	}
	l := &ledger{opts: opts, old: map[objKey]Object{}, others: map[objKey][]string{},
		declared: map[objKey]Object{}, seen: map[objKey]Object{}, pruned: map[objKey]bool{}}
	objs, err := ReadLedger(ctx, h, opts.Name)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		l.old[o.key()] = o
	}
	if len(objs) > 0 {
		if raw, _, err := readState(ctx, h, LedgerPath(opts.Name)); err == nil {
			sum := sha256.Sum256(raw)
			l.written = &sum
		}
	}
	if _, err := h.Lstat(ctx, LedgerPath(opts.Name)); errors.Is(err, fs.ErrNotExist) {
		// A root from before the ledger, or new: what is declared and
		// already in place is recorded too (nothing is removed yet).
		l.adopting = true
	}
	names, err := LedgerNames(ctx, h)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if n == opts.Name {
			continue
		}
		objs, err := ReadLedger(ctx, h, n)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			l.others[o.key()] = append(l.others[o.key()], n)
		}
	}
	for _, s := range p.Steps {
		if m, ok := s.(Manager); ok {
			for _, o := range m.Manages() {
				l.declared[o.key()] = o
			}
		}
	}
	return l, nil
}

// pruneSteps returns the steps that remove what the ledger lists and no
// step declares, in the order a person would take: files, manifests,
// drop-ins and enables first, then units, then directories, deepest
// first. An object that another playbook's ledger lists is not removed.
// With --tags (a run of some steps only), or with Prune off, nothing is
// removed; --skip-tags leaves out steps, whose objects stay declared.
func (l *ledger) pruneSteps(p *Plan, sel Selection) (first, last []Step) {
	var objs []Object
	for _, k := range slices.SortedFunc(maps.Keys(l.old), compareKeys) {
		o := l.old[k]
		d, declared := l.declared[k]
		// A directory kplay made that the plan now declares a file (or
		// the other way) is removed first, so that the new kind can be
		// made there.
		kindChanged := declared && !d.Absent && o.isPath() && (o.Kind == "directory") != (d.Kind == "directory")
		switch {
		case kindChanged && !(o.Kind == "directory" && l.holdsDeclared(o.Target)):
			objs = append(objs, o)
		case declared, o.Kind == "directory" && l.holdsDeclared(o.Target):
		case len(l.others[k]) > 0:
			// Another playbook's ledger lists it: it is that one's to
			// remove, once it no longer declares it. Said, and
			// dropped from this ledger.
			if l.opts.Pruner != nil {
				first = append(first, &pruneStep{Step: &leftStep{meta: StepMeta{Kind: o.Kind, Target: o.Target, Resource: o.Target, ID: -1, Pos: Pos{File: p.Playbook, Line: 1, Col: 1}},
					why: "no longer declared; left to the ledger " + strings.Join(l.others[k], ", ") + ", which lists it"}, obj: o, drop: true})
			}
		default:
			objs = append(objs, o)
		}
	}
	if !l.opts.Prune || l.opts.Pruner == nil || len(sel.Tags) > 0 {
		if l.opts.Kept != nil && len(objs) > 0 {
			l.opts.Kept(objs)
		}
		clear(l.pruned) // nothing removed, nothing forgotten
		return nil, nil
	}
	rank := map[string]int{"unit": 1, "directory": 2}
	slices.SortStableFunc(objs, func(a, b Object) int {
		if c := cmp.Compare(rank[a.Kind], rank[b.Kind]); c != 0 {
			return c
		}
		if a.Kind == "directory" {
			return cmp.Compare(strings.Count(b.Target, "/"), strings.Count(a.Target, "/"))
		}
		return 0
	})
	pos := Pos{File: p.Playbook, Line: 1, Col: 1}
	for _, o := range objs {
		s, ok := l.opts.Pruner(o)
		if !ok {
			l.pruned[o.key()] = true // kplay never removes it: forget it
			continue
		}
		m := s.Meta()
		m.ID, m.Pos = -1, pos
		if _, declared := l.declared[o.key()]; o.Kind == "directory" && !declared {
			// After the plan's steps, which may empty it (a stray
			// file declared absent).
			last = append(last, &pruneStep{Step: s, obj: o})
		} else {
			first = append(first, &pruneStep{Step: s, obj: o})
		}
	}
	return first, last
}

// holdsDeclared reports whether something the plan declares lies below
// the directory dir: a directory made on the way to a declared file
// stays, listed, until nothing declared is below it.
func (l *ledger) holdsDeclared(dir string) bool {
	for _, o := range l.declared {
		if !o.Absent && o.isPath() && strings.HasPrefix(o.Target, dir+"/") {
			return true
		}
	}
	return false
}

// pruneStep is a step that removes a ledger's object; it remembers which.
// With drop, the object leaves this ledger whatever the step found.
type pruneStep struct {
	Step
	obj  Object
	drop bool
}

// leftStep says why the ledger's object stays in the root: another
// playbook's ledger lists it.
type leftStep struct {
	meta StepMeta
	why  string
}

func (s *leftStep) Meta() *StepMeta { return &s.meta }

func (s *leftStep) Diff(context.Context, host.Host) (Change, error) {
	return Change{Keep: true, Summary: s.why}, nil
}

func (s *leftStep) Apply(context.Context, host.Host, Change) error { return nil }

// inner is s, or the step a prune step wraps: what the playbook's
// builtin made, whose optional interfaces (Grouper, Batchable, InRoot)
// the wrapper does not have.
func inner(s Step) Step {
	if ps, ok := s.(*pruneStep); ok {
		return ps.Step
	}
	return s
}

// record notes the result of a step for the ledger: the objects of a
// Manager that ran or found nothing to do, and the object a prune step
// removed (or found gone).
func (l *ledger) record(s Step, r Result) {
	if ps, ok := s.(*pruneStep); ok {
		if ps.drop || r.Status != Skipped && !r.Change.Keep {
			l.pruned[ps.obj.key()] = true
		}
		return
	}
	m, ok := s.(Manager)
	if !ok || r.Status == Skipped {
		return
	}
	for _, o := range m.Manages() {
		if o.Absent {
			l.pruned[o.key()] = true // gone, and no longer kplay's
			continue
		}
		if o, ok := l.entry(o, r); ok {
			l.seen[o.key()] = o
		}
	}
	if r.Status == Changed {
		for _, d := range r.Change.Parents {
			markMade(l.seen, d)
		}
	}
}

// entry is the ledger's entry for o, managed by a step with result r (of
// this pass, or of the check before it), and whether it is recorded at
// all: something found in place is not kplay's to remove, unless the
// ledger lists it already or is being adopted. Created says kplay made a
// path; a change sensitive at diff time (a sensitive var's value in the
// content) keeps no hash, which could be guessed for a short secret.
func (l *ledger) entry(o Object, r Result) (Object, bool) {
	prev, listed := l.old[o.key()]
	if !listed && !l.adopting && r.Status != Changed {
		return o, false
	}
	o.Created = o.isPath() && (prev.Created || r.Status == Changed && r.Change.Action == Create)
	if r.Change.Sensitive {
		o.Hash, o.Sensitive = "", true
	}
	return o, true
}

// markMade records in m the directory d, made on the way to a path a step
// created, as made by kplay (it is not declared: see pruneSteps).
func markMade(m map[objKey]Object, d string) {
	o := Object{Kind: "directory", Target: d}
	if prev, ok := m[o.key()]; ok {
		o = prev
	}
	o.Created = true
	m[o.key()] = o
}

// intend records, before a run writes anything, every object the plan's
// selected steps manage, with Created set for those the check found it
// would create: a run killed after making a directory still knows that
// kplay made it. What a run then removes stays listed until save.
func (l *ledger) intend(ctx context.Context, h host.Host, p *Plan, sel Selection, checked map[Step]Result, parents []string) error {
	for _, d := range parents {
		markMade(l.old, d)
	}
	for _, s := range p.Steps {
		m, ok := s.(Manager)
		if !ok || !sel.selects(s.Meta()) {
			continue
		}
		for _, o := range m.Manages() {
			if o.Absent {
				continue
			}
			e, ok := l.entry(o, checked[s])
			if !ok {
				continue
			}
			prev, listed := l.old[e.key()]
			if listed && prev.isPath() && (prev.Kind == "directory") != (e.Kind == "directory") {
				// The path changes kind: the old entry stays until
				// save, so that a run killed before it removed the old
				// kind still removes it next time.
				continue
			}
			if prev.Sensitive {
				e.Hash, e.Sensitive = "", true
			}
			l.old[e.key()] = e
		}
	}
	return l.write(ctx, h, slices.Collect(maps.Values(l.old)))
}

// write writes objs as the ledger, unless the file holds them already.
func (l *ledger) write(ctx context.Context, h host.Host, objs []Object) error {
	if len(objs) == 0 && l.written == nil {
		return nil // nothing recorded, nothing to record
	}
	data, err := marshalLedger(l.opts.Name, objs)
	if err != nil {
		return err
	}
	// A digest rather than the bytes: a ledger of 10,000 files is 3 MB.
	sum := sha256.Sum256(data)
	if l.written != nil && sum == *l.written {
		return nil
	}
	if err := writeLedger(ctx, h, l.opts.Name, data); err != nil {
		return err
	}
	l.written = &sum
	return nil
}

// save writes the ledger after a pass: what the pass saw in place or
// made, and what the old ledger lists that the pass did not remove (a
// step the tags left out, or pruning off).
func (l *ledger) save(ctx context.Context, h host.Host) error {
	objs := slices.Collect(maps.Values(l.seen))
	for k, o := range l.old {
		if _, ok := l.seen[k]; !ok && !l.pruned[k] {
			objs = append(objs, o)
		}
	}
	return l.write(ctx, h, objs)
}
