package builtins

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/unit"
)

// systemdVerdict is what `systemd-analyze verify` (systemd 252) says of a
// unit text, in terms of a syntax checker:
//
//   - verdictReads: it reads every line and says nothing.
//   - verdictRefuses: its unit file parser drops a line or the whole file
//     as malformed: "Missing '=', ignoring line.", "Missing key name
//     before '=', ignoring line.", "Assignment outside of section.
//     Ignoring.", "Unknown section '…'. Ignoring.", "Invalid section
//     header '…'", "Bad characters in section header '…'", "String is not
//     UTF-8 clean, ignoring assignment: …", a line too long ("failed to
//     load properly … No buffer space available"), "Unknown key '…'"
//     for a key that is not a name (keyPattern) and so is no key of any
//     systemd version; or it drops the line for a quote left open in a
//     command line or Environment= ("Unbalanced quoting, ignoring",
//     "Invalid syntax, ignoring") or for a "%" before a letter that is no
//     specifier ("Failed to resolve unit specifiers").
//   - verdictValue: it reads the line but refuses its value for another
//     reason, or does not know its key name ("Unknown key 'Restrat'").
//     checkUnitText accepts these: the keys and values systemd knows
//     change between versions.
//
// checkUnitText must refuse exactly the texts systemd refuses.
type systemdVerdict string

const (
	verdictReads   systemdVerdict = "reads"
	verdictRefuses systemdVerdict = "refuses"
	verdictValue   systemdVerdict = "value"
)

// unitTextCase is a unit text, what systemd 252 says of it as
// kplay-t.service (verdict, and a part of its message in says), and for a
// refused text what checkUnitText's error must match.
type unitTextCase struct {
	text    string
	verdict systemdVerdict
	says    string
	wantErr string
}

