package builtins

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/coreos/go-systemd/v22/unit"
	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host/unitfile"
)

// unitName is a systemd unit name with its type suffix: "kubelet.service",
// valid by unitfile.NameError, the offline systemd's rule.
type unitName string

func (u *unitName) Unpack(v starlark.Value) error {
	s, ok := starlark.AsString(v)
	if !ok {
		return fmt.Errorf("got %s, want string", v.Type())
	}
	if strings.Contains(s, "/") {
		return fmt.Errorf("%q is a path, not a unit name (write %q)", s, path.Base(s))
	}
	if s != "" && !strings.Contains(s, ".") {
		return fmt.Errorf("%q has no unit type (write %q)", s, s+".service")
	}
	if err := unitfile.NameError(s); err != nil {
		return err
	}
	*u = unitName(s)
	return nil
}

// unitText is the content= of unit() and dropin(): unit text, or a dict
// of sections to lists of (key, value) pairs that is serialised with
// go-systemd's serialiser; at most host.SrcLimit bytes (checkContentSize).
// Its syntax is checked by checkUnitText once the step knows whether it
// is sensitive, so that an error never quotes a secret line. given
// reports that content was given. Unpack's errors: not a string or dict;
// a dict that is not sections; too large.
type unitText struct {
	text  string
	given bool
}

func (t *unitText) Unpack(v starlark.Value) error {
	var text string
	switch v := v.(type) {
	case starlark.String:
		text = string(v)
	case *starlark.Dict:
		var err error
		if text, err = serializeSections(v); err != nil {
			return err
		}
	default:
		return fmt.Errorf("got %s, want string (unit text) or dict (sections of (key, value) pairs)", v.Type())
	}
	if err := checkContentSize(len(text)); err != nil {
		return err
	}
	t.text, t.given = text, true
	return nil
}

var keyPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// unitSections are the sections systemd reads in a unit file or drop-in
// of any type; a [X-...] section is the user's and is skipped unread.
// systemd knows only the sections of the unit's own type ([Socket] in a
// .service is an unknown section), but checkUnitText is not told the type.
var unitSections = []string{
	"Unit", "Install", "Service", "Socket", "Mount", "Automount", "Swap",
	"Path", "Timer", "Slice", "Scope",
}

// unitLineMax is systemd's LONG_LINE_MAX (unitfile.LineMax).
const unitLineMax = unitfile.LineMax

// unitWhitespace is systemd's WHITESPACE: what it trims from a line, a
// key and a value. A form feed or a non-ASCII space is not trimmed.
const unitWhitespace = " \t\n\r"

// checkUnitText checks the syntax of a unit file or drop-in as systemd's
// unit file parser (config_parse, systemd 252) reads it, so that what
// systemd reads is accepted and what it ignores as malformed or refuses
// is an error that names the line. The logical lines are
// unitfile.LogicalLines' (comments, continuations, line ends, lengths).
// Each is blank, a [Section] header of unitSections or [X-...], or
// key=value inside a section (anything inside an [X-...] section). Keys
// and values are not checked against systemd's list, except that a key
// must be a name (letters, digits, - and _) unless it begins with X-.
// With hide, errors name the line but do not quote it.
func checkUnitText(text string, hide bool) error { return checkUnitTextOf("", text, hide) }

// typeSections are the sections systemd reads only in units of one type,
// by that type.
var typeSections = map[string]string{
	"service": "Service", "socket": "Socket", "mount": "Mount", "automount": "Automount",
	"swap": "Swap", "path": "Path", "timer": "Timer", "slice": "Slice", "scope": "Scope",
}

// checkUnitTextOf is checkUnitText for a unit (or drop-in) of type typ
// ("service"; "" for any): a section of another type's, such as [Socket]
// in a service, is one systemd ignores ("Unknown section"), so it is an
// error too.
func checkUnitTextOf(typ, text string, hide bool) error {
	q := func(s string) string {
		if hide {
			return "(not shown: the unit is sensitive)"
		}
		return strconv.Quote(s)
	}
	r := unitReader{q: q, typ: typ}
	for l, err := range unitfile.LogicalLines(text) {
		if err != nil {
			return err
		}
		if err := r.parse(l.First, l.Last, l.Text); err != nil {
			return err
		}
	}
	return nil
}

// unitReader reads the logical lines of a unit file in order, as
// systemd's parse_line.
type unitReader struct {
	q        func(string) string // quotes a line, or hides it
	typ      string              // the unit's type, "" for any
	section  bool                // in a section systemd reads
	xSection bool                // in an [X-...] section, skipped unread
	install  bool                // in [Install], whose specifiers systemctl enable resolves
}

