//go:build !kplay_demo

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"go.starlark.net/syntax"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/lint"
	"github.com/kplay-dev/kplay/playtest"
	"github.com/kplay-dev/kplay/ui"
)

// maxStarFile is the largest .star file fmt and lint read: far more
// than any playbook, little enough to hold in memory.
const maxStarFile = 16 << 20

// readStar reads the .star file p, or what a symlink at p leads to: a
// regular file of at most maxStarFile bytes.
func readStar(p string) ([]byte, error) {
	src, err := host.ReadRegular(nil, p, maxStarFile)
	var nr *host.NotRegularError
	var pe *fs.PathError
	switch {
	case err == nil:
		return src, nil
	case errors.As(err, &nr):
		return nil, fmt.Errorf("%s: not a regular file", p)
	case errors.As(err, &pe):
		return nil, err // it names the path
	}
	return nil, fmt.Errorf("%s: %w", p, err)
}

func newFmtCmd(stdout, stderr io.Writer) *cobra.Command {
	var diff, write bool
	cmd := &cobra.Command{
		Use:   "fmt [-d | -w] [PATH...]",
		Short: "Format playbooks as buildifier formats Starlark",
		Long: `fmt formats .star files as buildifier, the formatter of the Starlark world,
formats a generic Starlark file: four-space indents, loads at the top and
sorted, one argument a line when a call does not fit on one. A PATH is a
file, or a directory whose .star files are formatted at any depth (not in
testdata or in directories starting with "." or "_"); no PATH is ".", and
- is standard input.

Without -d or -w, fmt prints the formatted files. -d prints a unified diff
of each file that is not formatted and exits 1 if there is one, for CI;
-w rewrites those files in place, as gofmt -w does (the same file, with its
owner, mode and links; through a symlink, its target). A syntax error is
reported as file:line:col, as check reports it, and exits 1.`,
		Example: `  kplay fmt -d playbooks     # in CI: exit 1 and a diff if a playbook is not formatted
  kplay fmt -w playbooks     # format them
  kplay fmt site.star        # print site.star formatted`,
		ValidArgsFunction: starFiles,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && args[0] == "-" {
				return formatStdin(cmd.InOrStdin(), stdout, diff, write)
			}
			files, err := starPaths(args)
			if err != nil {
				return err
			}
			var unformatted []string
			var failed error
			for _, p := range files {
				src, err := readStar(p)
				if err == nil {
					var out []byte
					if out, err = lint.Format(p, src); err == nil {
						err = formatOne(p, src, out, diff, write, stdout)
						if !bytes.Equal(src, out) {
							unformatted = append(unformatted, p)
						}
					}
				}
				if err != nil {
					fmt.Fprintln(stderr, ui.VisibleMessage(err.Error()))
					failed = errors.New("fmt: some files could not be formatted (above)")
				}
			}
			switch {
			case failed != nil:
				return failed
			case diff && len(unformatted) > 0:
				return fmt.Errorf("fmt: %s not formatted: kplay fmt -w formats %s", plural(len(unformatted), "file is", "files are"), ui.Visible(strings.Join(unformatted, " ")))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&diff, "diff", "d", false, "print a diff of each file that is not formatted, and exit 1 if there is one")
	cmd.Flags().BoolVarP(&write, "write", "w", false, "rewrite the files that are not formatted")
	cmd.MarkFlagsMutuallyExclusive("diff", "write")
	return cmd
}

// formatStdin formats the playbook text on in, as fmt - does: it
// prints it formatted, or with diff a diff and an error if it is not
// formatted.
func formatStdin(in io.Reader, stdout io.Writer, diff, write bool) error {
	if write {
		return errors.New("fmt: -w needs files to write: not -")
	}
	src, err := io.ReadAll(io.LimitReader(in, maxStarFile+1))
	if err != nil {
		return err
	}
	if len(src) > maxStarFile {
		return fmt.Errorf("fmt: standard input is larger than %s", engine.ByteSize(uint64(maxStarFile)))
	}
	out, err := lint.Format("<stdin>", src)
	if err != nil {
		return err
	}
	if err := formatOne("<stdin>", src, out, diff, false, stdout); err != nil {
		return err
	}
	if diff && !bytes.Equal(src, out) {
		return errors.New("fmt: standard input is not formatted")
	}
	return nil
}

// formatOne does what fmt's flags say with the file p, whose text src
// formats as out.
func formatOne(p string, src, out []byte, diff, write bool, stdout io.Writer) error {
	switch {
	case diff:
		if !bytes.Equal(src, out) {
			_, err := io.WriteString(stdout, ui.VisibleText(ui.FileDiff(ui.Visible(p), src, out)))
			return err
		}
	case write:
		if !bytes.Equal(src, out) {
			return writeInPlace(p, src, out)
		}
	default:
		_, err := stdout.Write(out)
		return err
	}
	return nil
}

// writeInPlace writes data over the file p, as gofmt -w does: the same
// file (its owner, mode and hard links stay; a symlink's target is
// written), with a copy of the old text kept beside it until the write
// is done, and named if the write fails.
func writeInPlace(p string, old, data []byte) error {
	backup, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".fmt-backup-*")
	if err != nil {
		return err
	}
	_, err = backup.Write(old)
	if cerr := backup.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(backup.Name())
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err == nil {
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("%w (the old text is in %s)", err, backup.Name())
	}
	return os.Remove(backup.Name())
}

