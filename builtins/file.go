package builtins

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
)

const fileDoc = `file(path, content=None, src=None, mode=None, owner="root", group="root", sensitive=None, tags=[], on_change=[], state="present")
Declares the regular file path inside the target root with the given
content, mode and owner. The file is written atomically: a temp file,
synced to disk, then renamed over it (a run syncs the temp files of
consecutive file steps together, then renames them in order); missing parent
directories are created with mode 0755. A change of mode or owner alone is an
update too.

- path: absolute path inside the root, such as "/etc/flannel/options.env".
- content: the text of the file. Give exactly one of content and src.
- src: a file on the machine running kplay whose bytes become the content;
  relative to the playbook's directory unless absolute. It is read when the
  plan is diffed, not when the playbook is evaluated.
- mode: permission bits in octal, such as 0o600 (mode=600 is an error:
  Starlark reads it as decimal, 0o1130). Defaults to 0o644, or 0o600 when
  the content is sensitive. A mode that lets others read sensitive
  content (0o644) is an error unless sensitive=False. Setuid, setgid and
  sticky bits only as an octal literal in the call (mode=0o4755).
- owner, group: names looked up as the root resolves them: through the
  sources of its /etc/nsswitch.conf (files: /etc; usrfiles, as on CoreOS:
  /usr/share/baselayout; altfiles: /usr/lib), or /etc without one; or
  numeric ids.
- sensitive: never print the content, only its size and fingerprint (see
  docs/security.md). None (the default) lets the secret rule decide: True
  when path or src ends in "-key.pem" or ".key", or contains "secret" or
  "token"; when the content holds a PEM private key, kubeconfig
  credentials or a Kubernetes Secret; when mode is closed to group and
  others; or when the content holds a var declared sensitive=True.
  A file already there whose mode is closed to group and others keeps
  its old content out of the output too. False turns off the name,
  content and mode rules for what the file gets: its diff shows, even of
  a file closed to others (not of key material it replaces), and a mode
  open to others is no error; a sensitive var's value stays hidden and
  makes the default mode 0600.
- state: "present" (the default) or "absent": the file must not exist,
  such as a distro default or a stray backup; a file or symlink there is
  deleted (a directory is an error), as the removal of a file the
  playbook no longer declares is.`

// file implements the file builtin; see fileDoc.
func file(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	s := &fileStep{owner: "root", group: "root"}
	var path absPath
	var content fileContent
	var src srcName
	mode := modeArg{thread: thread, mode: 0o644}
	state := presence("present")
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"path", &path,
		"content??", &content,
		"src??", &src,
		"mode??", &mode,
		"owner?", &s.owner,
		"group?", &s.group,
		"sensitive?", &s.meta.Sensitive,
		"tags?", &s.meta.Tags,
		"on_change?", &s.meta.OnChange,
		"state?", &state,
	); err != nil {
		return nil, err
	}
	s.path, s.mode, s.modeGiven = string(path), mode.mode, mode.given
	if err := engine.StatePathError(s.path); err != nil {
		return nil, fmt.Errorf("%s: %v", fn.Name(), err)
	}
	if state == "absent" {
		if content.given || src != "" || mode.given {
			return nil, fmt.Errorf("%s: state = \"absent\" takes no content, src or mode (the file must not exist)", fn.Name())
		}
		kind := "file"
		switch {
		case isDropinPath(s.path):
			kind = "dropin"
		case isUnitFilePath(s.path):
			kind = "unit"
		}
		return recordAbsent(thread, kind, s.path, s.meta)
	}
	if err := consumerNameError(s.path); err != nil {
		return nil, fmt.Errorf("%s: %v", fn.Name(), err)
	}
	s.meta.Kind, s.meta.Target, s.meta.Resource = "file", s.path, s.path
	if isUnitFilePath(s.path) {
		// systemd reads it: a change owes a daemon-reload, as for unit().
		s.meta.Reload = engine.UnitFile
	}
	switch {
	case content.given && src != "":
		return nil, fmt.Errorf("%s: give content or src, not both", fn.Name())
	case !content.given && src == "":
		return nil, fmt.Errorf("%s: give content (the text) or src (a file to copy)", fn.Name())
	case content.given:
		s.content = []byte(content.text)
	default:
		var err error
		if s.src, err = localPath(thread, string(src)); err != nil {
			return nil, err
		}
	}
	names := []string{s.path}
	if src != "" {
		names = append(names, string(src)) // as the playbook wrote it: the directories above are not its business
	}
	if err := s.decideSecret(thread, nil, names...); err != nil {
		return nil, fmt.Errorf("%s: %v", fn.Name(), err)
	}
	if isManifestPath(s.path) && s.src == "" {
		// The kubelet runs every file there as a static pod: check it
		// as manifest() does.
		if _, err := checkPod(s.content, s.meta.Sensitive == engine.SensitiveYes); err != nil {
			return nil, fmt.Errorf("%s: for parameter content: %v (the kubelet reads %s as a static pod)", fn.Name(), err, s.path)
		}
	}
	if s.meta.Reload == engine.UnitFile && s.src == "" {
		// A unit file or drop-in written as a plain file is read by
		// systemd all the same: check it as unit() and dropin() do. (A
		// src= file is read only at diff time.)
		if err := checkUnitTextOf(unitTypeOf(s.path), string(s.content), s.meta.Sensitive == engine.SensitiveYes); err != nil {
			return nil, fmt.Errorf("%s: for parameter content: %v (systemd reads %s as unit text)", fn.Name(), err, s.path)
		}
	}
	return engine.Record(thread, s)
}

