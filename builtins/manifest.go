package builtins

import (
	"fmt"
	"path"
	"strings"

	"go.starlark.net/starlark"
	corev1 "k8s.io/api/core/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/kplay-dev/kplay/engine"
)

const manifestDoc = `manifest(pod, dir="/etc/kubernetes/manifests", name=None, mode=0o644, tags=[], on_change=[])
Declares a static pod manifest: a file the kubelet watches and runs. pod is
decoded strictly into a Kubernetes v1 Pod when the playbook is evaluated:
an unknown or misspelled field is an error naming its path; kind must be
Pod, apiVersion v1, metadata.name set, and each container needs a name and
an image. The file is written atomically like file().

- pod: YAML text (the guide's, after subst(); written as given) or a dict
  (written as YAML with sorted keys).
- dir: the directory the kubelet watches.
- name: the file name; defaults to "<metadata.name>.yaml".
- mode: permission bits.`

// manifest implements the manifest builtin; see manifestDoc.
func manifest(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var pod starlark.Value
	dir := absPath("/etc/kubernetes/manifests")
	var name string
	mode := fileMode(0o644)
	var meta engine.StepMeta
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"pod", &pod,
		"dir?", &dir,
		"name?", &name,
		"mode?", &mode,
		"tags?", &meta.Tags,
		"on_change?", &meta.OnChange,
	); err != nil {
		return nil, err
	}
	var text []byte
	if s, ok := starlark.AsString(pod); ok {
		text = []byte(s)
	} else {
		g, err := toGo(pod)
		if err != nil {
			return nil, fmt.Errorf("%s: for parameter pod: %v", fn.Name(), err)
		}
		if text, err = yaml.Marshal(g); err != nil {
			return nil, fmt.Errorf("%s: for parameter pod: %v", fn.Name(), err)
		}
	}
	podName, err := checkPod(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", fn.Name(), err)
	}
	if name == "" {
		name = podName + ".yaml"
	}
	if strings.Contains(name, "/") || path.Ext(name) == "" {
		return nil, fmt.Errorf("%s: name %q must be a file name such as %q", fn.Name(), name, podName+".yaml")
	}
	target := path.Join(string(dir), name)
	meta.Kind, meta.Target = "manifest", target
	return engine.Record(thread, &fileStep{meta: meta, path: target, content: text, mode: mode, owner: "root", group: "root"})
}

// checkPod decodes a manifest strictly into a v1 Pod and checks what the
// kubelet needs; it returns the pod's name.
func checkPod(text []byte) (string, error) {
	data, err := yaml.YAMLToJSONStrict(text)
	if err != nil {
		return "", fmt.Errorf("pod is not valid YAML: %v", err)
	}
	var pod corev1.Pod
	strict, err := kjson.UnmarshalStrict(data, &pod, kjson.DisallowUnknownFields)
	if err != nil {
		return "", fmt.Errorf("pod does not decode as a v1 Pod: %v", err)
	}
	if len(strict) > 0 {
		var msgs []string
		for _, e := range strict {
			msgs = append(msgs, e.Error())
		}
		return "", fmt.Errorf("pod: %s (check the spelling against the v1 Pod schema)", strings.Join(msgs, "; "))
	}
	switch {
	case pod.Kind != "Pod":
		return "", fmt.Errorf("pod: kind is %q, want \"Pod\"", pod.Kind)
	case pod.APIVersion != "v1":
		return "", fmt.Errorf("pod: apiVersion is %q, want \"v1\"", pod.APIVersion)
	case pod.Name == "":
		return "", fmt.Errorf("pod: metadata.name is missing (a static pod needs a name)")
	case len(pod.Spec.Containers) == 0:
		return "", fmt.Errorf("pod: spec.containers is empty (give at least one container)")
	}
	for i, c := range pod.Spec.Containers {
		if c.Name == "" {
			return "", fmt.Errorf("pod: spec.containers[%d].name is missing", i)
		}
		if c.Image == "" {
			return "", fmt.Errorf("pod: spec.containers[%d] (%s): image is missing", i, c.Name)
		}
	}
	return pod.Name, nil
}
