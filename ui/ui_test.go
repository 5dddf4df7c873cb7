package ui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
)

// testStep is a step with fixed metadata, enough to render results.
type testStep struct{ meta engine.StepMeta }

func (s *testStep) Meta() *engine.StepMeta { return &s.meta }

// InRoot: a fake step whose target is a path acts on the root
// (engine.InRoot), as a file step does.
func (s *testStep) InRoot() bool { return strings.HasPrefix(s.meta.Target, "/") }

func (s *testStep) Diff(context.Context, host.Host) (engine.Change, error) {
	return engine.Change{}, nil
}
func (s *testStep) Apply(context.Context, host.Host, engine.Change) error { return nil }

func result(id int, target string, status engine.Status, c engine.Change) engine.Result {
	return engine.Result{
		Step:   &testStep{meta: engine.StepMeta{Kind: "file", Target: target, ID: id, Pos: engine.Pos{File: "demo.star", Line: id + 1, Col: 5}}},
		Status: status,
		Change: c,
	}
}

func sampleResults() []engine.Result {
	return []engine.Result{
		result(0, "/etc/motd", engine.Changed, engine.Change{Action: engine.Create, Summary: "6 bytes, mode 0644, root:root", After: []byte("hello\n")}),
		result(1, "/etc/conf", engine.Changed, engine.Change{Action: engine.Update, Summary: "content changed", Before: []byte("a\nb\nc\n"), After: []byte("a\nB\nc")}),
		result(2, "/etc/ssl/k-key.pem", engine.Changed, engine.Change{Action: engine.Update, Summary: "content changed", Before: []byte("OLDSECRET"), After: []byte("NEWSECRET"), Sensitive: true}),
		result(3, "/etc/mode", engine.Changed, engine.Change{Action: engine.Update, Summary: "mode 0644 → 0600", Before: []byte("x"), After: []byte("x")}),
		result(4, "/etc/same", engine.Unchanged, engine.Change{}),
		{Step: &testStep{meta: engine.StepMeta{Kind: "file", Target: "/etc/api", ID: 5, Pos: engine.Pos{File: "demo.star", Line: 6, Col: 5}}}, Status: engine.Skipped, Reason: "not selected by tags"},
	}
}

func render(opts Options, results []engine.Result, err error) string {
	var b bytes.Buffer
	p := New(&b, opts)
	for _, r := range results {
		p.Step(r)
	}
	if ferr := p.Finish("demo.star", results, err); ferr != nil {
		panic(ferr)
	}
	return b.String()
}

// sampleText is the text of sampleResults with every step listed (-v).
const sampleText = `demo.star:1:5: file /etc/motd: create (6 bytes, mode 0644, root:root)
--- /dev/null
+++ /etc/motd (after)
@@ -0,0 +1 @@
+hello
demo.star:2:5: file /etc/conf: update (content changed)
--- /etc/conf (before)
+++ /etc/conf (after)
@@ -1,3 +1,3 @@
 a
-b
-c
+B
+c
\ No newline at end of file
demo.star:3:5: file /etc/ssl/k-key.pem: update (content changed)
  (sensitive, 9 bytes)
demo.star:4:5: file /etc/mode: update (mode 0644 → 0600)
demo.star:5:5: file /etc/same: unchanged
demo.star:6:5: file /etc/api: skipped (not selected by tags)
3 to update, 1 to create, 0 actions, 1 unchanged, 1 skipped (6 steps)
`

func TestTextCheckEveryStep(t *testing.T) {
	t.Parallel()
	if got := render(Options{Mode: "check", Verbosity: Every}, sampleResults(), nil); got != sampleText {
		t.Errorf("got:\n%s\nwant:\n%s", got, sampleText)
	}
}

