package builtins

import (
	"context"
	"fmt"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
)

const removedDoc = `removed(path)
A handle for on_change that stands for a file, manifest, unit or drop-in
the playbook no longer declares: a step cannot name a step the playbook
has dropped. When a run removes path (the ledger lists it and no step
declares it, or a step declares it state = "absent"), the steps whose
on_change names the handle run, as for a change, and are owed in the
journal before the removal. It changes nothing itself.

    systemctl("restart", "k.service", on_change = [unit_k, removed("/etc/k/extra.env")])

A removed drop-in or unit file already restarts what names any step of its
unit (see systemctl()); removed() is for the other files a service reads.

- path: the absolute path, such as "/etc/k/extra.env".`

// removed implements the removed builtin; see removedDoc.
func removed(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var p absPath
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "path", &p); err != nil {
		return nil, err
	}
	s := &removedStep{meta: engine.StepMeta{Kind: "removed", Target: string(p), Resource: string(p)}}
	if s.Group() == "" {
		return nil, fmt.Errorf("%s: %s names no file", fn.Name(), p)
	}
	return engine.Record(thread, s)
}

// removedStep is the step of a removed() handle: nothing to do, in the
// group of its path (engine.Grouper).
type removedStep struct {
	meta engine.StepMeta
}

func (s *removedStep) Meta() *engine.StepMeta { return &s.meta }

// InRoot is true: the step acts on a path in the root (engine.InRoot).
func (s *removedStep) InRoot() bool { return true }

func (s *removedStep) Diff(context.Context, host.Host) (engine.Change, error) {
	return engine.Change{}, nil
}

func (s *removedStep) Apply(context.Context, host.Host, engine.Change) error { return nil }

// Group is the group a removal of the path marks: its unit's for a unit
// file or drop-in, else the path's own.
func (s *removedStep) Group() string { return removalGroup(s.meta.Target) }

// removalGroup is the group a removal of p marks (see removedStep.Group).
func removalGroup(p string) string {
	switch {
	case isDropinPath(p):
		return unitGroup("dropin", p)
	case isUnitFilePath(p):
		return unitGroup("unit", p)
	}
	return "path " + p
}