// unitTextCases are the texts of TestCheckUnitTextAgreesWithSystemd, with
// the verdicts systemd-analyze verify gave (systemd 252.39, Debian 12);
// TestUnitTextCasesMatchSystemdAnalyze checks them again where it is
// installed.
func unitTextCases() map[string]unitTextCase {
	const svc = "[Service]\nExecStart=/bin/true\n"
	long := func(n int) string { return "X-A=" + strings.Repeat("a", n-len("X-A=")) }
	return map[string]unitTextCase{
		// Continuations and comments.
		"issue_comment_inside_continuation": {
			text:    "[Service]\nExecStart=/bin/echo --one \\\n# --two\n  --three\n",
			verdict: verdictReads,
		},
		"continuation_of_three_lines": {
			text:    "[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/echo \\\n  --a=1 \\\n  --b=2\nRestart=always\n\n[Install]\nWantedBy=multi-user.target\n",
			verdict: verdictReads,
		},
		"comment_in_continuation_ending_in_backslash": {
			text:    "[Service]\nExecStart=/bin/echo a \\\n# c \\\n  b\nRestart=always\n",
			verdict: verdictReads,
		},
		"comment_ending_in_backslash_does_not_continue": {
			text:    svc + "# c \\\nfoo\n",
			verdict: verdictRefuses, says: ":4: Missing '=', ignoring line.",
			wantErr: `^line 4: "foo" is not a key=value line$`,
		},
		"blank_line_ends_continuation": {
			text:    "[Service]\nExecStart=/bin/echo a \\\n\nfoo\n",
			verdict: verdictRefuses, says: ":4: Missing '=', ignoring line.",
			wantErr: `^line 4: "foo" is not a key=value line$`,
		},
		"continuation_at_end_of_text": {
			text:    "[Service]\nExecStart=/bin/echo a \\",
			verdict: verdictReads,
		},
		"continuation_takes_a_section_header": {
			text:    "[Service]\nExecStart=/bin/echo a \\\n[Unit]\n",
			verdict: verdictReads,
		},
		"even_backslashes_do_not_continue": {
			text:    "[Service]\nExecStart=/bin/echo a\\\\\nfoo\n",
			verdict: verdictRefuses, says: ":3: Missing '=', ignoring line.",
			wantErr: `^line 3: "foo" is not a key=value line$`,
		},
		"backslash_then_space_does_not_continue": {
			text:    "[Service]\nExecStart=/bin/echo a \\ \nfoo\n",
			verdict: verdictRefuses, says: ":3: Missing '=', ignoring line.",
			wantErr: `^line 3: "foo" is not a key=value line$`,
		},
		"lone_backslash_line": {
			text:    svc + "\\\nRestart=always\n",
			verdict: verdictReads,
		},
		"joined_lines_without_equals": {
			text:    svc + "Restart \\\n  always\n",
			verdict: verdictRefuses, says: ":4: Missing '=', ignoring line.",
			wantErr: `^lines 3-4: "Restart    always" is not a key=value line$`,
		},
		"comments_hash_semicolon_indented": {
			text:    "; c\n# c\n[Service]\n  # c\n\t; c\nExecStart=/bin/true\n",
			verdict: verdictReads,
		},
		"comment_not_utf8": {
			text:    svc + "# \xff\n",
			verdict: verdictReads,
		},
		// Line ends and encodings.
		"byte_order_mark": {
			text:    "\uFEFF[Service]\nExecStart=/bin/true\n",
			verdict: verdictReads,
		},
		"crlf_line_ends": {
			text:    "[Service]\r\nExecStart=/bin/true\r\n",
			verdict: verdictReads,
		},
		"cr_ends_a_line": {
			text:    "[Service]\nExecStart=/bin/true\rfoo\n",
			verdict: verdictRefuses, says: ":3: Missing '=', ignoring line.",
			wantErr: `^line 3: "foo" is not a key=value line$`,
		},
		"lf_cr_is_one_line_end": {
			text:    "[Service]\n\rExecStart=/bin/true\n\rRestart always\n",
			verdict: verdictRefuses, says: ":3: Missing '=', ignoring line.",
			wantErr: `^line 3: "Restart always" is not a key=value line$`,
		},
		"nul_ends_a_line": {
			text:    "[Service]\nExecStart=/bin/true\x00foo\n",
			verdict: verdictRefuses, says: ":3: Missing '=', ignoring line.",
			wantErr: `^line 3: "foo" is not a key=value line$`,
		},
		"value_not_utf8": {
			text:    svc + "Description=\xff\n",
			verdict: verdictRefuses, says: ":3: String is not UTF-8 clean",
			wantErr: `^line 3: "Description=\\xff" is not UTF-8`,
		},
		// Keys and values.
		"missing_equals": {
			text:    svc + "Restart always\n",
			verdict: verdictRefuses, says: ":3: Missing '=', ignoring line.",
			wantErr: `^line 3: "Restart always" is not a key=value line$`,
		},
		"missing_key": {
			text:    svc + "=always\n",
			verdict: verdictRefuses, says: ":3: Missing key name before '=', ignoring line.",
			wantErr: `^line 3: "=always" has no key before "="`,
		},
		"key_with_a_space": {
			text:    svc + "Bad Key=1\n",
			verdict: verdictRefuses, says: ":3: Unknown key 'Bad Key' in section [Service], ignoring.",
			wantErr: `^line 3: "Bad Key" is not a key name`,
		},
		"key_after_form_feed": {
			text:    "[Service]\n\fExecStart=/bin/true\n",
			verdict: verdictRefuses, says: ":2: Unknown key '\fExecStart' in section [Service], ignoring.",
			wantErr: `^line 2: "\\fExecStart" is not a key name`,
		},
		"x_key_of_any_name": {
			text:    svc + "X-My Key.x=1\n",
			verdict: verdictReads,
		},
		"unknown_key": {
			text:    svc + "Restrat=always\n",
			verdict: verdictValue, says: ":3: Unknown key 'Restrat' in section [Service], ignoring.",
		},
		"spaces_around_key_and_value": {
			text:    "[Service]\n  ExecStart  =  /bin/true  \n",
			verdict: verdictReads,
		},
		"empty_values": {
			text:    svc + "Environment=\nExecStartPre=   \n",
			verdict: verdictReads,
		},
		// Quoting and specifiers.
		"quotes_equals_and_hash_in_values": {
			text:    "[Service]\nExecStart=/bin/sh -c \"echo 'a;b' # not a comment\"\nEnvironment=A=B=C \"D=# not a comment\"\n",
			verdict: verdictReads,
		},
		"unbalanced_quote": {
			text:    "[Service]\nExecStart=/bin/echo \"abc\n",
			verdict: verdictRefuses, says: ":2: Unbalanced quoting, ignoring",
			wantErr: `^line 2: "ExecStart=/bin/echo \\"abc" has an unbalanced quote \(systemd ignores the line;`,
		},
		"apostrophe_in_a_command_line": {
			text:    "[Service]\nExecStart=/bin/echo it's\n",
			verdict: verdictRefuses, says: ":2: Unbalanced quoting, ignoring",
			wantErr: `^line 2: "ExecStart=/bin/echo it's" has an unbalanced quote`,
		},
		"quote_in_the_middle_of_a_word": {
			text:    "[Service]\nExecStart=/bin/echo a\"b\n",
			verdict: verdictRefuses, says: ":2: Unbalanced quoting, ignoring",
			wantErr: `^line 2: "ExecStart=/bin/echo a\\"b" has an unbalanced quote`,
		},
		"unbalanced_quote_in_environment": {
			text:    svc + "Environment='A=1\n",
			verdict: verdictRefuses, says: ":3: Invalid syntax, ignoring",
			wantErr: `^line 3: "Environment='A=1" has an unbalanced quote`,
		},
		"unbalanced_quote_in_a_later_command": {
			text:    svc + "ExecStartPost=/bin/sh -c \"echo done\n",
			verdict: verdictRefuses, says: ":3: Unbalanced quoting, ignoring",
			wantErr: `^line 3: "ExecStartPost=/bin/sh -c \\"echo done" has an unbalanced quote`,
		},
		"quotes_closed_escaped_and_nested": {
			text:    "[Service]\nExecStart=/bin/echo \"it's\" a\\\"b 'say \"hi\"' \"x\"y\n",
			verdict: verdictReads,
		},
		"quote_in_free_text_is_a_character": {
			text:    "[Unit]\nDescription=the \"main server\n" + svc,
			verdict: verdictReads,
		},
		"specifiers": {
			text:    "[Service]\nExecStart=/bin/echo %n %N %p %i %% %H abc%\n",
			verdict: verdictReads,
		},
		"unknown_specifier": {
			text:    "[Service]\nExecStart=/bin/echo %Z\n",
			verdict: verdictRefuses, says: ":2: Failed to resolve unit specifiers in %Z",
			wantErr: `^line 2: "%Z" in ExecStart= is not a systemd specifier \(systemd ignores the line or refuses the unit; write %% for a % sign\)$`,
		},
		"date_format_needs_percent_percent": {
			text:    "[Service]\nExecStart=/bin/date +%F\n",
			verdict: verdictRefuses, says: ":2: Failed to resolve unit specifiers in +%F",
			wantErr: `^line 2: "%F" in ExecStart= is not a systemd specifier`,
		},
		"unknown_specifier_in_description": {
			text:    "[Unit]\nDescription=disk at 50%K\n" + svc,
			verdict: verdictRefuses, says: ":2: Failed to resolve unit specifiers in 'disk at 50%K'",
			wantErr: `^line 2: "%K" in Description= is not a systemd specifier`,
		},
		"digit_specifier_in_environment": {
			text:    svc + "Environment=RATE=5%0\n",
			verdict: verdictRefuses, says: ":3: Failed to resolve specifiers in RATE=5%0",
			wantErr: `^line 3: "%0" in Environment= is not a systemd specifier`,
		},
		"escaped_percent_and_percent_before_punctuation": {
			text:    "[Service]\nExecStart=/bin/date +%%F %%%n 100%. 5%-\nCPUQuota=50%\nEnvironment=\"A=50%\"\n",
			verdict: verdictReads,
		},
		"unknown_specifier_in_an_x_key": {
			text:    svc + "X-Note=%Z\n",
			verdict: verdictReads,
		},
		// Long lines.
		"line_of_3000_bytes": {
			text:    svc + long(3000) + "\n",
			verdict: verdictReads,
		},
		"longest_line": {
			text:    svc + long(unitLineMax-1) + "\n",
			verdict: verdictReads,
		},
		"line_too_long": {
			text:    svc + long(unitLineMax) + "\n",
			verdict: verdictRefuses, says: "No buffer space available",
			wantErr: `^line 3 is 1048576 bytes, longer than systemd reads \(at most 1048575;`,
		},
		"longest_continued_line": {
			text:    svc + long(unitLineMax/2-1) + "\\\n" + strings.Repeat("b", unitLineMax/2) + "\n",
			verdict: verdictReads,
		},
		"continued_line_too_long": {
			text:    svc + long(unitLineMax/2) + "\\\n" + strings.Repeat("b", unitLineMax/2) + "\n",
			verdict: verdictRefuses, says: "No buffer space available",
			wantErr: `^lines 3-4 are longer than systemd reads in a continued line \(at most 1048576 bytes`,
		},
		// Sections.
		"outside_section": {
			text:    "Restart=always\n" + svc,
			verdict: verdictRefuses, says: ":1: Assignment outside of section. Ignoring.",
			wantErr: `^line 1: "Restart=always" is outside any section`,
		},
		"unknown_section": {
			text:    svc + "[Servce]\nRestart=always\n",
			verdict: verdictRefuses, says: ":3: Unknown section 'Servce'. Ignoring.",
			wantErr: `^line 3: "\[Servce\]" is not a section systemd reads \(did you mean "\[Service\]"\?`,
		},
		"section_name_with_spaces": {
			text:    "[ Service ]\nExecStart=/bin/true\n",
			verdict: verdictRefuses, says: ":1: Unknown section ' Service '. Ignoring.",
			wantErr: `^line 1: "\[ Service \]" is not a section systemd reads \(did you mean "\[Service\]"\?`,
		},
		"section_header_with_text_after": {
			text:    "[Service] x\nExecStart=/bin/true\n",
			verdict: verdictRefuses, says: ":1: Invalid section header '[Service] x'",
			wantErr: `^line 1: "\[Service\] x" is not a section header`,
		},
		"section_header_with_a_quote": {
			text:    "[Ser\"vice]\nExecStart=/bin/true\n",
			verdict: verdictRefuses, says: ":1: Bad characters in section header",
			wantErr: `^line 1: section header "\[Ser\\"vice\]" has a quote`,
		},
		"x_section_is_not_read": {
			text:    svc + "[X-Fleet]\njust words\nMachineOf=a\n",
			verdict: verdictReads,
		},
		"x_section_must_be_utf8": {
			text:    svc + "[X-Fleet]\nA=\xff\n",
			verdict: verdictRefuses, says: ":4: String is not UTF-8 clean",
			wantErr: `^line 4: "A=\\xff" is not UTF-8`,
		},
		"section_of_another_type": {
			text:    svc + "[Socket]\nListenStream=80\n",
			verdict: verdictRefuses, says: ":3: Unknown section 'Socket'. Ignoring.",
			wantErr: `^line 3: "\[Socket\]" is not read in a .service unit \(systemd ignores it as an unknown section; a service's settings go in \[Service\]\)$`,
		},
		"every_section_of_a_service": {
			text:    "[Unit]\nDescription=x\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
			verdict: verdictReads,
		},
	}
}

