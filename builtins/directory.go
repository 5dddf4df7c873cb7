package builtins

import (
	"context"
	"fmt"
	"io/fs"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
)

const directoryDoc = `directory(path, mode=0o755, owner="root", group="root", tags=[], on_change=[])
Declares the directory path inside the target root with the given mode and
owner. Missing parents are created with mode 0755. A change of mode or owner
of an existing directory is an update. The directory's content is left alone.

- path: absolute path inside the root, such as "/etc/kubernetes/ssl".
- mode: permission bits in octal, such as 0o700 (mode=700 is an error:
  Starlark reads it as decimal). Setuid, setgid and sticky bits only as
  an octal literal in the call (mode=0o1777).
- owner, group: names looked up as the root resolves them: through the
  sources of its /etc/nsswitch.conf (files: /etc; usrfiles, as on CoreOS:
  /usr/share/baselayout; altfiles: /usr/lib), or /etc without one; or
  numeric ids.`

// directory implements the directory builtin; see directoryDoc.
func directory(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	s := &directoryStep{owner: "root", group: "root"}
	var path absPath
	mode := modeArg{thread: thread, mode: 0o755}
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"path", &path,
		"mode?", &mode,
		"owner?", &s.owner,
		"group?", &s.group,
		"tags?", &s.meta.Tags,
		"on_change?", &s.meta.OnChange,
	); err != nil {
		return nil, err
	}
	s.path, s.mode = string(path), mode.mode
	if err := engine.StatePathError(s.path); err != nil {
		return nil, fmt.Errorf("%s: %v", fn.Name(), err)
	}
	s.meta.Kind, s.meta.Target, s.meta.Resource = "directory", s.path, s.path
	return engine.Record(thread, s)
}

// Claim owns the path: two directory() calls for it, or a directory() and
// a file(), must agree (see engine.Claimer).
func (s *directoryStep) Claim() (string, string) {
	return s.path, fmt.Sprintf("directory mode=%s owner=%s:%s", modeString(fs.FileMode(s.mode)), s.owner, s.group)
}

// Land returns the path the directory lands on in h's root (see
// engine.Lander).
func (s *directoryStep) Land(ctx context.Context, h host.Host) (string, error) {
	return host.Resolve(ctx, h, s.path)
}

type directoryStep struct {
	meta         engine.StepMeta
	path         string
	mode         fileMode
	owner, group account
}

func (s *directoryStep) Meta() *engine.StepMeta { return &s.meta }

// InRoot is true: the step acts on a path in the root (engine.InRoot).
func (s *directoryStep) InRoot() bool { return true }

func (s *directoryStep) Diff(ctx context.Context, h host.Host) (engine.Change, error) {
	uid, gid, err := owners(ctx, h, s.owner, s.group)
	if err != nil {
		return engine.Change{}, err
	}
	mode := fs.FileMode(s.mode)
	fi, exists, err := lstat(ctx, h, s.path)
	if err != nil {
		return engine.Change{}, err
	}
	if !exists {
		parents, err := missingParents(ctx, h, s.path)
		return engine.Change{Action: engine.Create, Summary: summary("mode "+modeString(mode), fmt.Sprintf("%s:%s", s.owner, s.group)), Parents: parents}, err
	}
	if !fi.IsDir() {
		return engine.Change{}, fmt.Errorf("%s is %s, not a directory (remove it, or declare the directory at another path)", s.path, host.Kind(fi.Mode))
	}
	if parts := metaDrift(fi, mode, uid, gid, s.owner, s.group); len(parts) > 0 {
		return engine.Change{Action: engine.Update, Summary: summary(parts...)}, nil
	}
	return engine.Change{}, nil
}

func (s *directoryStep) Apply(ctx context.Context, h host.Host, c engine.Change) error {
	uid, gid, err := owners(ctx, h, s.owner, s.group)
	if err != nil {
		return err
	}
	if c.Action == engine.Create {
		return h.Mkdir(ctx, s.path, fs.FileMode(s.mode), uid, gid)
	}
	return fixMeta(ctx, h, s.path, fs.FileMode(s.mode), uid, gid)
}