// TestTextCheckLeavesOutUnchanged: by default the unchanged and skipped
// steps are only counted; -q leaves only the closing line.
func TestTextCheckLeavesOutUnchanged(t *testing.T) {
	t.Parallel()
	var want []string
	for _, l := range strings.SplitAfter(sampleText, "\n") {
		if !strings.Contains(l, ": unchanged") && !strings.Contains(l, ": skipped") {
			want = append(want, l)
		}
	}
	if got := render(Options{Mode: "check"}, sampleResults(), nil); got != strings.Join(want, "") {
		t.Errorf("got:\n%s\nwant:\n%s", got, strings.Join(want, ""))
	}
	if got, want := render(Options{Mode: "check", Verbosity: Quiet}, sampleResults(), nil), want[len(want)-2]; got != want {
		t.Errorf("quiet: got:\n%s\nwant:\n%s", got, want)
	}
}

// restartStep is a systemctl restart (engine.Restarter).
type restartStep struct{ testStep }

func (s *restartStep) Restarts() bool { return true }

// TestClosingLineOrder: the closing line names deletions, updates and
// restarts before creations and the other actions, and the steps in all.
func TestClosingLineOrder(t *testing.T) {
	t.Parallel()
	restart := engine.Result{Step: &restartStep{testStep{meta: engine.StepMeta{Kind: "systemctl", Target: "restart k.service", ID: 9}}},
		Status: engine.Changed, Change: engine.Change{Action: engine.Run}}
	reload := engine.Result{Step: &testStep{meta: engine.StepMeta{Kind: "systemctl", Target: "daemon-reload", ID: -1}},
		Status: engine.Changed, Change: engine.Change{Action: engine.Run}}
	gone := result(7, "/etc/old", engine.Changed, engine.Change{Action: engine.Delete, Before: []byte("x\n")})
	results := append(sampleResults(), restart, reload, gone)
	for mode, want := range map[string]string{
		"check": "1 to delete, 3 to update, 1 restart, 1 to create, 1 action, 1 unchanged, 1 skipped (9 steps)\n",
		"run":   "1 deleted, 3 updated, 1 restarted, 1 created, 1 action run, 1 unchanged, 1 skipped (9 steps)\n",
	} {
		if got := render(Options{Mode: mode, Verbosity: Quiet}, results, nil); got != want {
			t.Errorf("%s: got %q, want %q", mode, got, want)
		}
	}
	two := append(results, restart)
	if got := render(Options{Mode: "check", Verbosity: Quiet}, two, nil); !strings.Contains(got, ", 2 restarts, ") {
		t.Errorf("two restarts: got %q", got)
	}
	if c := Count(two); c.Run != 3 || c.Restart != 2 {
		t.Errorf("counts: got %+v, want 3 actions run of which 2 restarts", c)
	}
}

// TestDiffLimit: a diff longer than the limit shows its first lines and
// a note of how many are left out; one within it shows whole, and 0
// shows every line. JSON carries the whole diff.
func TestDiffLimit(t *testing.T) {
	t.Parallel()
	var content strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&content, "line %d\n", i)
	}
	r := result(0, "/etc/long", engine.Changed, engine.Change{Action: engine.Create, After: []byte(content.String())})
	got := render(Options{Mode: "check", DiffLimit: 60}, []engine.Result{r}, nil)
	lines := strings.Split(got, "\n")
	// The step, the two header lines (which the limit does not count),
	// 60 lines of the diff (the @@ line and 59 of the file's), the note,
	// the closing line.
	if len(lines) != 1+2+60+1+1+1 || lines[62] != "+line 58" || lines[63] != "  … 1,941 more lines; --diff-limit 0 for all" {
		t.Errorf("cut at 60: got %d lines, ending:\n%s", len(lines), strings.Join(lines[max(0, len(lines)-5):], "\n"))
	}
	if got := render(Options{Mode: "check", DiffLimit: 2001}, []engine.Result{r}, nil); strings.Contains(got, "more line") || !strings.Contains(got, "+line 1999\n") {
		t.Errorf("within the limit: got a cut diff")
	}
	if got := render(Options{Mode: "check", DiffLimit: 2000}, []engine.Result{r}, nil); !strings.Contains(got, "\n  … 1 more line; --diff-limit 0 for all\n") {
		t.Errorf("one line over: got %q", got[len(got)-200:])
	}
	// One line of a million bytes takes thousands of rows: cut.
	long := result(0, "/etc/one.json", engine.Changed, engine.Change{Action: engine.Create, After: []byte(strings.Repeat("x", 1_000_000) + "\n")})
	if got := render(Options{Mode: "check", DiffLimit: 50}, []engine.Result{long}, nil); len(got) > 500 || !strings.Contains(got, "  … 1 more line; --diff-limit 0 for all\n") {
		t.Errorf("a long line: got %d bytes: %.300q", len(got), got)
	}
	if got := render(Options{Mode: "check"}, []engine.Result{r}, nil); !strings.Contains(got, "+line 1999\n") || strings.Contains(got, "more line") {
		t.Errorf("no limit: the diff was cut")
	}
	var doc struct{ Steps []struct{ Diff string } }
	if err := json.Unmarshal([]byte(render(Options{Mode: "check", JSON: true, DiffLimit: 10}, []engine.Result{r}, nil)), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(doc.Steps[0].Diff, "+line 1999\n") {
		t.Errorf("JSON diff was cut")
	}
}

