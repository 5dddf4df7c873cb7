// Package ui renders what the engine did: one line per step that changes
// something (every step with -v), unified diffs for files cut at a limit
// of lines (sizes and hashes for binary content and content too large to
// diff), a closing count; styled with lipgloss on a terminal, plain text
// otherwise, or one stable JSON document that lists every step. It alone
// decides how a sensitive change prints: as its size and fingerprint,
// never its content.
package ui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/aymanbagabas/go-udiff"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"

	"github.com/kplay-dev/kplay/engine"
)

// Verbosity is which steps text output lists. JSON lists every step
// whatever it is.
type Verbosity int

const (
	// Changes lists the steps that change something (owed actions
	// included), each with its diff; unchanged and skipped steps are
	// only counted in the closing line. The default.
	Changes Verbosity = iota
	// Every lists every step, unchanged and skipped ones with their
	// reason (kplay -v).
	Every
	// Quiet prints only the closing line (kplay -q); errors go to
	// stderr as always.
	Quiet
)

// Options configure a Printer.
type Options struct {
	JSON      bool      // one JSON document instead of text
	Color     bool      // style text with colors (a terminal without NO_COLOR)
	Mode      string    // "check" or "run": the tense of the text output
	Verbosity Verbosity // which steps text output lists
	// DiffLimit is the most lines of one diff that text output shows; a
	// longer one is cut with a note of how many lines were left out. 0
	// shows every line. JSON carries whole diffs.
	DiffLimit int
	// Progress, when not nil (stderr on a terminal), gets a line that
	// names the step being applied and its number, "[n/Total] kind
	// target", rewritten in place as the steps go and erased before any
	// other output, and at the end. Total is the plan's number of steps.
	Progress io.Writer
	Total    int
}

// Printer renders results as they come (text) or at the end (JSON).
type Printer struct {
	w      io.Writer
	opts   Options
	styles styles
	// mu guards the progress line, which a systemd job's progress can
	// reach from another goroutine: started counts the plan's steps
	// begun, shown is whether the line is on the screen.
	mu      sync.Mutex
	started int
	shown   bool
}

// New returns a Printer writing to w.
func New(w io.Writer, opts Options) *Printer {
	p := &Printer{w: w, opts: opts}
	if opts.Color {
		r := lipgloss.NewRenderer(w)
		r.SetColorProfile(termenv.ANSI)
		p.styles = newStyles(r)
	}
	return p
}

// Step prints one result in text mode; in JSON mode it does nothing, as
// Finish prints the whole document.
func (p *Printer) Step(r engine.Result) { p.step(context.Background(), r) }

// Observe returns the engine.Observer of a check or run: it prints each
// result as Step does until ctx is done (a signal). From then on it
// prints only the step's line, which in run says what was done, and no
// diff; a diff being printed at that moment stops at the end of a line
// within about diffChunk bytes. So kplay stops printing promptly however
// long the output would be.
func (p *Printer) Observe(ctx context.Context) engine.Observer {
	return func(r engine.Result) { p.step(ctx, r) }
}

// diffChunk is how much of a diff Observe writes between looks at its
// ctx: 64 KiB, what a pipe holds, reaches a terminal in a fraction of a
// second.
const diffChunk = 64 << 10

// Start is told that the step of m is about to be applied
// (engine.WithStepStart): it redraws the progress line, if there is one.
func (p *Printer) Start(m *engine.StepMeta) {
	if p.opts.Progress == nil || p.opts.JSON {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if m.ID >= 0 {
		p.started++ // not the engine's own reloads or removals
	}
	// Cut by the cells a terminal gives each character (two for CJK),
	// as lipgloss measures them. Visible leaves no escape in the text.
	text := ansi.Truncate(Visible(m.Kind+" "+m.Target), progressWidth, "…")
	// The line is kept short, so that no terminal wraps it: a wrapped
	// line could not be erased with one carriage return.
	fmt.Fprintf(p.opts.Progress, "\r\x1b[2K[%d/%d] %s", min(p.started, p.opts.Total), p.opts.Total, text)
	p.shown = true
}

// progressWidth is the most terminal cells of a step the progress line
// shows, so that with its count it fits an 80-column terminal.
const progressWidth = 64

// clearProgress erases the progress line, before other output.
func (p *Printer) clearProgress() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
}

