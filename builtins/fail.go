package builtins

import (
	"errors"

	"go.starlark.net/starlark"
)

const failDoc = `fail(msg)
Stops evaluation with msg as the error, at the position of the call. Use it
for checks a playbook makes on its vars ("DNS_SERVICE_IP must lie in
SERVICE_IP_RANGE"). Nothing is changed: evaluation happens before any step.

- msg: the message; say what is wrong and what to do.`

// fail implements the fail builtin; see failDoc.
func fail(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var msg string
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "msg", &msg); err != nil {
		return nil, err
	}
	return nil, errors.New(msg)
}