// parse checks one logical line, the lines first to last joined.
func (r *unitReader) parse(first, last int, line string) error {
	where := fmt.Sprintf("line %d", first)
	if last > first {
		where = fmt.Sprintf("lines %d-%d", first, last)
	}
	line = strings.Trim(line, unitWhitespace)
	switch {
	case line == "":
		return nil
	case !utf8.ValidString(line):
		return fmt.Errorf("%s: %s is not UTF-8 (systemd refuses the whole file)", where, r.q(line))
	case line[0] == '[':
		return r.sectionHeader(where, line)
	case !r.section:
		if r.xSection {
			return nil
		}
		return fmt.Errorf("%s: %s is outside any section (put a section header such as \"[Service]\" before it)", where, r.q(line))
	}
	key, value, ok := strings.Cut(line, "=")
	key = strings.Trim(key, unitWhitespace)
	value = strings.Trim(value, unitWhitespace)
	switch {
	case !ok:
		return fmt.Errorf("%s: %s is not a key=value line", where, r.q(line))
	case key == "":
		return fmt.Errorf("%s: %s has no key before \"=\" (write it like \"Restart=always\")", where, r.q(line))
	case strings.HasPrefix(key, "X-"):
		return nil // systemd does not read it
	case !keyPattern.MatchString(key):
		return fmt.Errorf("%s: %s is not a key name (letters, digits, - and _; or X- and any name for your own)", where, r.q(key))
	}
	if !r.install && !noSpecifierKeys[key] {
		if spec := unknownSpecifier(value); spec != "" {
			return fmt.Errorf("%s: %s in %s= is not a systemd specifier (systemd ignores the line or refuses the unit; write %%%% for a %% sign)", where, r.q(spec), key)
		}
	}
	if quotedKeys[key] && !balancedQuotes(value) {
		return fmt.Errorf("%s: %s has an unbalanced quote (systemd ignores the line; close it, or write \\\" or \\' for a quote sign)", where, r.q(key+"="+value))
	}
	return nil
}

// unitSpecifiers are the letters systemd 252 resolves after "%" in a unit
// file (systemd.unit(5), "Specifiers"), "%%" aside. Any other letter or
// digit fails the line ("Failed to resolve unit specifiers … Invalid
// slot"); "%" before anything else is kept as it is.
// TestUnknownSpecifiersAgreeWithSystemd holds the set to systemd-analyze.
const unitSpecifiers = "aAbBcCdEfgGhHiIjJlLmMnNopPqrRsStTuUvVwWyY"

// unknownSpecifier returns the first "%X" in value whose X is a letter or
// digit that is not a specifier, or "".
func unknownSpecifier(value string) string {
	for i := 0; i < len(value)-1; i++ {
		if value[i] != '%' {
			continue
		}
		c := value[i+1]
		i++ // past c: "%%" is a literal %, and so is the % of "%%Z"
		if isASCIIAlnum(c) && !strings.ContainsRune(unitSpecifiers, rune(c)) {
			return value[i-1 : i+1]
		}
	}
	return ""
}

func isASCIIAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// noSpecifierKeys are keys whose values systemd 252 reads without
// resolving specifiers, so "%" is no specifier there (found by the attack
// on issue 12; TestSpecifierKeysAgreeWithSystemd).
var noSpecifierKeys = map[string]bool{
	"CapabilityBoundingSet": true, "AmbientCapabilities": true, "SecureBits": true,
	"RestrictFileSystems": true, "TCPCongestion": true, "Restart": true,
}

// quotedKeys are the keys whose value systemd splits into words with
// quotes (extract_first_word with EXTRACT_UNQUOTE): the command lines,
// Environment= and the lists of names and paths below. In them a quote
// left open drops the line ("Unbalanced quoting", "Invalid syntax"); in
// free text such as Description= it is a plain character.
// TestQuotedKeysAgreeWithSystemd holds each to systemd-analyze verify.
var quotedKeys = map[string]bool{
	"ExecCondition": true, "ExecStartPre": true, "ExecStart": true, "ExecStartPost": true,
	"ExecReload": true, "ExecStop": true, "ExecStopPre": true, "ExecStopPost": true,
	"Environment":   true,
	"Documentation": true, "RequiresMountsFor": true,
	"RestrictAddressFamilies": true, "SystemCallArchitectures": true,
	"RuntimeDirectory": true, "StateDirectory": true, "CacheDirectory": true, "LogsDirectory": true, "ConfigurationDirectory": true,
	"SetCredential": true, "SetCredentialEncrypted": true, "LogExtraFields": true,
	"ExtensionImages": true, "MountImages": true, "BPFProgram": true,
	"Delegate": true, "ManagedOOMSwap": true, "ManagedOOMMemoryPressure": true,
	"Symlinks": true, "ReadWritePaths": true, "ReadOnlyPaths": true, "InaccessiblePaths": true,
	"UnsetEnvironment": true, "SystemCallFilter": true,
}

