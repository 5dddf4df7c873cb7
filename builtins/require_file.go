package builtins

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
)

const requireFileDoc = `require_file(path, msg="", tags=[])
A preflight check: the plan stops, before anything is written, unless path
exists in the target root. It changes nothing and is listed as unchanged
when the file is there.

- path: absolute path inside the root, such as
  "/usr/lib/coreos/kubelet-wrapper".
- msg: what the missing file means and what to do, for the error.`

// requireFile implements the require_file builtin; see requireFileDoc.
func requireFile(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var path absPath
	s := &requireFileStep{}
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"path", &path,
		"msg?", &s.msg,
		"tags?", &s.meta.Tags,
	); err != nil {
		return nil, err
	}
	s.path = string(path)
	s.meta.Kind, s.meta.Target, s.meta.Resource = "require_file", s.path, s.path
	return engine.Record(thread, s)
}

type requireFileStep struct {
	meta engine.StepMeta
	path string
	msg  string
}

func (s *requireFileStep) Meta() *engine.StepMeta { return &s.meta }

// InRoot is true: the step acts on a path in the root (engine.InRoot).
func (s *requireFileStep) InRoot() bool { return true }

func (s *requireFileStep) Diff(ctx context.Context, h host.Host) (engine.Change, error) {
	// Followed to the end, as exec and test -e do: a symlink that leads
	// nowhere is a missing file.
	_, err := host.Stat(ctx, h, s.path)
	switch {
	case err == nil:
		return engine.Change{}, nil
	case !errors.Is(err, fs.ErrNotExist):
		return engine.Change{}, err
	}
	what := s.path
	if fi, err := h.Lstat(ctx, s.path); err == nil && fi.Mode&fs.ModeSymlink != 0 {
		what += " (a symlink to a file that is not there)"
	}
	if s.msg != "" {
		return engine.Change{}, fmt.Errorf("%s is missing in root %s: %s", what, h.Root(), s.msg)
	}
	return engine.Change{}, fmt.Errorf("%s is missing in root %s (the playbook needs it)", what, h.Root())
}

func (s *requireFileStep) Apply(context.Context, host.Host, engine.Change) error { return nil }
