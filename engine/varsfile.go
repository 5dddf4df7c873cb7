package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// varName is what a var's name must be, in var(), --var and a vars file.
const varName = `[A-Za-z_][A-Za-z0-9_]*`

var assignPattern = regexp.MustCompile(`^(` + varName + `)=(.*)$`)

var varNamePattern = regexp.MustCompile(`^` + varName + `$`)

// IsVarName reports whether name can name a var: letters, digits and _,
// not starting with a digit.
func IsVarName(name string) bool { return varNamePattern.MatchString(name) }

// ParseVarFlags parses repeated --var NAME=value flags; a value may span
// lines (a PEM key given as --var "KEY=$(cat key.pem)"). A later flag for
// the same name wins. An error never quotes a value, which may be a
// secret.
func ParseVarFlags(flags []string) (map[string]string, error) {
	vars := map[string]string{}
	for _, f := range flags {
		name, value, ok := strings.Cut(f, "=")
		switch {
		case !ok:
			return nil, fmt.Errorf("--var without \"=\" (not shown, as it may be a secret): want NAME=value (such as --var ADVERTISE_IP=10.0.0.10)")
		case !IsVarName(name):
			// Not quoted: a PEM key given without its name has an "=" in
			// its base64.
			return nil, fmt.Errorf("--var: the text before \"=\" is not a var name (not shown, as it may be a secret): want NAME=value with a name of letters, digits and _, such as --var ADVERTISE_IP=10.0.0.10")
		}
		vars[name] = value
	}
	return vars, nil
}

// ParseVarsFile parses the content of a --vars-file, in one of two forms:
//
//   - NAME=value lines, read as systemd reads an EnvironmentFile=: blank
//     lines and lines starting with # or ; are skipped; a value in one
//     pair of double quotes loses them ("\"", "\\", "\$" and "\`" inside
//     stand for the character), a value in single quotes loses them and
//     is taken as written; an unquoted value is taken as written. A #
//     after a value starts no comment (systemd keeps it in the value), so
//     a " #" in an unquoted value is an error: quote the value, or put
//     the comment on its own line. A later line for the same name wins.
//   - One YAML document holding a mapping of names to scalars; a list
//     becomes a comma-separated value (for urls vars). A name given
//     twice, a null value (~, null) and a second document are errors.
//
// A UTF-8 byte order mark at the start is skipped. name is only used in
// messages, which give a line number and never quote a value: it may be
// a secret.
func ParseVarsFile(name string, data []byte) (map[string]string, error) {
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	vars, bad, err := parseAssignments(name, data)
	if bad.line == 0 {
		return vars, err
	}
	vars, yerr := parseYAMLVars(name, data)
	if yerr != nil && bad.afterAssignment {
		// Lines of NAME=value with one wrong: say which, rather than
		// what YAML makes of it.
		return nil, fmt.Errorf("%s:%d: not a NAME=value line (a name of letters, digits and _, = right after it, then the value)", name, bad.line)
	}
	return vars, yerr
}

func parseYAMLVars(name string, data []byte) (map[string]string, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return map[string]string{}, nil // empty, or only comments
		}
		return nil, fmt.Errorf("%s: not NAME=value lines, nor YAML: %v", name, err)
	}
	var second yaml.Node
	if err := dec.Decode(&second); !errors.Is(err, io.EOF) {
		line := second.Line
		if err != nil {
			return nil, fmt.Errorf("%s: a second YAML document, which kplay does not read: %v (give one mapping)", name, err)
		}
		return nil, fmt.Errorf("%s:%d: a second YAML document, which kplay does not read (give one mapping, without ---)", name, line)
	}
	if len(doc.Content) == 0 {
		return map[string]string{}, nil
	}
	return VarsFromYAML(name, doc.Content[0])
}