// TestCheckUnitTextAgreesWithSystemd: checkUnitText refuses the texts
// systemd refuses as malformed, with an error naming the line, and
// accepts the rest.
func TestCheckUnitTextAgreesWithSystemd(t *testing.T) {
	t.Parallel()
	tests := unitTextCases()
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := checkUnitTextOf("service", tc.text, false) // as kplay-t.service
			if tc.verdict != verdictRefuses {
				if err != nil {
					t.Fatalf("got %v, want no error: systemd %s it", err, tc.verdict)
				}
				return
			}
			if err == nil {
				t.Fatalf("got no error, want one matching %q: systemd refuses it (%s)", tc.wantErr, tc.says)
			}
			if !regexp.MustCompile(tc.wantErr).MatchString(err.Error()) {
				t.Errorf("got %q, want a match for %q", err, tc.wantErr)
			}
		})
	}
}

// TestUnitTextCasesMatchSystemdAnalyze runs systemd-analyze verify on
// each text of unitTextCases, so that the recorded verdicts cannot drift
// from systemd's.
func TestUnitTextCasesMatchSystemdAnalyze(t *testing.T) {
	t.Parallel()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed; the verdicts stay as recorded")
	}
	tests := unitTextCases()
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out := systemdAnalyzeVerify(t.Context(), t, analyze, tc.text)
			if got := classifyVerify(out); got != tc.verdict {
				t.Errorf("systemd-analyze verify %s it, recorded %s; its output:\n%s", got, tc.verdict, out)
			}
			if !strings.Contains(out, tc.says) {
				t.Errorf("systemd-analyze verify does not say %q; its output:\n%s", tc.says, out)
			}
		})
	}
}

