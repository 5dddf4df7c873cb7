package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/sandbox"
	"github.com/kplay-dev/kplay/ui"
)

func newDiffCmd(o *options, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "diff A.star B.star",
		Short: "Show what playbook B does differently from playbook A",
		Long: `diff runs playbooks A and B, with the same vars, each in memory against
the same root (--root DIR, read and never written; without --root, an
empty root) with an empty etcd and API server and no network, as kplay
test's sandboxes do, and compares what they leave:

  files        only one writes, or both write differently: content (a
               unified diff), mode, owner, kind, symlink target
  restarts     the units each restarts
  units        the units each starts, stops, enables or disables
  etcd keys    set by one only, or to different values
  API objects  created by one only, or with other content
  requests     the HTTP requests each sends (http_post)
  vars         given and declared by one only (each side gets the vars
               it declares)

Sensitive content is compared, never shown, and secrets are redacted from
names. --root defaults to an empty root here, not to /. Exit status: 0 when the
outcomes are equal, 1 when they differ or on an error.`,
		Example: `  kplay diff playbooks/master.star playbooks/site-fork.star --root testdata/roots/coreos \
      --var ADVERTISE_IP=10.0.0.10 --var ETCD_ENDPOINTS=http://10.0.0.2:2379 --var TLS_DIR=playbooks/examples/tls
  kplay diff old.star new.star --root testdata/roots/coreos -o json`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: starFiles,
		RunE: func(cmd *cobra.Command, args []string) error {
			seed := sandbox.Seed{}
			if cmd.Flags().Changed("root") {
				seed.Dir = o.root
			}
			sel := engine.Selection{Tags: o.tags, SkipTags: o.skipTags}
			var sides [2]*diffSide
			for i, pb := range args {
				side, err := runSide(cmd.Context(), o, pb, seed, sel, stderr)
				if err != nil {
					return err
				}
				defer side.machine.Close()
				sides[i] = side
			}
			for name := range sides[0].given {
				if !sides[0].declared[name] && !sides[1].declared[name] {
					return fmt.Errorf("--var %s: neither playbook declares it (see kplay vars)", name)
				}
			}
			d, err := compareSides(cmd.Context(), sides[0], sides[1])
			if err != nil {
				return err
			}
			if o.output == "json" {
				err = writeDiffJSON(stdout, d)
			} else {
				writeDiffText(stdout, d)
			}
			if err != nil {
				return err
			}
			if len(d.Differences) > 0 {
				return fmt.Errorf("diff: %s", plural(len(d.Differences), "difference", "differences"))
			}
			return nil
		},
	}
	return cmd
}

// diffSide is one playbook of kplay diff, run in its sandbox.
type diffSide struct {
	playbook string
	plan     *engine.Plan
	results  []engine.Result
	effects  *sandbox.Effects
	machine  *sandbox.Machine
	after    host.Host // the machine as the run left it
	// given are the vars of --var and --vars-file; declared, those the
	// playbook declares.
	given    map[string]string
	declared map[string]bool
}

func runSide(ctx context.Context, o *options, playbook string, seed sandbox.Seed, sel engine.Selection, stderr io.Writer) (*diffSide, error) {
	vars, origin, err := readVars(o)
	if err != nil {
		return nil, err
	}
	// Each side gets the vars it declares: a fork may add or drop one.
	decl, err := evaluateWith(ctx, o, playbook, map[string]string{}, nil, io.Discard, true)
	if err != nil {
		return nil, err
	}
	declared := map[string]bool{}
	for _, d := range decl.Vars {
		declared[d.Name] = true
	}
	mine := map[string]string{}
	for k, v := range vars {
		if declared[k] {
			mine[k] = v
		}
	}
	plan, err := evaluateWith(ctx, o, playbook, mine, origin, stderr, false)
	if err != nil {
		return nil, err
	}
	m, err := sandbox.New(ctx, seed)
	if err != nil {
		return nil, err
	}
	results, effects, dry, err := sandbox.Run(ctx, plan, m, sel)
	if err != nil {
		m.Close()
		return nil, err
	}
	return &diffSide{playbook: playbook, plan: plan, results: results, effects: effects, machine: m, after: dry, given: vars, declared: declared}, nil
}