// VarsFromYAML reads m, a YAML mapping of var names to values, as a
// vars file's YAML form is read (ParseVarsFile): a scalar is its text, a
// list of scalars is joined with commas, and null, a tag or a nested
// mapping is an error naming name and the line. An inventory's vars: are
// read with it too.
func VarsFromYAML(name string, m *yaml.Node) (map[string]string, error) {
	vars := map[string]string{}
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: want a mapping of var names to values (such as ADVERTISE_IP: 10.0.0.10)", name, m.Line)
	}
	firstLine := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias // *name: the value &name marks
		}
		if !IsVarName(k.Value) {
			return nil, fmt.Errorf("%s:%d: %q is not a var name: want letters, digits and _, such as ADVERTISE_IP", name, k.Line, k.Value)
		}
		if first, dup := firstLine[k.Value]; dup {
			return nil, fmt.Errorf("%s:%d: %s is given twice (first on line %d): keep one", name, k.Line, k.Value, first)
		}
		firstLine[k.Value] = k.Line
		switch {
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
			return nil, fmt.Errorf("%s:%d: %s: null is not a value (give one, or leave %s out for its default)", name, v.Line, k.Value, k.Value)
		case v.Kind == yaml.ScalarNode && v.Style&yaml.TaggedStyle != 0 && !plainTag(v):
			// Not quoted: the tag may be a secret's first word.
			return nil, fmt.Errorf("%s:%d: %s: a YAML tag (!…) is not part of a value (quote a value that starts with !)", name, v.Line, k.Value)
		case v.Kind == yaml.ScalarNode:
			vars[k.Value] = v.Value
		case v.Kind == yaml.SequenceNode:
			var parts []string
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode || item.Tag == "!!null" || item.Style&yaml.TaggedStyle != 0 && !plainTag(item) {
					return nil, fmt.Errorf("%s:%d: %s: want a list of plain values", name, item.Line, k.Value)
				}
				parts = append(parts, item.Value)
			}
			vars[k.Value] = strings.Join(parts, ",")
		default:
			return nil, fmt.Errorf("%s:%d: %s: want a plain value or a list", name, v.Line, k.Value)
		}
	}
	return vars, nil
}

// plainTag reports whether a scalar's written tag is one a var takes
// as its text: !!str, or a number's or bool's. A value with no tag
// written (2016-10-01, resolved as a timestamp) is taken as its text.
func plainTag(n *yaml.Node) bool {
	switch n.Tag {
	case "!!str", "!!int", "!!bool", "!!float":
		return true
	}
	return false
}

// notAssignment is the first line of a file that is not NAME=value,
// blank or a comment (line 0: there is none), and whether a NAME=value
// line came before it.
type notAssignment struct {
	line            int
	afterAssignment bool
}

// parseAssignments parses NAME=value lines (see ParseVarsFile). If a line
// is something else, it says which in bad, for the caller to try YAML. A
// bad value is an error only once every line is known to be NAME=value.
func parseAssignments(name string, data []byte) (vars map[string]string, bad notAssignment, err error) {
	vars = map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		m := assignPattern.FindStringSubmatch(line)
		if m == nil {
			return nil, notAssignment{line: i + 1, afterAssignment: len(vars) > 0}, nil
		}
		// systemd skips white space after "=" (A= "x" is x).
		v, verr := unquote(strings.TrimLeft(m[2], " \t"))
		if verr != nil && err == nil {
			err = fmt.Errorf("%s:%d: %s: %v", name, i+1, m[1], verr)
		}
		vars[m[1]] = v
	}
	if err != nil {
		return nil, notAssignment{}, err
	}
	return vars, notAssignment{}, nil
}

// unquote returns the value of NAME=value as systemd's EnvironmentFile=
// reads it (see ParseVarsFile). Its errors never quote the value.
func unquote(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	switch q := raw[0]; q {
	case '\'':
		if len(raw) < 2 || raw[len(raw)-1] != q || strings.IndexByte(raw[1:len(raw)-1], q) >= 0 {
			return "", errors.New("the value opens a quote it does not close at its end (write NAME='value')")
		}
		return raw[1 : len(raw)-1], nil
	case '"':
		var b strings.Builder
		for i := 1; i < len(raw); i++ {
			c := raw[i]
			switch {
			case c == '\\' && i+1 < len(raw):
				i++
				if !strings.ContainsRune("\"\\`$", rune(raw[i])) {
					b.WriteByte('\\') // kept, as systemd keeps it
				}
				b.WriteByte(raw[i])
			case c == '"' && i == len(raw)-1:
				return b.String(), nil
			case c == '"':
				return "", errors.New("text after the closing quote (write NAME=\"value\", with \\\" for a quote inside)")
			default:
				b.WriteByte(c)
			}
		}
		return "", errors.New("the value opens a quote it does not close (write NAME=\"value\")")
	}
	if i := strings.Index(raw, "#"); i > 0 && (raw[i-1] == ' ' || raw[i-1] == '\t') {
		return "", errors.New("a # after a value is not a comment but part of it, as for systemd's EnvironmentFile= (put the comment on its own line, or quote the value)")
	}
	return raw, nil
}