func newLintCmd(o *options, stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "lint [PATH...]",
		Short: "Report likely mistakes in playbooks",
		Long: `lint reports likely mistakes in .star files (PATHs as for kplay fmt), one
line each, file:line:col: message (rule), and exits 1 if there is one.

From buildifier's warnings, those about Starlark itself: ` + strings.Join(lint.Warnings, ", ") + `.
kplay's own:
  load-on-top        a load after other statements
  load-order         loads not sorted by module
  var-doc            a var() without a doc
  tls-mode           a file() under /etc/kubernetes/ssl without mode=
  restart-on-change  a restart whose on_change names a file that is not the
                     unit's file or drop-in and is not named in one

The last three look at the evaluated playbook: each file that no other
file given loads is evaluated as a playbook, with the vars given by --var
and --vars-file (a missing var gets a placeholder value); an error that
stops the evaluation is a finding of its own (eval); so is a syntax error
(syntax). A comment "# kplay: disable=RULE" (or buildifier's "# buildifier:
disable=RULE") on the line or the line above silences a finding of any rule.`,
		Example: `  kplay lint playbooks
  kplay lint site.star --output json`,
		ValidArgsFunction: starFiles,
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := starPaths(args)
			if err != nil {
				return err
			}
			findings, err := lintFiles(cmd, o, files)
			if err != nil {
				return err
			}
			if o.output == "json" {
				if err := writeFindingsJSON(stdout, findings); err != nil {
					return err
				}
			} else {
				for _, f := range findings {
					fmt.Fprintln(stdout, ui.Visible(f.String()))
				}
			}
			if len(findings) > 0 {
				return fmt.Errorf("lint: %s", plural(len(findings), "problem", "problems"))
			}
			return nil
		},
	}
}

// lintFiles returns the findings in files: each file's source findings
// (a syntax error is one, rule "syntax"), then the plan findings of each
// file that no other of them loads, evaluated as a playbook, or the
// error that stopped its evaluation (rule "eval"). A finding that two
// playbooks share (in a library both load) is reported once; one that a
// "disable=RULE" comment silences (lint.Suppressed) not at all.
func lintFiles(cmd *cobra.Command, o *options, files []string) ([]lint.Finding, error) {
	var findings []lint.Finding
	loaded := map[string]bool{}
	sources := map[string][]byte{}
	for _, p := range files {
		src, err := readStar(p)
		if err != nil {
			return nil, err
		}
		sources[filepath.Clean(p)] = src
		fs, loads, err := lint.SourceLoads(p, src)
		if err != nil {
			findings = append(findings, syntaxFinding(p, err))
			continue
		}
		findings = append(findings, fs...)
		for _, m := range loads {
			loaded[filepath.Join(filepath.Dir(p), m)] = true
		}
	}
	for _, p := range files {
		// A module is linted where it is loaded; a test file
		// (kplay test) is not a playbook.
		if loaded[filepath.Clean(p)] || playtest.IsTestFile(p) {
			continue
		}
		findings = append(findings, evalFindings(cmd, o, p)...)
	}
	seen := map[string]bool{}
	var out []lint.Finding
	for _, f := range findings {
		src, ok := sources[filepath.Clean(f.Pos.File)]
		if !ok {
			src, _ = readStar(f.Pos.File) // a file loaded from one given
			sources[filepath.Clean(f.Pos.File)] = src
		}
		if !seen[f.String()] && !lint.Suppressed(src, f) {
			seen[f.String()] = true
			out = append(out, f)
		}
	}
	lint.Sort(out)
	return out, nil
}

// syntaxFinding is the finding of the syntax error err in the file p.
func syntaxFinding(p string, err error) lint.Finding {
	var serr syntax.Error
	if errors.As(err, &serr) {
		return lint.Finding{Pos: engine.Pos{File: p, Line: int(serr.Pos.Line), Col: int(serr.Pos.Col)}, Rule: "syntax", Message: serr.Msg}
	}
	return lint.Finding{Pos: engine.Pos{File: p, Line: 1, Col: 1}, Rule: "syntax", Message: err.Error()}
}

// evalFindings evaluates the playbook p with o's vars and returns
// lint.Plan's findings, or the error that stopped the evaluation, whose
// text is redacted of secrets as Evaluate's errors are.
func evalFindings(cmd *cobra.Command, o *options, p string) []lint.Finding {
	plan, err := evaluate(cmd.Context(), o, p, io.Discard, true)
	stopped, placeholder := err, false
	if err == nil && plan.Stopped != nil {
		stopped, placeholder = plan.Stopped, true
	}
	if stopped == nil {
		return lint.Plan(plan)
	}
	f := lint.Finding{Pos: engine.Pos{File: p, Line: 1, Col: 1}, Rule: "eval", Message: stopped.Error()}
	var perr *engine.Error
	if errors.As(stopped, &perr) {
		f.Pos = perr.Pos
		// The redacted text, without the position it starts with.
		f.Message = strings.TrimPrefix(f.Message, perr.Pos.String()+": ")
	}
	if placeholder {
		f.Message += " (evaluation stopped here, most likely at the placeholder of a var without a value: give the playbook's required vars with --var to lint the rest)"
	}
	var found []lint.Finding
	if plan != nil {
		found = lint.Plan(plan) // the steps before the error
	}
	return append(found, f)
}

type jsonFinding struct {
	Position string `json:"position"`
	Rule     string `json:"rule"`
	Message  string `json:"message"`
}

func writeFindingsJSON(w io.Writer, findings []lint.Finding) error {
	out := make([]jsonFinding, 0, len(findings))
	for _, f := range findings {
		out = append(out, jsonFinding{Position: f.Pos.String(), Rule: f.Rule, Message: f.Message})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