// diffReport is what kplay diff prints; with -o json, as it is.
type diffReport struct {
	A           string       `json:"a"`
	B           string       `json:"b"`
	Equal       bool         `json:"equal"`
	Differences []difference `json:"differences"`
}

// difference is one way B's outcome differs from A's.
type difference struct {
	// What is "file", "restarts", "units", "etcd" or "object".
	What string `json:"what"`
	// Name is the path, the etcd key or the object; "" for restarts and
	// units.
	Name string `json:"name,omitempty"`
	// A and B say what each did: a file's kind, mode and owner; a list
	// of units; a key's value; "created" or "".
	A any `json:"a"`
	B any `json:"b"`
	// Diff is the unified diff of a file's content from A to B.
	Diff string `json:"diff,omitempty"`
}

// fileState is a file as a difference shows it.
type fileState struct {
	Kind   string `json:"kind"`
	Mode   string `json:"mode,omitempty"`
	Owner  string `json:"owner,omitempty"`
	Target string `json:"target,omitempty"`
	Size   int    `json:"size,omitempty"`
}

func (f fileState) String() string {
	parts := []string{f.Kind}
	if f.Mode != "" {
		parts = append(parts, f.Mode, f.Owner)
	}
	if f.Target != "" {
		parts = append(parts, "→ "+f.Target)
	}
	if f.Kind == "file" {
		parts = append(parts, plural(f.Size, "byte", "bytes"))
	}
	return strings.Join(parts, " ")
}

func stateOf(f sandbox.File) fileState {
	s := fileState{Kind: f.Kind, Target: f.Target, Size: len(f.Content)}
	if f.Kind != "absent" {
		s.Mode, s.Owner = fmt.Sprintf("%04o", f.Mode), fmt.Sprintf("%d:%d", f.UID, f.GID)
	}
	return s
}

