package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"

	"github.com/kplay-dev/kplay/engine"
)

// hostileResults are results whose every field a playbook or a root can
// fill holds terminal escapes: ESC[2K\r erases a line, ESC[6A moves up
// six, an OSC sets the title, U+009B is a C1 CSI, U+202E reverses the
// line, and a newline in a path would start a line of its own.
func hostileResults() []engine.Result {
	step := func(id int, kind, target string) *testStep {
		return &testStep{meta: engine.StepMeta{Kind: kind, Target: target, ID: id, Pos: engine.Pos{File: "demo.star", Line: id + 1, Col: 5}}}
	}
	return []engine.Result{
		// A path with ESC and a newline, and the playbook's new content.
		{Step: step(0, "file", "/etc/\x1b[2Kx\ny"), Status: engine.Changed, Change: engine.Change{
			Action: engine.Create, Summary: "21 bytes, mode 0644, root:root",
			After: []byte("a=1\n\x1b[2K\r\x1b[6Aok\tdone\n"),
		}},
		// A root file's existing content against the playbook's.
		{Step: step(1, "file", "/etc/motd"), Status: engine.Changed, Change: engine.Change{
			Action: engine.Update, Summary: "content changed",
			Before: []byte("hi\n\x1b]0;pwned\x07title\r\n\u009b2Kgone\n"),
			After:  []byte("hi\nadmin\u202e \u2066x\u2069\u200b\n"),
		}},
		// Unit and drop-in text.
		{Step: step(2, "unit", "/etc/systemd/system/a.service"), Status: engine.Changed, Change: engine.Change{
			Action: engine.Create, Summary: "44 bytes, mode 0644, root:root",
			After: []byte("[Service]\nExecStart=/bin/true\x1b[8m; rm -rf /\n"),
		}},
		{Step: step(3, "dropin", "/etc/systemd/system/a.service.d/\x1b]0;t\x07.conf"), Status: engine.Changed, Change: engine.Change{
			Action: engine.Create, Summary: "31 bytes, mode 0644, root:root",
			After: []byte("[Service]\nEnvironment=A=\x7f\x1b[?25l"),
		}},
		// A list of links (not a file) and an action.
		{Step: step(4, "systemctl", "enable a\x1b[1A.service"), Status: engine.Changed, Change: engine.Change{
			Action: engine.Create, Summary: "symlink x → a\x1b[1A.service",
			After: []byte("/etc/x\x1b[1A → /a\u202e.service\n"),
		}},
		{Step: step(5, "systemctl", "restart a.service"), Status: engine.Changed, Change: engine.Change{
			Action: engine.Run, Summary: "restart\r\x1b[32mok",
		}},
		{Step: step(6, "file", "/etc/skip\x9b"), Status: engine.Skipped, Reason: "skip \x1b[31m\ufeffred\U000e0041"},
		{Step: step(7, "file", "/etc/ok\u3164"), Status: engine.Unchanged},
	}
}

