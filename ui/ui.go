// Package ui renders what the engine did: one line per step, unified diffs
// for files (sizes and hashes for content too large to diff), a closing
// count; styled with lipgloss on a terminal, plain text otherwise, or one
// stable JSON document. It alone decides how a sensitive change prints:
// as its size and fingerprint, never its content.
package ui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
	"github.com/pmezard/go-difflib/difflib"

	"github.com/kplay-dev/kplay/engine"
)

// Options configure a Printer.
type Options struct {
	JSON  bool   // one JSON document instead of text
	Color bool   // style text with colors (a terminal without NO_COLOR)
	Mode  string // "check" or "run": the tense of the text output
}

// Printer renders results as they come (text) or at the end (JSON).
type Printer struct {
	w      io.Writer
	opts   Options
	styles styles
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

func (p *Printer) step(ctx context.Context, r engine.Result) {
	if p.opts.JSON {
		return
	}
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
		p.writeDiff(ctx, p.styleDiff(VisibleText(d)))
	}
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
type Counts struct {
	Create    int `json:"create"`
	Update    int `json:"update"`
	Delete    int `json:"delete"`
	Run       int `json:"run"`
	Unchanged int `json:"unchanged"`
	Skipped   int `json:"skipped"`
}

// Changes is the number of steps that change the machine.
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
			}
		}
	}
	return c
}

// Finish prints the closing count (text) or the whole document (JSON).
// err is the error that stopped the plan, if any; in text mode it is
// printed by the caller, to stderr.
func (p *Printer) Finish(playbook string, results []engine.Result, err error) error {
	c := Count(results)
	if p.opts.JSON {
		return writeJSON(p.w, p.opts.Mode, playbook, results, c, err)
	}
	var parts []string
	if p.opts.Mode == "run" {
		parts = append(parts, fmt.Sprintf("%d created", c.Create), fmt.Sprintf("%d updated", c.Update))
		if c.Delete > 0 {
			parts = append(parts, fmt.Sprintf("%d deleted", c.Delete))
		}
		parts = append(parts, fmt.Sprintf("%d actions run", c.Run))
	} else {
		parts = append(parts, fmt.Sprintf("%d to create", c.Create), fmt.Sprintf("%d to update", c.Update))
		if c.Delete > 0 {
			parts = append(parts, fmt.Sprintf("%d to delete", c.Delete))
		}
		parts = append(parts, fmt.Sprintf("%d actions", c.Run))
	}
	parts = append(parts, fmt.Sprintf("%d unchanged", c.Unchanged), fmt.Sprintf("%d skipped", c.Skipped))
	line := strings.Join(parts, ", ")
	if err != nil {
		line = fmt.Sprintf("stopped at an error after %d steps: %s", len(results), line)
	}
	_, werr := fmt.Fprintln(p.w, p.styles.render(p.styles.bold, line))
	return werr
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
// (github.com/pmezard/go-difflib, a port of Python's difflib) takes time
// that grows with the cube of the number of lines for content made of
// lines that repeat without being frequent enough to be ignored: 2,000
// such lines take 0.08 s, 4,000 take 0.7 s and 20,000 take 25 s on a
// 2-core machine, so the line bound is what bounds the time, to well
// under a tenth of a second a step. The byte bound keeps the diff's text,
// which holds each side, to a few MiB however long the lines; without
// it, 64 MiB of content made a 67-million-line diff that took 3.6 GB and
// 12.7 s, and 240 MiB ran out of memory. A file past either bound is
// more than a person reads as a diff in a terminal (Ansible stops at 100
// KiB); its size and hash say whether it changed and which version it is.
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

// largeSummary stands for the diff of content past the bounds, for the
// reason tooLarge gave: the size and short hash of each side there is
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
	if reason := tooLarge(c); reason != "" {
		return "  " + largeSummary(c, reason) + "\n"
	}
	if isBinary(c.Before) || isBinary(c.After) {
		return fmt.Sprintf("  (binary, %d bytes → %d bytes)\n", len(c.Before), len(c.After))
	}
	target := r.Step.Meta().Target
	if !strings.HasPrefix(target, "/") {
		// Not a file: the lines are a list of what is made or removed,
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
	d, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: lines(c.Before), B: lines(c.After),
		FromFile: from, ToFile: to, Context: 3,
	})
	if err != nil {
		return fmt.Sprintf("  (no diff: %v)\n", err)
	}
	return d
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
// one is marked as diff(1) does, so a lost final newline shows.
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
