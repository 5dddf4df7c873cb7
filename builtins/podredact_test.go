package builtins

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestCheckStrictHiddenSameVerdict: checkStrictHidden refuses what
// checkStrict refuses, with as many unknown fields, and its messages
// name no key and quote no value of the manifest.
func TestCheckStrictHiddenSameVerdict(t *testing.T) {
	t.Parallel()
	docs := map[string]string{
		"unknown_field":     `{"kind": "Pod", "spec": {"hunter2": 1, "containers": [{"name": "c", "hunter2x": {}}]}}`,
		"label_not_string":  `{"metadata": {"labels": {"hunter2": 7, "ok": "x"}}}`,
		"bad_quantity":      `{"spec": {"containers": [{"resources": {"limits": {"hunter2": "hunter2"}}}]}}`,
		"quantity_number":   `{"spec": {"containers": [{"resources": {"limits": {"cpu": 2}}}]}}`,
		"bad_time":          `{"metadata": {"creationTimestamp": "hunter2"}}`,
		"int_too_big":       `{"spec": {"activeDeadlineSeconds": 99999999999999999999}}`,
		"int_or_string_obj": `{"spec": {"containers": [{"livenessProbe": {"tcpSocket": {"port": {"hunter2": 1}}}}]}}`,
		"array_for_map":     `{"spec": {"nodeSelector": ["hunter2"]}}`,
		"null_map":          `{"metadata": {"labels": null, "annotations": {"hunter2": null}}}`,
		"unknown_in_map":    `{"spec": {"overhead": {"hunter2": "1"}, "hunter2": {"hunter2": 1}}}`,
	}
	for name, text := range guidePods(t) {
		for _, mut := range slices.Sorted(maps.Keys(podMutations)) {
			var p obj
			if err := yaml.Unmarshal([]byte(text), &p); err != nil {
				t.Fatal(err)
			}
			if !podMutations[mut](p) {
				continue
			}
			b, err := yaml.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			data, err := yaml.YAMLToJSON(b)
			if err != nil {
				t.Fatal(err)
			}
			docs[name+"/"+mut] = string(data)
		}
	}
	for name, text := range docs {
		doc, err := parseJSON([]byte(text))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		unknown, err := checkStrict(doc, podType)
		hiddenUnknown, hiddenErr := checkStrictHidden(doc, podType)
		if len(unknown) != len(hiddenUnknown) || (err == nil) != (hiddenErr == nil) {
			t.Errorf("%s: checkStrict: %q, %v; checkStrictHidden: %q, %v", name, unknown, err, hiddenUnknown, hiddenErr)
		}
		if got := strings.Join(hiddenUnknown, " ") + " " + errString(hiddenErr); strings.Contains(got, "hunter2") {
			t.Errorf("%s: shows the secret: %s", name, got)
		}
	}
	if _, err := checkStrictHidden(mustParseJSON(t, docs["label_not_string"]), podType); err == nil ||
		err.Error() != "metadata.labels.(key 1 of 2): got a number, want a string" {
		t.Errorf("label_not_string: got %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func mustParseJSON(t *testing.T, text string) *node {
	t.Helper()
	doc, err := parseJSON([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestPodYAMLError(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ text, want string }{
		"duplicate_key": {"kind: Pod\nhunter2: 1\nhunter2: 2\n", "pod is not valid YAML at line 3 (not shown: the manifest is sensitive)"},
		"bad_indent":    {"kind: Pod\n  hunter2: [\n", "pod is not valid YAML at line 2 (not shown: the manifest is sensitive)"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := checkPod([]byte(tc.text), true)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
		})
	}
}
