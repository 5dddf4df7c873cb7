package builtins

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"

	kjson "sigs.k8s.io/json"
)

// checkStrict reports whether the JSON document doc decodes into a Go
// value of type t as kjson.UnmarshalStrict with kjson.DisallowUnknownFields
// would decode it: the same type errors and the same "unknown field"
// paths, in document order. It decodes nothing.
//
// Why not decode: encoding/json (and sigs.k8s.io/json, its fork) builds
// a codec for every type reachable from t on first use, all of the v1 Pod
// schema's types, which costs a short-lived kplay process about 5 ms,
// a tenth of a check of playbooks/master.star. checkStrict looks only at
// the types the document uses. TestCheckStrictAgreesWithDecoding and
// FuzzCheckStrict hold it to the real decoder's answers.
//
// A type with its own UnmarshalJSON or UnmarshalText (resource.Quantity,
// intstr.IntOrString, metav1.Time) is handed its part of the document.
func checkStrict(doc *node, t reflect.Type) (unknown []string, err error) {
	c := &strictChecker{}
	c.value(doc, t, "")
	return c.unknown, c.err
}

// parseJSON reads one JSON document.
func parseJSON(data []byte) (*node, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	doc, err := readNode(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("invalid JSON: data after the top-level value")
	}
	return doc, nil
}

// node is one JSON value, objects keeping their keys in document order.
type node struct {
	kind  byte   // one of 'o' object, 'a' array, 's' string, 'n' number, 'b' bool, 'z' null
	text  string // a string's value, a number's digits, "true" or "false"
	keys  []string
	elems []*node // an object's values (beside keys) or an array's elements
}

// field returns the value of key in object n, or nil.
func (n *node) field(key string) *node {
	if n == nil || n.kind != 'o' {
		return nil
	}
	for i, k := range n.keys {
		if k == key {
			return n.elems[i]
		}
	}
	return nil
}

// str returns n's value if n is a string, else "".
func (n *node) str() string {
	if n == nil || n.kind != 's' {
		return ""
	}
	return n.text
}

// readNode reads the next JSON value from dec.
func readNode(dec *json.Decoder) (*node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	switch v := tok.(type) {
	case json.Delim:
		n := &node{kind: 'a'}
		if v == '{' {
			n.kind = 'o'
		}
		for dec.More() {
			if n.kind == 'o' {
				key, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("invalid JSON: %w", err)
				}
				n.keys = append(n.keys, key.(string))
			}
			elem, err := readNode(dec)
			if err != nil {
				return nil, err
			}
			n.elems = append(n.elems, elem)
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		return n, nil
	case string:
		return &node{kind: 's', text: v}, nil
	case json.Number:
		return &node{kind: 'n', text: string(v)}, nil
	case bool:
		return &node{kind: 'b', text: strconv.FormatBool(v)}, nil
	}
	return &node{kind: 'z'}, nil
}

// marshal writes n back as JSON, for a type that decodes itself.
func (n *node) marshal(b *bytes.Buffer) {
	switch n.kind {
	case 'o', 'a':
		open, closing := byte('['), byte(']')
		if n.kind == 'o' {
			open, closing = '{', '}'
		}
		b.WriteByte(open)
		for i, e := range n.elems {
			if i > 0 {
				b.WriteByte(',')
			}
			if n.kind == 'o' {
				k, _ := json.Marshal(n.keys[i])
				b.Write(k)
				b.WriteByte(':')
			}
			e.marshal(b)
		}
		b.WriteByte(closing)
	case 's':
		s, _ := json.Marshal(n.text)
		b.Write(s)
	case 'n', 'b':
		b.WriteString(n.text)
	default:
		b.WriteString("null")
	}
}

var nodeKinds = map[byte]string{'o': "an object", 'a': "an array", 's': "a string", 'n': "a number", 'b': "a bool"}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// strictChecker walks a document and a type side by side.
type strictChecker struct {
	unknown []string            // paths of unknown fields, in document order
	seen    map[string]struct{} // the paths in unknown
	err     error               // the first type error
}

