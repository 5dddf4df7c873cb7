package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
)

// testStep is a step with fixed metadata, enough to render results.
type testStep struct{ meta engine.StepMeta }

func (s *testStep) Meta() *engine.StepMeta { return &s.meta }
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

func TestTextCheck(t *testing.T) {
	t.Parallel()
	got := render(Options{Mode: "check"}, sampleResults(), nil)
	want := `demo.star:1:5: file /etc/motd: create (6 bytes, mode 0644, root:root)
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
1 to create, 3 to update, 0 actions, 1 unchanged, 1 skipped
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestTextRunAndError(t *testing.T) {
	t.Parallel()
	got := render(Options{Mode: "run"}, sampleResults()[:1], errors.New("boom"))
	if !strings.Contains(got, "file /etc/motd: created (") {
		t.Errorf("run output lacks the past tense:\n%s", got)
	}
	if !strings.HasSuffix(got, "stopped at an error after 1 steps: 1 created, 0 updated, 0 actions run, 0 unchanged, 0 skipped\n") {
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
	if got := diffText(r, exact); got != "  (binary, 0 bytes → 6 bytes)\n" {
		t.Errorf("got %q", got)
	}
}