func compareSides(ctx context.Context, a, b *diffSide) (*diffReport, error) {
	d := &diffReport{A: a.playbook, B: b.playbook, Differences: []difference{}}
	// Names can hold a secret (a unit named after a token): each side's
	// secrets are redacted from everything shown.
	redact := func(s string) string { return b.plan.Secrets.Redact(a.plan.Secrets.Redact(s)) }
	redactAll := func(l []string) []string {
		out := make([]string, len(l))
		for i, s := range l {
			out[i] = redact(s)
		}
		return out
	}
	sensA, err := sensitivePaths(ctx, a)
	if err != nil {
		return nil, err
	}
	sensB, err := sensitivePaths(ctx, b)
	if err != nil {
		return nil, err
	}
	paths := slices.Concat(a.effects.Written, a.effects.Removed, b.effects.Written, b.effects.Removed)
	slices.Sort(paths)
	for _, p := range slices.Compact(paths) {
		fa, err := sandbox.Stat(ctx, a.after, p)
		if err != nil {
			return nil, err
		}
		fb, err := sandbox.Stat(ctx, b.after, p)
		if err != nil {
			return nil, err
		}
		if sameFile(fa, fb) {
			continue
		}
		sa, sb := stateOf(fa), stateOf(fb)
		sa.Target, sb.Target = redact(sa.Target), redact(sb.Target)
		df := difference{What: "file", Name: redact(p), A: sa, B: sb}
		if !bytes.Equal(fa.Content, fb.Content) {
			if sensA[p] || sensB[p] || sensitiveFile(a, fa) || sensitiveFile(b, fb) {
				df.Diff = "(sensitive content differs: never shown)\n"
			} else {
				df.Diff = redact(ui.ContentDiff(fa.Content, fb.Content, p+" ("+a.playbook+")", p+" ("+b.playbook+")"))
			}
		}
		d.Differences = append(d.Differences, df)
	}
	if !slices.Equal(a.effects.Restarts, b.effects.Restarts) {
		d.Differences = append(d.Differences, difference{What: "restarts", A: redactAll(nonNil(a.effects.Restarts)), B: redactAll(nonNil(b.effects.Restarts))})
	}
	if ua, ub := unitActions(a.results), unitActions(b.results); !slices.Equal(ua, ub) {
		d.Differences = append(d.Differences, difference{What: "units", A: redactAll(ua), B: redactAll(ub)})
	}
	keys := slices.Concat(a.effects.EtcdKeys, b.effects.EtcdKeys)
	slices.Sort(keys)
	for _, k := range slices.Compact(keys) {
		va, ina := a.effects.Etcd[k]
		vb, inb := b.effects.Etcd[k]
		if ina == inb && va == vb {
			continue
		}
		sa, sb := a.effects.EtcdShown[k], b.effects.EtcdShown[k]
		if ina && inb && (sa != va || sb != vb) {
			// A sensitive value on either side: compared, never shown.
			sa, sb = "(sensitive value)", "(another sensitive value)"
		}
		d.Differences = append(d.Differences, difference{What: "etcd", Name: redact(k), A: setOrNil(redact(sa), ina), B: setOrNil(redact(sb), inb)})
	}
	objs := slices.Concat(a.effects.Objects, b.effects.Objects)
	slices.Sort(objs)
	for _, obj := range slices.Compact(objs) {
		ina, inb := slices.Contains(a.effects.Objects, obj), slices.Contains(b.effects.Objects, obj)
		ca, cb := a.effects.ObjectContent[obj], b.effects.ObjectContent[obj]
		switch {
		case ina != inb:
			d.Differences = append(d.Differences, difference{What: "object", Name: redact(obj), A: created(ina), B: created(inb)})
		case !bytes.Equal(ca, cb):
			df := difference{What: "object", Name: redact(obj), A: created(ina), B: created(inb), Diff: "(sensitive content differs: never shown)\n"}
			if !a.effects.ObjectSensitive[obj] && !b.effects.ObjectSensitive[obj] {
				df.Diff = redact(ui.ContentDiff(ca, cb, obj+" ("+a.playbook+")", obj+" ("+b.playbook+")"))
			}
			d.Differences = append(d.Differences, df)
		}
	}
	if ra, rb := requestList(a, redact), requestList(b, redact); !slices.Equal(ra, rb) {
		d.Differences = append(d.Differences, difference{What: "requests", A: ra, B: rb})
	}
	for _, name := range slices.Sorted(maps.Keys(a.given)) {
		da, db := a.declared[name], b.declared[name]
		if da != db {
			d.Differences = append(d.Differences, difference{What: "var", Name: name, A: declaredText(da), B: declaredText(db)})
		}
	}
	d.Equal = len(d.Differences) == 0
	return d, nil
}

func sameFile(a, b sandbox.File) bool {
	return a.Kind == b.Kind && a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID &&
		a.Target == b.Target && bytes.Equal(a.Content, b.Content)
}

// sensitivePaths are the paths a side's sensitive changes landed on,
// once the symlinks of their directories are resolved as the writes
// resolved them: the paths the effects list.
func sensitivePaths(ctx context.Context, s *diffSide) (map[string]bool, error) {
	out := map[string]bool{}
	for _, r := range s.results {
		p, ok := engine.RootPath(r.Step)
		if !r.Change.Sensitive || !ok {
			continue
		}
		out[p] = true
		if at, err := host.Resolve(ctx, s.after, p); err == nil {
			out[at] = true
		}
	}
	return out, nil
}

// sensitiveFile reports whether content f looks like a secret by
// engine's rules for content and mode, or holds a secret of the side.
func sensitiveFile(s *diffSide, f sandbox.File) bool {
	return f.Kind == "file" && (engine.SensitiveContent(f.Content) || engine.SensitiveMode(f.Mode) || s.plan.Secrets.In(f.Content))
}

