package builtins

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
)

// A sensitive manifest's faults are reported as unit() reports a
// sensitive unit's: by where they are and which rule they break, never
// with a value or a map key of the manifest, which may be the secret.

// hiddenValue stands in a message for a value of a sensitive manifest.
const hiddenValue = "(not shown: the manifest is sensitive)"

// hiddenKey stands in a field path for the i-th (from 0) of the n keys
// of a map in a sensitive manifest: (key 2 of 3).
func hiddenKey(i, n int) string { return fmt.Sprintf("(key %d of %d)", i+1, n) }

// yamlLine finds the line numbers in a YAML parser's message.
var yamlLine = regexp.MustCompile(`line (\d+)`)

// podYAMLError is the message for a manifest that is not valid YAML:
// the parser's, or with hide only the lines it names (its message may
// quote a key).
func podYAMLError(err error, hide bool) error {
	if !hide {
		return fmt.Errorf("pod is not valid YAML: %v", err)
	}
	var lines []string
	for _, m := range yamlLine.FindAllStringSubmatch(err.Error(), -1) {
		lines = append(lines, m[1])
	}
	if len(lines) == 0 {
		return errors.New("pod is not valid YAML " + hiddenValue)
	}
	return fmt.Errorf("pod is not valid YAML at line %s %s", strings.Join(lines, ", "), hiddenValue)
}

// checkStrictHidden is checkStrict for a sensitive manifest: the same
// verdict, but the unknown fields' paths and the type error name no key
// of the manifest, and the type error quotes no value. It checks a copy
// of doc whose map keys and unknown field names are hiddenKey's, which
// changes no verdict, as neither a map key nor which unknown name a
// field has does.
func checkStrictHidden(doc *node, t reflect.Type) (unknown []string, err error) {
	unknown, err = checkStrict(redactKeys(doc, t), t)
	if err != nil {
		// The path before ": " now names only fields and hidden keys; a
		// message other than "got X, want Y" may quote the value.
		path, msg, _ := strings.Cut(err.Error(), ": ")
		if !strings.HasPrefix(msg, "got ") {
			msg = "does not decode " + hiddenValue
		}
		err = fmt.Errorf("%s: %s", path, msg)
	}
	return unknown, err
}

// redactKeys returns a copy of n, a JSON value for Go type t, with the
// keys of maps and the names of unknown fields replaced by hiddenKey's.
// It walks n and t as checkStrict does; a type that decodes itself gets
// its part unchanged (checkStrict hands it to the decoder whole).
func redactKeys(n *node, t reflect.Type) *node {
	if t.Kind() != reflect.Pointer && (reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler)) {
		return n
	}
	switch t.Kind() {
	case reflect.Pointer:
		return redactKeys(n, t.Elem())
	case reflect.Struct:
		if n.kind != 'o' {
			return n
		}
		fields := structFields(t)
		c := &node{kind: 'o', keys: make([]string, len(n.keys)), elems: make([]*node, len(n.elems))}
		for i, k := range n.keys {
			ft, known := fields.byName[k]
			switch {
			case !known:
				c.keys[i], c.elems[i] = hiddenKey(i, len(n.keys)), n.elems[i]
			case fields.quoted:
				c.keys[i], c.elems[i] = k, n.elems[i]
			default:
				c.keys[i], c.elems[i] = k, redactKeys(n.elems[i], ft)
			}
		}
		return c
	case reflect.Map:
		if n.kind != 'o' || t.Key().Kind() != reflect.String || reflect.PointerTo(t.Key()).Implements(textUnmarshaler) {
			return n
		}
		c := &node{kind: 'o', keys: make([]string, len(n.keys)), elems: make([]*node, len(n.elems))}
		for i := range n.keys {
			c.keys[i], c.elems[i] = hiddenKey(i, len(n.keys)), redactKeys(n.elems[i], t.Elem())
		}
		return c
	case reflect.Slice, reflect.Array:
		if n.kind != 'a' {
			return n
		}
		c := &node{kind: 'a', elems: make([]*node, len(n.elems))}
		for i, e := range n.elems {
			c.elems[i] = redactKeys(e, t.Elem())
		}
		return c
	}
	return n
}