// fileContent is file()'s content=: a string of at most host.SrcLimit
// bytes (checkContentSize). given tells content="" from no content.
// Unpack's errors: not a string; too large.
type fileContent struct {
	text  string
	given bool
}

func (c *fileContent) Unpack(v starlark.Value) error {
	text, ok := starlark.AsString(v)
	if !ok {
		return fmt.Errorf("got %s, want string", v.Type())
	}
	if err := checkContentSize(len(text)); err != nil {
		return err
	}
	c.text, c.given = text, true
	return nil
}

// srcName is file()'s src=: the name of a file on the machine running
// kplay, not empty. Unpack's error: not a string, or empty.
type srcName string

func (n *srcName) Unpack(v starlark.Value) error {
	name, ok := starlark.AsString(v)
	if !ok || name == "" {
		return fmt.Errorf("got %s, want a file name", v.Type())
	}
	*n = srcName(name)
	return nil
}

// checkContentSize refuses file content larger than a src= file may be
// (host.SrcLimit): kplay holds it, its old version and their diff in
// memory.
func checkContentSize(n int) error {
	if n > host.SrcLimit {
		return fmt.Errorf("%s, larger than the %s a file's content may be (as for src=)", engine.ByteSize(uint64(n)), engine.ByteSize(host.SrcLimit))
	}
	return nil
}

type fileStep struct {
	meta         engine.StepMeta
	path         string
	content      []byte
	src          string // read at diff time when set
	mode         fileMode
	modeGiven    bool // mode= was given: the secret rule does not choose it
	saidNo       bool // sensitive=False: a given mode open to others is no error
	owner, group account

	managesOnce sync.Once
	manages     []engine.Object // Manages, worked out once
}

// decideSecret applies the secret rule (engine.Sensitivity) when the
// builtin is called, to the names the file goes by and its content, and
// the flow rule to value, the Starlark value the content was made from
// (a dict made into YAML keeps no trace of a sensitive var's text), if
// not nil. A sensitive file gets mode 0600 unless mode= was given; a
// given mode that lets others read it is an error unless the playbook
// said sensitive=False. A sensitive var's value makes the file sensitive
// even then: the flow rule is never off.
func (s *fileStep) decideSecret(thread *starlark.Thread, value starlark.Value, names ...string) error {
	s.saidNo = s.meta.Sensitive == engine.SensitiveNo
	s.meta.Sensitive = s.meta.Sensitive.Decide(names, s.content, fs.FileMode(s.mode), s.modeGiven)
	if engine.ContainsSecret(thread, s.content) || (value != nil && holdsSecret(thread, value)) {
		s.meta.Sensitive = engine.SensitiveYes
	}
	if s.meta.Sensitive != engine.SensitiveYes {
		return nil
	}
	mode, err := s.secretMode()
	s.mode = mode
	return err
}

// secretMode is the mode of the file when its content is sensitive: 0600
// unless mode= was given, and an error if the given mode lets others in
// and the playbook did not say sensitive=False.
func (s *fileStep) secretMode() (fileMode, error) {
	if !s.modeGiven {
		return 0o600, nil
	}
	if s.mode&0o007 != 0 && !s.saidNo {
		return s.mode, fmt.Errorf("mode %s lets every user read %s, which is sensitive (give mode=0o600, or 0o640 with a group; or sensitive=False if it is not secret)", modeString(fs.FileMode(s.mode)), s.path)
	}
	return s.mode, nil
}