// systemdAnalyzeVerify writes text as kplay-t.service in a fresh directory
// and returns what systemd-analyze verify prints of it, with the
// directory cut from the file name ("kplay-t.service:3: ...").
func systemdAnalyzeVerify(ctx context.Context, t *testing.T, analyze, text string) string {
	t.Helper()
	return systemdAnalyzeVerifyAs(ctx, t, analyze, "kplay-t.service", text)
}

// systemdAnalyzeVerifyAs is systemdAnalyzeVerify for the unit unit.
func systemdAnalyzeVerifyAs(ctx context.Context, t *testing.T, analyze, unit, text string) string {
	t.Helper()
	dir := t.TempDir()
	name := filepath.Join(dir, unit)
	if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, analyze, "verify", "--man=no", name)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("run systemd-analyze verify: %v", err)
		}
	}
	return strings.ReplaceAll(out.String(), dir+"/", "")
}

var (
	verifyLinePattern  = regexp.MustCompile(`^kplay-t\.service:\d+: (.*)$`)
	verifyUnknownKey   = regexp.MustCompile(`^Unknown key '(.*)' in section \[.*\], ignoring\.$`)
	verifyParserRefuse = regexp.MustCompile(`^(Unbalanced quoting, ignoring: .*|Invalid syntax, ignoring: .*|Failed to resolve (unit )?specifiers in .*|Missing '=', ignoring line\.|Missing key name before '=', ignoring line\.|Assignment outside of section\. Ignoring\.|Unknown section '.*'\. Ignoring\.|Invalid section header '.*'|Bad characters in section header '.*'|String is not UTF-8 clean, ignoring assignment: .*|(Continuation line|Line) too long)$`)
	verifyLoadRefuse   = regexp.MustCompile(`^Unit kplay-t\.service failed to load properly, please adjust/correct and reload service manager: (Bad message|Invalid argument|No buffer space available)$`)
)