// unitActions are the systemctl actions other than restarts that a side
// ran or would run on a machine ("start kubelet.service"), sorted.
func unitActions(results []engine.Result) []string {
	out := []string{}
	for _, r := range results {
		u, ok := r.Step.(engine.UnitStep)
		if !ok || u.Unit() == "" || sandbox.Restarts(r) {
			continue
		}
		if rs, ok := r.Step.(engine.Restarter); ok && rs.Restarts() {
			continue // a restart that did not fire
		}
		if r.Status == engine.Changed || r.Cause == engine.OfflineRoot {
			out = append(out, r.Step.Meta().Target)
		}
	}
	slices.Sort(out) // a set: the same enables in another order are no difference
	return slices.Compact(out)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func setOrNil(v string, set bool) any {
	if !set {
		return nil
	}
	return v
}

func declaredText(d bool) string {
	if d {
		return "declared"
	}
	return ""
}

func created(in bool) string {
	if in {
		return "created"
	}
	return ""
}

func writeDiffJSON(w io.Writer, d *diffReport) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(d)
}

// writeDiffText prints each difference, A's side first, then a count.
func writeDiffText(w io.Writer, d *diffReport) {
	a, b := ui.Visible(d.A), ui.Visible(d.B)
	fmt.Fprintf(w, "--- %s\n+++ %s\n", a, b)
	for _, df := range d.Differences {
		name := ui.Visible(df.Name)
		switch df.What {
		case "file":
			fa, fb := df.A.(fileState), df.B.(fileState)
			if fa.String() == fb.String() {
				fmt.Fprintf(w, "file %s: content differs\n", name)
			} else {
				fmt.Fprintf(w, "file %s: %s → %s\n", name, ui.Visible(fa.String()), ui.Visible(fb.String()))
			}
			writeIndented(w, df.Diff)
		case "restarts", "units":
			fmt.Fprintf(w, "%s: %s → %s\n", df.What, ui.Visible(listText(df.A)), ui.Visible(listText(df.B)))
		case "etcd":
			fmt.Fprintf(w, "etcd %s: %s → %s\n", name, ui.Visible(valueText(df.A)), ui.Visible(valueText(df.B)))
		case "var":
			who := a
			if df.B == "declared" {
				who = b
			}
			fmt.Fprintf(w, "var %s: declared by %s only\n", name, who)
		case "object":
			if df.A == df.B {
				fmt.Fprintf(w, "object %s: created with other content\n", name)
				writeIndented(w, df.Diff)
				continue
			}
			who := a
			if df.B == "created" {
				who = b
			}
			fmt.Fprintf(w, "object %s: created by %s only\n", name, who)
		case "requests":
			fmt.Fprintf(w, "requests: %s → %s\n", ui.Visible(listText(df.A)), ui.Visible(listText(df.B)))
		}
	}
	if d.Equal {
		fmt.Fprintln(w, "no differences")
		return
	}
	fmt.Fprintln(w, plural(len(d.Differences), "difference", "differences"))
}

func listText(v any) string {
	l, _ := v.([]string)
	if len(l) == 0 {
		return "(none)"
	}
	return strings.Join(l, ", ")
}

func valueText(v any) string {
	if v == nil {
		return "(not set)"
	}
	return fmt.Sprintf("%q", v)
}

// requestList names the HTTP requests of a side, each with its body's
// size, and a short hash of it unless it is sensitive.
func requestList(s *diffSide, redact func(string) string) []string {
	out := []string{}
	for _, r := range s.effects.Requests {
		body := fmt.Sprintf("sensitive body of %s", plural(len(r.Body), "byte", "bytes"))
		if !r.Sensitive {
			sum := sha256.Sum256(r.Body)
			body = fmt.Sprintf("body of %s, sha256 %s", plural(len(r.Body), "byte", "bytes"), hex.EncodeToString(sum[:8]))
		}
		out = append(out, redact(r.Target)+" ("+body+")")
	}
	return out
}

// writeIndented prints a diff under its difference, escaped, indented.
func writeIndented(w io.Writer, diff string) {
	for _, line := range strings.SplitAfter(ui.VisibleText(diff), "\n") {
		if line != "" {
			fmt.Fprint(w, "  "+line)
		}
	}
}
