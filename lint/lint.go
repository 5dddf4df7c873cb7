// Package lint formats playbooks and finds problems in them, for kplay
// fmt and kplay lint. Formatting is buildifier's, the formatter of the
// Starlark world (github.com/bazelbuild/buildtools/build, a .star file
// formatted as a generic Starlark file: four-space indents, loads at the
// top and sorted, one argument a line when a call does not fit). The
// findings are buildifier's warnings that make sense outside Bazel
// (Warnings), two rules on load statements, and kplay's own rules on the
// evaluated plan (builtins.Lint, VarDocs).
package lint

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/bazelbuild/buildtools/build"
	"github.com/bazelbuild/buildtools/warn"

	"github.com/kplay-dev/kplay/builtins"
	"github.com/kplay-dev/kplay/engine"
)

// Finding is one problem in a playbook: where, the rule's name, and what
// is wrong and what to do.
type Finding struct {
	Pos     engine.Pos
	Rule    string
	Message string
}

func (f Finding) String() string { return fmt.Sprintf("%s: %s (%s)", f.Pos, f.Message, f.Rule) }

// Warnings are the buildifier warnings kplay lint reports: those about
// Starlark itself, not about Bazel's rules, BUILD files or its
// libraries. The names are buildifier's (its WARNINGS.md explains each).
var Warnings = []string{
	"confusing-name",        // l, I, O as names
	"dict-method-named-arg", // d.get(key = x): dict methods take no names
	"integer-division",      // / on integers: use //
	"keyword-positional-params",
	"list-append",        // x += [y]: use x.append(y)
	"load",               // a loaded name that is never used
	"name-conventions",   // lower_snake_case, UPPER_SNAKE_CASE for constants
	"no-effect",          // a statement whose value is thrown away
	"redefined-variable", // a global assigned twice
	"return-value",       // a function returning a value on some paths only
	"string-iteration",   // for c in "text"
	"uninitialized",      // a variable used before it is set
	"unreachable",        // code after return, fail(), break or continue
	"unused-variable",    // a local variable that is never read
}

// Format returns src, the text of the .star file filename, formatted as
// buildifier formats a generic Starlark file. A syntax error is returned
// as filename:line:col: message.
func Format(filename string, src []byte) ([]byte, error) {
	f, err := parse(filename, src)
	if err != nil {
		return nil, err
	}
	return build.Format(f), nil
}

// parse parses src as buildifier does, after checking that it is a
// playbook's Starlark (engine.CheckSyntax): buildifier's parser takes
// some text that kplay refuses, such as the escape "\N" in a string,
// which formatting would turn into text kplay takes ("\\N").
func parse(filename string, src []byte) (*build.File, error) {
	if err := engine.CheckSyntax(filename, src); err != nil {
		return nil, err
	}
	f, err := build.ParseDefault(filename, src)
	var perr build.ParseError
	if errors.As(err, &perr) {
		return nil, fmt.Errorf("%s:%d:%d: %s", filename, perr.Pos.Line, perr.Pos.LineRune, perr.Message)
	}
	return f, err
}

// Source returns the findings of buildifier's Warnings and of the load
// rules in src, the text of the .star file filename, sorted by position.
// The load rules are kplay's: "load-on-top", a load after other
// statements, and "load-order", loads not sorted by module, which
// buildifier no longer reports but fixes when it formats (kplay fmt).
func Source(filename string, src []byte) ([]Finding, error) {
	out, _, err := SourceLoads(filename, src)
	return out, err
}

