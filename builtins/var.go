package builtins

import (
	"fmt"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/engine"
)

const varDoc = `var(name, type="string", default=None, doc="", sensitive=False)
Declares an input of the playbook and returns its value: the --var or
--vars-file value if given, else default. A var without default is
required. Every missing or malformed var is reported together before
anything happens, and kplay vars lists the declarations.

- name: the name used with --var NAME=value; by convention the guide's
  placeholder, such as "ADVERTISE_IP".
- type: one of string, bool (true/false/yes/no/1/0), int, ip, cidr, url,
  urls (comma-separated URLs, returned as a list) and path.
- default: the value when none is given, of the type (a string also works).
- doc: one line for kplay vars.
- sensitive: the value is a secret (a password, a token). It is never
  shown: kplay vars and error messages leave it out, and every step line,
  summary and error that contains it shows "(sensitive)" in its place.
  Whatever content contains it (a file made with subst(), an etcd value,
  an HTTP body) is sensitive, printed only as its size and fingerprint,
  and a file holding it is created 0600 unless it gives a mode. The rule
  follows the text: a value transformed beyond recognition (base64 of
  it, say) is not recognised, so mark such a step sensitive=True.`

// varBuiltin implements the var builtin; see varDoc.
func varBuiltin(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name, doc string
	typ := "string"
	var def starlark.Value = starlark.None
	var sensitive bool
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"name", &name,
		"type?", &typ,
		"default?", &def,
		"doc?", &doc,
		"sensitive?", &sensitive,
	); err != nil {
		return nil, err
	}
	if !engine.IsVarName(name) {
		return nil, fmt.Errorf("%s: name %q must be letters, digits and _ (such as \"ADVERTISE_IP\")", fn.Name(), name)
	}
	v, err := engine.DeclareVar(thread, name, typ, def, doc, sensitive)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v", fn.Name(), name, err)
	}
	return v, nil
}
