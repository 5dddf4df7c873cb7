package builtins

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
)

const fileDoc = `file(path, content=None, src=None, mode=0o644, owner="root", group="root", sensitive=None, tags=[], on_change=[])
Declares the regular file path inside the target root with the given
content, mode and owner. The file is written atomically (temp file, fsync,
rename); missing parent directories are created with mode 0755. A change of
mode or owner alone is an update too.

- path: absolute path inside the root, such as "/etc/flannel/options.env".
- content: the text of the file. Give exactly one of content and src.
- src: a file on the machine running kplay whose bytes become the content;
  relative to the playbook's directory unless absolute. It is read when the
  plan is diffed, not when the playbook is evaluated.
- mode: permission bits, such as 0o600.
- owner, group: names looked up in the root's /etc/passwd and /etc/group,
  or numeric ids.
- sensitive: never print the content, only its size and hash. Defaults to
  True when path or src ends in "-key.pem" or ".key", or contains "secret"
  or "token".`

// file implements the file builtin; see fileDoc.
func file(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	s := &fileStep{mode: 0o644, owner: "root", group: "root"}
	var path absPath
	var content, src, sensitive starlark.Value = starlark.None, starlark.None, starlark.None
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"path", &path,
		"content?", &content,
		"src?", &src,
		"mode?", &s.mode,
		"owner?", &s.owner,
		"group?", &s.group,
		"sensitive?", &sensitive,
		"tags?", &s.meta.Tags,
		"on_change?", &s.meta.OnChange,
	); err != nil {
		return nil, err
	}
	s.path = string(path)
	s.meta.Kind, s.meta.Target = "file", s.path
	switch {
	case content != starlark.None && src != starlark.None:
		return nil, fmt.Errorf("%s: give content or src, not both", fn.Name())
	case content == starlark.None && src == starlark.None:
		return nil, fmt.Errorf("%s: give content (the text) or src (a file to copy)", fn.Name())
	case content != starlark.None:
		text, ok := starlark.AsString(content)
		if !ok {
			return nil, fmt.Errorf("%s: for parameter content: got %s, want string", fn.Name(), content.Type())
		}
		s.content = []byte(text)
	default:
		name, ok := starlark.AsString(src)
		if !ok || name == "" {
			return nil, fmt.Errorf("%s: for parameter src: got %s, want a file name", fn.Name(), src.Type())
		}
		var err error
		if s.src, err = localPath(thread, name); err != nil {
			return nil, err
		}
	}
	switch sensitive := sensitive.(type) {
	case starlark.NoneType:
		s.sensitive = looksSensitive(s.path) || (s.src != "" && looksSensitive(s.src))
	case starlark.Bool:
		s.sensitive = bool(sensitive)
	default:
		return nil, fmt.Errorf("%s: for parameter sensitive: got %s, want bool", fn.Name(), sensitive.Type())
	}
	return engine.Record(thread, s)
}

// looksSensitive reports whether a file name suggests key material.
func looksSensitive(name string) bool {
	name = strings.ToLower(name)
	return strings.HasSuffix(name, "-key.pem") || strings.HasSuffix(name, ".key") ||
		strings.Contains(name, "secret") || strings.Contains(name, "token")
}

type fileStep struct {
	meta         engine.StepMeta
	path         string
	content      []byte
	src          string // read at diff time when set
	mode         fileMode
	owner, group account
	sensitive    bool
}

func (s *fileStep) Meta() *engine.StepMeta { return &s.meta }

// Claim implements engine.Claimer: a path has one content, mode and owner.
func (s *fileStep) Claim() (string, string) {
	sum := sha256.Sum256(s.content)
	return s.path, fmt.Sprintf("%x src=%s mode=%s owner=%s:%s", sum, s.src, modeString(fs.FileMode(s.mode)), s.owner, s.group)
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
	mode := fs.FileMode(s.mode)
	c := engine.Change{After: want, Sensitive: s.sensitive}
	fi, exists, err := lstat(ctx, h, s.path)
	if err != nil {
		return engine.Change{}, err
	}
	if !exists {
		c.Action = engine.Create
		c.Summary = summary(fmt.Sprintf("%d bytes", len(want)), "mode "+modeString(mode), fmt.Sprintf("%s:%s", s.owner, s.group))
		return c, nil
	}
	if !fi.IsRegular() {
		return engine.Change{}, fmt.Errorf("%s is %s, not a regular file (remove it, or declare the file at another path)", s.path, kindOf(fi))
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
	if c.Action == engine.Update && bytes.Equal(c.Before, c.After) {
		return fixMeta(ctx, h, s.path, fs.FileMode(s.mode), uid, gid)
	}
	return h.WriteFile(ctx, s.path, c.After, fs.FileMode(s.mode), uid, gid)
}
