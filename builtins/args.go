package builtins

import (
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"go.starlark.net/starlark"
)

// absPath is a path inside the target root: absolute, clean, no "..".
type absPath string

func (p *absPath) Unpack(v starlark.Value) error {
	s, ok := starlark.AsString(v)
	if !ok {
		return fmt.Errorf("got %s, want string", v.Type())
	}
	switch {
	case s == "":
		return fmt.Errorf("path is empty (write an absolute path such as \"/etc/motd\")")
	case !path.IsAbs(s):
		return fmt.Errorf("%q is not absolute (write %q)", s, path.Join("/", s))
	case strings.Contains(s, "\x00"):
		return fmt.Errorf("%q holds a NUL byte", s)
	case hasDotDot(s):
		return fmt.Errorf("%q holds \"..\" (write the path it means, %q)", s, path.Clean(s))
	case s != "/" && path.Clean(s) != s:
		return fmt.Errorf("%q is not clean (write %q)", s, path.Clean(s))
	}
	*p = absPath(s)
	return nil
}

func hasDotDot(s string) bool {
	for _, el := range strings.Split(s, "/") {
		if el == ".." {
			return true
		}
	}
	return false
}

// fileMode is a permission mode such as 0o644.
type fileMode fs.FileMode

func (m *fileMode) Unpack(v starlark.Value) error {
	i, ok := v.(starlark.Int)
	if !ok {
		return fmt.Errorf("got %s, want int (write a mode in octal such as 0o644)", v.Type())
	}
	n, ok := i.Int64()
	if !ok || n < 0 || n > 0o7777 {
		return fmt.Errorf("%s is not a file mode (want 0o0 to 0o7777, such as 0o644)", i)
	}
	*m = fileMode(toFileMode(n))
	return nil
}

// toFileMode converts the Unix mode bits of a playbook to fs.FileMode,
// whose setuid, setgid and sticky bits are not the Unix ones.
func toFileMode(n int64) fs.FileMode {
	m := fs.FileMode(n & 0o777)
	if n&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if n&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if n&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// modeString prints a mode the way a playbook writes it: 0644, 04755.
func modeString(m fs.FileMode) string {
	n := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		n |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		n |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		n |= 0o1000
	}
	return fmt.Sprintf("%04o", n)
}

// account is an owner or group: a name, resolved against the target
// root's /etc/passwd or /etc/group at diff time, or a numeric id.
type account string

func (a *account) Unpack(v starlark.Value) error {
	switch v := v.(type) {
	case starlark.String:
		s := string(v)
		if s == "" || strings.ContainsAny(s, ":\n\x00") {
			return fmt.Errorf("%q is not a user or group name (write a name such as \"root\" or a numeric id)", s)
		}
		*a = account(s)
		return nil
	case starlark.Int:
		n, ok := v.Int64()
		if !ok || n < 0 || n > 1<<31 {
			return fmt.Errorf("%s is not a user or group id", v)
		}
		*a = account(strconv.FormatInt(n, 10))
		return nil
	}
	return fmt.Errorf("got %s, want string (a name such as \"root\") or int", v.Type())
}
