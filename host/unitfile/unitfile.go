// Package unitfile holds systemd's rules for unit files that need no
// machine: the unit name grammar (SplitName, NameError), the unit search
// path of systemctl --root (SearchPath), how a unit file's lines are read
// (LogicalLines), the [Install] section (Install.Parse, CheckInstallNames),
// specifiers (ExpandSpecifiers), alias rules (AliasName) and drop-in
// directories (DropinDirs), as systemd 252's src/shared/install.c,
// src/basic/unit-name.c and src/shared/conf-parser.c have them.
//
// Nothing here does I/O: host's offline systemd reads the files and
// applies these rules, and the builtins check a playbook's unit text with
// the same ones, so that check and run agree.
package unitfile

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
)

// ConfigDir is where enable, disable and mask write: systemctl's
// persistent configuration directory.
const ConfigDir = "/etc/systemd/system"

// searchPath is the unit search path of `systemctl --root=DIR` for
// the system scope, in order (first match wins), as Debian's systemd 252
// prints it with `systemd-analyze unit-paths`. /lib comes before
// /usr/lib: on a root where /lib -> usr/lib, systemctl finds
// /lib/systemd/system/foo.service first and links to that path.
var searchPath = []string{
	"/etc/systemd/system.control",
	"/run/systemd/system.control",
	"/run/systemd/transient",
	"/run/systemd/generator.early",
	"/etc/systemd/system",
	"/etc/systemd/system.attached",
	"/run/systemd/system",
	"/run/systemd/system.attached",
	"/run/systemd/generator",
	"/usr/local/lib/systemd/system",
	"/lib/systemd/system",
	"/usr/lib/systemd/system",
	"/run/systemd/generator.late",
}

// SearchPath returns the unit search path of systemctl --root, in order
// (searchPath); the caller may change the slice.
func SearchPath() []string { return slices.Clone(searchPath) }

// unitTypes are the unit name suffixes systemd knows.
var unitTypes = []string{
	"service", "socket", "target", "device", "mount", "automount",
	"swap", "timer", "path", "slice", "scope",
}

// InSearchPath reports whether p is a file directly in a search path
// directory.
func InSearchPath(p string) bool {
	return slices.Contains(searchPath, path.Dir(p))
}

// UnderSearchPath reports whether p is a search path directory or below
// one.
func UnderSearchPath(p string) bool {
	return slices.ContainsFunc(searchPath, func(dir string) bool { return Under(p, dir) })
}

// Under reports whether p is dir or below it, element by element.
func Under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// IsConfigPath reports whether p is a file directly in one of the
// configuration directories (/etc/systemd/system, /run/systemd/system).
func IsConfigPath(p string) bool {
	dir := path.Dir(p)
	return dir == ConfigDir || dir == "/run/systemd/system"
}

// IsRuntimePath reports whether p is under /run, which is runtime state.
func IsRuntimePath(p string) bool { return Under(p, "/run") }

// IsGeneratedPath reports whether p is a file that a generator or the
// manager made (a generated or transient unit), which enable refuses.
func IsGeneratedPath(p string) (generated, transient bool) {
	switch path.Dir(p) {
	case "/run/systemd/generator", "/run/systemd/generator.early", "/run/systemd/generator.late":
		return true, false
	case "/run/systemd/transient":
		return false, true
	}
	return false, false
}

// Kind classifies a unit name.
type Kind int

const (
	Plain    Kind = 1 << iota // foo.service
	Template                  // foo@.service
	Instance                  // foo@bar.service

	AnyKind = Plain | Template | Instance
)

// NameMax is systemd's UNIT_NAME_MAX.
const NameMax = 255

// validUnitChar reports whether c may appear in a unit name prefix or
// instance, as systemd's VALID_CHARS.
func validUnitChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == ':' || c == '-' || c == '_' || c == '.' || c == '\\'
}

