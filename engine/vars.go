package engine

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.starlark.net/starlark"
)

// VarTypes lists the types var() accepts, in the order help text shows them.
var VarTypes = []string{"string", "bool", "int", "ip", "cidr", "url", "urls", "path"}

// VarDecl is one var() declaration of a playbook.
type VarDecl struct {
	Name     string
	Type     string
	Default  string // canonical text of default=; meaningful only if !Required
	Required bool
	Doc      string
	Pos      Pos
	// Sensitive marks a secret (var(sensitive=True)): its value is never
	// shown, and whatever contains it is sensitive (see Sensitivity).
	Sensitive bool
}

// varSet holds the declarations and values of one evaluation. Problems with
// values are collected, not returned at once, so that every missing or bad
// var is reported together.
type varSet struct {
	given  map[string]string // --var and --vars-file
	decls  []*VarDecl
	byName map[string]*VarDecl
	values map[string]starlark.Value
	errs   []error // missing and malformed values

	// conflicts are vars declared twice with different types: a fault of
	// the playbook, reported even by kplay vars.
	conflicts []error

	// origin says where a given value came from, for messages: "--var"
	// when absent, or "--vars-file site.yaml".
	origin map[string]string

	// workDir resolves relative path vars: they name files on the
	// machine running kplay, relative to where it runs.
	workDir string

	// rejected names a var() whose declaration itself was wrong (a bad
	// type or default): evaluation stopped there with that error.
	rejected map[string]bool
}

func newVarSet(given, origin map[string]string, workDir string) *varSet {
	return &varSet{given: given, origin: origin, workDir: workDir, byName: map[string]*VarDecl{}, values: map[string]starlark.Value{}, rejected: map[string]bool{}}
}

// declare records a var() call and returns its value. A problem with the
// user's value is collected and a placeholder of the right type returned,
// so evaluation goes on and finds the other problems.
func (vs *varSet) declare(d *VarDecl) (starlark.Value, error) {
	if prev, ok := vs.byName[d.Name]; ok {
		if prev.Type != d.Type {
			vs.conflicts = append(vs.conflicts, &Error{Pos: d.Pos, Err: fmt.Errorf(
				"var %s is declared as %s here and as %s at %s (declare it with one type)",
				d.Name, d.Type, prev.Type, prev.Pos)})
		}
		return vs.values[prev.Name], nil
	}
	vs.decls = append(vs.decls, d)
	vs.byName[d.Name] = d
	text, ok := vs.given[d.Name]
	if !ok && d.Required {
		vs.errs = append(vs.errs, &Error{Pos: d.Pos, Err: fmt.Errorf(
			"var %s is required (%s%s); add --var %s=<%s>", d.Name, d.Type, docSuffix(d.Doc), d.Name, d.Type)})
		v := placeholder(d.Type)
		vs.values[d.Name] = v
		return v, nil
	}
	if !ok {
		text = d.Default
	}
	v, err := parseVar(d.Type, text)
	if err != nil {
		if d.Sensitive {
			err = fmt.Errorf("the value given is not a valid %s (not shown: the var is sensitive)", d.Type)
		} else {
			err = fmt.Errorf("%q %v", text, err)
		}
		vs.errs = append(vs.errs, &Error{Pos: d.Pos, Err: fmt.Errorf("var %s: %v", d.Name, err)})
		v = placeholder(d.Type)
	} else if d.Type == "path" && vs.workDir != "" && !filepath.IsAbs(text) {
		v = starlark.String(filepath.Join(vs.workDir, text))
	}
	vs.values[d.Name] = v
	return v, nil
}

func docSuffix(doc string) string {
	if doc == "" {
		return ""
	}
	return ": " + doc
}

// unknown returns an error for each given var that no var() declared, in
// name order, with a suggestion when a declared name is close. A name in
// inSource (a var() call that this configuration did not reach, such as
// one under `if CALICO:`) is not unknown.
func (vs *varSet) unknown(inSource []*VarDecl) []error {
	var names []string
	for name := range vs.given {
		_, declared := vs.byName[name]
		if !declared && !slices.ContainsFunc(inSource, func(d *VarDecl) bool { return d.Name == name }) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var declared []string
	for _, d := range vs.decls {
		declared = append(declared, d.Name)
	}
	var errs []error
	for _, name := range names {
		shown := name
		if len(shown) > maxShownName {
			// A value given where a name goes (--var c2VjcmV0...=) is
			// not quoted whole.
			shown = shown[:8] + "…"
		}
		from := "--var " + shown
		if o, ok := vs.origin[name]; ok {
			from = o + ": " + shown
		}
		msg := from + ": the playbook declares no such var"
		if s := Suggest(name, declared); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		} else if len(declared) > 0 {
			msg += fmt.Sprintf(" (it declares %s; see kplay vars)", strings.Join(declared, ", "))
		}
		errs = append(errs, fmt.Errorf("%s", msg))
	}
	return errs
}

// maxShownName is the longest unknown var name an error quotes whole.
const maxShownName = 40

// VarErrors is every problem found with the vars of one evaluation.
type VarErrors []error

func (ve VarErrors) Error() string {
	// One problem a line, each starting with its position when it has
	// one, the way compilers list errors.
	var lines []string
	for _, e := range ve {
		lines = append(lines, e.Error())
	}
	return strings.Join(lines, "\n")
}

// placeholder is the value of a var whose value is missing or bad: a
// value of the right type, so evaluation can go on to find more problems.
func placeholder(typ string) starlark.Value {
	switch typ {
	case "bool":
		return starlark.False
	case "int":
		return starlark.MakeInt(0)
	case "ip":
		return starlark.String("0.0.0.0")
	case "cidr":
		return starlark.String("0.0.0.0/32")
	case "url":
		return starlark.String("http://unset.invalid")
	case "urls":
		return starlark.NewList([]starlark.Value{starlark.String("http://unset.invalid")})
	case "path":
		return starlark.String("/unset")
	}
	return starlark.String("")
}

