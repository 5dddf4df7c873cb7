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

	"github.com/bazelbuild/buildtools/build"
	"github.com/spf13/cobra"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/lint"
	"github.com/kplay-dev/kplay/ui"
)

// maxStarFile is the largest .star file fmt and lint read: far more
// than any playbook, little enough to hold in memory.
const maxStarFile = 16 << 20

// starPaths returns the .star files that args name: a file as it is
// (whatever its name), a directory's .star files at any depth, in
// lexical order, leaving out directories whose names start with "." or
// "_" and those named testdata, as the go tool does. No args is ".".
func starPaths(args []string) ([]string, error) {
	if len(args) == 0 {
		args = []string{"."}
	}
	var files []string
	for _, arg := range args {
		fi, err := os.Lstat(arg)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			files = append(files, arg)
			continue
		}
		err = filepath.WalkDir(arg, func(p string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case d.IsDir() && p != arg && (strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_") || d.Name() == "testdata"):
				return filepath.SkipDir
			case !d.IsDir() && d.Type().IsRegular() && strings.HasSuffix(d.Name(), ".star"):
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return files, nil
}

// readStar reads the .star file p: a regular file of at most maxStarFile
// bytes (a symlink is refused: fmt -w would replace it with a file).
func readStar(p string) ([]byte, error) {
	src, err := host.ReadRegular(nil, p, maxStarFile)
	var nr *host.NotRegularError
	if errors.As(err, &nr) {
		return nil, fmt.Errorf("%s: not a regular file: give the file it stands for", p)
	}
	return src, err
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
testdata or in directories starting with "." or "_"); no PATH is ".".

Without -d or -w, fmt prints the formatted files. -d prints a unified diff
of each file that is not formatted and exits 1 if there is one, for CI;
-w rewrites those files in place. A syntax error is reported as
file:line:col and exits 1.`,
		Example: `  kplay fmt -d playbooks     # in CI: exit 1 and a diff if a playbook is not formatted
  kplay fmt -w playbooks     # format them
  kplay fmt site.star        # print site.star formatted`,
		ValidArgsFunction: starFiles,
		RunE: func(cmd *cobra.Command, args []string) error {
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

// formatOne does what fmt's flags say with the file p, whose text src
// formats as out.
func formatOne(p string, src, out []byte, diff, write bool, stdout io.Writer) error {
	switch {
	case diff:
		if !bytes.Equal(src, out) {
			_, err := io.WriteString(stdout, ui.VisibleText(ui.FileDiff(p, src, out)))
			return err
		}
	case write:
		if !bytes.Equal(src, out) {
			return writeInPlace(p, out)
		}
	default:
		_, err := stdout.Write(out)
		return err
	}
	return nil
}

// writeInPlace replaces the file p with data, keeping its mode: a temp
// file beside it, renamed over it, so that an interrupted fmt -w leaves
// the old file or the new one.
func writeInPlace(p string, data []byte) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".fmt-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // once renamed, there is nothing there
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// plural is "1 file is" or "2 files are", with one and many the words
// after the number.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
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
stops the evaluation is a finding of its own (eval). The findings of
buildifier's warnings can be silenced as buildifier's are, with a comment
"# buildifier: disable=RULE" on the line.`,
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

// lintFiles returns the findings in files: each file's source findings,
// then the plan findings of each file that no other of them loads,
// evaluated as a playbook, or the error that stopped its evaluation
// (rule "eval"); a finding that two playbooks share (in a library both
// load) is reported once.
func lintFiles(cmd *cobra.Command, o *options, files []string) ([]lint.Finding, error) {
	var findings []lint.Finding
	loaded := map[string]bool{}
	for _, p := range files {
		src, err := readStar(p)
		if err != nil {
			return nil, err
		}
		fs, err := lint.Source(p, src)
		if err != nil {
			return nil, err
		}
		findings = append(findings, fs...)
		f, err := build.ParseDefault(p, src)
		if err != nil {
			return nil, err
		}
		for _, s := range f.Stmt {
			if l, ok := s.(*build.LoadStmt); ok {
				loaded[filepath.Join(filepath.Dir(p), l.Module.Value)] = true
			}
		}
	}
	seen := map[string]bool{}
	for _, f := range findings {
		seen[f.String()] = true
	}
	for _, p := range files {
		if loaded[filepath.Clean(p)] {
			continue
		}
		plan, err := evaluate(cmd.Context(), o, p, io.Discard, true)
		var found []lint.Finding
		var perr *engine.Error
		switch {
		case errors.As(err, &perr):
			found = []lint.Finding{{Pos: perr.Pos, Rule: "eval", Message: perr.Err.Error()}}
		case err != nil:
			found = []lint.Finding{{Pos: engine.Pos{File: p, Line: 1, Col: 1}, Rule: "eval", Message: err.Error()}}
		default:
			found = lint.Plan(plan)
		}
		for _, f := range found {
			if !seen[f.String()] {
				seen[f.String()] = true
				findings = append(findings, f)
			}
		}
	}
	lint.Sort(findings)
	return findings, nil
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
