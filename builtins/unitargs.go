package builtins

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"
	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/engine"
)

// unitSuffixes are the unit types systemd knows.
var unitSuffixes = []string{
	".service", ".socket", ".device", ".mount", ".automount", ".swap",
	".target", ".path", ".timer", ".slice", ".scope",
}

func hasUnitSuffix(s string) bool {
	for _, suffix := range unitSuffixes {
		if strings.HasSuffix(s, suffix) && len(s) > len(suffix) {
			return true
		}
	}
	return false
}

var unitNamePattern = regexp.MustCompile(`^[A-Za-z0-9:_.\\@-]+$`)

// unitName is a systemd unit name with its type suffix: "kubelet.service".
type unitName string

func (u *unitName) Unpack(v starlark.Value) error {
	s, ok := starlark.AsString(v)
	if !ok {
		return fmt.Errorf("got %s, want string", v.Type())
	}
	switch {
	case s == "":
		return fmt.Errorf("unit name is empty (write a name such as \"kubelet.service\")")
	case strings.Contains(s, "/"):
		return fmt.Errorf("%q is a path, not a unit name (write %q)", s, path.Base(s))
	case !unitNamePattern.MatchString(s):
		return fmt.Errorf("%q is not a unit name (letters, digits and :_.\\@- only)", s)
	case !hasUnitSuffix(s):
		return fmt.Errorf("%q has no unit type (write %q)", s, s+".service")
	}
	*u = unitName(s)
	return nil
}

// unitText is the content of a unit file or drop-in: unit text, or a dict
// of sections to lists of (key, value) pairs that is serialised with
// go-systemd's serialiser. Its syntax is checked by checkUnitText once
// the step knows whether it is sensitive, so that an error never quotes a
// secret line.
type unitText string

func (t *unitText) Unpack(v starlark.Value) error {
	switch v := v.(type) {
	case starlark.String:
		*t = unitText(v)
		return nil
	case *starlark.Dict:
		text, err := serializeSections(v)
		if err != nil {
			return err
		}
		*t = unitText(text)
		return nil
	}
	return fmt.Errorf("got %s, want string (unit text) or dict (sections of (key, value) pairs)", v.Type())
}

var sectionPattern = regexp.MustCompile(`^\[([^\[\]]+)\]$`)
var keyPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// checkUnitText checks unit file syntax line by line, so its errors can
// say which line of the text is wrong; then go-systemd's parser must
// accept it too. With hide, errors name the line but do not quote it.
func checkUnitText(text string, hide bool) error {
	q := func(s string) string {
		if hide {
			return "(not shown: the unit is sensitive)"
		}
		return strconv.Quote(s)
	}
	inSection, continued := false, false
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		trimmed := strings.TrimSpace(line)
		if continued {
			continued = strings.HasSuffix(trimmed, `\`)
			continue
		}
		switch {
		case trimmed == "" || trimmed[0] == '#' || trimmed[0] == ';':
		case trimmed[0] == '[':
			if !sectionPattern.MatchString(trimmed) {
				return fmt.Errorf("line %d: %s is not a section header (write it like \"[Service]\")", n, q(trimmed))
			}
			inSection = true
		default:
			key, _, ok := strings.Cut(trimmed, "=")
			if !ok {
				return fmt.Errorf("line %d: %s is not a key=value line", n, q(trimmed))
			}
			if !inSection {
				return fmt.Errorf("line %d: %s is outside any section (put a section header such as \"[Service]\" before it)", n, q(trimmed))
			}
			if !keyPattern.MatchString(strings.TrimSpace(key)) {
				return fmt.Errorf("line %d: %s is not a key name", n, q(strings.TrimSpace(key)))
			}
			continued = strings.HasSuffix(trimmed, `\`)
		}
	}
	if _, err := unit.DeserializeOptions(strings.NewReader(text)); err != nil {
		if hide {
			return errors.New("unit text: go-systemd's parser refuses it (not shown: the unit is sensitive)")
		}
		return fmt.Errorf("unit text: %v", err)
	}
	return nil
}

// serializeSections turns {"Service": [("Restart", "always")]} into unit
// text, sections in the dict's order.
func serializeSections(d *starlark.Dict) (string, error) {
	var opts []*unit.UnitOption
	for _, item := range d.Items() {
		section, ok := starlark.AsString(item[0])
		if !ok || section == "" || strings.ContainsAny(section, "[]\n") {
			return "", fmt.Errorf("section %s is not a section name (write one such as \"Service\")", item[0])
		}
		pairs, err := engine.Sequence(item[1])
		if err != nil {
			return "", fmt.Errorf("section %q: got %s, want a list of (key, value) pairs", section, item[1].Type())
		}
		for _, pair := range pairs {
			t, ok := pair.(starlark.Tuple)
			if !ok || len(t) != 2 {
				return "", fmt.Errorf("section %q: got %s, want a (key, value) pair such as (\"Restart\", \"always\")", section, pair)
			}
			key, ok1 := starlark.AsString(t[0])
			value, ok2 := starlark.AsString(t[1])
			if !ok1 || !ok2 || !keyPattern.MatchString(key) || strings.Contains(value, "\n") {
				return "", fmt.Errorf("section %q: %s is not a (key, value) pair of strings on one line", section, pair)
			}
			if strings.HasSuffix(value, `\`) {
				// systemd would join the next line to it.
				return "", fmt.Errorf("section %q: the value of %s ends in a backslash, which continues it onto the next line (remove it)", section, key)
			}
			opts = append(opts, unit.NewUnitOption(section, key, value))
		}
	}
	var b bytes.Buffer
	if _, err := io.Copy(&b, unit.Serialize(opts)); err != nil {
		return "", err
	}
	return b.String(), nil
}