// SplitName splits a valid unit name into prefix, instance (after the
// first "@", empty for a template) and type. ok is false for an invalid
// name.
func SplitName(name string) (prefix, instance, typ string, kind Kind, ok bool) {
	if name == "" || len(name) > NameMax {
		return "", "", "", 0, false
	}
	dot := strings.LastIndexByte(name, '.')
	if dot <= 0 || !slices.Contains(unitTypes, name[dot+1:]) {
		return "", "", "", 0, false
	}
	stem, typ := name[:dot], name[dot+1:]
	prefix, instance, hasAt := strings.Cut(stem, "@")
	if prefix == "" {
		return "", "", "", 0, false
	}
	for i := 0; i < len(prefix); i++ {
		if !validUnitChar(prefix[i]) {
			return "", "", "", 0, false
		}
	}
	if !hasAt {
		return prefix, "", typ, Plain, true
	}
	if instance == "" {
		return prefix, "", typ, Template, true
	}
	for i := 0; i < len(instance); i++ {
		if !validUnitChar(instance[i]) && instance[i] != '@' {
			return "", "", "", 0, false
		}
	}
	return prefix, instance, typ, Instance, true
}

// NameIs reports whether name is a valid unit name of one of kinds.
func NameIs(name string, kinds Kind) bool {
	_, _, _, kind, ok := SplitName(name)
	return ok && kind&kinds != 0
}

// TypeOf returns the type suffix of name ("service"), or "".
func TypeOf(name string) string {
	_, _, typ, _, _ := SplitName(name)
	return typ
}

// TemplateOf returns the template of an instance or template name
// ("foo@.service" for "foo@bar.service"); ok is false for other names.
func TemplateOf(name string) (string, bool) {
	prefix, _, typ, kind, ok := SplitName(name)
	if !ok || kind == Plain {
		return "", false
	}
	return prefix + "@." + typ, true
}

// InstanceOf returns the instance of name, "" for a plain or template
// name.
func InstanceOf(name string) string {
	_, instance, _, _, _ := SplitName(name)
	return instance
}

// SplitInstance returns the template of an instance name and its
// instance, as systemd's unit name grammar reads them: "web@.service"
// and "a" for "web@a.service"; a template and ""; "" and "" for a plain
// name or one that is not a unit name.
func SplitInstance(name string) (template, instance string) {
	template, _ = TemplateOf(name)
	return template, InstanceOf(name)
}

// ReplaceInstance returns the template or instance name with instance in
// place of its own ("foo@x.service" for "foo@.service" and "x").
func ReplaceInstance(name, instance string) (string, bool) {
	prefix, _, typ, kind, ok := SplitName(name)
	if !ok || kind == Plain {
		return "", false
	}
	return prefix + "@" + instance + "." + typ, true
}

// ValidInstance reports whether s may be a unit instance.
func ValidInstance(s string) bool {
	_, _, _, kind, ok := SplitName("x@" + s + ".service")
	return ok && kind == Instance
}

// MayAlias reports whether units of type typ may have aliases, as
// systemd's unit_type_may_alias.
func MayAlias(typ string) bool {
	return slices.Contains([]string{"service", "socket", "target", "device", "timer", "path"}, typ)
}

// MayTemplate reports whether units of type typ may be templates, as
// systemd's unit_type_may_template.
func MayTemplate(typ string) bool {
	return slices.Contains([]string{"service", "socket", "target", "timer", "path"}, typ)
}

// HiddenOrBackup reports whether systemd skips the directory entry name,
// as its hidden_or_backup_file.
func HiddenOrBackup(name string) bool {
	if strings.HasPrefix(name, ".") || name == "lost+found" || name == "aquota.user" ||
		name == "aquota.group" || strings.HasSuffix(name, "~") {
		return true
	}
	dot := strings.LastIndexByte(name, '.')
	if dot < 0 {
		return false
	}
	return slices.Contains([]string{
		"rpmnew", "rpmsave", "rpmorig", "dpkg-old", "dpkg-new", "dpkg-tmp", "dpkg-dist",
		"dpkg-bak", "dpkg-backup", "dpkg-remove", "ucf-new", "ucf-old", "ucf-dist",
		"swp", "bak", "old", "new",
	}, name[dot+1:])
}

// Install is what the [Install] sections of a unit file and its
// drop-ins say, accumulated in the order systemd reads them.
type Install struct {
	Aliases         []string // Alias= values as written; specifiers are expanded when linking
	WantedBy        []string
	RequiredBy      []string
	Also            []string // expanded unit names
	DefaultInstance string
}

// HasRules reports whether the section names something to link: an
// alias, a WantedBy= or a RequiredBy=.
func (s *Install) HasRules() bool {
	return len(s.Aliases) > 0 || len(s.WantedBy) > 0 || len(s.RequiredBy) > 0
}

