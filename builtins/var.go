package builtins

import (
	"fmt"
	"regexp"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/engine"
)

const varDoc = `var(name, type="string", default=None, doc="")
Declares an input of the playbook and returns its value: the --var or
--vars-file value if given, else default. A var without default is
required. Every missing or malformed var is reported together before
anything happens, and kplay vars lists the declarations.

- name: the name used with --var NAME=value; by convention the guide's
  placeholder, such as "ADVERTISE_IP".
- type: one of string, bool (true/false/yes/no/1/0), int, ip, cidr, url,
  urls (comma-separated URLs, returned as a list) and path.
- default: the value when none is given, of the type (a string also works).
- doc: one line for kplay vars.`

var varNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// varBuiltin implements the var builtin; see varDoc.
func varBuiltin(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name, doc string
	typ := "string"
	var def starlark.Value = starlark.None
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"name", &name, "type?", &typ, "default?", &def, "doc?", &doc); err != nil {
		return nil, err
	}
	if !varNamePattern.MatchString(name) {
		return nil, fmt.Errorf("%s: name %q must be letters, digits and _ (such as \"ADVERTISE_IP\")", fn.Name(), name)
	}
	v, err := engine.DeclareVar(thread, name, typ, def, doc)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v", fn.Name(), name, err)
	}
	return v, nil
}
