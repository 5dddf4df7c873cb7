package builtins

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host/unitfile"
)

const unitDoc = `unit(name, content=None, sensitive=None, tags=[], on_change=[], state="present")
Declares the unit file /etc/systemd/system/<name> (mode 0644, root:root;
0600 when sensitive),
written atomically like file(). Its syntax is checked when the playbook is
evaluated as systemd 252 reads it (lines systemd would drop, such as an
open quote in a command line or an unknown %-specifier, are errors). A
service is also checked as systemd would load it, its drop-ins in the root
and in the plan merged, before anything is written: one that systemd
refuses to load (no ExecStart=, two of them outside Type=oneshot, …) is an
error. A change to it makes the engine run one daemon-reload before the
next systemctl() step (or at the end of the plan), batched with other unit
changes; systemctl("daemon-reload") is merged with it.

- name: the unit name with its type, such as "kubelet.service".
- content: the unit text (the guide's, after subst()), or a dict of
  sections to lists of (key, value) pairs, such as
  {"Service": [("ExecStart", "/usr/bin/true"), ("Restart", "always")]},
  written with go-systemd's serialiser in the dict's order, so a fork can
  change one key without copying the text.
- sensitive: never print the content, only its size and fingerprint, and
  write the file 0600; as for file(), None lets the secret rule decide
  (docs/security.md): a name with "secret" or "token"; a private key,
  credentials or a Kubernetes Secret in the text; a sensitive var's
  value. Mode 0600 keeps the file from other users, but systemd shows a
  loaded unit's settings to any of them (systemctl show): keep secrets in
  a file() that an EnvironmentFile= or LoadCredential= names, not in the
  unit text.
- state: "present" (content is then required) or "absent": there must be
  no /etc/systemd/system/<name>; one that is there is stopped (on a live
  machine), disabled and deleted, and a daemon-reload follows.

What a playbook stops declaring is removed too: run records what it writes
in the playbook's ledger and deletes, at the next run, a unit, drop-in,
file or manifest no step declares any more (kplay ledger, --prune).`

// unitBuiltin implements the unit builtin; see unitDoc.
func unitBuiltin(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name unitName
	var content unitFileText
	var meta engine.StepMeta
	state := presence("present")
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"name", &name,
		"content?", &content,
		"sensitive?", &meta.Sensitive,
		"tags?", &meta.Tags,
		"on_change?", &meta.OnChange,
		"state?", &state,
	); err != nil {
		return nil, err
	}
	text, err := presentContent(fn, state, content.unitText)
	if err != nil {
		return nil, err
	}
	if state == "absent" {
		return recordAbsent(thread, "unit", "/etc/systemd/system/"+string(name), meta)
	}
	if err := scopeFileError(string(name)); err != nil {
		return nil, fmt.Errorf("%s: %v", fn.Name(), err)
	}
	return recordUnitFile(thread, "unit", "/etc/systemd/system/"+string(name), text, meta)
}

// unitFileText is unit()'s content=: unitText that is not empty. systemd
// loads a unit file of 0 bytes as masked (null_or_empty); one of blank
// lines or comments is a unit with no settings (systemctl --root lists
// it as static). Unpack's errors: those of unitText; empty.
type unitFileText struct{ unitText }

func (t *unitFileText) Unpack(v starlark.Value) error {
	if err := t.unitText.Unpack(v); err != nil {
		return err
	}
	if t.text == "" {
		return errors.New("the unit text is empty, and systemd takes an empty unit file for a masked unit (write the unit's sections, or use systemctl(\"mask\", …) to mask it)")
	}
	return nil
}

// presentContent returns the unit text of content= for state "present",
// where it is required; for "absent" it must not be given.
func presentContent(fn *starlark.Builtin, state presence, content unitText) (string, error) {
	switch {
	case state == "absent" && content.given:
		return "", fmt.Errorf("%s: state = \"absent\" takes no content (the file must not exist)", fn.Name())
	case state != "absent" && !content.given:
		return "", fmt.Errorf("%s: missing argument for content", fn.Name())
	}
	return content.text, nil
}

// recordUnitFile records the file step of a unit or drop-in: mode 0644
// (0600 when sensitive), root:root, and a change to it asks for a
// daemon-reload.
func recordUnitFile(thread *starlark.Thread, kind, path, content string, meta engine.StepMeta) (starlark.Value, error) {
	meta.Kind, meta.Target, meta.Resource, meta.Reload = kind, path, path, engine.UnitFile
	s := &fileStep{meta: meta, path: path, content: []byte(content), mode: 0o644, owner: "root", group: "root"}
	if err := s.decideSecret(thread, nil, path); err != nil {
		return nil, fmt.Errorf("%s: %v", kind, err)
	}
	if err := checkUnitTextOf(unitTypeOf(path), content, s.meta.Sensitive == engine.SensitiveYes); err != nil {
		return nil, fmt.Errorf("%s: for parameter content: %v", kind, err)
	}
	if err := unitfile.CheckInstallNames(content); err != nil && s.meta.Sensitive != engine.SensitiveYes {
		return nil, fmt.Errorf("%s: for parameter content: %v (enabling it would fail)", kind, err)
	} else if err != nil {
		return nil, fmt.Errorf("%s: for parameter content: its [Install] section names something that is not a unit (not shown: the unit is sensitive)", kind)
	}
	return engine.Record(thread, s)
}

// unitTypeOf returns the type of the unit a unit file or drop-in at p is
// for: "service" for /etc/systemd/system/x.service, x.service.d/y.conf
// and the top-level service.d/y.conf; "" if p is neither.
func unitTypeOf(p string) string {
	name := configuredUnit(p)
	if strings.HasSuffix(path.Base(path.Dir(p)), ".d") && unitfile.IsType(name) {
		return name // a drop-in for every unit of the type
	}
	if ext := path.Ext(name); ext != "" && unitfile.IsType(ext[1:]) {
		return ext[1:]
	}
	return ""
}

// configuredUnit is the name that a unit file or drop-in at p configures,
// as its path says: the file's own name, or its directory's without ".d"
// ("x.service" for x.service.d/10-y.conf; "service" for service.d/…).
// It is not checked to be a unit name.
func configuredUnit(p string) string {
	if d := path.Base(path.Dir(p)); strings.HasSuffix(d, ".d") {
		return strings.TrimSuffix(d, ".d")
	}
	return path.Base(p)
}
