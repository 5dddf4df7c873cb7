package builtins

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
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

// fileMode is a permission mode such as 0o644, with fs.FileMode's
// setuid, setgid and sticky bits (see toFileMode).
type fileMode fs.FileMode

// modeArg is the mode= of a builtin that writes a file or a directory:
// an int from 0o0 to 0o7777, such as 0o644. Setuid, setgid and sticky
// bits are taken only from an octal literal in the call (checkSpecial),
// so thread, the calling thread, is set before unpacking, with mode as
// the default. given reports that a mode was unpacked. Unpack's errors:
// not an int; out of range; special bits computed.
type modeArg struct {
	thread *starlark.Thread
	mode   fileMode
	given  bool
}

func (m *modeArg) Unpack(v starlark.Value) error {
	i, ok := v.(starlark.Int)
	if !ok {
		return fmt.Errorf("got %s, want int (write a mode in octal such as 0o644)", v.Type())
	}
	n, ok := i.Int64()
	if !ok || n < 0 || n > 0o7777 {
		return fmt.Errorf("%s is not a file mode (want 0o0 to 0o7777, such as 0o644)", i)
	}
	mode := fileMode(toFileMode(n))
	if err := mode.checkSpecial(m.thread); err != nil {
		return err
	}
	m.mode, m.given = mode, true
	return nil
}

// checkSpecial refuses setuid, setgid and sticky bits unless the call
// running in thread wrote its mode= as an octal literal: a computed mode
// such as MODE = 644 (decimal: 0o1204, sticky) is most likely a slip.
func (m fileMode) checkSpecial(thread *starlark.Thread) error {
	special := fs.FileMode(m) & (fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if special == 0 || engine.OctalModeLiteral(thread) {
		return nil
	}
	var bits []string
	for _, b := range []struct {
		bit  fs.FileMode
		name string
	}{{fs.ModeSetuid, "setuid"}, {fs.ModeSetgid, "setgid"}, {fs.ModeSticky, "sticky"}} {
		if special&b.bit != 0 {
			bits = append(bits, b.name)
		}
	}
	oct := "0o" + strings.TrimLeft(modeString(fs.FileMode(m)), "0")
	return fmt.Errorf("mode %s has the %s bit%s, which kplay takes only from an octal literal in the call (mode=%s); a computed mode with them is most likely a decimal slip (644 is 0o1204, sticky)",
		oct, strings.Join(bits, " and "), map[bool]string{true: "s", false: ""}[len(bits) > 1], oct)
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

// absURL is an absolute URL, one with a scheme and a host (engine.IsURL),
// such as "http://127.0.0.1:8080/version". example, set before
// unpacking, is the URL its error suggests. Unpack's errors: not a
// string; not an absolute URL.
type absURL struct {
	example string
	url     string
}

func (u *absURL) Unpack(v starlark.Value) error {
	s, ok := starlark.AsString(v)
	if !ok {
		return fmt.Errorf("got %s, want string", v.Type())
	}
	if err := checkURL(s, u.example); err != nil {
		return err
	}
	u.url = s
	return nil
}

// checkURL refuses s unless it is an absolute URL; the error suggests
// example instead, and quotes s with its credentials redacted
// (redactURLArg).
func checkURL(s, example string) error {
	if !engine.IsURL(s) {
		return fmt.Errorf("%q is not an absolute URL (want one such as %s)", redactURLArg(s), example)
	}
	return nil
}

// redactURLArg is s, meant as a URL, as an error may quote it: what
// stands before an "@" after the scheme is "xxxxx", also when s has no
// scheme ("admin:pw@host"), which host.RedactURLs, reading free text,
// cannot tell from an e-mail address. An "@" in a path hides more than
// needed, in an error only.
func redactURLArg(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return host.RedactURLs(s)
	}
	start := 0
	if i := strings.Index(s[:at], "://"); i >= 0 {
		start = i + len("://")
	}
	return host.RedactURLs(s[:start] + "xxxxx" + s[at:])
}

// statuses is a non-empty list (or tuple) of HTTP statuses, each from 100
// to 599, such as [200, 201]: the statuses a builtin takes for success.
// Unpack's errors: not a non-empty list; an item that is not a status.
type statuses []int

func (s *statuses) Unpack(v starlark.Value) error {
	items, err := engine.Sequence(v)
	if err != nil || len(items) == 0 {
		return fmt.Errorf("got %s, want a list of HTTP statuses such as [200, 201]", v.Type())
	}
	var out statuses
	for _, item := range items {
		n, err := starlark.AsInt32(item)
		if err != nil || n < 100 || n > 599 {
			return fmt.Errorf("%s is not an HTTP status (want 100 to 599)", item)
		}
		out = append(out, n)
	}
	*s = out
	return nil
}

// account is an owner or group: a name, resolved against the target
// root's passwd or group sources (host: nsswitch.conf) at diff time, or a
// numeric id.
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

// localPath resolves a file on the machine running kplay (src=, TLS
// files): relative names are relative to the playbook's directory.
func localPath(thread *starlark.Thread, name string) (string, error) {
	if filepath.IsAbs(name) {
		return name, nil
	}
	dir, err := engine.Dir(thread)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, name), nil
}

