// Package builtins holds the functions a playbook can call. Each builtin
// validates its arguments and records a step (see engine.Record); none
// does I/O during evaluation. One file per builtin, named after it.
package builtins

import (
	"fmt"
	"strings"

	starjson "go.starlark.net/lib/json"
	"go.starlark.net/starlark"
)

// Builtin is one function of the playbook language with its reference text.
type Builtin struct {
	Name string
	// Doc starts with the call signature and its defaults, then a
	// paragraph, then notes on the arguments. kplay doc and
	// docs/builtins.md print it.
	Doc string
	fn  func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error)
}

// List returns every builtin, sorted by name.
func List() []Builtin {
	return []Builtin{
		{"cidr_contains", cidrContainsDoc, cidrContains},
		{"cidr_overlaps", cidrOverlapsDoc, cidrOverlaps},
		{"directory", directoryDoc, directory},
		{"dropin", dropinDoc, dropin},
		{"etcd_put", etcdPutDoc, etcdPut},
		{"fail", failDoc, fail},
		{"file", fileDoc, file},
		{"http_post", httpPostDoc, httpPost},
		{"kube_create", kubeCreateDoc, kubeCreate},
		{"manifest", manifestDoc, manifest},
		{"removed", removedDoc, removed},
		{"require_file", requireFileDoc, requireFile},
		{"subst", substDoc, subst},
		{"systemctl", systemctlDoc, systemctl},
		{"unit", unitDoc, unitBuiltin},
		{"var", varDoc, varBuiltin},
		{"wait_http", waitHTTPDoc, waitHTTP},
	}
}

// Predeclared returns a fresh set of the builtins for one evaluation, and
// Starlark's json module (json.decode checks a JSON text, json.encode
// writes one); it does no I/O.
func Predeclared() starlark.StringDict {
	d := starlark.StringDict{"json": starjson.Module}
	for _, b := range List() {
		d[b.Name] = starlark.NewBuiltin(b.Name, b.fn)
	}
	return d
}

// Lookup returns the builtin with the given name.
func Lookup(name string) (Builtin, bool) {
	for _, b := range List() {
		if b.Name == name {
			return b, true
		}
	}
	return Builtin{}, false
}

// Reference returns the Markdown reference of every builtin: the text of
// docs/builtins.md.
func Reference() string {
	var b strings.Builder
	b.WriteString("# Builtin reference\n\n")
	b.WriteString("<!-- Generated from the doc strings in builtins/ by `go test ./builtins -update`. Do not edit. -->\n\n")
	b.WriteString("Playbooks are Starlark. Besides Starlark's own functions (`len`, `range`, `sorted`, …),\n")
	b.WriteString("they can call only these builtins. Every builtin that declares a step accepts\n")
	b.WriteString("`tags=[...]` and `on_change=[...]` and returns a handle naming its step.\n")
	b.WriteString("Starlark's `json` module is there too: `json.decode(text)` checks a JSON text,\n")
	b.WriteString("`json.encode(value)` writes one.\n\n")
	for _, bi := range List() {
		sig, rest, _ := strings.Cut(bi.Doc, "\n")
		fmt.Fprintf(&b, "## %s\n\n```python\n%s\n```\n\n%s\n", bi.Name, sig, strings.TrimLeft(rest, "\n"))
	}
	return b.String()
}
