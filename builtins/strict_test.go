package builtins

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// podSeeds are v1 Pod documents as JSON: the manifests master.star writes
// (from the golden trees) and one that uses the types that decode
// themselves (Quantity, IntOrString, Time) and maps.
func podSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	seeds := map[string][]byte{}
	files, err := filepath.Glob("../testdata/golden/master-calico/etc/kubernetes/manifests/*.yaml")
	if err != nil || len(files) < 5 {
		t.Fatalf("golden manifests: %v, %d files", err, len(files))
	}
	texts := map[string]string{"scheduler": schedulerPod, "rich": richPod}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		texts[filepath.Base(f)] = string(b)
	}
	for name, text := range texts {
		data, err := yaml.YAMLToJSONStrict([]byte(text))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		seeds[name] = data
	}
	return seeds
}

const richPod = `apiVersion: v1
kind: Pod
metadata:
  name: rich
  creationTimestamp: "2016-10-01T00:00:00Z"
  labels: {app: rich}
  annotations: {note: "a"}
spec:
  nodeSelector: {disk: ssd}
  terminationGracePeriodSeconds: 30
  overhead: {cpu: 250m}
  containers:
  - name: c
    image: busybox
    resources:
      limits: {cpu: "1", memory: 64Mi}
      requests: {cpu: 100m}
    ports:
    - {containerPort: 8080, protocol: TCP}
    readinessProbe:
      tcpSocket: {port: http}
    livenessProbe:
      httpGet: {port: 8080, path: /}
    securityContext:
      capabilities: {add: [NET_ADMIN]}
      runAsUser: 0
    env:
    - name: A
      valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}
  volumes:
  - name: v
    emptyDir: {sizeLimit: 1Gi}
`

// decodeVerdict is what the real decoder says of data.
func decodeVerdict(data []byte) (unknown []string, err error) {
	var pod corev1.Pod
	strict, err := kjson.UnmarshalStrict(data, &pod, kjson.DisallowUnknownFields)
	for _, e := range strict {
		unknown = append(unknown, e.Error())
	}
	return unknown, err
}

// checkVerdict is what checkStrict says of data, in the same words.
func checkVerdict(data []byte) (unknown []string, err error) {
	doc, err := parseJSON(data)
	if err != nil {
		return nil, err
	}
	paths, err := checkStrict(doc, podType)
	for _, p := range paths {
		unknown = append(unknown, fmt.Sprintf("unknown field %q", p))
	}
	return unknown, err
}

// agree fails t unless checkStrict and the real decoder agree on data:
// both accept or both reject, and on the unknown fields when both accept.
func agree(t testing.TB, what string, data []byte) {
	t.Helper()
	wantUnknown, wantErr := decodeVerdict(data)
	gotUnknown, gotErr := checkVerdict(data)
	if (gotErr != nil) != (wantErr != nil) {
		t.Fatalf("%s: checkStrict says %v, the decoder %v\n%s", what, gotErr, wantErr, data)
	}
	if wantErr == nil && !slices.Equal(gotUnknown, wantUnknown) {
		t.Fatalf("%s: unknown fields: checkStrict %q, the decoder %q\n%s", what, gotUnknown, wantUnknown, data)
	}
}

// replacements are the values each value of a seed is replaced with:
// every JSON kind, numbers that fit no integer or no int32, and strings
// that are and are not quantities, ports and times.
var replacements = []string{
	`"s"`, `"100m"`, `"2016-10-01T00:00:00Z"`, `"8080"`, `""`, `1`, `-1`, `1.5`, `1e3`, `1e40`,
	`99999999999999999999`, `4294967296`, `true`, `null`, `{}`, `{"zz":1}`, `[]`, `[1]`, `["a"]`,
}