// balancedQuotes reports whether every quote in value is closed, as
// systemd's extract_first_word reads them: a " or ' opens quoting
// anywhere in a word, the same quote closes it, and a backslash escapes
// the next character in or out of quotes.
func balancedQuotes(value string) bool {
	var open byte
	for i := 0; i < len(value); i++ {
		switch c := value[i]; {
		case c == '\\':
			i++
		case open == 0 && (c == '"' || c == '\''):
			open = c
		case c == open:
			open = 0
		}
	}
	return open == 0
}

// sectionHeader checks a line that begins with "[".
func (r *unitReader) sectionHeader(where, line string) error {
	name, ok := strings.CutSuffix(line[1:], "]")
	switch {
	case !ok:
		return fmt.Errorf("%s: %s is not a section header (write it like \"[Service]\")", where, r.q(line))
	case strings.ContainsAny(name, "\"'\\\x7f") || strings.IndexFunc(name, func(c rune) bool { return c < ' ' }) >= 0:
		return fmt.Errorf("%s: section header %s has a quote, backslash or control character (systemd refuses the whole file)", where, r.q(line))
	case slices.Contains(unitSections, name) && r.typ != "" && isTypeSection(name) && typeSections[r.typ] != name:
		own := "its settings go in [Unit] and [Install]"
		if s := typeSections[r.typ]; s != "" {
			own = fmt.Sprintf("a %s's settings go in [%s]", r.typ, s)
		}
		return fmt.Errorf("%s: %s is not read in a .%s unit (systemd ignores it as an unknown section; %s)", where, r.q(line), r.typ, own)
	case slices.Contains(unitSections, name):
		r.section, r.xSection, r.install = true, false, name == "Install"
		return nil
	case strings.HasPrefix(name, "X-"):
		r.section, r.xSection, r.install = false, true, false
		return nil
	}
	hint := ""
	if s := engine.Suggest(strings.Trim(name, unitWhitespace), unitSections); s != "" {
		hint = fmt.Sprintf("did you mean \"[%s]\"? ", s)
	}
	return fmt.Errorf("%s: %s is not a section systemd reads (%swant one of %s, or [X-...] for your own)", where, r.q(line), hint, strings.Join(unitSections, ", "))
}

// isTypeSection reports whether section is read only in units of one
// type ([Service], [Socket], …).
func isTypeSection(section string) bool {
	for _, s := range typeSections {
		if s == section {
			return true
		}
	}
	return false
}

// serializeSections turns {"Service": [("Restart", "always")]} into unit
// text, sections in the dict's order.
func serializeSections(d *starlark.Dict) (string, error) {
	var opts []*unit.UnitOption
	for i, item := range d.Items() {
		// Errors quote no value, and a section name or key only when it
		// is a known section or a key name: the unit may be sensitive,
		// which is decided later, from the text.
		where := fmt.Sprintf("section %d of the dict", i+1)
		section, ok := starlark.AsString(item[0])
		if ok && slices.Contains(unitSections, section) {
			where = fmt.Sprintf("section %q", section)
		}
		if !ok || section == "" || strings.ContainsAny(section, "[]\n") {
			return "", fmt.Errorf("%s: its name is not a section name (write one such as \"Service\")", where)
		}
		pairs, err := engine.Sequence(item[1])
		if err != nil {
			return "", fmt.Errorf("%s: got %s, want a list of (key, value) pairs", where, item[1].Type())
		}
		for j, pair := range pairs {
			at := fmt.Sprintf("%s, pair %d", where, j+1)
			t, ok := pair.(starlark.Tuple)
			if !ok || len(t) != 2 {
				return "", fmt.Errorf("%s: got a %s, want a (key, value) pair such as (\"Restart\", \"always\")", at, pairShape(pair))
			}
			key, ok1 := starlark.AsString(t[0])
			value, ok2 := starlark.AsString(t[1])
			switch {
			case !ok1 || !ok2:
				return "", fmt.Errorf("%s: got (%s, %s), want a pair of strings", at, t[0].Type(), t[1].Type())
			case !keyPattern.MatchString(key):
				return "", fmt.Errorf("%s: the key is not a key name (letters, digits, - and _)", at)
			case strings.Contains(value, "\n"):
				return "", fmt.Errorf("%s: the value of %s holds a line break (keep it on one line)", at, key)
			case strings.HasSuffix(value, `\`):
				// systemd would join the next line to it.
				return "", fmt.Errorf("%s: the value of %s ends in a backslash, which continues it onto the next line (remove it)", at, key)
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

// pairShape describes v for an error without quoting it: "tuple of 3",
// "list", "string".
func pairShape(v starlark.Value) string {
	if t, ok := v.(starlark.Tuple); ok {
		return fmt.Sprintf("tuple of %d", len(t))
	}
	return v.Type()
}
