package builtins

import (
	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/engine"
)

const unitDoc = `unit(name, content, tags=[], on_change=[])
Declares the unit file /etc/systemd/system/<name> (mode 0644, root:root),
written atomically like file(). Its syntax is checked when the playbook is
evaluated. A change to it makes the engine run one daemon-reload before the
next systemctl() step (or at the end of the plan), batched with other unit
changes; systemctl("daemon-reload") is merged with it.

- name: the unit name with its type, such as "kubelet.service".
- content: the unit text (the guide's, after subst()), or a dict of
  sections to lists of (key, value) pairs, such as
  {"Service": [("ExecStart", "/usr/bin/true"), ("Restart", "always")]},
  written with go-systemd's serialiser in the dict's order, so a fork can
  change one key without copying the text.`

// unitBuiltin implements the unit builtin; see unitDoc.
func unitBuiltin(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name unitName
	var content unitText
	var meta engine.StepMeta
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"name", &name,
		"content", &content,
		"tags?", &meta.Tags,
		"on_change?", &meta.OnChange,
	); err != nil {
		return nil, err
	}
	return engine.Record(thread, newUnitFileStep("unit", "/etc/systemd/system/"+string(name), string(content), meta))
}

// newUnitFileStep is the file step of a unit or drop-in: mode 0644,
// root:root, and a change to it asks for a daemon-reload.
func newUnitFileStep(kind, path, content string, meta engine.StepMeta) *fileStep {
	meta.Kind, meta.Target, meta.Reload = kind, path, engine.UnitFile
	return &fileStep{meta: meta, path: path, content: []byte(content), mode: 0o644, owner: "root", group: "root"}
}
