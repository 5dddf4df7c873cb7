package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kplay-dev/kplay/builtins"
	"github.com/kplay-dev/kplay/playtest"
	"github.com/kplay-dev/kplay/ui"
)

func newTestCmd(o *options, stdout, stderr io.Writer) *cobra.Command {
	var (
		run     string
		update  bool
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "test [PATH...]",
		Short: "Run the tests of playbooks (*_test.star) against a sandbox",
		Long: `test runs every top-level test_* function of the *_test.star files that
PATHs name (files, or directories searched at any depth but testdata and
those starting with "." or "_"; no PATH is "."). A test may take t
(t.name, t.log, t.fail) and calls

  plan_of(playbook, vars = {}, root = None, etcd = {}, objects = [],
          tags = [], skip_tags = [])

which evaluates the playbook and checks it, as kplay check does, against a
sandbox: an offline root (a directory, a dict of path: content, or empty),
an etcd holding the etcd keys given and an API server holding the objects
given, both in memory, and no network. Paths are relative to the test
file's directory and must stay in the tree of the directory kplay test runs
in. It returns struct(steps, changed, written, removed, restarts, etcd,
objects, counts). converge_of(...) runs the playbook twice in memory and
returns struct(first, second, state); the second of an idempotent playbook
changes and restarts nothing; root = state starts a later plan from there.
A test may load() helper .star files; print() and t.log() show with -v.
Each test has a minute.

The assert module: eq(got, want), ne(got, other), true(cond),
contains(container, item), fails(fn, regexp) and golden(value, path); each
takes msg = "..." too. A test stops at its first failed assertion, which
the report names by its .star file:line:col. A missing golden fails;
--update writes every golden the tests compare with (a file named
*.golden in the test's directory tree).

No test needs root, a server or the network. Exit status: 0 when every
test passed, 1 otherwise. docs/testing.md has the whole story.`,
		Example: `  kplay test playbooks/
  kplay test playbooks/master_test.star --run 'calico' -v
  kplay test playbooks/ --update     # rewrite the goldens, then review git diff`,
		ValidArgsFunction: starFiles,
		RunE: func(cmd *cobra.Command, args []string) error {
			var re *regexp.Regexp
			if run != "" {
				var err error
				if re, err = regexp.Compile(run); err != nil {
					return fmt.Errorf("--run %q: %v", run, err)
				}
			}
			paths, err := starPaths(args)
			if err != nil {
				return err
			}
			var files []string
			for _, p := range paths {
				if playtest.IsTestFile(p) {
					files = append(files, p)
				}
			}
			if len(files) == 0 {
				return fmt.Errorf("no *_test.star file in %s", strings.Join(orDot(args), " "))
			}
			wd, err := os.Getwd()
			if err != nil {
				return err
			}
			opts := playtest.Options{Files: files, Run: re, Update: update, Tree: wd, Builtins: builtins.Predeclared()}
			if verbose && o.output == "text" {
				opts.Log = func(test, msg string) {
					fmt.Fprintf(stdout, "    %s: %s\n", ui.Visible(test), ui.VisibleMessage(msg))
				}
			}
			results := playtest.Run(cmd.Context(), opts)
			if len(results) == 0 {
				if re != nil {
					return fmt.Errorf("test: no test matched --run %q", run)
				}
				return fmt.Errorf("test: no test_* function in %s", strings.Join(files, " "))
			}
			if o.output == "json" {
				err = writeTestJSON(stdout, results)
			} else {
				writeTestText(stdout, results, verbose)
			}
			if err != nil {
				return err
			}
			failed := 0
			for _, r := range results {
				if !r.Pass {
					failed++
				}
			}
			if failed > 0 {
				return fmt.Errorf("test: %d of %s failed", failed, plural(len(results), "test", "tests"))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&run, "run", "", "run only the tests whose name matches this regular expression")
	cmd.Flags().BoolVar(&update, "update", false, "write the goldens the tests compare with, instead of comparing")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list every test, passed too, and what t.log() prints")
	return cmd
}

func orDot(args []string) []string {
	if len(args) == 0 {
		return []string{"."}
	}
	return args
}

// writeTestText prints results as go test does: a line for each failed
// test (each test with -v) with the position and message of its failure,
// then a line for each file: ok or FAIL, and how many tests.
func writeTestText(w io.Writer, results []playtest.Result, verbose bool) {
	type tally struct{ n, failed int }
	var order []string
	byFile := map[string]*tally{}
	for _, r := range results {
		t := byFile[r.File]
		if t == nil {
			t = &tally{}
			byFile[r.File] = t
			order = append(order, r.File)
		}
		if r.Test != "" {
			t.n++
		}
		switch {
		case !r.Pass:
			t.failed++
			name := r.Test
			if name == "" {
				name = "(loading the file)"
			}
			msg := ui.VisibleMessage(r.Message)
			msg = strings.ReplaceAll(msg, "\n", "\n        ")
			pos := ""
			if r.Position != "" {
				pos = ui.Visible(r.Position) + ": "
			}
			fmt.Fprintf(w, "--- FAIL: %s  %s%s\n", ui.Visible(name), pos, msg)
		case verbose:
			fmt.Fprintf(w, "--- PASS: %s (%.2fs)\n", ui.Visible(r.Test), r.Elapsed.Seconds())
		}
	}
	for _, f := range order {
		t := byFile[f]
		word := "ok  "
		if t.failed > 0 {
			word = "FAIL"
		}
		detail := plural(t.n, "test", "tests")
		if t.failed > 0 {
			detail += fmt.Sprintf(", %d failed", t.failed)
		}
		fmt.Fprintf(w, "%s\t%s\t(%s)\n", word, ui.Visible(f), detail)
	}
}

// testDocument is what kplay test --output json prints.
type testDocument struct {
	Tests  []playtest.Result `json:"tests"`
	Passed int               `json:"passed"`
	Failed int               `json:"failed"`
}

func writeTestJSON(w io.Writer, results []playtest.Result) error {
	doc := testDocument{Tests: results}
	if doc.Tests == nil {
		doc.Tests = []playtest.Result{}
	}
	for _, r := range results {
		if r.Pass {
			doc.Passed++
		} else {
			doc.Failed++
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