func TestVisible(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ in, want string }{
		"plain_ascii":        {in: "/etc/motd", want: "/etc/motd"},
		"empty":              {in: "", want: ""},
		"backslash_kept":     {in: `ExecStart=/bin/sh -c \`, want: `ExecStart=/bin/sh -c \`},
		"printable_unicode":  {in: "mode 0644 → 0600, grüße, 日本", want: "mode 0644 → 0600, grüße, 日本"},
		"replacement_char":   {in: "a\ufffdb", want: "a\ufffdb"},
		"erase_line":         {in: "\x1b[2K\rforged", want: `\x1b[2K\rforged`},
		"cursor_up":          {in: "\x1b[6Aok", want: `\x1b[6Aok`},
		"osc_title_bel":      {in: "\x1b]0;title\x07", want: `\x1b]0;title\a`},
		"osc_title_st":       {in: "\x1b]0;title\x1b\\", want: `\x1b]0;title\x1b\`},
		"newline_and_tab":    {in: "a\nb\tc", want: `a\nb\tc`},
		"other_c0":           {in: "\x00\x01\b\f\v\x1f", want: `\x00\x01\b\f\v\x1f`},
		"del":                {in: "a\x7fb", want: `a\x7fb`},
		"c1_csi_utf8":        {in: "\u009b2K", want: `\u009b2K`},
		"c1_nel":             {in: "a\u0085b", want: `a\u0085b`},
		"c1_csi_raw_byte":    {in: "\x9b2K", want: `\x9b2K`},
		"invalid_utf8":       {in: "a\xffb\xc3", want: `a\xffb\xc3`},
		"truncated_sequence": {in: "\xe2\x80", want: `\xe2\x80`},
		"encoded_surrogate":  {in: "\xed\xa0\x80", want: `\xed\xa0\x80`},
		"bidi_override":      {in: "admin\u202e\u202d\u202a\u202b\u202c", want: `admin\u202e\u202d\u202a\u202b\u202c`},
		"bidi_isolates":      {in: "\u2066\u2067\u2068\u2069", want: `\u2066\u2067\u2068\u2069`},
		"bidi_marks":         {in: "\u200e\u200f\u061c", want: `\u200e\u200f\u061c`},
		"zero_width":         {in: "a\u200bb\u200cc\u200dd\u2060e\ufeff", want: `a\u200bb\u200cc\u200dd\u2060e\ufeff`},
		"soft_hyphen":        {in: "pass\u00adword", want: `pass\u00adword`},
		"line_separators":    {in: "a\u2028b\u2029c", want: `a\u2028b\u2029c`},
		"tag_characters":     {in: "x\U000e0041\U000e007f", want: `x\U000e0041\U000e007f`},
		"variation_selector": {in: "a\ufe0fb\U000e0100", want: `a\ufe0fb\U000e0100`},
		"hangul_filler":      {in: "ok\u3164\u115f", want: `ok\u3164\u115f`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := Visible(tt.in); got != tt.want {
				t.Errorf("Visible(%q): got %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestVisibleText(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ in, want string }{
		"keeps_lines_and_tabs": {in: "a\tb\nc\n", want: "a\tb\nc\n"},
		"escapes_cr_in_line":   {in: "ok\r\x1b[2Kforged\r\n", want: "ok\\r\\x1b[2Kforged\\r\n"},
		"escapes_bidi":         {in: "x\u202ey\n", want: "x\\u202ey\n"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := VisibleText(tt.in); got != tt.want {
				t.Errorf("VisibleText(%q): got %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestVisibleMessage(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ in, want string }{
		"one_line":             {in: "write /etc/x: permission denied", want: "write /etc/x: permission denied"},
		"forged_line_indented": {in: "fail: x\ndemo.star:1:1: file /etc/y: unchanged", want: "fail: x\n  demo.star:1:1: file /etc/y: unchanged"},
		"indented_kept":        {in: "job failed; journalctl -u a.service:\n    line\x1b[2K", want: "job failed; journalctl -u a.service:\n    line\\x1b[2K"},
		"tab_and_blank_kept":   {in: "unknown command\n\n\tcheck\n", want: "unknown command\n\n\tcheck\n"},
		"newline_in_path":      {in: "open /etc/\x1b[2Kx\ny: is a directory", want: "open /etc/\\x1b[2Kx\n  y: is a directory"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := VisibleMessage(tt.in); got != tt.want {
				t.Errorf("VisibleMessage(%q): got %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestVisibleFastPath: a string with nothing to escape, such as almost
// every diff line, comes back as it is, not a copy.
func TestVisibleFastPath(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"/etc/motd", "ExecStart=/usr/bin/flanneld --iface=10.0.0.10 → ok"} {
		if got := Visible(s); unsafe.StringData(got) != unsafe.StringData(s) || got != s {
			t.Errorf("Visible(%q) = %q, a copy", s, got)
		}
	}
	text := "[Service]\n\tExecStart=/usr/bin/true\n"
	if got := VisibleText(text); unsafe.StringData(got) != unsafe.StringData(text) {
		t.Errorf("VisibleText(%q) = %q, a copy", text, got)
	}
}

func BenchmarkVisibleText(b *testing.B) {
	line := strings.Repeat("ExecStart=/usr/bin/flanneld --etcd-endpoints=http://10.0.0.10:2379 → ok\n", 40)
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		VisibleText(line)
	}
}

// TestTextEscapesHostileContent is the check a person reviews when a
// playbook or a root holds terminal escapes: every one shows escaped,
// each step and each diff line stays one line, and the steps the escapes
// tried to erase or move over are all there.
func TestTextEscapesHostileContent(t *testing.T) {
	t.Parallel()
	got := render(Options{Mode: "check", Verbosity: Every}, hostileResults(), nil)
	want := `demo.star:1:5: file /etc/\x1b[2Kx\ny: create (21 bytes, mode 0644, root:root)
--- /dev/null
+++ /etc/\x1b[2Kx\ny (after)
@@ -0,0 +1,2 @@
+a=1
+\x1b[2K\r\x1b[6Aok` + "\t" + `done
demo.star:2:5: file /etc/motd: update (content changed)
--- /etc/motd (before)
+++ /etc/motd (after)
@@ -1,3 +1,2 @@
 hi
-\x1b]0;pwned\atitle\r
-\u009b2Kgone
+admin\u202e \u2066x\u2069\u200b
demo.star:3:5: unit /etc/systemd/system/a.service: create (44 bytes, mode 0644, root:root)
--- /dev/null
+++ /etc/systemd/system/a.service (after)
@@ -0,0 +1,2 @@
+[Service]
+ExecStart=/bin/true\x1b[8m; rm -rf /
demo.star:4:5: dropin /etc/systemd/system/a.service.d/\x1b]0;t\a.conf: create (31 bytes, mode 0644, root:root)
--- /dev/null
+++ /etc/systemd/system/a.service.d/\x1b]0;t\a.conf (after)
@@ -0,0 +1,2 @@
+[Service]
+Environment=A=\x7f\x1b[?25l
\ No newline at end of file
demo.star:5:5: systemctl enable a\x1b[1A.service: create (symlink x → a\x1b[1A.service)
  + /etc/x\x1b[1A → /a\u202e.service
demo.star:6:5: systemctl restart a.service: run (restart\r\x1b[32mok)
demo.star:7:5: file /etc/skip\x9b: skipped (skip \x1b[31m\ufeffred\U000e0041)
demo.star:8:5: file /etc/ok\u3164: unchanged
1 to update, 4 to create, 1 action, 1 unchanged, 1 skipped (8 steps)
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	colored := render(Options{Mode: "check", Color: true, Verbosity: Every}, hostileResults(), nil)
	// lipgloss writes a tab in a styled line as four spaces.
	if plain := sgr.ReplaceAllString(colored, ""); plain != strings.ReplaceAll(got, "\t", "    ") {
		t.Errorf("colored output differs from the plain one beyond its colors:\n%s", plain)
	}
}

// sgr matches the color sequences lipgloss writes, the only escapes
// colored output may hold.
var sgr = regexp.MustCompile(`\x1b\[[0-9;]*m`)

// TestJSONKeepsEscapes: JSON output carries every string exactly, as
// before text output escaped them. testdata/escapes.json was written by
// this package at b1844df, before escaping, from the same results (with
// the count of restarts added since).
func TestJSONKeepsEscapes(t *testing.T) {
	t.Parallel()
	want, err := os.ReadFile("testdata/escapes.json")
	if err != nil {
		t.Fatal(err)
	}
	got := render(Options{Mode: "check", JSON: true}, hostileResults(), errors.New("demo.star:9:1: fail: \x1b[2K\rforged\nline"))
	if got != string(want) {
		t.Errorf("JSON changed; got:\n%s\nwant:\n%s", got, want)
	}
	var doc struct {
		Steps []struct{ Target, Diff string }
		Error string
	}
	if err := json.Unmarshal([]byte(got), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Steps[0].Target != "/etc/\x1b[2Kx\ny" || !strings.Contains(doc.Steps[0].Diff, "+\x1b[2K\r\x1b[6Aok\tdone\n") {
		t.Errorf("step 0: got %q, %q", doc.Steps[0].Target, doc.Steps[0].Diff)
	}
	if doc.Error != "demo.star:9:1: fail: \x1b[2K\rforged\nline" {
		t.Errorf("error: got %q", doc.Error)
	}
}

// FuzzVisible feeds random bytes to Visible, VisibleMessage and a whole
// rendered step (its target, summary and a diff of the two contents,
// plain and colored): no control character reaches the output unescaped
// but "\n" (and "\t" inside a diff's content lines, which lipgloss turns
// into spaces when colored), nor a C1 control, a bidi or other invisible
// format character, nor a byte that is not UTF-8; each step stays one line.
func FuzzVisible(f *testing.F) {
	for _, seed := range []struct{ field, before, after string }{
		{"/etc/motd", "a\nb\n", "a\nc\n"},
		{"/etc/\x1b[2Kx\ny", "", "\x1b[2K\r\x1b[6Aforged\n"},
		{"enable a.service", "", "/etc/x\x1b[1A → /a.service\n"},
		{"\x1b]0;title\x07", "\x1b]0;t\x1b\\\r\n", "\x00\x7f\x08\x0b\x0c"},
		{"/etc/\u009b2K", "\u0085\u009b6A\n", "\xc2\x9b\xe2\x80\xae\n"},
		{"admin\u202e\u2066\u2069\u200b\ufeff", "x\u2028y\u2029z\n", "\U000e0041\ufe0f\u3164\n"},
		{"\xff\xfe\xc3", "a\xffb\n", "\xed\xa0\x80\n"},
		{"/etc/a\tb", "\t\tindent\n", "  indent\r\n"},
	} {
		f.Add(seed.field, []byte(seed.before), []byte(seed.after))
	}
	f.Fuzz(func(t *testing.T, field string, before, after []byte) {
		v := Visible(field)
		checkVisible(t, "Visible", v, "")
		if Visible(v) != v {
			t.Errorf("Visible(%q) = %q is escaped again", field, v)
		}
		m := VisibleMessage(field)
		checkVisible(t, "VisibleMessage", m, "\n\t")
		for i, l := range strings.Split(m, "\n")[1:] {
			if l != "" && l[0] != ' ' && l[0] != '\t' {
				t.Errorf("VisibleMessage(%q): line %d starts in column 0: %q", field, i+2, l)
			}
		}
		for _, target := range []string{"/etc/" + field, field} {
			r := engine.Result{
				Step:   &testStep{meta: engine.StepMeta{Kind: "file", Target: target, Pos: engine.Pos{File: "demo.star", Line: 1, Col: 5}}},
				Status: engine.Changed,
				Change: engine.Change{Action: engine.Update, Summary: field, Before: before, After: after},
			}
			for _, opts := range []Options{{Mode: "check"}, {Mode: "run", Color: true}} {
				out := sgr.ReplaceAllString(render(opts, []engine.Result{r}, nil), "")
				lines := strings.Split(out, "\n")
				if !strings.HasPrefix(lines[0], "demo.star:1:5: file ") {
					t.Fatalf("%+v: step line %q", opts, lines[0])
				}
				for i, l := range lines {
					keep := ""
					if i > 0 && l != "" && strings.ContainsRune(" +-", rune(l[0])) && !strings.HasPrefix(l, "+++ ") && !strings.HasPrefix(l, "--- ") {
						keep = "\t"
					}
					checkVisible(t, fmt.Sprintf("%+v line %d", opts, i+1), l, keep)
					if i > 0 && strings.HasPrefix(l, "demo.star:") {
						t.Errorf("%+v: line %d reads like a step: %q", opts, i+1, l)
					}
				}
			}
		}
	})
}

// checkVisible fails unless s is UTF-8 with no control character but
// those in keep and nothing that isHidden.
func checkVisible(t *testing.T, what, s, keep string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("%s: not UTF-8: %q", what, s)
	}
	for _, r := range s {
		if (r < 0x20 || r == 0x7f) && !strings.ContainsRune(keep, r) || isHidden(r) {
			t.Fatalf("%s: %U unescaped in %q", what, r, s)
		}
	}
}