// classifyVerify maps systemd-analyze verify's output to a verdict as
// systemdVerdict describes. Lines that do not name kplay-t.service are
// about the machine, not the text, and are not counted.
func classifyVerify(out string) systemdVerdict {
	verdict := verdictReads
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "kplay-t.service") {
			continue
		}
		if verifyLoadRefuse.MatchString(line) {
			return verdictRefuses
		}
		m := verifyLinePattern.FindStringSubmatch(line)
		if m == nil {
			verdict = verdictValue // "Unit configuration has fatal error" and the like
			continue
		}
		if verifyParserRefuse.MatchString(m[1]) {
			return verdictRefuses
		}
		if k := verifyUnknownKey.FindStringSubmatch(m[1]); k != nil && !keyPattern.MatchString(k[1]) {
			return verdictRefuses
		}
		verdict = verdictValue
	}
	return verdict
}

// TestGoSystemdRefusesWhatSystemdReads documents why checkUnitText does
// not ask go-systemd's parser: it refuses texts systemd reads. If this
// fails, go-systemd has changed; update checkUnitText's comment.
func TestGoSystemdRefusesWhatSystemdReads(t *testing.T) {
	t.Parallel()
	cases := unitTextCases()
	tests := []string{
		"issue_comment_inside_continuation", // the next line is read as a key
		"line_of_3000_bytes",                // its limit is 2048 bytes
		"x_section_is_not_read",             // a line without "="
		"lone_backslash_line",               // a key named "\"
	}
	for _, name := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tc := cases[name]
			if tc.verdict != verdictReads {
				t.Fatalf("systemd %s it; this test is for texts systemd reads", tc.verdict)
			}
			if _, err := unit.DeserializeOptions(strings.NewReader(tc.text)); err == nil {
				t.Error("go-systemd reads it now")
			}
			if err := checkUnitText(tc.text, false); err != nil {
				t.Errorf("checkUnitText: got %v, want no error", err)
			}
		})
	}
}

