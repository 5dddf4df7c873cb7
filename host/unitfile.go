package host

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
)

// This file holds the pure part of the offline systemd backend: unit
// names, the search path, the [Install] section, specifiers and alias
// rules, as systemd 252's src/shared/install.c and src/basic/unit-name.c
// have them. Nothing here does I/O.

// unitConfigDir is where enable, disable and mask write: systemctl's
// persistent configuration directory.
const unitConfigDir = "/etc/systemd/system"

// unitSearchPath is the unit search path of `systemctl --root=DIR` for
// the system scope, in order (first match wins), as Debian's systemd 252
// prints it with `systemd-analyze unit-paths`. /lib comes before
// /usr/lib: on a root where /lib -> usr/lib, systemctl finds
// /lib/systemd/system/foo.service first and links to that path.
var unitSearchPath = []string{
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

// unitTypes are the unit name suffixes systemd knows.
var unitTypes = []string{
	"service", "socket", "target", "device", "mount", "automount",
	"swap", "timer", "path", "slice", "scope",
}

// inSearchPath reports whether p is a file directly in a search path
// directory.
func inSearchPath(p string) bool {
	return slices.Contains(unitSearchPath, path.Dir(p))
}

// underSearchPath reports whether p is a search path directory or below
// one.
func underSearchPath(p string) bool {
	return slices.ContainsFunc(unitSearchPath, func(dir string) bool { return pathHasPrefix(p, dir) })
}

// pathHasPrefix reports whether p is dir or below it, element by element.
func pathHasPrefix(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// isConfigPath reports whether p is a file directly in one of the
// configuration directories (/etc/systemd/system, /run/systemd/system).
func isConfigPath(p string) bool {
	dir := path.Dir(p)
	return dir == unitConfigDir || dir == "/run/systemd/system"
}

// isRuntimePath reports whether p is under /run, which is runtime state.
func isRuntimePath(p string) bool { return pathHasPrefix(p, "/run") }

// isGeneratedPath reports whether p is a file that a generator or the
// manager made (a generated or transient unit), which enable refuses.
func isGeneratedPath(p string) (generated, transient bool) {
	switch path.Dir(p) {
	case "/run/systemd/generator", "/run/systemd/generator.early", "/run/systemd/generator.late":
		return true, false
	case "/run/systemd/transient":
		return false, true
	}
	return false, false
}

// nameKind classifies a unit name.
type nameKind int

const (
	namePlain    nameKind = 1 << iota // foo.service
	nameTemplate                      // foo@.service
	nameInstance                      // foo@bar.service

	nameAny = namePlain | nameTemplate | nameInstance
)

// unitNameMax is systemd's UNIT_NAME_MAX.
const unitNameMax = 255

// validUnitChar reports whether c may appear in a unit name prefix or
// instance, as systemd's VALID_CHARS.
func validUnitChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == ':' || c == '-' || c == '_' || c == '.' || c == '\\'
}

// splitUnitName splits a valid unit name into prefix, instance (after the
// first "@", empty for a template) and type. ok is false for an invalid
// name.
func splitUnitName(name string) (prefix, instance, typ string, kind nameKind, ok bool) {
	if name == "" || len(name) > unitNameMax {
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
		return prefix, "", typ, namePlain, true
	}
	if instance == "" {
		return prefix, "", typ, nameTemplate, true
	}
	for i := 0; i < len(instance); i++ {
		if !validUnitChar(instance[i]) && instance[i] != '@' {
			return "", "", "", 0, false
		}
	}
	return prefix, instance, typ, nameInstance, true
}

// unitNameIs reports whether name is a valid unit name of one of kinds.
func unitNameIs(name string, kinds nameKind) bool {
	_, _, _, kind, ok := splitUnitName(name)
	return ok && kind&kinds != 0
}

// unitType returns the type suffix of name ("service"), or "".
func unitType(name string) string {
	_, _, typ, _, _ := splitUnitName(name)
	return typ
}

// unitTemplate returns the template of an instance or template name
// ("foo@.service" for "foo@bar.service"); ok is false for other names.
func unitTemplate(name string) (string, bool) {
	prefix, _, typ, kind, ok := splitUnitName(name)
	if !ok || kind == namePlain {
		return "", false
	}
	return prefix + "@." + typ, true
}

// unitInstance returns the instance of name, "" for a plain or template
// name.
func unitInstance(name string) string {
	_, instance, _, _, _ := splitUnitName(name)
	return instance
}

// SplitInstance returns the template of an instance name and its
// instance, as systemd's unit name grammar reads them: "web@.service"
// and "a" for "web@a.service"; a template and ""; "" and "" for a plain
// name or one that is not a unit name.
func SplitInstance(name string) (template, instance string) {
	template, _ = unitTemplate(name)
	return template, unitInstance(name)
}

// replaceInstance returns the template or instance name with instance in
// place of its own ("foo@x.service" for "foo@.service" and "x").
func replaceInstance(name, instance string) (string, bool) {
	prefix, _, typ, kind, ok := splitUnitName(name)
	if !ok || kind == namePlain {
		return "", false
	}
	return prefix + "@" + instance + "." + typ, true
}

// validInstance reports whether s may be a unit instance.
func validInstance(s string) bool {
	_, _, _, kind, ok := splitUnitName("x@" + s + ".service")
	return ok && kind == nameInstance
}

// mayAlias reports whether units of type typ may have aliases, as
// systemd's unit_type_may_alias.
func mayAlias(typ string) bool {
	return slices.Contains([]string{"service", "socket", "target", "device", "timer", "path"}, typ)
}

// mayTemplate reports whether units of type typ may be templates, as
// systemd's unit_type_may_template.
func mayTemplate(typ string) bool {
	return slices.Contains([]string{"service", "socket", "target", "timer", "path"}, typ)
}

// hiddenOrBackup reports whether systemd skips the directory entry name,
// as its hidden_or_backup_file.
func hiddenOrBackup(name string) bool {
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

// installSection is what the [Install] sections of a unit file and its
// drop-ins say, accumulated in the order systemd reads them.
type installSection struct {
	aliases         []string // raw values; specifiers are expanded when linking
	wantedBy        []string
	requiredBy      []string
	also            []string // expanded unit names
	defaultInstance string
}

// hasRules reports whether the section names something to link: an
// alias, a WantedBy= or a RequiredBy=.
func (s *installSection) hasRules() bool {
	return len(s.aliases) > 0 || len(s.wantedBy) > 0 || len(s.requiredBy) > 0
}

// parseInstall reads the [Install] section of data, a unit file or
// drop-in of the unit name, into s, as systemd's config_parse with the
// install items: list keys append, an empty value resets the list,
// values are split on whitespace with quotes removed. It returns the
// units that Also= names, in order, for the caller to add. file is only
// for messages.
func parseInstall(s *installSection, name, file string, data []byte) (also []string, err error) {
	opts, err := installOptions(data)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w (fix the unit file)", file, err)
	}
	for _, opt := range opts {
		value := opt.value
		switch opt.name {
		case "WantedBy":
			s.wantedBy = parseStrv(s.wantedBy, value)
		case "RequiredBy":
			s.requiredBy = parseStrv(s.requiredBy, value)
		case "Alias":
			if mayAlias(unitType(name)) {
				s.aliases = parseStrv(s.aliases, value)
			}
		case "DefaultInstance":
			if !unitNameIs(name, nameTemplate) {
				continue // ignored for instances, meaningless for plain units
			}
			inst, err := expandSpecifiers(value, name, s.defaultInstance)
			if err != nil {
				return nil, fmt.Errorf("%s: DefaultInstance=%s: %w", file, value, err)
			}
			if inst != "" && !validInstance(inst) {
				return nil, fmt.Errorf("%s: DefaultInstance=%s is not a valid instance name (fix the unit file)", file, value)
			}
			s.defaultInstance = inst
		case "Also":
			for _, word := range strings.Fields(value) {
				u, err := expandSpecifiers(word, name, s.defaultInstance)
				if err != nil {
					return nil, fmt.Errorf("%s: Also=%s: %w", file, word, err)
				}
				if !unitNameIs(u, nameAny) {
					return nil, fmt.Errorf("%s: Also=%s: %q is not a valid unit name (fix the unit file)", file, word, u)
				}
				s.also = append(s.also, u)
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

// errSpecifier is wrapped when a value holds a specifier that offline
// install does not expand.
var errSpecifier = errors.New("specifier not supported offline")

// expandSpecifiers expands the unit specifiers of s for the unit name
// (with defaultInstance filling an empty template instance), as systemd's
// install_name_printf: %n, %N, %p, %i, %j and %%. Specifiers that depend
// on the machine (%H, %m, %u, ...) give an error wrapping errSpecifier.
func expandSpecifiers(s, name, defaultInstance string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	prefix, instance, typ, kind, _ := splitUnitName(name)
	if kind == nameTemplate && defaultInstance != "" {
		instance = defaultInstance
	}
	full := name
	if kind == nameTemplate && defaultInstance != "" {
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
			return "", fmt.Errorf("%w: %%%c in %q (use %%n, %%N, %%p, %%i, %%j or a literal name)", errSpecifier, s[i], s)
		}
	}
	return b.String(), nil
}

// errSelfAlias is wrapped by validateAlias for an alias of a unit to
// itself, which systemd quietly skips.
var errSelfAlias = errors.New("unit aliased to itself")

// validateAlias checks that the symlink src (a unit name) may alias the
// unit file dst (a unit name), as systemd's
// unit_validate_alias_symlink_or_warn: same type, a type that may alias,
// templates to templates, instances to the same instance or a template.
// An alias to itself gives errSelfAlias.
func validateAlias(src, dst string) error {
	_, srcInst, srcType, srcKind, ok := splitUnitName(src)
	if !ok {
		return fmt.Errorf("%q is not a valid unit name", src)
	}
	if !mayAlias(srcType) {
		return fmt.Errorf("%s units cannot have aliases", srcType)
	}
	if srcKind != namePlain && !mayTemplate(srcType) {
		return fmt.Errorf("%s units cannot be templates", srcType)
	}
	if src == dst {
		return errSelfAlias
	}
	_, dstInst, dstType, dstKind, ok := splitUnitName(dst)
	switch {
	case !ok:
		return fmt.Errorf("%q is not a valid unit name", dst)
	case dstKind != srcKind && (srcKind != nameInstance || dstKind != nameTemplate):
		return fmt.Errorf("%s and %s are not both plain, templates or instances", src, dst)
	case dstKind == nameInstance && srcInst != dstInst:
		return fmt.Errorf("%s and %s have different instances", src, dst)
	case dstType != srcType:
		return fmt.Errorf("%s and %s have different types", src, dst)
	}
	return nil
}

// aliasName checks the expanded Alias= value dst of the unit name and
// returns the name to link, as systemd's unit_file_verify_alias: for an
// instance, a template alias gets the instance ("bar@.service" for
// "foo@x.service" links "bar@x.service"). An alias to the unit itself
// gives errSelfAlias. A value with a "/" must be "<unit>.wants/<name>" or
// "<unit>.requires/<name>" naming the unit itself (the old way to write
// WantedBy=).
func aliasName(name, dst string) (string, error) {
	if dir, base, ok := strings.Cut(dst, "/"); ok {
		owner, isWants := strings.CutSuffix(dir, ".wants")
		if !isWants {
			owner, isWants = strings.CutSuffix(dir, ".requires")
		}
		if !isWants || strings.Contains(base, "/") || !unitNameIs(owner, nameAny) {
			return "", fmt.Errorf("alias %q is not a unit name or <unit>.wants/<name>", dst)
		}
		if !symlinkNameCompatible(base, name, unitNameIs(owner, nameTemplate)) {
			return "", fmt.Errorf("alias %q does not name %s", dst, name)
		}
		return dst, nil
	}
	if unitNameIs(dst, nameTemplate) && unitNameIs(name, nameInstance) {
		dst, _ = replaceInstance(dst, unitInstance(name))
	}
	if err := validateAlias(dst, name); err != nil {
		if errors.Is(err, errSelfAlias) {
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
	if link == target && unitNameIs(link, namePlain|nameInstance) {
		return true
	}
	tmpl, ok := unitTemplate(link)
	if !ok || tmpl != target || !unitNameIs(target, nameTemplate) {
		return false
	}
	return unitNameIs(link, nameInstance) || propagate && unitNameIs(link, nameTemplate)
}

// installOption is one key=value line of an [Install] section.
type installOption struct{ name, value string }

// installOptions returns the key=value lines of the [Install] sections of
// a unit file, read as systemd reads it (UnitLogicalLines), the same
// reading the builtins check unit text with.
func installOptions(data []byte) ([]installOption, error) {
	var opts []installOption
	section := ""
	for l, err := range UnitLogicalLines(string(data)) {
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

// UnitNameError returns nil if name is a unit name systemd accepts
// (unit_name_is_valid: a prefix of letters, digits and ":-_.\", an
// optional "@" and instance, a known type; at most 255 bytes), else an
// error that says what is wrong. The builtins check names with it, as
// the offline systemd does, so that both agree.
func UnitNameError(name string) error {
	dot := strings.LastIndexByte(name, '.')
	prefix, _, _ := strings.Cut(name, "@")
	switch {
	case name == "":
		return errors.New("unit name is empty (write a name such as \"kubelet.service\")")
	case len(name) > unitNameMax:
		return fmt.Errorf("unit name is %d bytes, longer than systemd takes (%d)", len(name), unitNameMax)
	case dot <= 0 || !slices.Contains(unitTypes, name[dot+1:]):
		return fmt.Errorf("%q has no unit type systemd knows (end it in .%s)", name, strings.Join(unitTypes, ", ."))
	case prefix == "" || strings.HasPrefix(name, "."):
		return fmt.Errorf("%q has no name before its %s (write a name such as \"flanneld%s\")", name, map[bool]string{true: "\"@\"", false: "type"}[strings.Contains(name, "@")], name[dot:])
	}
	if _, _, _, _, ok := splitUnitName(name); !ok {
		return fmt.Errorf("%q is not a unit name systemd accepts (letters, digits and \":-_.\\\" only, and one \"@\" before an instance)", name)
	}
	return nil
}

// IsUnitType reports whether s is a unit type systemd knows ("service"):
// "<type>.d" holds drop-ins for every unit of that type.
func IsUnitType(s string) bool { return slices.Contains(unitTypes, s) }

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
			if err := UnitNameError(w); err != nil {
				return fmt.Errorf("[Install] %s=%s: %w", opt.name, opt.value, err)
			}
		}
	}
	return nil
}
