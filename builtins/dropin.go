package builtins

import (
	"fmt"
	"strings"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host/unitfile"
)

const dropinDoc = `dropin(unit, name, content=None, sensitive=None, tags=[], on_change=[], state="present")
Declares the drop-in /etc/systemd/system/<unit>.d/<name> (mode 0644,
root:root; 0600 when sensitive), written atomically like file(), its syntax checked when the
playbook is evaluated as for unit(). The service it extends is checked as
systemd would load it with every drop-in, before anything is written: a
drop-in that adds a second ExecStart= to a service that is not
Type=oneshot is an error (write an empty "ExecStart=" line first to
replace the command). A change to it makes the engine run one
daemon-reload before the next systemctl() step, as with unit().

- unit: the unit it extends, such as "flanneld.service"; or a unit type,
  such as "service", for a drop-in every unit of that type reads
  (/etc/systemd/system/service.d/, systemd 250 and later).
- name: the file name, ending in .conf, such as "40-flannel.conf".
- content: unit text or a dict of sections, as for unit().
- sensitive: as for unit().
- state: "present" (content is then required) or "absent": the drop-in
  must not exist; one that is there is deleted, any name (a stray
  backup too), a daemon-reload follows, and a restart whose on_change
  names a step of the unit runs.`

// dropin implements the dropin builtin; see dropinDoc.
func dropin(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var unit dropinUnit
	var name string
	var content unitText
	var meta engine.StepMeta
	state := presence("present")
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"unit", &unit,
		"name", &name,
		"content?", &content,
		"sensitive?", &meta.Sensitive,
		"tags?", &meta.Tags,
		"on_change?", &meta.OnChange,
		"state?", &state,
	); err != nil {
		return nil, err
	}
	text, err := presentContent(fn, state, content)
	if err != nil {
		return nil, err
	}
	if strings.Contains(name, "/") || name == "" {
		return nil, fmt.Errorf("%s: name %q must be a file name such as \"40-flannel.conf\"", fn.Name(), name)
	}
	target := "/etc/systemd/system/" + string(unit) + ".d/" + name
	if state == "absent" || name == "." || name == ".." {
		// Any name may be removed, one systemd ignores too (a stray
		// backup); "." and ".." name no file.
		if name == "." || name == ".." {
			return nil, fmt.Errorf("%s: name %q must be a file name such as \"40-flannel.conf\"", fn.Name(), name)
		}
		return recordAbsent(thread, "dropin", target, meta)
	}
	if err := consumerNameError(target); err != nil {
		return nil, fmt.Errorf("%s: name %q: %v", fn.Name(), name, err)
	}
	return recordUnitFile(thread, "dropin", target, text, meta)
}

// dropinUnit is what a drop-in is for: a unit name ("flanneld.service"),
// or a unit type ("service"), for the drop-ins systemd reads for every
// unit of that type (service.d, systemd 250 and later).
type dropinUnit string

func (u *dropinUnit) Unpack(v starlark.Value) error {
	if s, ok := starlark.AsString(v); ok && unitfile.IsType(s) {
		*u = dropinUnit(s)
		return nil
	}
	var n unitName
	if err := n.Unpack(v); err != nil {
		return err
	}
	*u = dropinUnit(n)
	return nil
}