// TestCheckUnitTextHidesSensitiveLines: with hide, no error quotes the
// line, and each still names it.
func TestCheckUnitTextHidesSensitiveLines(t *testing.T) {
	t.Parallel()
	const secret = "s3cret"
	tests := map[string]struct{ text, wantErr string }{
		"missing_equals":    {"[Service]\nPassword s3cret\n", `^line 2: \(not shown: the unit is sensitive\) is not a key=value line$`},
		"joined_lines":      {"[Service]\nPassword \\\n s3cret\n", `^lines 2-3: \(not shown`},
		"missing_key":       {"[Service]\n=s3cret\n", `^line 2: \(not shown`},
		"outside_section":   {"A=s3cret\n", `^line 1: \(not shown`},
		"bad_header":        {"[s3cret\n", `^line 1: \(not shown`},
		"bad_header_chars":  {"[s3cret\"]\n", `^line 1: section header \(not shown`},
		"unknown_section":   {"[s3cret]\n", `^line 1: \(not shown`},
		"key_name":          {"[Service]\ns3cret x=1\n", `^line 2: \(not shown`},
		"not_utf8":          {"[Service]\nA=s3cret\xff\n", `^line 2: \(not shown`},
		"line_too_long":     {"[Service]\nA=s3cret" + strings.Repeat("a", unitLineMax) + "\n", `^line 2 is`},
		"joined_too_long":   {"[Service]\nA=s3cret\\\n" + strings.Repeat("a", unitLineMax-8) + "\n", `^lines 2-3 are`},
		"continued_at_end":  {"[Service]\ns3cret \\", `^line 2: \(not shown`},
		"in_a_continuation": {"[Service]\nA=1 \\\n# c\n s3cret\nB s3cret\n", `^line 5: \(not shown`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := checkUnitText(tc.text, true)
			if err == nil {
				t.Fatal("got no error")
			}
			if msg := err.Error(); strings.Contains(msg, secret) || !regexp.MustCompile(tc.wantErr).MatchString(msg) {
				t.Errorf("got %q, want a match for %q that does not quote the line", msg, tc.wantErr)
			}
		})
	}
}

// TestUnitTakesIssueExample: the text of issue 12, item 4 goes through
// unit() and dropin(), which kplay refused with `"--three" is not a
// key=value line`.
func TestUnitTakesIssueExample(t *testing.T) {
	t.Parallel()
	text := unitTextCases()["issue_comment_inside_continuation"].text
	mustEvaluate(t, "unit(\"x.service\", content = "+quote(text)+")\n"+
		"dropin(\"y.service\", \"10-x.conf\", "+quote(text)+")")
}