// maxNesting bounds how deep lists and dicts may nest in a value that
// ToGo converts: encoding/json and YAML recurse, and a value nested a
// million deep would overflow the stack.
const maxNesting = 100

// ToGo converts a Starlark value to what encoding/json and YAML encode:
// None, bool, int, float, string, list, and dict with string keys, nested
// at most 100 deep (deeper is an error, not a stack overflow). kplay
// test seeds its fake API server's objects with it.
func ToGo(v starlark.Value) (any, error) { return toGoDepth(v, 0) }

func toGoDepth(v starlark.Value, depth int) (any, error) {
	if depth > maxNesting {
		return nil, fmt.Errorf("value nests lists and dicts deeper than %d levels", maxNesting)
	}
	switch v := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Bool:
		return bool(v), nil
	case starlark.Int:
		if n, ok := v.Int64(); ok {
			return n, nil
		}
		return nil, fmt.Errorf("int %s is too large", v)
	case starlark.Float:
		return float64(v), nil
	case starlark.String:
		return string(v), nil
	case *starlark.List, starlark.Tuple:
		items, _ := engine.Sequence(v)
		out := make([]any, 0, len(items))
		for _, item := range items {
			g, err := toGoDepth(item, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, g)
		}
		return out, nil
	case *starlark.Dict:
		out := make(map[string]any, v.Len())
		for _, item := range v.Items() {
			k, ok := starlark.AsString(item[0])
			if !ok {
				return nil, fmt.Errorf("dict key %s is %s, want string", item[0], item[0].Type())
			}
			g, err := toGoDepth(item[1], depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%q]: %v", k, err)
			}
			out[k] = g
		}
		return out, nil
	}
	return nil, fmt.Errorf("got %s, want a string, number, bool, None, list or dict", v.Type())
}

// compactJSON encodes a Starlark value as JSON without spaces and with
// sorted keys, so the same value always gives the same bytes.
func compactJSON(v starlark.Value) (string, error) {
	g, err := ToGo(v)
	if err != nil {
		return "", err
	}
	data, err := json.Marshal(g)
	return string(data), err
}

// tlsFiles resolves the ca, cert and key_file arguments of a builtin
// that talks to a server: TLS files on the machine running kplay,
// relative to the playbook's directory. cert and key_file go together,
// and they go with https URLs only (urls: the ones the builtin talks to).
func tlsFiles(thread *starlark.Thread, fn *starlark.Builtin, ca, cert, keyFile string, urls ...string) (host.TLSFiles, error) {
	if (cert == "") != (keyFile == "") {
		return host.TLSFiles{}, fmt.Errorf("%s: give both cert and key_file, or neither", fn.Name())
	}
	if ca != "" || cert != "" {
		// Over http they would do nothing, and the playbook would believe
		// its server checked.
		for _, u := range urls {
			if !strings.HasPrefix(strings.ToLower(u), "https://") {
				return host.TLSFiles{}, fmt.Errorf("%s: ca, cert and key_file are for https, but %s is not https (write https://…, or leave them out)", fn.Name(), host.RedactURLs(u))
			}
		}
	}
	var files host.TLSFiles
	for _, f := range []struct {
		to   *string
		name string
	}{{&files.CAFile, ca}, {&files.CertFile, cert}, {&files.KeyFile, keyFile}} {
		if f.name == "" {
			continue
		}
		var err error
		if *f.to, err = localPath(thread, f.name); err != nil {
			return host.TLSFiles{}, err
		}
	}
	return files, nil
}
