package builtins

import (
	"errors"
	"fmt"
	"path"
	"reflect"
	"strconv"
	"strings"

	"go.starlark.net/starlark"
	"sigs.k8s.io/yaml"

	"github.com/kplay-dev/kplay/builtins/internal/podschema"
	"github.com/kplay-dev/kplay/engine"
)

const manifestDoc = `manifest(pod=None, dir="/etc/kubernetes/manifests", name=None, mode=None, sensitive=None, tags=[], on_change=[], state="present")
Declares a static pod manifest: a file the kubelet watches and runs. pod is
checked against the Kubernetes v1 Pod schema when the playbook is
evaluated, as strict decoding would check it: an unknown or misspelled
field, or a value of the wrong type, is an error naming its path; kind must
be Pod, apiVersion v1, metadata.name set, and each container needs a name
and an image. Then the rules the kubelet applies before it runs a static
pod (Kubernetes' pod validation, held to a real kube-apiserver): names
and labels, port ranges and host ports, unique container, port and
volume names, every volumeMount naming a volume, probes, resources,
env, DNS, sysctls, security contexts and tolerations; each fault named by
its field path. metadata.name leaves room for the "-<node name>" the
kubelet appends (at most 251 characters). When the manifest is
sensitive, errors name the path and the rule but no value or key. The
file is written atomically like file().

- pod: YAML text (the guide's, after subst(); written as given) or a dict
  (written as YAML with sorted keys).
- dir: the directory the kubelet watches.
- name: the file name; defaults to "<metadata.name>.yaml". A name that
  starts with "." is an error: the kubelet skips such files.
- mode: permission bits in octal; 0o644 by default, 0o600 when sensitive.
- sensitive: as for file(): None lets the secret rule decide by the
  file name, the text and the mode.
- state: "present" (pod is then required) or "absent": the manifest
  name= in dir must not exist (the kubelet then stops its pod); one that
  is there is deleted.`

// manifest implements the manifest builtin; see manifestDoc.
func manifest(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var pod podText
	dir := absPath("/etc/kubernetes/manifests")
	var name string
	mode := modeArg{thread: thread, mode: 0o644}
	var meta engine.StepMeta
	state := presence("present")
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"pod?", &pod,
		"dir?", &dir,
		"name?", &name,
		"mode??", &mode,
		"sensitive?", &meta.Sensitive,
		"tags?", &meta.Tags,
		"on_change?", &meta.OnChange,
		"state?", &state,
	); err != nil {
		return nil, err
	}
	if state == "absent" {
		switch {
		case pod.value != nil || mode.given:
			return nil, fmt.Errorf("%s: state = \"absent\" takes no pod or mode (the manifest must not exist; give its name=)", fn.Name())
		case name == "" || strings.Contains(name, "/") || name == "." || name == "..":
			return nil, fmt.Errorf("%s: state = \"absent\" needs name=, the manifest's file name, such as \"policy-controller.yaml\"", fn.Name())
		}
		target := path.Join(string(dir), name)
		if err := engine.StatePathError(target); err != nil {
			return nil, fmt.Errorf("%s: %v", fn.Name(), err)
		}
		return recordAbsent(thread, "manifest", target, meta)
	}
	if pod.value == nil {
		return nil, fmt.Errorf("%s: missing argument for pod", fn.Name())
	}
	doc, yamlErr := readPod(pod.text)
	podName := doc.field("metadata").field("name").str() // checked below
	fileName := name
	if fileName == "" && podName != "" {
		fileName = podName + ".yaml"
	}
	target := path.Join(string(dir), fileName)
	meta.Kind, meta.Target, meta.Resource = "manifest", target, target
	s := &fileStep{meta: meta, path: target, content: pod.text, mode: mode.mode, modeGiven: mode.given, owner: "root", group: "root"}
	// The secret rule decides before the pod is checked, so that the
	// check's messages about a sensitive manifest quote none of it. Its
	// own error (a mode open to all) waits for the pod's.
	secretErr := s.decideSecret(thread, pod.value, target)
	hide := s.meta.Sensitive == engine.SensitiveYes
	if yamlErr != nil {
		return nil, fmt.Errorf("%s: %v", fn.Name(), podYAMLError(yamlErr, hide))
	}
	if err := checkPodDoc(doc, hide); err != nil {
		return nil, fmt.Errorf("%s: %v", fn.Name(), err)
	}
	if strings.Contains(fileName, "/") || fileName == "." || fileName == ".." || strings.TrimSuffix(path.Ext(fileName), ".") == "" {
		hint := strconv.Quote(podName + ".yaml")
		if hide {
			hint = `"<metadata.name>.yaml"`
		}
		return nil, fmt.Errorf("%s: name %q must be a file name such as %s", fn.Name(), name, hint)
	}
	if err := hiddenManifestError(target); err != nil {
		return nil, fmt.Errorf("%s: %v", fn.Name(), err)
	}
	if err := consumerNameError(target); err != nil {
		return nil, fmt.Errorf("%s: %v", fn.Name(), err)
	}
	if secretErr != nil {
		return nil, fmt.Errorf("%s: %v", fn.Name(), secretErr)
	}
	return engine.Record(thread, s)
}