func TestGrouped(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1940: "1,940", 1234567: "1,234,567"} {
		if got := grouped(n); got != want {
			t.Errorf("grouped(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestProgressLine: the progress line counts the plan's steps (not the
// engine's own, ID -1), is erased before a step's line and at the end,
// and never reaches the step output.
func TestProgressLine(t *testing.T) {
	t.Parallel()
	var out, progress bytes.Buffer
	p := New(&out, Options{Mode: "run", Progress: &progress, Total: 2})
	results := sampleResults()[:2]
	p.Start(results[0].Step.Meta())
	p.Start(&engine.StepMeta{Kind: "systemctl", Target: "daemon-reload", ID: -1})
	p.Step(results[0])
	p.Start(&engine.StepMeta{Kind: "file", Target: strings.Repeat("/long", 40), ID: 1})
	if err := p.Finish("demo.star", results, nil); err != nil {
		t.Fatal(err)
	}
	want := "\r\x1b[2K[1/2] file /etc/motd" + "\r\x1b[2K[1/2] systemctl daemon-reload" + "\r\x1b[2K" +
		"\r\x1b[2K[2/2] file " + strings.Repeat("/long", 40)[:progressWidth-6] + "…" + "\r\x1b[2K"
	if got := progress.String(); got != want {
		t.Errorf("progress:\n got %q\nwant %q", got, want)
	}
	// Wide characters take two cells each: 64 cells hold "file /", 28
	// of them and the ellipsis.
	progress.Reset()
	p.Start(&engine.StepMeta{Kind: "file", Target: "/" + strings.Repeat("字", 60), ID: 1})
	if got, want := progress.String(), "\r\x1b[2K[2/2] file /"+strings.Repeat("字", 28)+"…"; got != want {
		t.Errorf("wide characters:\n got %q\nwant %q", got, want)
	}
	if strings.Contains(out.String(), "\x1b") || strings.Contains(out.String(), "[1/2]") {
		t.Errorf("step output holds the progress line: %q", out.String())
	}
}

func TestTextRunAndError(t *testing.T) {
	t.Parallel()
	got := render(Options{Mode: "run"}, sampleResults()[:1], errors.New("boom"))
	if !strings.Contains(got, "file /etc/motd: created (") {
		t.Errorf("run output lacks the past tense:\n%s", got)
	}
	if !strings.HasSuffix(got, "stopped at an error: 0 updated, 1 created, 0 actions run, 0 unchanged, 0 skipped (1 step)\n") {
		t.Errorf("closing line:\n%s", got)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	for _, opts := range []Options{{Mode: "check"}, {Mode: "run"}, {Mode: "check", Color: true}, {Mode: "check", JSON: true}} {
		out := render(opts, sampleResults(), nil)
		if strings.Contains(out, "SECRET") {
			t.Errorf("%+v: secret content printed:\n%s", opts, out)
		}
		if !strings.Contains(out, "(sensitive, 9 bytes)") {
			t.Errorf("%+v: no sensitive marker:\n%s", opts, out)
		}
	}
}

func TestColorOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	if out := render(Options{Mode: "check"}, sampleResults(), nil); strings.Contains(out, "\x1b[") {
		t.Errorf("plain output has escape sequences:\n%q", out)
	}
	if out := render(Options{Mode: "check", Color: true}, sampleResults(), nil); !strings.Contains(out, "\x1b[") {
		t.Errorf("colored output has no escape sequences:\n%q", out)
	}
}

func TestJSON(t *testing.T) {
	t.Parallel()
	out := render(Options{Mode: "check", JSON: true}, sampleResults(), nil)
	var doc struct {
		Command string `json:"command"`
		Steps   []struct {
			Position, Kind, Target, Status, Action, Summary, Reason, Diff string
			Sensitive                                                     bool
			Tags                                                          []string
		} `json:"steps"`
		Counts  Counts `json:"counts"`
		Changed bool   `json:"changed"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if doc.Command != "check" || !doc.Changed || len(doc.Steps) != 6 {
		t.Fatalf("got %+v", doc)
	}
	if want := (Counts{Create: 1, Update: 3, Unchanged: 1, Skipped: 1}); doc.Counts != want {
		t.Errorf("counts: got %+v, want %+v", doc.Counts, want)
	}
	s := doc.Steps[1]
	if s.Position != "demo.star:2:5" || s.Action != "update" || !strings.Contains(s.Diff, "-b\n") || s.Tags == nil {
		t.Errorf("step 1: got %+v", s)
	}
	if s := doc.Steps[4]; s.Action != "none" || s.Status != "unchanged" {
		t.Errorf("step 4: got %+v", s)
	}
	if s := doc.Steps[5]; s.Status != "skipped" || s.Reason != "not selected by tags" {
		t.Errorf("step 5: got %+v", s)
	}
}

func TestBinaryContentIsNotDiffed(t *testing.T) {
	t.Parallel()
	r := result(0, "/bin/x", engine.Changed, engine.Change{Action: engine.Create, After: []byte{0x7f, 'E', 'L', 'F', 0, 1}})
	want := "  (diff not shown: binary content; after 6 bytes, sha256 " + shortSum(r.Change.After) + ")\n"
	if got := diffText(r, exact); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	r.Change = engine.Change{Action: engine.Update, Before: []byte("text\n"), After: []byte{0}}
	want = "  (diff not shown: binary content; before 5 bytes, sha256 " + shortSum(r.Change.Before) + "; after 1 bytes, sha256 " + shortSum(r.Change.After) + ")\n"
	if got := diffText(r, exact); got != want {
		t.Errorf("text to binary: got %q, want %q", got, want)
	}
}

// shortSum is how the large-content summary names content: the first 16
// hex digits of its SHA-256, as sha256sum prints it.
func shortSum(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

// TestLargeContentIsSummarised: content past the diff's bounds (1 MiB or
// 2,000 lines on either side) is not diffed; its sizes and hashes stand
// for the diff, in text and in JSON alike, and a sensitive change still
// shows only its size and keyed fingerprint.
func TestLargeContentIsSummarised(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("\n"), maxDiffBytes+1)
	long := bytes.Repeat([]byte("x\n"), maxDiffLines+1)
	unterminated := append(bytes.Repeat([]byte("\n"), maxDiffLines), 'x')
	atBounds := bytes.Repeat([]byte(strings.Repeat("y", maxDiffBytes/maxDiffLines-1)+"\n"), maxDiffLines)
	tests := map[string]struct {
		change engine.Change
		want   string // the whole diff text, or its prefix when wantPrefix
		prefix bool
	}{
		"create_over_1_mib": {
			change: engine.Change{Action: engine.Create, After: big},
			want:   "  (diff not shown: more than 1 MiB; after 1048577 bytes, sha256 " + shortSum(big) + ")\n",
		},
		"update_over_2000_lines": {
			change: engine.Change{Action: engine.Update, Before: []byte("a\n"), After: long},
			want:   "  (diff not shown: more than 2000 lines; before 2 bytes, sha256 " + shortSum([]byte("a\n")) + "; after 4002 bytes, sha256 " + shortSum(long) + ")\n",
		},
		"update_to_small_from_large": {
			change: engine.Change{Action: engine.Update, Before: big, After: []byte("a\n")},
			want:   "  (diff not shown: more than 1 MiB; before 1048577 bytes, sha256 " + shortSum(big) + "; after 2 bytes, sha256 " + shortSum([]byte("a\n")) + ")\n",
		},
		"delete_large": {
			change: engine.Change{Action: engine.Delete, Before: long},
			want:   "  (diff not shown: more than 2000 lines; before 4002 bytes, sha256 " + shortSum(long) + ")\n",
		},
		"last_line_without_newline_counts": {
			change: engine.Change{Action: engine.Create, After: unterminated},
			want:   "  (diff not shown: more than 2000 lines; after 2001 bytes, sha256 " + shortSum(unterminated) + ")\n",
		},
		"at_both_bounds_is_diffed": {
			change: engine.Change{Action: engine.Create, After: atBounds},
			want:   "--- /dev/null\n+++ /etc/big (after)\n@@ -0,0 +1,2000 @@\n+yyy",
			prefix: true,
		},
		"sensitive_keeps_its_marker": {
			change: engine.Change{Action: engine.Update, Before: big, After: append(big, 'S'), Sensitive: true, Fingerprint: "0123456789abcdef"},
			want:   "  (sensitive, 1048578 bytes, fingerprint 0123456789abcdef)\n",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := result(0, "/etc/big", engine.Changed, tc.change)
			got := diffText(r, exact)
			if tc.prefix {
				if !strings.HasPrefix(got, tc.want) {
					t.Errorf("got %.200q…, want it to start with %q", got, tc.want)
				}
				return
			}
			if got != tc.want {
				t.Errorf("got %.300q, want %q", got, tc.want)
			}
			text := render(Options{Mode: "check"}, []engine.Result{r}, nil)
			if !strings.Contains(text, "\n"+tc.want) {
				t.Errorf("text output:\n%.500s\nwant it to hold %q", text, tc.want)
			}
			var doc struct{ Steps []struct{ Diff string } }
			if err := json.Unmarshal([]byte(render(Options{Mode: "check", JSON: true}, []engine.Result{r}, nil)), &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Steps[0].Diff != tc.want {
				t.Errorf("JSON diff: got %.300q, want %q", doc.Steps[0].Diff, tc.want)
			}
		})
	}
}

// TestLargeContentIsCheap: 64 MiB of empty lines, which once made a
// 67-million-line diff, gives one short line.
func TestLargeContentIsCheap(t *testing.T) {
	t.Parallel()
	huge := bytes.Repeat([]byte("\n"), 64<<20)
	r := result(0, "/etc/x", engine.Changed, engine.Change{Action: engine.Create, After: huge})
	if got := render(Options{Mode: "check"}, []engine.Result{r}, nil); len(got) > 300 {
		t.Errorf("got %d bytes of output, want one line:\n%.500s", len(got), got)
	}
}

// cancelOnWrite is a writer that cancels a context at its nth write.
type cancelOnWrite struct {
	out    bytes.Buffer
	n      int
	cancel context.CancelFunc
}

func (w *cancelOnWrite) Write(p []byte) (int, error) {
	if w.n--; w.n == 0 {
		w.cancel()
	}
	return w.out.Write(p)
}

// TestObserveStopsAtInterrupt: once its ctx is done (a signal), the
// observer prints a step's line but no more of its diff: none if the
// signal came first, and at most about diffChunk bytes past it if it came
// while the diff was being written.
func TestObserveStopsAtInterrupt(t *testing.T) {
	t.Parallel()
	content := bytes.Repeat([]byte(strings.Repeat("z", 99)+"\n"), 1500) // 150 KB: within the bounds
	r := result(0, "/etc/big", engine.Changed, engine.Change{Action: engine.Create, Summary: "150000 bytes", After: content})
	const note = "  (diff cut short: interrupted)\n"

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var before bytes.Buffer
	New(&before, Options{Mode: "run"}).Observe(ctx)(r)
	if want := "demo.star:1:5: file /etc/big: created (150000 bytes)\n" + note; before.String() != want {
		t.Errorf("cancelled before: got %.300q, want %q", before.String(), want)
	}

	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	during := &cancelOnWrite{n: 2, cancel: cancel} // the step's line, then the first piece of the diff
	New(during, Options{Mode: "check"}).Observe(ctx)(r)
	got := during.out.String()
	if !strings.HasSuffix(got, "\n"+note) || len(got) > diffChunk+200 {
		t.Errorf("cancelled during: got %d bytes ending %q, want at most %d ending with the note", len(got), got[max(0, len(got)-100):], diffChunk+200)
	}

	var whole bytes.Buffer
	New(&whole, Options{Mode: "check"}).Observe(t.Context())(r)
	if got := whole.String(); strings.Contains(got, "interrupted") || strings.Count(got, "\n+z") != 1500 {
		t.Errorf("not cancelled: got %d bytes, want the whole diff", len(got))
	}
}

// TestCountsAgreeWithEngine: the count line's number of changes is the
// engine's (engine.Result.Changes), for every status and action.
func TestCountsAgreeWithEngine(t *testing.T) {
	var results []engine.Result
	for _, st := range []engine.Status{engine.Unchanged, engine.Changed, engine.Skipped} {
		for _, a := range []engine.Action{engine.None, engine.Create, engine.Update, engine.Delete, engine.Run, engine.Wait} {
			results = append(results, engine.Result{Step: &testStep{meta: engine.StepMeta{Kind: "file", Target: "/x"}}, Status: st, Change: engine.Change{Action: a}})
			if got, want := Count(results).Changes(), engine.Changes(results); got != want {
				t.Errorf("after %v %v: ui counts %d changes, engine %d", st, a, got, want)
			}
		}
	}
	if engine.Changes(results) != 4 {
		t.Errorf("engine counts %d changes, want 4 (changed create, update, delete, run)", engine.Changes(results))
	}
}

// TestContentDiffEdges holds the diff of the edge cases the move from
// go-difflib to go-udiff was checked on. Each want is what GNU diff -u
// (diffutils 3.8) prints for the two files, with --label "f (before)"
// --label "f (after)"; a last line without its "\n" is followed by
// diff(1)'s marker, and a "\r" stays part of its line.
func TestContentDiffEdges(t *testing.T) {
	t.Parallel()
	const head = "--- f (before)\n+++ f (after)\n"
	const noEOL = "\\ No newline at end of file\n"
	tests := map[string]struct{ before, after, want string }{
		"identical":         {before: "a\nb\n", after: "a\nb\n", want: ""},
		"identical_no_eol":  {before: "a\nb", after: "a\nb", want: ""},
		"both_empty":        {want: ""},
		"empty_before":      {after: "a\nb\n", want: head + "@@ -0,0 +1,2 @@\n+a\n+b\n"},
		"empty_after":       {before: "a\nb\n", want: head + "@@ -1,2 +0,0 @@\n-a\n-b\n"},
		"empty_before_eol":  {after: "a", want: head + "@@ -0,0 +1 @@\n+a\n" + noEOL},
		"empty_after_eol":   {before: "a", want: head + "@@ -1 +0,0 @@\n-a\n" + noEOL},
		"before_no_eol":     {before: "a\nb", after: "a\nb\n", want: head + "@@ -1,2 +1,2 @@\n a\n-b\n" + noEOL + "+b\n"},
		"after_no_eol":      {before: "a\nb\n", after: "a\nb", want: head + "@@ -1,2 +1,2 @@\n a\n-b\n+b\n" + noEOL},
		"both_no_eol":       {before: "a\nb", after: "a\nc", want: head + "@@ -1,2 +1,2 @@\n a\n-b\n" + noEOL + "+c\n" + noEOL},
		"no_eol_in_context": {before: "x\na\nb", after: "y\na\nb", want: head + "@@ -1,3 +1,3 @@\n-x\n+y\n a\n b\n" + noEOL},
		"crlf_line_changed": {before: "a\r\nb\r\nc\r\n", after: "a\r\nB\r\nc\r\n", want: head + "@@ -1,3 +1,3 @@\n a\r\n-b\r\n+B\r\n c\r\n"},
		"crlf_to_lf":        {before: "a\r\nb\r\n", after: "a\nb\n", want: head + "@@ -1,2 +1,2 @@\n-a\r\n-b\r\n+a\n+b\n"},
		"crlf_no_eol":       {before: "a\r\nb", after: "a\r\nb\r\n", want: head + "@@ -1,2 +1,2 @@\n a\r\n-b\n" + noEOL + "+b\r\n"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := ContentDiff([]byte(tc.before), []byte(tc.after), "f (before)", "f (after)"); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestContentDiffScatteredChanges: a file of 2,000 lines with one line
// in 33 changed shows those lines and no others. udiff alone stops its
// search after about 100 differences and showed 762 lines removed or
// added; lineEdits makes it the 122 changed.
func TestContentDiffScatteredChanges(t *testing.T) {
	t.Parallel()
	var before, after strings.Builder
	changed := 0
	for i := range maxDiffLines {
		fmt.Fprintf(&before, "line %d\n", i)
		if i%33 == 0 {
			fmt.Fprintf(&after, "changed %d\n", i)
			changed++
			continue
		}
		fmt.Fprintf(&after, "line %d\n", i)
	}
	d := ContentDiff([]byte(before.String()), []byte(after.String()), "f (before)", "f (after)")
	var minus, plus, other int
	for _, line := range strings.Split(d, "\n")[2:] { // after the --- and +++ lines
		switch {
		case strings.HasPrefix(line, "-line "):
			minus++
		case strings.HasPrefix(line, "+changed "):
			plus++
		case strings.HasPrefix(line, "-") || strings.HasPrefix(line, "+"):
			other++
		}
	}
	if minus != changed || plus != changed || other != 0 {
		t.Errorf("got %d lines removed, %d added and %d others, want %d removed and %d added:\n%.500s",
			minus, plus, other, changed, changed, d)
	}
}

// keyStep is an etcd_put: its target starts with "/", yet is a key, not
// a path in the root (it is no engine.InRoot), and its value is a text
// (engine.Texter).
type keyStep struct{ testStep }

func (s *keyStep) InRoot() bool { return false }
func (s *keyStep) Text() bool   { return true }

// listStep is a step whose content is a list, whatever its target.
type listStep struct{ testStep }

func (s *listStep) InRoot() bool { return false }

// TestTextDiffsByKind: a content change is a unified diff for a file in
// the root (engine.InRoot) and for an etcd value (engine.Texter), headed
// with its name; any other step's content is a list of lines, also when
// its target starts with "/".
func TestTextDiffsByKind(t *testing.T) {
	t.Parallel()
	c := engine.Change{Action: engine.Update, Summary: "value changed", Before: []byte(`{"Network":"10.2.0.0/16"}` + "\n"), After: []byte(`{"Network":"10.3.0.0/16"}` + "\n")}
	meta := engine.StepMeta{Kind: "etcd_put", Target: "/coreos.com/network/config", Resource: "/coreos.com/network/config"}
	key := engine.Result{Step: &keyStep{testStep{meta: meta}}, Status: engine.Changed, Change: c}
	if got := render(Options{Mode: "check"}, []engine.Result{key}, nil); !strings.Contains(got, "--- /coreos.com/network/config (before)\n") {
		t.Errorf("etcd value: got\n%s", got)
	}
	list := engine.Result{Step: &listStep{testStep{meta: meta}}, Status: engine.Changed, Change: c}
	if got := render(Options{Mode: "check"}, []engine.Result{list}, nil); strings.Contains(got, "(before)") || !strings.Contains(got, "\n  - {\"Network\":\"10.2.0.0/16\"}\n  + {\"Network\":\"10.3.0.0/16\"}\n") {
		t.Errorf("list: got\n%s", got)
	}
	file := result(0, "/etc/flannel/options.env", engine.Changed, c)
	if got := render(Options{Mode: "check"}, []engine.Result{file}, nil); !strings.Contains(got, "--- /etc/flannel/options.env (before)\n") {
		t.Errorf("file: got\n%s", got)
	}
}