// Parse reads the [Install] section of data, a unit file or
// drop-in of the unit name, into s, as systemd's config_parse with the
// install items: list keys append, an empty value resets the list,
// values are split on whitespace with quotes removed. It returns the
// units that Also= names, in order, for the caller to add. file is only
// for messages.
func (s *Install) Parse(name, file string, data []byte) (also []string, err error) {
	opts, err := installOptions(data)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w (fix the unit file)", file, err)
	}
	for _, opt := range opts {
		value := opt.value
		switch opt.name {
		case "WantedBy":
			s.WantedBy = parseStrv(s.WantedBy, value)
		case "RequiredBy":
			s.RequiredBy = parseStrv(s.RequiredBy, value)
		case "Alias":
			if MayAlias(TypeOf(name)) {
				s.Aliases = parseStrv(s.Aliases, value)
			}
		case "DefaultInstance":
			if !NameIs(name, Template) {
				continue // ignored for instances, meaningless for plain units
			}
			inst, err := ExpandSpecifiers(value, name, s.DefaultInstance)
			if err != nil {
				return nil, fmt.Errorf("%s: DefaultInstance=%s: %w", file, value, err)
			}
			if inst != "" && !ValidInstance(inst) {
				return nil, fmt.Errorf("%s: DefaultInstance=%s is not a valid instance name (fix the unit file)", file, value)
			}
			s.DefaultInstance = inst
		case "Also":
			for _, word := range strings.Fields(value) {
				u, err := ExpandSpecifiers(word, name, s.DefaultInstance)
				if err != nil {
					return nil, fmt.Errorf("%s: Also=%s: %w", file, word, err)
				}
				if !NameIs(u, AnyKind) {
					return nil, fmt.Errorf("%s: Also=%s: %q is not a valid unit name (fix the unit file)", file, word, u)
				}
				s.Also = append(s.Also, u)
				also = append(also, u)
			}
		}
	}
	return also, nil
}

// parseStrv appends the words of value to list, as systemd's
// config_parse_strv: an empty value empties the list, and a value with
// an unbalanced quote is ignored as a whole.
func parseStrv(list []string, value string) []string {
	if value == "" {
		return nil
	}
	words, ok := splitWords(value)
	if !ok {
		return list
	}
	return append(list, words...)
}

// splitWords splits s on whitespace, removing single and double quotes
// around or inside words and keeping backslash escapes as they are (as
// extract_first_word with EXTRACT_UNQUOTE|EXTRACT_RETAIN_ESCAPE). ok is
// false for an unbalanced quote.
func splitWords(s string) (words []string, ok bool) {
	var word strings.Builder
	in := false    // inside a word
	var quote byte // the open quote, or 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			word.WriteByte(c)
			word.WriteByte(s[i+1])
			i++
			in = true
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				word.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote = c
			in = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if in {
				words = append(words, word.String())
				word.Reset()
				in = false
			}
		default:
			word.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, false
	}
	if in {
		words = append(words, word.String())
	}
	return words, true
}

// ErrSpecifier is wrapped when a value holds a specifier that offline
// install does not expand.
var ErrSpecifier = errors.New("specifier not supported offline")

// ExpandSpecifiers expands the unit specifiers of s for the unit name
// (with defaultInstance filling an empty template instance), as systemd's
// install_name_printf: %n, %N, %p, %i, %j and %%. Specifiers that depend
// on the machine (%H, %m, %u, ...) give an error wrapping ErrSpecifier.
func ExpandSpecifiers(s, name, defaultInstance string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	prefix, instance, typ, kind, _ := SplitName(name)
	if kind == Template && defaultInstance != "" {
		instance = defaultInstance
	}
	full := name
	if kind == Template && defaultInstance != "" {
		full = prefix + "@" + defaultInstance + "." + typ
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("%q ends in a lone %% (write %%%% for a percent sign)", s)
		}
		i++
		switch s[i] {
		case '%':
			b.WriteByte('%')
		case 'n':
			b.WriteString(full)
		case 'N':
			b.WriteString(strings.TrimSuffix(full, "."+typ))
		case 'p':
			b.WriteString(prefix)
		case 'i':
			b.WriteString(instance)
		case 'j':
			if dash := strings.LastIndexByte(prefix, '-'); dash >= 0 {
				b.WriteString(prefix[dash+1:])
			} else {
				b.WriteString(prefix)
			}
		default:
			return "", fmt.Errorf("%w: %%%c in %q (use %%n, %%N, %%p, %%i, %%j or a literal name)", ErrSpecifier, s[i], s)
		}
	}
	return b.String(), nil
}