func (p *Printer) clearLocked() {
	if p.shown {
		fmt.Fprint(p.opts.Progress, "\r\x1b[2K")
		p.shown = false
	}
}

// Note prints msg, a line of progress of a long wait or a systemd job, to
// w (stderr), erasing the progress line first.
func (p *Printer) Note(w io.Writer, msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	fmt.Fprintln(w, Visible(msg))
}

// lists reports whether text output shows r's line at p's verbosity.
func (p *Printer) lists(r engine.Result) bool {
	switch p.opts.Verbosity {
	case Every:
		return true
	case Quiet:
		return false
	}
	return r.Status == engine.Changed
}

func (p *Printer) step(ctx context.Context, r engine.Result) {
	if p.opts.JSON || !p.lists(r) {
		return
	}
	p.clearProgress()
	m := r.Step.Meta()
	status := p.statusWord(r)
	// Every field may hold text from the playbook or the root (a path
	// with a newline, content with ESC[2K): the line shows it escaped.
	line := fmt.Sprintf("%s: %s %s: %s", Visible(m.Pos.String()), Visible(m.Kind), Visible(m.Target), status)
	if detail := detailOf(r); detail != "" {
		line += " (" + Visible(detail) + ")"
	}
	fmt.Fprintln(p.w, line)
	if d := diffText(r, Visible); d != "" {
		d, cut := cutLines(d, p.opts.DiffLimit)
		p.writeDiff(ctx, p.styleDiff(VisibleText(d)))
		if cut > 0 {
			fmt.Fprintln(p.w, cutNote(cut))
		}
	}
}

// cutLines returns the first lines of d that fit in limit rows of a
// screen, and how many lines it left out; a limit of 0 keeps all of d.
// The "---" and "+++" lines that head a unified diff take no row; a line
// takes a row for every rowWidth bytes, so that one long line (minified
// JSON, a certificate on one line) does not fill a terminal under a
// limit of lines.
func cutLines(d string, limit int) (string, int) {
	if limit <= 0 {
		return d, 0
	}
	end, rows := 0, 0
	for end < len(d) {
		n := strings.IndexByte(d[end:], '\n') + 1
		if n == 0 {
			n = len(d) - end
		}
		line := d[end : end+n]
		header := rows == 0 && (strings.HasPrefix(line, "--- ") || strings.HasPrefix(line, "+++ "))
		if !header {
			rows += 1 + max(0, len(strings.TrimSuffix(line, "\n"))-1)/rowWidth
			if rows > limit {
				return d[:end], lineCount([]byte(d[end:]))
			}
		}
		end += n
	}
	return d, 0
}

// cutNote is the line that says a diff was cut, cut lines short.
func cutNote(cut int) string {
	noun := "lines"
	if cut == 1 {
		noun = "line"
	}
	return fmt.Sprintf("  … %s more %s; --diff-limit 0 for all", grouped(cut), noun)
}

// CutDiff is d, a diff as a Document holds it, as check and run print
// it: escaped for a terminal (VisibleText), at most limit rows (0 for
// all), with a closing note when cut.
func CutDiff(d string, limit int) string {
	d, cut := cutLines(VisibleText(d), limit)
	if cut > 0 {
		d += cutNote(cut) + "\n"
	}
	return d
}

// rowWidth is the bytes of a line that cutLines counts as one row of a
// screen: two rows of a wide terminal.
const rowWidth = 160