// TestUnknownSpecifiersAgreeWithSystemd holds unitSpecifiers to systemd:
// for every letter and digit X, systemd-analyze verify drops
// "ExecStart=/bin/echo %X" exactly when checkUnitText refuses it.
func TestUnknownSpecifiersAgreeWithSystemd(t *testing.T) {
	t.Parallel()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed; unitSpecifiers stays as recorded")
	}
	for c := range 128 {
		if !isASCIIAlnum(byte(c)) {
			continue
		}
		text := "[Service]\nExecStart=/bin/echo %" + string(rune(c)) + "\n"
		t.Run(string(rune(c)), func(t *testing.T) {
			t.Parallel()
			out := systemdAnalyzeVerify(t.Context(), t, analyze, text)
			systemdRefuses := classifyVerify(out) == verdictRefuses
			if err := checkUnitText(text, false); (err != nil) != systemdRefuses {
				t.Errorf("checkUnitText: %v; systemd-analyze verify says:\n%s", err, out)
			}
		})
	}
}

// keySection is the section a key of quotedKeys or noSpecifierKeys goes
// in, for a test text.
func keySection(key string) string {
	switch key {
	case "Documentation", "RequiresMountsFor":
		return "Unit"
	case "Symlinks", "TCPCongestion", "ExecStopPre":
		return "Socket"
	}
	return "Service"
}

// testUnitWith is a unit text with key=value in its section: a socket
// for a [Socket] key, else a service.
func testUnitWith(key, value string) (typ, text string) {
	switch section := keySection(key); section {
	case "Socket":
		return "socket", "[Socket]\nListenStream=/run/kplay-t.sock\n" + key + "=" + value + "\n"
	case "Unit":
		return "service", "[Unit]\n" + key + "=" + value + "\n[Service]\nExecStart=/bin/true\n"
	}
	return "service", "[Service]\nExecStart=/bin/true\n" + key + "=" + value + "\n"
}

// TestQuotedKeysAgreeWithSystemd: for each key of quotedKeys, systemd
// drops a line whose quote is left open, and checkUnitText refuses it;
// for free-text keys, both read it.
func TestQuotedKeysAgreeWithSystemd(t *testing.T) {
	t.Parallel()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed; quotedKeys stays as recorded")
	}
	keys := []string{"Description", "SyslogIdentifier", "SupplementaryGroups"}
	for k := range quotedKeys {
		keys = append(keys, k)
	}
	for _, key := range keys {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			typ, text := testUnitWith(key, `"/a b`)
			out := systemdAnalyzeVerifyAs(t.Context(), t, analyze, "kplay-t."+typ, text)
			systemdDrops := strings.Contains(out, "Unbalanced quoting") || strings.Contains(out, "Invalid syntax") ||
				strings.Contains(out, "Failed to extract") || strings.Contains(out, "Trailing garbage") || strings.Contains(out, "Failed to parse")
			if err := checkUnitTextOf(typ, text, false); (err != nil) != systemdDrops {
				t.Errorf("checkUnitText: %v; systemd-analyze verify says:\n%s", err, out)
			}
		})
	}
}

// TestSpecifierKeysAgreeWithSystemd: systemd resolves no specifier in
// the keys of noSpecifierKeys, and checkUnitText takes "%Z" there.
func TestSpecifierKeysAgreeWithSystemd(t *testing.T) {
	t.Parallel()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed; noSpecifierKeys stays as recorded")
	}
	for key := range noSpecifierKeys {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			typ, text := testUnitWith(key, "a%Zb")
			out := systemdAnalyzeVerifyAs(t.Context(), t, analyze, "kplay-t."+typ, text)
			if strings.Contains(out, "specifiers") {
				t.Errorf("systemd resolves specifiers in %s=:\n%s", key, out)
			}
			if err := checkUnitTextOf(typ, text, false); err != nil {
				t.Errorf("checkUnitText: %v", err)
			}
		})
	}
}