// ErrSelfAlias is wrapped by ValidateAlias for an alias of a unit to
// itself, which systemd quietly skips.
var ErrSelfAlias = errors.New("unit aliased to itself")

// ValidateAlias checks that the symlink src (a unit name) may alias the
// unit file dst (a unit name), as systemd's
// unit_validate_alias_symlink_or_warn: same type, a type that may alias,
// templates to templates, instances to the same instance or a template.
// An alias to itself gives ErrSelfAlias.
func ValidateAlias(src, dst string) error {
	_, srcInst, srcType, srcKind, ok := SplitName(src)
	if !ok {
		return fmt.Errorf("%q is not a valid unit name", src)
	}
	if !MayAlias(srcType) {
		return fmt.Errorf("%s units cannot have aliases", srcType)
	}
	if srcKind != Plain && !MayTemplate(srcType) {
		return fmt.Errorf("%s units cannot be templates", srcType)
	}
	if src == dst {
		return ErrSelfAlias
	}
	_, dstInst, dstType, dstKind, ok := SplitName(dst)
	switch {
	case !ok:
		return fmt.Errorf("%q is not a valid unit name", dst)
	case dstKind != srcKind && (srcKind != Instance || dstKind != Template):
		return fmt.Errorf("%s and %s are not both plain, templates or instances", src, dst)
	case dstKind == Instance && srcInst != dstInst:
		return fmt.Errorf("%s and %s have different instances", src, dst)
	case dstType != srcType:
		return fmt.Errorf("%s and %s have different types", src, dst)
	}
	return nil
}

// AliasName checks the expanded Alias= value dst of the unit name and
// returns the name to link, as systemd's unit_file_verify_alias: for an
// instance, a template alias gets the instance ("bar@.service" for
// "foo@x.service" links "bar@x.service"). An alias to the unit itself
// gives ErrSelfAlias. A value with a "/" must be "<unit>.wants/<name>" or
// "<unit>.requires/<name>" naming the unit itself (the old way to write
// WantedBy=).
func AliasName(name, dst string) (string, error) {
	if dir, base, ok := strings.Cut(dst, "/"); ok {
		owner, isWants := strings.CutSuffix(dir, ".wants")
		if !isWants {
			owner, isWants = strings.CutSuffix(dir, ".requires")
		}
		if !isWants || strings.Contains(base, "/") || !NameIs(owner, AnyKind) {
			return "", fmt.Errorf("alias %q is not a unit name or <unit>.wants/<name>", dst)
		}
		if !symlinkNameCompatible(base, name, NameIs(owner, Template)) {
			return "", fmt.Errorf("alias %q does not name %s", dst, name)
		}
		return dst, nil
	}
	if NameIs(dst, Template) && NameIs(name, Instance) {
		dst, _ = ReplaceInstance(dst, InstanceOf(name))
	}
	if err := ValidateAlias(dst, name); err != nil {
		if errors.Is(err, ErrSelfAlias) {
			return "", err
		}
		return "", fmt.Errorf("cannot alias %s as %s: %w", name, dst, err)
	}
	return dst, nil
}

// symlinkNameCompatible reports whether a link named link in a .wants or
// .requires directory may point to the unit target, as systemd's
// unit_symlink_name_compatible; propagate is true when the directory
// belongs to a template.
func symlinkNameCompatible(link, target string, propagate bool) bool {
	if link == target && NameIs(link, Plain|Instance) {
		return true
	}
	tmpl, ok := TemplateOf(link)
	if !ok || tmpl != target || !NameIs(target, Template) {
		return false
	}
	return NameIs(link, Instance) || propagate && NameIs(link, Template)
}

// installOption is one key=value line of an [Install] section.
type installOption struct{ name, value string }

// installOptions returns the key=value lines of the [Install] sections of
// a unit file, read as systemd reads it (LogicalLines), the same
// reading the builtins check unit text with.
func installOptions(data []byte) ([]installOption, error) {
	var opts []installOption
	section := ""
	for l, err := range LogicalLines(string(data)) {
		if err != nil {
			return nil, err
		}
		line := strings.Trim(l.Text, " \t\n\r")
		switch {
		case line == "":
		case line[0] == '[':
			name, ok := strings.CutSuffix(line[1:], "]")
			if !ok {
				return nil, fmt.Errorf("line %d: invalid section header (systemd refuses the file)", l.First)
			}
			section = name
		case section == "Install":
			key, value, ok := strings.Cut(line, "=")
			if !ok {
				return nil, fmt.Errorf("line %d: not a key=value line", l.First)
			}
			opts = append(opts, installOption{name: strings.Trim(key, " \t"), value: strings.Trim(value, " \t")})
		}
	}
	return opts, nil
}