// addUnknown records an unknown field's path. Like the decoder, it
// records a path once and keeps the first 100.
func (c *strictChecker) addUnknown(path string) {
	if _, ok := c.seen[path]; ok || len(c.unknown) >= 100 {
		return
	}
	if c.seen == nil {
		c.seen = map[string]struct{}{}
	}
	c.seen[path] = struct{}{}
	c.unknown = append(c.unknown, path)
}

// mismatch records a type error at path; the decoder skips the value.
func (c *strictChecker) mismatch(n *node, t reflect.Type, path string) {
	if c.err == nil {
		c.err = fmt.Errorf("%s: got %s, want %s", pathOrTop(path), nodeKinds[n.kind], describeType(t))
	}
}

func pathOrTop(path string) string {
	if path == "" {
		return "the document"
	}
	return path
}

// describeType names what a JSON value for t looks like.
func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object (" + t.String() + ")"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && t.Kind() == reflect.Slice {
			return "a base64 string"
		}
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a bool"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "an integer (" + t.Kind().String() + ")"
}

func (c *strictChecker) value(n *node, t reflect.Type, path string) {
	if t.Kind() != reflect.Pointer && (reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler)) {
		c.delegate(n, t, path)
		return
	}
	if n.kind == 'z' {
		return // null leaves any Go value as it is
	}
	switch t.Kind() {
	case reflect.Pointer:
		c.value(n, t.Elem(), path)
	case reflect.Interface:
		if t.NumMethod() > 0 {
			c.mismatch(n, t, path)
		}
	case reflect.Struct:
		c.object(n, t, path)
	case reflect.Map:
		if n.kind != 'o' {
			c.mismatch(n, t, path)
			return
		}
		if t.Key().Kind() != reflect.String || reflect.PointerTo(t.Key()).Implements(textUnmarshaler) {
			c.delegate(n, t, path)
			return
		}
		for i, key := range n.keys {
			c.value(n.elems[i], t.Elem(), joinKey(path, key))
		}
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 && n.kind == 's' {
			if _, err := base64.StdEncoding.DecodeString(n.text); err != nil && c.err == nil {
				c.err = fmt.Errorf("%s: %v (want a base64 string)", pathOrTop(path), err)
			}
			return
		}
		if n.kind != 'a' {
			c.mismatch(n, t, path)
			return
		}
		for i, e := range n.elems {
			if t.Kind() == reflect.Array && i >= t.Len() {
				break // the decoder drops the rest
			}
			c.value(e, t.Elem(), path+"["+strconv.Itoa(i)+"]")
		}
	case reflect.String:
		if n.kind != 's' {
			c.mismatch(n, t, path)
		}
	case reflect.Bool:
		if n.kind != 'b' {
			c.mismatch(n, t, path)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n.kind != 'n' {
			c.mismatch(n, t, path)
		} else if _, err := strconv.ParseInt(n.text, 10, t.Bits()); err != nil && c.err == nil {
			c.err = fmt.Errorf("%s: %s does not fit %s", pathOrTop(path), n.text, describeType(t))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if n.kind != 'n' {
			c.mismatch(n, t, path)
		} else if _, err := strconv.ParseUint(n.text, 10, t.Bits()); err != nil && c.err == nil {
			c.err = fmt.Errorf("%s: %s does not fit %s", pathOrTop(path), n.text, describeType(t))
		}
	case reflect.Float32, reflect.Float64:
		if n.kind != 'n' {
			c.mismatch(n, t, path)
		} else if _, err := strconv.ParseFloat(n.text, t.Bits()); err != nil && c.err == nil {
			c.err = fmt.Errorf("%s: %s does not fit %s", pathOrTop(path), n.text, describeType(t))
		}
	default:
		c.delegate(n, t, path)
	}
}

// object checks an object for struct type t.
func (c *strictChecker) object(n *node, t reflect.Type, path string) {
	if n.kind != 'o' {
		c.mismatch(n, t, path)
		return
	}
	fields := structFields(t)
	if fields.quoted {
		c.delegate(n, t, path)
		return
	}
	for i, key := range n.keys {
		p := joinKey(path, key)
		ft, ok := fields.byName[key]
		if !ok {
			c.addUnknown(p)
			continue
		}
		c.value(n.elems[i], ft, p)
	}
}

// delegate decodes n into a new t with the real decoder, for the types
// that decode themselves.
func (c *strictChecker) delegate(n *node, t reflect.Type, path string) {
	var b bytes.Buffer
	n.marshal(&b)
	strict, err := kjson.UnmarshalStrict(b.Bytes(), reflect.New(t).Interface(), kjson.DisallowUnknownFields)
	if err != nil && c.err == nil {
		c.err = fmt.Errorf("%s: %v", pathOrTop(path), err)
	}
	for _, e := range strict {
		// The inner decoder's paths start at n.
		inner := strings.TrimPrefix(e.Error(), `unknown field "`)
		c.addUnknown(joinKey(path, strings.TrimSuffix(inner, `"`)))
	}
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fieldSet is what encoding/json sees of a struct type: its fields by
// JSON name, embedded structs' fields promoted.
type fieldSet struct {
	byName map[string]reflect.Type
	quoted bool // a field has the ",string" option: leave t to the decoder
}

var fieldSets sync.Map // reflect.Type → *fieldSet

// structFields returns t's fields by encoding/json's rules: the name is
// the json tag's or the Go name; "-" hides a field; unexported fields are
// skipped unless embedded structs; an embedded struct without a tag name
// promotes its fields; of several fields with one name, the shallowest
// wins, then a tagged one, else none.
func structFields(t reflect.Type) *fieldSet {
	if fs, ok := fieldSets.Load(t); ok {
		return fs.(*fieldSet)
	}
	type candidate struct {
		typ    reflect.Type
		depth  int
		tagged bool
		count  int // candidates with this name at this depth and taggedness
	}
	best := map[string]*candidate{}
	fs := &fieldSet{byName: map[string]reflect.Type{}}
	// A type embedded at two depths counts at the shallower one only;
	// embedded twice at one depth, its fields annihilate each other.
	visited := map[reflect.Type]bool{}
	level := []reflect.Type{t}
	for depth := 0; len(level) > 0; depth++ {
		var next []reflect.Type
		for _, st := range level {
			if visited[st] {
				continue
			}
			for i := range st.NumField() {
				sf := st.Field(i)
				ft := sf.Type
				if sf.Anonymous {
					if ft.Kind() == reflect.Pointer {
						ft = ft.Elem()
					}
					if !sf.IsExported() && ft.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				if sf.Anonymous && name == "" && ft.Kind() == reflect.Struct {
					next = append(next, ft)
					continue
				}
				if strings.Contains(","+opts+",", ",string,") {
					fs.quoted = true
				}
				tagged := name != ""
				if !tagged {
					name = sf.Name
				}
				switch b := best[name]; {
				case b == nil || depth < b.depth:
					best[name] = &candidate{typ: sf.Type, depth: depth, tagged: tagged, count: 1}
				case depth == b.depth && tagged == b.tagged:
					b.count++
				case depth == b.depth && tagged && !b.tagged:
					best[name] = &candidate{typ: sf.Type, depth: depth, tagged: true, count: 1}
				}
			}
		}
		for _, st := range level {
			visited[st] = true
		}
		level = next
	}
	for name, b := range best {
		if b.count == 1 {
			fs.byName[name] = b.typ
		}
	}
	actual, _ := fieldSets.LoadOrStore(t, fs)
	return actual.(*fieldSet)
}