// podText is manifest()'s pod=: YAML text as it is, or a value ToGo
// converts written as YAML with sorted keys; at most host.SrcLimit bytes
// (checkContentSize). value is the argument as given, for the flow rule;
// nil when none was. Unpack's errors: a value YAML cannot hold; too
// large. The pod itself is checked later (checkPodDoc), once the step
// knows whether it is sensitive.
type podText struct {
	value starlark.Value
	text  []byte
}

func (p *podText) Unpack(v starlark.Value) error {
	var text []byte
	if s, ok := starlark.AsString(v); ok {
		text = []byte(s)
	} else {
		g, err := ToGo(v)
		if err != nil {
			return err
		}
		if text, err = yaml.Marshal(g); err != nil {
			return err
		}
	}
	if err := checkContentSize(len(text)); err != nil {
		return err
	}
	p.value, p.text = v, text
	return nil
}

// podType is the schema a manifest is checked against: the fields of
// k8s.io/api's v1 Pod (see podschema).
var podType = reflect.TypeFor[podschema.Pod]()

// checkPod checks a manifest strictly against the v1 Pod schema, as
// sigs.k8s.io/json's strict decoding would (see checkStrict), and checks
// what the kubelet needs (checkPodDoc); it returns the pod's name. With
// hide (the manifest is sensitive) no message quotes a value or a map
// key of the manifest.
func checkPod(text []byte, hide bool) (string, error) {
	doc, err := readPod(text)
	if err != nil {
		return "", podYAMLError(err, hide)
	}
	if err := checkPodDoc(doc, hide); err != nil {
		return "", err
	}
	return doc.field("metadata").field("name").str(), nil
}

// readPod reads a manifest's YAML text, refusing duplicate keys.
func readPod(text []byte) (*node, error) {
	data, err := yaml.YAMLToJSONStrict(text)
	if err != nil {
		return nil, err
	}
	return parseJSON(data)
}

// checkPodDoc checks a manifest read by readPod; see checkPod.
func checkPodDoc(doc *node, hide bool) error {
	strict, q := checkStrict, strconv.Quote
	if hide {
		strict = checkStrictHidden
		q = func(string) string { return hiddenValue }
	}
	unknown, err := strict(doc, podType)
	if err != nil {
		return fmt.Errorf("pod does not decode as a v1 Pod: %v", err)
	}
	if len(unknown) > 0 {
		var msgs []string
		for _, path := range unknown {
			msgs = append(msgs, fmt.Sprintf("unknown field %q", path))
		}
		return fmt.Errorf("pod: %s (check the spelling against the v1 Pod schema)", strings.Join(msgs, "; "))
	}
	kind, version := doc.field("kind").str(), doc.field("apiVersion").str()
	name := doc.field("metadata").field("name").str()
	containers := doc.field("spec").field("containers")
	switch {
	case kind != "Pod":
		return fmt.Errorf("pod: kind is %s, want \"Pod\"", q(kind))
	case version != "v1":
		return fmt.Errorf("pod: apiVersion is %s, want \"v1\"", q(version))
	case name == "":
		return fmt.Errorf("pod: metadata.name is missing (a static pod needs a name)")
	case containers == nil || len(containers.elems) == 0:
		return fmt.Errorf("pod: spec.containers is empty (give at least one container)")
	}
	for i, c := range containers.elems {
		cname := c.field("name").str()
		if cname == "" {
			return fmt.Errorf("pod: spec.containers[%d].name is missing", i)
		}
		if c.field("image").str() == "" {
			if hide {
				return fmt.Errorf("pod: spec.containers[%d]: image is missing", i)
			}
			return fmt.Errorf("pod: spec.containers[%d] (%s): image is missing", i, cname)
		}
	}
	if errs := validatePod(doc, hide); len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}