// modeFor is the mode to write content with, and whether the secret rule
// finds it sensitive by what only Diff sees: content read from src that
// holds a private key (unless sensitive=False), or a sensitive var's
// value (always), gets the mode of secretMode.
func (s *fileStep) modeFor(ctx context.Context, content []byte) (fs.FileMode, bool, error) {
	if s.meta.Sensitive == engine.SensitiveYes {
		return fs.FileMode(s.mode), true, nil // decided when the builtin was called
	}
	if engine.SecretIn(ctx, content) || (s.meta.Sensitive == engine.SensitiveAuto && s.src != "" && engine.SensitiveContent(content)) {
		mode, err := s.secretMode()
		return fs.FileMode(mode), true, err
	}
	return fs.FileMode(s.mode), false, nil
}

// closedBefore reports whether the file there already is closed to group
// and others (the rule's mode part), so that its old content stays out of
// the output, unless the playbook said sensitive=False: then a reviewer
// sees the change (a new key in authorized_keys), and only key material
// in it stays hidden (the engine's content rule). Its mode converges to
// the step's as any other.
func (s *fileStep) closedBefore(fi host.FileInfo) bool {
	return fi.IsRegular() && engine.SensitiveMode(fi.Perm()) && s.meta.Sensitive == engine.SensitiveAuto
}

func (s *fileStep) Meta() *engine.StepMeta { return &s.meta }

// InRoot is true: the step acts on a path in the root (engine.InRoot).
func (s *fileStep) InRoot() bool { return true }

// LocalSources is the src file, if any (engine.LocalSourcer).
func (s *fileStep) LocalSources() []string {
	if s.src == "" {
		return nil
	}
	return []string{s.src}
}

// Claim implements engine.Claimer: a path has one content, mode and owner.
func (s *fileStep) Claim() (string, string) {
	sum := sha256.Sum256(s.content)
	// The mode a step without mode= gets is chosen at diff time (the
	// secret rule may close it), so one given and one not differ.
	return s.path, fmt.Sprintf("%x src=%s mode=%s given=%v sensitive=%v owner=%s:%s", sum, s.src, modeString(fs.FileMode(s.mode)), s.modeGiven, s.meta.Sensitive, s.owner, s.group)
}

// Land returns the path the file lands on in h's root (see
// engine.Lander).
func (s *fileStep) Land(ctx context.Context, h host.Host) (string, error) {
	return host.Resolve(ctx, h, s.path)
}

func (s *fileStep) Diff(ctx context.Context, h host.Host) (engine.Change, error) {
	want := s.content
	if s.src != "" {
		data, err := h.ReadLocal(ctx, s.src)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return engine.Change{}, fmt.Errorf("read src %s: no such file on this machine (src is relative to the playbook's directory)", s.src)
			}
			return engine.Change{}, fmt.Errorf("read src %s: %w", s.src, err)
		}
		want = data
	}
	uid, gid, err := owners(ctx, h, s.owner, s.group)
	if err != nil {
		return engine.Change{}, err
	}
	fi, exists, err := lstat(ctx, h, s.path)
	if err != nil {
		return engine.Change{}, err
	}
	mode, secret, err := s.modeFor(ctx, want)
	if err != nil {
		return engine.Change{}, err
	}
	c := engine.Change{After: want, Sensitive: secret || (exists && s.closedBefore(fi))}
	if !exists {
		c.Action = engine.Create
		c.Summary = summary(fmt.Sprintf("%d bytes", len(want)), "mode "+modeString(mode), fmt.Sprintf("%s:%s", s.owner, s.group))
		if c.Parents, err = missingParents(ctx, h, s.path); err != nil {
			return engine.Change{}, err
		}
		return c, nil
	}
	if !fi.IsRegular() {
		return engine.Change{}, fmt.Errorf("%s is %s, not a regular file (remove it, or declare the file at another path)", s.path, host.Kind(fi.Mode))
	}
	if c.Before, err = h.ReadFile(ctx, s.path); err != nil {
		return engine.Change{}, err
	}
	var parts []string
	if !bytes.Equal(c.Before, want) {
		parts = append(parts, "content changed")
	}
	parts = append(parts, metaDrift(fi, mode, uid, gid, s.owner, s.group)...)
	if len(parts) > 0 {
		c.Action = engine.Update
		c.Summary = summary(parts...)
	}
	return c, nil
}

func (s *fileStep) Apply(ctx context.Context, h host.Host, c engine.Change) error {
	uid, gid, err := owners(ctx, h, s.owner, s.group)
	if err != nil {
		return err
	}
	mode, _, err := s.modeFor(ctx, c.After)
	if err != nil {
		return err
	}
	if c.Action == engine.Update && bytes.Equal(c.Before, c.After) {
		return fixMeta(ctx, h, s.path, mode, uid, gid)
	}
	return h.WriteFile(ctx, s.path, c.After, mode, uid, gid)
}
