package builtins

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/engine"
)

const substDoc = `subst(text, mapping)
Returns text with every ${NAME} and $NAME replaced by mapping["NAME"], so a
playbook can keep the guide's text verbatim with its placeholders. "$$"
stands for a literal "$". A placeholder that mapping lacks is an error that
names it. It declares no step.

- text: a string with placeholders.
- mapping: a dict from names to values. Strings are used as they are, ints
  and bools in their Starlark text (True becomes "true"), and lists are
  joined with commas (a urls var renders as the guide's
  "http://a:2379,http://b:2379").`

var placeholderPattern = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// subst implements the subst builtin; see substDoc.
func subst(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var text string
	var mapping *starlark.Dict
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "text", &text, "mapping", &mapping); err != nil {
		return nil, err
	}
	values := map[string]string{}
	for _, item := range mapping.Items() {
		k, ok := starlark.AsString(item[0])
		if !ok {
			return nil, fmt.Errorf("%s: mapping key %s: got %s, want string", fn.Name(), item[0], item[0].Type())
		}
		v, err := substValue(item[1])
		if err != nil {
			return nil, fmt.Errorf("%s: mapping[%q]: %v", fn.Name(), k, err)
		}
		values[k] = v
	}
	if err := engine.CheckAlloc(thread, expandedSize(text, values), "the result"); err != nil {
		return nil, fmt.Errorf("%s: %v", fn.Name(), err)
	}
	out, missing := expand(text, values)
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: no value for %s (add it to the mapping)", fn.Name(), strings.Join(missing, ", "))
	}
	return starlark.String(out), nil
}

// expand replaces the placeholders of text from values and returns the
// names that had no value, sorted and without repeats.
func expand(text string, values map[string]string) (string, []string) {
	seen := map[string]bool{}
	out := placeholderPattern.ReplaceAllStringFunc(text, func(m string) string {
		if m == "$$" {
			return "$"
		}
		name := strings.Trim(m, "${}")
		v, ok := values[name]
		if !ok {
			seen["$"+name] = true
			return m
		}
		return v
	})
	var missing []string
	for name := range seen {
		missing = append(missing, name)
	}
	sort.Strings(missing)
	return out, missing
}

// expandedSize returns the bytes of expand(text, values), without
// building it: a few placeholders of a large value can ask for gigabytes.
func expandedSize(text string, values map[string]string) uint64 {
	n := uint64(len(text))
	for rest := text; ; {
		m := placeholderPattern.FindStringIndex(rest)
		if m == nil {
			return n
		}
		if v, ok := values[strings.Trim(rest[m[0]:m[1]], "${}")]; ok {
			n += uint64(len(v))
		}
		rest = rest[m[1]:]
	}
}

func substValue(v starlark.Value) (string, error) { return substValueAt(v, 0) }

// substValueAt is substValue of a value depth lists deep: a list nested
// past maxNesting (or one that holds itself) is an error, not a stack
// overflow.
func substValueAt(v starlark.Value, depth int) (string, error) {
	if depth > maxNesting {
		return "", fmt.Errorf("value nests lists deeper than %d levels", maxNesting)
	}
	switch v := v.(type) {
	case starlark.String:
		return string(v), nil
	case starlark.Int:
		return v.String(), nil
	case starlark.Bool:
		if v {
			return "true", nil
		}
		return "false", nil
	case *starlark.List, starlark.Tuple:
		items := starlark.Iterate(v)
		defer items.Done()
		var parts []string
		var item starlark.Value
		for items.Next(&item) {
			s, err := substValueAt(item, depth+1)
			if err != nil {
				return "", err
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("got %s, want string, int, bool or list", v.Type())
}
