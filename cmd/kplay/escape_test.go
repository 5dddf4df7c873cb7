package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host/live"
	"github.com/kplay-dev/kplay/host/roottest"
)

// escapePlaybooks hold terminal escapes in content, paths, a unit, a
// drop-in, an error, a print and a var's doc (issue 10, item 11).
var escapePlaybooks = map[string]string{
	"content.star": `file("/etc/\x1b[2Kx\ny", content="new\x1b[6A\nkeep\n")
file("/etc/motd", content="hi\n\x1b[2K\r\x1b[6Aforged\n")
unit("a.service", content="[Service]\nExecStart=/bin/true \x1b[8mhidden\n")
dropin("a.service", "10-x.conf", content="[Service]\nEnvironment=A=\u202eB\u009b\n")
`,
	"fail.star": `fail("bad \x1b[2K\rvalue\nfail.star:9:9: all good")
`,
	"dir.star": `file("/etc/d\x1b[2K\nx", content="x\n")
`,
	"print.star": `print("look \x1b]0;title\x07\nprint.star:9:9: forged")
`,
	"vars.star": `var("X", default="a\x1b[2Kb", doc="doc \x1b[6A\there\nnext \u202e")
`,
}

// escapeRoot writes the playbooks into dir and a root whose file names
// and contents hold escapes: a file named ESC[2Kx, newline, y, with an
// OSC title in it, and a directory whose name holds ESC and a newline.
func escapeRoot(t *testing.T, dir string) string {
	t.Helper()
	for name, text := range escapePlaybooks {
		roottest.WriteFile(t, filepath.Join(dir, name), text, 0o644)
	}
	root := filepath.Join(dir, "root")
	roottest.WriteFile(t, filepath.Join(root, "etc", "\x1b[2Kx\ny"), "old\x1b]0;pwned\x07title\nkeep\n", 0o644)
	roottest.WriteFile(t, filepath.Join(root, "etc/motd"), "hi\n", 0o644)
	mustMkdir(t, filepath.Join(root, "etc", "d\x1b[2K\nx"))
	return root
}