// SourceLoads is Source, and also returns the modules that src loads, as
// written in its load statements, from the same parse.
func SourceLoads(filename string, src []byte) ([]Finding, []string, error) {
	f, err := parse(filename, src)
	if err != nil {
		return nil, nil, err
	}
	var loads []string
	for _, s := range f.Stmt {
		if l, ok := s.(*build.LoadStmt); ok {
			loads = append(loads, l.Module.Value)
		}
	}
	var out []Finding
	for _, w := range warn.FileWarnings(f, Warnings, nil, warn.ModeWarn, nil) {
		// Some messages go on over lines of Bazel advice: one line.
		msg := strings.Join(strings.Fields(w.Message), " ")
		out = append(out, Finding{Pos: engine.Pos{File: filename, Line: w.Start.Line, Col: w.Start.LineRune}, Rule: w.Category, Message: msg})
	}
	out = append(out, loadRules(filename, f)...)
	Sort(out)
	return out, loads, nil
}

// loadRules finds loads after other statements and loads out of order.
func loadRules(filename string, f *build.File) []Finding {
	var out []Finding
	other := false // a statement other than a docstring, comment or load came
	var prev *build.LoadStmt
	for _, s := range f.Stmt {
		switch s := s.(type) {
		case *build.LoadStmt:
			pos := engine.Pos{File: filename, Line: s.Load.Line, Col: s.Load.LineRune}
			if other {
				out = append(out, Finding{Pos: pos, Rule: "load-on-top", Message: fmt.Sprintf("load(%q) comes after other statements: loads go at the top of the file (kplay fmt moves it)", s.Module.Value)})
			} else if prev != nil && s.Module.Value < prev.Module.Value {
				out = append(out, Finding{Pos: pos, Rule: "load-order", Message: fmt.Sprintf("load(%q) comes after load(%q): loads are sorted by module (kplay fmt sorts them)", s.Module.Value, prev.Module.Value)})
			}
			prev = s
		case *build.CommentBlock, *build.StringExpr:
			// A string statement is a docstring to buildifier, which
			// keeps loads after it where they are.
		default:
			other = true
		}
	}
	return out
}

// Plan returns kplay's findings on an evaluated playbook: those of
// builtins.Lint and VarDocs, with the values of sensitive vars redacted
// from their messages as from every other output.
func Plan(p *engine.Plan) []Finding {
	var out []Finding
	for _, f := range builtins.Lint(p) {
		out = append(out, Finding(f))
	}
	out = append(out, VarDocs(p)...)
	for i := range out {
		out[i].Message = p.Secrets.Redact(out[i].Message)
	}
	Sort(out)
	return out
}

// Suppressed reports whether src, the text of the file of f, silences f
// with a comment on f's line or the line above it that says
// "disable=RULE" (with RULE f's rule, alone or in a comma-separated
// list), as buildifier's "# buildifier: disable=unused-variable" does.
// "# kplay: disable=tls-mode" reads better for kplay's own rules; both
// forms silence any rule.
func Suppressed(src []byte, f Finding) bool {
	lines := strings.Split(string(src), "\n")
	for _, n := range []int{f.Pos.Line, f.Pos.Line - 1} {
		if n < 1 || n > len(lines) {
			continue
		}
		_, comment, ok := strings.Cut(lines[n-1], "#")
		if !ok {
			continue
		}
		for _, field := range strings.Fields(comment) {
			if rules, ok := strings.CutPrefix(field, "disable="); ok && slices.Contains(strings.Split(rules, ","), f.Rule) {
				return true
			}
		}
	}
	return false
}

// VarDocs finds each var() whose doc is empty: "var-doc". kplay vars
// lists the docs; a var without one leaves its user to read the
// playbook.
func VarDocs(p *engine.Plan) []Finding {
	var out []Finding
	for _, d := range p.Vars {
		if d.Doc == "" {
			out = append(out, Finding{Pos: d.Pos, Rule: "var-doc", Message: fmt.Sprintf("var %q has no doc: say what it is and its form (doc = \"...\"), which kplay vars shows", d.Name)})
		}
	}
	return out
}

// Sort orders findings by file, line, column, rule and message.
func Sort(fs []Finding) {
	slices.SortFunc(fs, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col),
			cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Message, b.Message))
	})
}
