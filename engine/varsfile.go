package engine

import (
	"fmt"
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

// ParseVarsFile parses the content of a --vars-file: either NAME=value
// lines (blank lines and # comments allowed) or a YAML mapping of names to
// scalars; a YAML list becomes a comma-separated value (for urls vars).
// name is only used in messages.
func ParseVarsFile(name string, data []byte) (map[string]string, error) {
	if vars, ok := parseAssignments(data); ok {
		return vars, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: not NAME=value lines, nor YAML: %v", name, err)
	}
	vars := map[string]string{}
	if len(doc.Content) == 0 {
		return vars, nil
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: want a mapping of var names to values (such as ADVERTISE_IP: 10.0.0.10)", name, m.Line)
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		switch v.Kind {
		case yaml.ScalarNode:
			vars[k.Value] = v.Value
		case yaml.SequenceNode:
			var parts []string
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode {
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

// parseAssignments parses NAME=value lines; ok is false if any line is
// something else, so the caller can try YAML.
func parseAssignments(data []byte) (map[string]string, bool) {
	vars := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := assignPattern.FindStringSubmatch(line)
		if m == nil {
			return nil, false
		}
		vars[m[1]] = m[2]
	}
	return vars, true
}