// TestEscapesAreVisible runs kplay on playbooks and a root full of
// terminal escapes: text output shows every one escaped and each step,
// diff line and error on a line of its own; JSON output is byte for byte
// what kplay printed before text output escaped anything (the files in
// testdata/escapes were written by kplay at b1844df, with the temporary
// directory replaced by DIR).
func TestEscapesAreVisible(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		args           []string // the command and its playbook; --root is added
		code           int
		stdout, stderr string
		golden         string // a file of testdata/escapes that stdout must equal
	}{
		"check_content_paths_units": {
			args: []string{"check", "content.star", "-v"}, code: 2,
			stdout: `DIR/content.star:1:5: file /etc/\x1b[2Kx\ny: update (content changed)
--- /etc/\x1b[2Kx\ny (before)
+++ /etc/\x1b[2Kx\ny (after)
@@ -1,2 +1,2 @@
-old\x1b]0;pwned\atitle
+new\x1b[6A
 keep
DIR/content.star:2:5: file /etc/motd: update (content changed)
--- /etc/motd (before)
+++ /etc/motd (after)
@@ -1 +1,2 @@
 hi
+\x1b[2K\r\x1b[6Aforged
DIR/content.star:3:5: unit /etc/systemd/system/a.service: create (41 bytes, mode 0644, root:root)
--- /dev/null
+++ /etc/systemd/system/a.service (after)
@@ -0,0 +1,2 @@
+[Service]
+ExecStart=/bin/true \x1b[8mhidden
DIR/content.star:4:7: dropin /etc/systemd/system/a.service.d/10-x.conf: create (31 bytes, mode 0644, root:root)
--- /dev/null
+++ /etc/systemd/system/a.service.d/10-x.conf (after)
@@ -0,0 +1,2 @@
+[Service]
+Environment=A=\u202eB\u009b
DIR/content.star:4:7: systemctl daemon-reload: skipped (offline root)
2 to update, 2 to create, 0 actions, 0 unchanged, 1 skipped (5 steps)
`,
		},
		"check_content_json": {args: []string{"check", "content.star", "-o", "json"}, code: 2, golden: "content.json"},
		"fail_message": {
			args: []string{"check", "fail.star"}, code: 1,
			stderr: `DIR/fail.star:1:5: bad \x1b[2K\rvalue\nfail.star:9:9: all good` + "\n",
		},
		"fail_message_json": {args: []string{"check", "fail.star", "-o", "json"}, code: 1, golden: "fail.json",
			stderr: `DIR/fail.star:1:5: bad \x1b[2K\rvalue\nfail.star:9:9: all good` + "\n",
		},
		"root_path_in_error": {
			args: []string{"check", "dir.star"}, code: 1,
			stdout: "stopped at an error: 0 to update, 0 to create, 0 actions, 0 unchanged, 0 skipped (0 steps)\n",
			stderr: `DIR/dir.star:1:5: file /etc/d\x1b[2K\nx: /etc/d\x1b[2K\nx is a directory, not a regular file (remove it, or declare the file at another path)` + "\n",
		},
		"root_path_in_error_json": {args: []string{"check", "dir.star", "-o", "json"}, code: 1, golden: "dir.json",
			stderr: `DIR/dir.star:1:5: file /etc/d\x1b[2K\nx: /etc/d\x1b[2K\nx is a directory, not a regular file (remove it, or declare the file at another path)` + "\n",
		},
		"print_keeps_its_lines_indented": {
			args: []string{"check", "print.star"}, code: 0,
			stdout: "0 to update, 0 to create, 0 actions, 0 unchanged, 0 skipped (0 steps)\n",
			stderr: `DIR/print.star:1:6: look \x1b]0;title\a` + "\n  print.star:9:9: forged\n",
		},
		"vars_doc_and_default": {
			args: []string{"vars", "vars.star"}, code: 0,
			stdout: `NAME  TYPE    DEFAULT      REQUIRED  DOC                             DECLARED AT
X     string  "a\x1b[2Kb"  no        doc \x1b[6A\there\nnext \u202e  DIR/vars.star:1:4
`,
		},
		"vars_json": {args: []string{"vars", "vars.star", "-o", "json"}, code: 0, golden: "vars.json"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			root := escapeRoot(t, dir)
			args := append([]string{}, tt.args...)
			args[1] = filepath.Join(dir, args[1])
			args = append(args, "--root", root)
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), args, &stdout, &stderr)
			gotOut := strings.ReplaceAll(stdout.String(), dir, "DIR")
			gotErr := strings.ReplaceAll(stderr.String(), dir, "DIR")
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, gotOut, gotErr)
			}
			wantOut := tt.stdout
			if tt.golden != "" {
				b, err := os.ReadFile(filepath.Join("testdata/escapes", tt.golden))
				if err != nil {
					t.Fatal(err)
				}
				wantOut = string(b)
			}
			if gotOut != wantOut {
				t.Errorf("stdout: got:\n%s\nwant:\n%s", gotOut, wantOut)
			}
			if gotErr != tt.stderr {
				t.Errorf("stderr: got:\n%s\nwant:\n%s", gotErr, tt.stderr)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	t.Parallel()
	pos := engine.Pos{File: "demo.star", Line: 3, Col: 1}
	job := &live.JobError{Action: "start", Unit: "a.service", Result: "failed", ActiveState: "failed",
		Journal: []string{"a[1]: ready\x1b[2K\r", "a[1]: demo.star:9:9: ok\nforged"}}
	tests := map[string]struct {
		err  error
		want string
	}{
		"step_error_is_one_line": {
			err:  &engine.Error{Pos: pos, Err: errors.New("write /etc/a\x1b[2K\nb: permission denied")},
			want: `demo.star:3:1: write /etc/a\x1b[2K\nb: permission denied`,
		},
		"var_errors_one_line_each": {
			err:  engine.VarErrors{&engine.Error{Pos: pos, Err: errors.New("var A: \"\\x1b\" bad")}, errors.New("var B\u202e\nmissing")},
			want: "demo.star:3:1: var A: \"\\x1b\" bad\n" + `var B\u202e\nmissing`,
		},
		"journal_lines_stay_lines": {
			err: &engine.Error{Pos: pos, Err: fmt.Errorf("systemctl start a.service: %w", job)},
			want: "demo.star:3:1: systemctl start a.service: start a.service: job failed (ActiveState=failed); journalctl -u a.service:\n" +
				`    a[1]: ready\x1b[2K\r` + "\n" + `    a[1]: demo.star:9:9: ok\nforged`,
		},
		"journal_wrapped_with_more_text_is_one_line": {
			err:  &engine.Error{Pos: pos, Err: fmt.Errorf("%w (see above)", &live.JobError{Action: "start", Unit: "a.service", Result: "failed", Journal: []string{"x"}})},
			want: `demo.star:3:1: start a.service: job failed; journalctl -u a.service:\n    x (see above)`,
		},
		"command_line_error_keeps_lines_indented": {
			err:  errors.New("unknown command \"ch\x1bek\" for \"kplay\"\n\nDid you mean this?\n\tcheck\n"),
			want: "kplay: unknown command \"ch\\x1bek\" for \"kplay\"\n\n  Did you mean this?\n\tcheck\n",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := errorText(tt.err); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}