// grouped writes n with commas between groups of three digits: 1,940.
func grouped(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// writeDiff writes d, a diff of whole lines, in pieces of about
// diffChunk bytes cut at a line's end, and stops with a note once ctx is
// done or a write fails.
func (p *Printer) writeDiff(ctx context.Context, d string) {
	for d != "" {
		if ctx.Err() != nil {
			fmt.Fprintln(p.w, "  (diff cut short: interrupted)")
			return
		}
		n := len(d)
		if n > diffChunk {
			n = diffChunk
			if i := strings.IndexByte(d[n-1:], '\n'); i >= 0 {
				n += i
			} else {
				n = len(d)
			}
		}
		if _, err := io.WriteString(p.w, d[:n]); err != nil {
			return
		}
		d = d[n:]
	}
}

func detailOf(r engine.Result) string {
	if r.Reason != "" {
		return r.Reason
	}
	return r.Change.Summary
}

func (p *Printer) statusWord(r engine.Result) string {
	switch r.Status {
	case engine.Skipped:
		return p.styles.render(p.styles.faint, "skipped")
	case engine.Unchanged:
		return p.styles.render(p.styles.faint, "unchanged")
	}
	word := r.Change.Action.String()
	if p.opts.Mode == "run" {
		word = pastTense[r.Change.Action]
	}
	return p.styles.render(p.styles.action[r.Change.Action], word)
}

var pastTense = map[engine.Action]string{
	engine.Create: "created", engine.Update: "updated", engine.Delete: "deleted", engine.Run: "ran",
}

// Counts tallies results the way the closing line and JSON report them.
// Run counts every action that ran or would run; Restart, those of them
// that restart a unit (engine.Restarter).
type Counts struct {
	Create    int `json:"create"`
	Update    int `json:"update"`
	Delete    int `json:"delete"`
	Run       int `json:"run"`
	Restart   int `json:"restart"`
	Unchanged int `json:"unchanged"`
	Skipped   int `json:"skipped"`
}

// Changes is the number of steps that change the machine.
//
// It is the sum of the counts shown; for results, it equals
// engine.Changes, the rule (TestCountsAgreeWithEngine).
func (c Counts) Changes() int { return c.Create + c.Update + c.Delete + c.Run }

// Count tallies results.
func Count(results []engine.Result) Counts {
	var c Counts
	for _, r := range results {
		switch r.Status {
		case engine.Skipped:
			c.Skipped++
		case engine.Unchanged:
			c.Unchanged++
		default:
			switch r.Change.Action {
			case engine.Create:
				c.Create++
			case engine.Update:
				c.Update++
			case engine.Delete:
				c.Delete++
			case engine.Run:
				c.Run++
				if rs, ok := r.Step.(engine.Restarter); ok && rs.Restarts() {
					c.Restart++
				}
			}
		}
	}
	return c
}

// Finish prints the closing count (text) or the whole document (JSON).
// err is the error that stopped the plan, if any; in text mode it is
// printed by the caller, to stderr.
//
// The closing line names first what most changes what runs on the
// machine: "1 to delete, 2 to update, 1 restart, 0 to create, 0 actions,
// 27 unchanged, 0 skipped (31 steps)" (run: "deleted", "updated",
// "restarted", "created", "actions run"). Deletions and restarts are
// named only when there are some.
func (p *Printer) Finish(playbook string, results []engine.Result, err error) error {
	p.clearProgress()
	c := Count(results)
	if p.opts.JSON {
		return writeJSON(p.w, p.opts.Mode, playbook, results, c, err)
	}
	line := closingLine(p.opts.Mode, c)
	if err != nil {
		line = "stopped at an error: " + line
	}
	_, werr := fmt.Fprintln(p.w, p.styles.render(p.styles.bold, line))
	return werr
}

// closingLine is the count of check or run (mode) that Finish prints.
func closingLine(mode string, c Counts) string {
	words := [...]string{"to delete", "to update", "restart", "to create", "actions"}
	if mode == "run" {
		words = [...]string{"deleted", "updated", "restarted", "created", "actions run"}
	}
	var parts []string
	if c.Delete > 0 {
		parts = append(parts, fmt.Sprintf("%d %s", c.Delete, words[0]))
	}
	parts = append(parts, fmt.Sprintf("%d %s", c.Update, words[1]))
	if c.Restart > 0 {
		restart := words[2]
		if mode != "run" && c.Restart > 1 {
			restart += "s"
		}
		parts = append(parts, fmt.Sprintf("%d %s", c.Restart, restart))
	}
	actions := words[4]
	if c.Run-c.Restart == 1 {
		actions = strings.Replace(actions, "actions", "action", 1)
	}
	parts = append(parts,
		fmt.Sprintf("%d %s", c.Create, words[3]),
		fmt.Sprintf("%d %s", c.Run-c.Restart, actions),
		fmt.Sprintf("%d unchanged", c.Unchanged),
		fmt.Sprintf("%d skipped", c.Skipped))
	total := c.Create + c.Update + c.Delete + c.Run + c.Unchanged + c.Skipped
	noun := "steps"
	if total == 1 {
		noun = "step"
	}
	return fmt.Sprintf("%s (%s %s)", strings.Join(parts, ", "), grouped(total), noun)
}

// Sensitive is how a sensitive change prints, everywhere: the size of
// the new content and its fingerprint, a keyed hash that tells two
// contents apart on one root without giving away a short secret; without
// a key (a check before the first run) the size alone.
func Sensitive(c engine.Change) string {
	n := len(c.After)
	if c.Action == engine.Delete {
		n = len(c.Before) // the size of what goes
	}
	if c.Fingerprint == "" {
		return fmt.Sprintf("(sensitive, %d bytes)", n)
	}
	return fmt.Sprintf("(sensitive, %d bytes, fingerprint %s)", n, c.Fingerprint)
}

// maxDiffBytes and maxDiffLines bound the content ui diffs: when either
// side of a change is larger than 1 MiB or has more than 2,000 lines, no
// diff is computed, and a summary stands for it (see tooLarge). The diff
// (github.com/aymanbagabas/go-udiff, Myers' algorithm, with the passes of
// lineEdits) takes time that grows faster than the number of lines for
// two versions that differ in most of their lines, which repeat: 2,000
// such lines take 0.07 s, 20,000 take 1.7 s on a 2-core machine, so the
// line bound is what bounds the time, to about a quarter of a second a
// step in the worst case measured (2,000 such lines of 500 bytes, 1 MiB).
// The byte bound keeps the diff's text, which holds each side, to a few
// MiB however long the lines; without it, two versions of 64 MiB in 1,024
// lines made a 128 MiB diff that took 4 s and allocated 1 GB. A file past
// either bound is more than a person reads as a diff in a terminal
// (Ansible stops at 100 KiB); its size and hash say whether it changed
// and which version it is.
const (
	maxDiffBytes = 1 << 20
	maxDiffLines = 2000
)

// tooLarge returns why the content of c is not diffed ("more than 1 MiB",
// "more than 2000 lines"), or "" if it is within maxDiffBytes and
// maxDiffLines.
func tooLarge(c engine.Change) string {
	if len(c.Before) > maxDiffBytes || len(c.After) > maxDiffBytes {
		return "more than " + engine.ByteSize(maxDiffBytes)
	}
	if lineCount(c.Before) > maxDiffLines || lineCount(c.After) > maxDiffLines {
		return fmt.Sprintf("more than %d lines", maxDiffLines)
	}
	return ""
}

// lineCount is the number of lines of b, the last one with or without
// its "\n".
func lineCount(b []byte) int {
	n := bytes.Count(b, []byte("\n"))
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

// largeSummary stands for the diff of binary content, or of content past
// the bounds for the reason tooLarge gave: the size and short hash of each side there is
// (a create has no before, a delete no after). The hash is the first 16
// hex digits of the content's SHA-256, which sha256sum(1) prints in full,
// so a version of the file can be recognised. It is never used for
// sensitive content: that prints as Sensitive says, keyed so that a short
// secret cannot be found from it.
func largeSummary(c engine.Change, reason string) string {
	side := func(name string, b []byte) string {
		sum := sha256.Sum256(b)
		return fmt.Sprintf("%s %d bytes, sha256 %s", name, len(b), hex.EncodeToString(sum[:8]))
	}
	var sides []string
	if c.Action != engine.Create {
		sides = append(sides, side("before", c.Before))
	}
	if c.Action != engine.Delete {
		sides = append(sides, side("after", c.After))
	}
	return fmt.Sprintf("(diff not shown: %s; %s)", reason, strings.Join(sides, "; "))
}

// diffText is the unified diff of a change of file content, the
// sensitive marker for secret content, a summary for content too large
// to diff (tooLarge), or "" when content did not change.
// name renders the file's name in the diff's headers: Visible for text
// output, where the caller then escapes each line with VisibleText (the
// lines are split at "\n", so each line of the diff stays one line), and
// as is for JSON, which carries the diff exactly. The diff compares the
// raw lines, so escaping cannot make two different lines look unchanged.
func diffText(r engine.Result, name func(string) string) string {
	c := r.Change
	if r.Status != engine.Changed || c.Action == engine.None || c.Action == engine.Run {
		return ""
	}
	if c.Action == engine.Update && string(c.Before) == string(c.After) {
		return ""
	}
	if c.Before == nil && c.After == nil {
		return "" // a directory, or another change without content
	}
	if c.Sensitive {
		return "  " + Sensitive(c) + "\n"
	}
	if summary := pastBounds(c); summary != "" {
		return summary
	}
	target, ok := engine.TextName(r.Step)
	if !ok {
		// Not a text: the lines are a list of what is made or removed,
		// such as the symlinks of systemctl enable.
		return listText(c.Before, "  - ") + listText(c.After, "  + ")
	}
	from, to := name(target)+" (before)", name(target)+" (after)"
	switch c.Action {
	case engine.Create:
		from = "/dev/null"
	case engine.Delete:
		to = "/dev/null"
	}
	return unifiedDiff(c.Before, c.After, from, to)
}

// unifiedDiff is the unified diff of before and after with three lines
// of context, headed from and to, or "" when they are equal. A last line
// without its "\n" is followed by "\\ No newline at end of file", as
// diff(1) writes it.
func unifiedDiff(before, after []byte, from, to string) string {
	b := string(before)
	d, err := udiff.ToUnified(from, to, b, lineEdits(b, string(after)), 3)
	if err != nil {
		return fmt.Sprintf("  (no diff: %v)\n", err)
	}
	return d
}

// lineEdits is udiff.Lines(before, after), each edit of which is diffed
// again until a pass finds no line in common. udiff stops its search
// after about 100 differences and replaces all that lies between what it
// found from either end, unchanged lines with it: one line in 33 changed
// among 2,000 showed as 762 lines removed or added, not 122
// (TestContentDiffScatteredChanges). Another pass over each such edit
// finds what it missed; a pass over an edit that is already exact costs
// little, as its two sides have no line in common.
func lineEdits(before, after string) []udiff.Edit {
	edits := udiff.Lines(before, after)
	if len(edits) == 1 && edits[0] == (udiff.Edit{End: len(before), New: after}) {
		return edits
	}
	var out []udiff.Edit
	for _, e := range edits {
		for _, f := range lineEdits(before[e.Start:e.End], e.New) {
			out = append(out, udiff.Edit{Start: e.Start + f.Start, End: e.Start + f.End, New: f.New})
		}
	}
	return out
}

// FileDiff is the unified diff of a file at p from before to after,
// headed "p (before)" and "p (after)" as the diffs of check are, or ""
// when they are equal. The caller escapes it for a terminal
// (VisibleText).
func FileDiff(p string, before, after []byte) string {
	return unifiedDiff(before, after, p+" (before)", p+" (after)")
}

// listText prefixes each line of b.
func listText(b []byte, prefix string) string {
	var out strings.Builder
	for _, line := range lines(b) {
		out.WriteString(prefix + line)
	}
	return out.String()
}

func isBinary(b []byte) bool {
	return !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0
}

// lines splits text into lines that keep their "\n"; a last line without
// one is marked as diff(1) marks it, so a lost final newline shows in a
// list too.
func lines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	ls := strings.SplitAfter(string(b), "\n")
	if ls[len(ls)-1] == "" {
		return ls[:len(ls)-1]
	}
	ls[len(ls)-1] += "\n\\ No newline at end of file\n"
	return ls
}

// ContentDiff is the unified diff of two versions of a file's content,
// headed from and to, with check's bounds: content past 1 MiB or 2,000
// lines, or binary, is summed up by sizes and hashes instead. The caller
// escapes it for a terminal (VisibleText).
func ContentDiff(before, after []byte, from, to string) string {
	if summary := pastBounds(engine.Change{Action: engine.Update, Before: before, After: after}); summary != "" {
		return summary
	}
	return unifiedDiff(before, after, from, to)
}

// pastBounds is the line that sums up c's content, by sizes and hashes,
// when it is past check's bounds for a diff (tooLarge) or binary; "" when
// it may be diffed.
func pastBounds(c engine.Change) string {
	if reason := tooLarge(c); reason != "" {
		return "  " + largeSummary(c, reason) + "\n"
	}
	if isBinary(c.Before) || isBinary(c.After) {
		return "  " + largeSummary(c, "binary content") + "\n"
	}
	return ""
}