// parseVar converts the text of a var to its Starlark value. Its error
// says what was expected, to follow the quoted value.
func parseVar(typ, s string) (starlark.Value, error) {
	switch typ {
	case "string":
		return starlark.String(s), nil
	case "bool":
		switch strings.ToLower(s) {
		case "true", "1", "yes":
			return starlark.True, nil
		case "false", "0", "no":
			return starlark.False, nil
		}
		return nil, fmt.Errorf("is not a bool (want true, false, yes, no, 1 or 0)")
	case "int":
		if strings.Contains(s, "_") {
			return nil, fmt.Errorf("is not an int (want a number such as 8080, or 0o600 in octal, without _)")
		}
		digits := strings.TrimLeft(s, "+-")
		if len(digits) > 1 && digits[0] == '0' && digits[1] >= '0' && digits[1] <= '9' {
			// 0400 is octal to a shell, YAML 1.1 and C, decimal to
			// ParseInt: a file mode given this way would be wrong.
			return nil, fmt.Errorf("has a leading 0, which reads as octal to some and decimal to others (write it without, or in octal as 0o…)")
		}
		n, err := strconv.ParseInt(s, 0, 64)
		if err != nil {
			return nil, fmt.Errorf("is not an int (want a number such as 8080, or 0o600 in octal)")
		}
		return starlark.MakeInt64(n), nil
	case "ip":
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("is not an IP address (want one such as 10.0.0.10)")
		}
		return starlark.String(a.String()), nil
	case "cidr":
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("is not a CIDR (want one such as 10.2.0.0/16)")
		}
		if p != p.Masked() {
			return nil, fmt.Errorf("has host bits set (did you mean %s?)", p.Masked())
		}
		return starlark.String(p.String()), nil
	case "url":
		if !IsURL(s) {
			return nil, fmt.Errorf("is not an absolute URL (want one such as http://10.0.0.1:2379)")
		}
		return starlark.String(s), nil
	case "urls":
		var list []starlark.Value
		for _, part := range strings.Split(s, ",") {
			part = strings.TrimSpace(part)
			if !IsURL(part) {
				return nil, fmt.Errorf("has %q, which is not an absolute URL (want comma-separated URLs such as http://10.0.0.1:2379,http://10.0.0.2:2379)", part)
			}
			list = append(list, starlark.String(part))
		}
		return starlark.NewList(list), nil
	case "path":
		if s == "" || strings.ContainsRune(s, 0) {
			return nil, fmt.Errorf("is not a path (want a file or directory name such as ./tls)")
		}
		return starlark.String(s), nil
	}
	return nil, fmt.Errorf("has unknown type %q", typ)
}

// IsURL reports whether s is an absolute URL with a host.
func IsURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && u.Host != ""
}

// defaultText converts the default= of var() to the text form a --var
// would have, so defaults and given values go through the same parser.
func defaultText(typ string, v starlark.Value) (string, error) {
	switch v := v.(type) {
	case starlark.String:
		return string(v), nil
	case starlark.Bool:
		if typ == "bool" {
			return strconv.FormatBool(bool(v)), nil
		}
	case starlark.Int:
		if typ == "int" {
			return v.String(), nil
		}
	case *starlark.List, starlark.Tuple:
		if typ == "urls" {
			items, _ := Sequence(v)
			var parts []string
			for _, item := range items {
				s, ok := starlark.AsString(item)
				if !ok {
					return "", fmt.Errorf("got %s in default list, want string", item.Type())
				}
				parts = append(parts, s)
			}
			return strings.Join(parts, ","), nil
		}
	}
	// Only a number, a bool or None is quoted: a list or a string may be
	// a secret, or nested a million deep. DeclareVar drops even those
	// for a sensitive var.
	switch v.(type) {
	case starlark.Int, starlark.Float, starlark.Bool, starlark.NoneType:
		return "", &defaultError{fmt.Sprintf("default %s is %s, not %s", v, article(v.Type()), article(typ)), fmt.Sprintf("default is %s, not %s", article(v.Type()), article(typ))}
	}
	return "", fmt.Errorf("default is %s, not %s", article(v.Type()), article(typ))
}

// defaultError is a wrong default=, with and without its value.
type defaultError struct{ shown, hidden string }

func (e *defaultError) Error() string { return e.shown }

// hide returns err without the value it quotes, if any.
func hide(err error) error {
	if d, ok := err.(*defaultError); ok {
		return errors.New(d.hidden)
	}
	return err
}

// Suggest returns the name in names closest to s (ignoring case), or ""
// if none is close: the "did you mean" of messages.
func Suggest(s string, names []string) string {
	best, bestDist := "", len(s)/3+2
	for _, n := range names {
		if strings.EqualFold(n, s) {
			return n
		}
		// At equal distance, a name that s begins is the likelier one:
		// "fil" is "file" cut short more likely than "fail" misspelt.
		d := levenshtein(strings.ToUpper(s), strings.ToUpper(n))
		if d < bestDist || (d == bestDist && best != "" && isPrefix(s, n) && !isPrefix(s, best)) {
			best, bestDist = n, d
		}
	}
	return best
}

func isPrefix(prefix, s string) bool {
	return strings.HasPrefix(strings.ToUpper(s), strings.ToUpper(prefix))
}

// levenshtein is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of two neighbours ("fiel" is one
// step from "file").
func levenshtein(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// article puts "a" or "an" before a type name: "an int", "a string".
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an " + word
	}
	return "a " + word
}