// NameError returns nil if name is a unit name systemd accepts
// (unit_name_is_valid: a prefix of letters, digits and ":-_.\", an
// optional "@" and instance, a known type; at most 255 bytes), else an
// error that says what is wrong. The builtins check names with it, as
// the offline systemd does, so that both agree.
func NameError(name string) error {
	dot := strings.LastIndexByte(name, '.')
	prefix, _, _ := strings.Cut(name, "@")
	switch {
	case name == "":
		return errors.New("unit name is empty (write a name such as \"kubelet.service\")")
	case len(name) > NameMax:
		return fmt.Errorf("unit name is %d bytes, longer than systemd takes (%d)", len(name), NameMax)
	case dot <= 0 || !slices.Contains(unitTypes, name[dot+1:]):
		return fmt.Errorf("%q has no unit type systemd knows (end it in .%s)", name, strings.Join(unitTypes, ", ."))
	case prefix == "" || strings.HasPrefix(name, "."):
		return fmt.Errorf("%q has no name before its %s (write a name such as \"flanneld%s\")", name, map[bool]string{true: "\"@\"", false: "type"}[strings.Contains(name, "@")], name[dot:])
	}
	if _, _, _, _, ok := SplitName(name); !ok {
		return fmt.Errorf("%q is not a unit name systemd accepts (letters, digits and \":-_.\\\" only, and one \"@\" before an instance)", name)
	}
	return nil
}

// IsType reports whether s is a unit type systemd knows ("service"):
// "<type>.d" holds drop-ins for every unit of that type.
func IsType(s string) bool { return slices.Contains(unitTypes, s) }

// CheckInstallNames returns an error if a WantedBy=, RequiredBy=, Also=
// or Alias= of text's [Install] section names something that is not a
// unit name, as enabling it would find (a continuation that ran into the
// next section header, WantedBy=a.target \ then [Install], names
// "[Install]"). Words with specifiers (%i) are left to enabling. The
// builtins call it when a playbook is evaluated, so that check fails
// where run would.
func CheckInstallNames(text string) error {
	opts, err := installOptions([]byte(text))
	if err != nil {
		return err
	}
	for _, opt := range opts {
		switch opt.name {
		case "WantedBy", "RequiredBy", "Also", "Alias":
		default:
			continue
		}
		words, _ := splitWords(opt.value)
		for _, w := range words {
			if strings.Contains(w, "%") {
				continue
			}
			if err := NameError(w); err != nil {
				return fmt.Errorf("[Install] %s=%s: %w", opt.name, opt.value, err)
			}
		}
	}
	return nil
}

// DropinDirs are the names of the drop-in directories of the unit
// name, in systemd's order: "foo-bar@x.service" has
// "foo-bar@x.service.d", its template's "foo-bar@.service.d" and the
// template's dash prefix "foo-@.service.d", its own dash prefix
// "foo-.service.d", and last "service.d".
func DropinDirs(name string) []string {
	_, _, typ, _, ok := SplitName(name)
	if !ok {
		return []string{name + ".d"}
	}
	dirs := []string{name + ".d"}
	if tmpl, ok := TemplateOf(name); ok && tmpl != name {
		dirs = append(dirs, tmpl+".d")
		dirs = append(dirs, dashPrefixes(tmpl, "@."+typ+".d")...)
	} else if ok && strings.Contains(name, "@.") {
		dirs = append(dirs, dashPrefixes(name, "@."+typ+".d")...)
	}
	if !strings.Contains(name, "@.") {
		dirs = append(dirs, dashPrefixes(name, "."+typ+".d")...)
	}
	return append(dirs, typ+".d")
}

// dashPrefixes are the prefixes of name's part before "@" or the type
// that end in a dash, longest first, each with suffix: "foo-bar-baz"
// gives "foo-bar-" and "foo-".
func dashPrefixes(name, suffix string) []string {
	prefix, _, _, _, _ := SplitName(name)
	var out []string
	for i := len(prefix) - 1; i > 0; i-- {
		if prefix[i] == '-' && !strings.HasSuffix(prefix[:i], "-") {
			out = append(out, prefix[:i+1]+suffix)
		}
	}
	return out
}