// TestCheckStrictAgreesWithDecoding mutates each seed at every value and
// key, and compares checkStrict with sigs.k8s.io/json's strict decoding
// of each variant into a corev1.Pod.
func TestCheckStrictAgreesWithDecoding(t *testing.T) {
	t.Parallel()
	variants := 0
	for name, data := range podSeeds(t) {
		agree(t, name, data)
		var doc any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			t.Fatal(err)
		}
		for _, v := range mutations(doc) {
			b, err := json.Marshal(v.doc)
			if err != nil {
				t.Fatal(err)
			}
			agree(t, name+": "+v.what, b)
			variants++
		}
	}
	t.Logf("%d variants agree", variants)
	if variants < 1000 {
		t.Errorf("only %d variants: the seeds lost their structure", variants)
	}
}

type variant struct {
	what string
	doc  any
}

// mutations returns copies of doc with one change each: a value replaced
// by each of replacements, a key renamed, upper-cased or added.
func mutations(doc any) []variant {
	var out []variant
	var walk func(path string, v any, set func(any))
	walk = func(path string, v any, set func(any)) {
		for _, r := range replacements {
			var nv any
			dec := json.NewDecoder(strings.NewReader(r))
			dec.UseNumber()
			_ = dec.Decode(&nv)
			set(nv)
			out = append(out, variant{path + " = " + r, deepCopy(doc)})
			set(v)
		}
		switch v := v.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(v)) {
				val := v[k]
				for _, nk := range []string{k + "x", strings.ToUpper(k[:1]) + k[1:]} {
					if nk == k {
						continue
					}
					delete(v, k)
					v[nk] = val
					out = append(out, variant{path + "." + k + " → " + nk, deepCopy(doc)})
					delete(v, nk)
					v[k] = val
				}
				walk(path+"."+k, val, func(x any) { v[k] = x })
			}
			v["zz"] = 1
			out = append(out, variant{path + " + zz", deepCopy(doc)})
			delete(v, "zz")
		case []any:
			for i := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), v[i], func(x any) { v[i] = x })
			}
		}
	}
	walk("", doc, func(any) {})
	return out
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, x := range v {
			s[i] = deepCopy(x)
		}
		return s
	}
	return v
}

// FuzzCheckStrict compares checkStrict with the real decoder on any valid
// JSON document.
func FuzzCheckStrict(f *testing.F) {
	for _, data := range podSeeds(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		agree(t, "fuzz", data)
	})
}

func TestStructFieldsFollowsEncodingJSON(t *testing.T) {
	t.Parallel()
	type inner struct {
		A int `json:"a"`
		B int
		C int `json:"c"`
	}
	type Other struct {
		C int `json:"c"`
		D int `json:"d"`
	}
	type outer struct {
		inner `json:",inline"`
		*Other
		B      string `json:"b"` // shallower than inner.B: wins
		E      int    `json:"-"`
		f      int
		Tagged inner `json:"tagged"`
	}
	_ = outer{}.f
	got := slices.Sorted(maps.Keys(structFields(reflect.TypeFor[outer]()).byName))
	// c is at depth 1 twice, tagged both times: neither wins.
	want := []string{"B", "a", "b", "d", "tagged"}
	if !slices.Equal(got, want) {
		t.Errorf("got fields %q, want %q", got, want)
	}
	data := []byte(`{"a":1,"B":2,"b":"x","c":3,"d":4,"E":5,"f":6,"tagged":{"a":1,"q":2}}`)
	var v outer
	strict, err := kjson.UnmarshalStrict(data, &v, kjson.DisallowUnknownFields)
	doc, perr := parseJSON(data)
	if perr != nil {
		t.Fatal(perr)
	}
	unknown, cerr := checkStrict(doc, reflect.TypeFor[outer]())
	var wantUnknown []string
	for _, e := range strict {
		wantUnknown = append(wantUnknown, strings.Trim(strings.TrimPrefix(e.Error(), "unknown field "), `"`))
	}
	if err != nil || cerr != nil || !slices.Equal(unknown, wantUnknown) {
		t.Errorf("checkStrict: %q, %v; the decoder: %q, %v", unknown, cerr, wantUnknown, err)
	}
}
