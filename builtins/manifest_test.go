package builtins

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const schedulerPod = `apiVersion: v1
kind: Pod
metadata:
  name: kube-scheduler
  namespace: kube-system
spec:
  hostNetwork: true
  containers:
  - name: kube-scheduler
    image: quay.io/coreos/hyperkube:v1.4.0_coreos.0
    command:
    - /hyperkube
    - scheduler
    - --master=http://127.0.0.1:8080
    - --leader-elect=true
    livenessProbe:
      httpGet:
        host: 127.0.0.1
        path: /healthz
        port: 10251
      initialDelaySeconds: 15
      timeoutSeconds: 15
`

func TestManifestFromText(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	plan := mustEvaluate(t, "manifest("+quote(schedulerPod)+")")
	if got := actions(mustApply(t, plan, root, false)); !slices.Equal(got, []string{"create"}) {
		t.Fatalf("run: got %v", got)
	}
	name := filepath.Join(root, "etc/kubernetes/manifests/kube-scheduler.yaml")
	if got := readFile(t, name); got != schedulerPod {
		t.Errorf("the YAML text was not written as given:\n%s", got)
	}
	if got := actions(mustApply(t, plan, root, true)); !slices.Equal(got, []string{"-"}) {
		t.Errorf("check after run: got %v, want unchanged", got)
	}
	edited := strings.Replace(schedulerPod, "v1.4.0_coreos.0", "v1.4.1_coreos.0", 1)
	results := mustApply(t, mustEvaluate(t, "manifest("+quote(edited)+")"), root, true)
	if c := results[0].Change; !strings.Contains(string(c.After), "v1.4.1") || !strings.Contains(string(c.Before), "v1.4.0") {
		t.Errorf("update: got %q → %q", c.Before, c.After)
	}
}

func TestManifestFromDict(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	plan := mustEvaluate(t, `manifest({
    "kind": "Pod",
    "apiVersion": "v1",
    "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
    "spec": {"hostNetwork": True, "containers": [{"name": "kube-proxy", "image": "quay.io/coreos/hyperkube:v1.4.0_coreos.0"}]},
}, name = "proxy.yaml", dir = "/srv/manifests", mode = 0o600)`)
	mustApply(t, plan, root, false)
	want := `apiVersion: v1
kind: Pod
metadata:
  name: kube-proxy
  namespace: kube-system
spec:
  containers:
  - image: quay.io/coreos/hyperkube:v1.4.0_coreos.0
    name: kube-proxy
  hostNetwork: true
`
	name := filepath.Join(root, "srv/manifests/proxy.yaml")
	if got := readFile(t, name); got != want {
		t.Errorf("got:\n%s\nwant (sorted keys):\n%s", got, want)
	}
	if got := perm(t, name); got != 0o600 {
		t.Errorf("mode: got %04o", got)
	}
}

func TestManifestBadInput(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ pod, wantErr string }{
		"misspelt_field": {strings.Replace(schedulerPod, "    image:", "    imagee:", 1), `unknown field "spec.containers[0].imagee"`},
		"misspelt_deep":  {strings.Replace(schedulerPod, "initialDelaySeconds", "initialDelay", 1), `unknown field "spec.containers[0].livenessProbe.initialDelay"`},
		"wrong_kind":     {strings.Replace(schedulerPod, "kind: Pod", "kind: Deployment", 1), `kind is "Deployment", want "Pod"`},
		"wrong_version":  {strings.Replace(schedulerPod, "apiVersion: v1", "apiVersion: apps/v1", 1), `apiVersion is "apps/v1", want "v1"`},
		"no_name":        {strings.Replace(schedulerPod, "  name: kube-scheduler\n  namespace", "  namespace", 1), `metadata.name is missing`},
		"no_image":       {strings.Replace(schedulerPod, "    image: quay.io/coreos/hyperkube:v1.4.0_coreos.0\n", "", 1), `spec.containers[0] (kube-scheduler): image is missing`},
		"wrong_type":     {strings.Replace(schedulerPod, "hostNetwork: true", "hostNetwork: yes please", 1), `pod does not decode as a v1 Pod`},
		"not_yaml":       {"kind: Pod\n  bad: [", `pod is not valid YAML`},
		"duplicate_key":  {schedulerPod + "kind: Pod\n", `pod is not valid YAML`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := evaluate(t, playbook(t, "\nmanifest("+quote(tc.pod)+")", nil), nil)
			if err == nil || !strings.HasPrefix(relErr(err), "play.star:2:9: manifest: ") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want play.star:2:9: manifest: ...%s", err, tc.wantErr)
			}
		})
	}
}

// TestManifestSensitiveErrors: a fault in a sensitive manifest is named
// by its field path and the rule it breaks, never with a value or a map
// key of the manifest (the secret here is always "hunter2"), whether
// sensitive=True says so or the secret rule decides it.
func TestManifestSensitiveErrors(t *testing.T) {
	t.Parallel()
	pod := func(meta, container, spec string) string {
		return `{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "demo"` + meta + `}, ` +
			`"spec": {"containers": [{"name": "c", "image": "busybox"` + container + `}]` + spec + `}}`
	}
	tests := map[string]struct{ src, wantErr string }{
		"label_value": {`manifest(` + pod(`, "labels": {"k": "hunter2-"}`, "", "") + `, sensitive = True)`,
			`metadata.labels[(key 1 of 1)]: (not shown: the manifest is sensitive) is invalid: a valid label must be`},
		"image_space": {`manifest(` + strings.Replace(pod("", "", ""), `"busybox"`, `" hunter2"`, 1) + `, sensitive = True)`,
			`spec.containers[0].image: (not shown: the manifest is sensitive) has leading or trailing space`},
		"annotation_key": {`manifest(` + pod(`, "annotations": {"a": "b", "hunter2 x": "y"}`, "", "") + `, sensitive = True)`,
			`metadata.annotations[(key 2 of 2)]: key (not shown: the manifest is sensitive) is invalid: name part must consist of`},
		"content_rule": {`manifest(` + pod(`, "labels": {"password": "hunter2-"}`, "", "") + `)`,
			`metadata.labels[(key 1 of 1)]: (not shown: the manifest is sensitive) is invalid`},
		"sensitive_var": {`P = var("P", default = "hunter2-", sensitive = True)` + "\n" +
			`manifest(` + pod(`, "labels": {"k": P}`, "", "") + `)`,
			`metadata.labels[(key 1 of 1)]: (not shown: the manifest is sensitive) is invalid`},
		"sensitive_var_in_text": {`P = var("P", default = "hunter2", sensitive = True)` + "\n" +
			`manifest("apiVersion: v1\nkind: Pod\nmetadata:\n  name: demo\nspec:\n  containers:\n  - name: c\n    image: ' " + P + "'\n")`,
			`spec.containers[0].image: (not shown: the manifest is sensitive) has leading or trailing space`},
		"node_selector_key": {`manifest(` + pod("", "", `, "nodeSelector": {"hunter2 x": "y"}`) + `, sensitive = True)`,
			`spec.nodeSelector[(key 1 of 1)]: key (not shown: the manifest is sensitive) is invalid`},
		"volume_typo": {`manifest(` + pod("", `, "volumeMounts": [{"name": "hunter2", "mountPath": "/x"}]`, `, "volumes": [{"name": "hunter3"}]`) + `, sensitive = True)`,
			`spec.containers[0].volumeMounts[0].name: (not shown: the manifest is sensitive) names no volume in spec.volumes`},
		"resources": {`manifest(` + pod("", `, "resources": {"limits": {"cpu": "100m"}, "requests": {"cpu": "200m"}}`, "") + `, sensitive = True)`,
			`spec.containers[0].resources.requests: the request for (key 1 of 1) must be less than or equal to its limit (not shown: the manifest is sensitive)`},
		"unknown_field": {`manifest(` + pod("", `, "hunter2": 1`, "") + `, sensitive = True)`,
			`unknown field "spec.containers[0].(key 1 of 3)"`},
		"wrong_type_in_map": {`manifest(` + pod(`, "labels": {"hunter2": 7}`, "", "") + `, sensitive = True)`,
			`metadata.labels.(key 1 of 1): got a number, want a string`},
		"bad_quantity": {`manifest(` + pod("", `, "resources": {"limits": {"hunter2": "hunter2"}}`, "") + `, sensitive = True)`,
			`spec.containers[0].resources.limits.(key 1 of 1): does not decode (not shown: the manifest is sensitive)`},
		"wrong_kind": {`manifest(` + strings.Replace(pod("", "", ""), `"Pod"`, `"hunter2"`, 1) + `, sensitive = True)`,
			`kind is (not shown: the manifest is sensitive), want "Pod"`},
		"duplicate_yaml_key": {`manifest("apiVersion: v1\nkind: Pod\nhunter2: 1\nhunter2: 2\n", sensitive = True)`,
			`pod is not valid YAML at line 4 (not shown: the manifest is sensitive)`},
		"name_hint": {`manifest(` + strings.Replace(pod("", "", ""), `"demo"`, `"hunter2"`, 1) + `, name = "x/y", sensitive = True)`,
			`name "x/y" must be a file name such as "<metadata.name>.yaml"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := evaluate(t, playbook(t, tc.src, nil), nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v\nwant ...%s", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "hunter") {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
	// The same manifest, not sensitive, says what is wrong with the value.
	_, err := evaluate(t, playbook(t, `manifest(`+pod(`, "labels": {"k": "hunter2-"}`, "", "")+`)`, nil), nil)
	if err == nil || !strings.Contains(err.Error(), `metadata.labels["k"]: "hunter2-" is invalid`) {
		t.Errorf("not sensitive: got %v", err)
	}
}

// TestManifestNameIsAFileName: name="." or ".." would make the target
// the directory itself or its parent (found by the attack on issue 12).
func TestManifestNameIsAFileName(t *testing.T) {
	t.Parallel()
	const pod = `{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "demo"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}`
	for _, name := range []string{".", "..", "x.", "x/y", "noext"} {
		_, err := evaluate(t, playbook(t, `manifest(`+pod+`, name = "`+name+`")`, nil), nil)
		if want := `name "` + name + `" must be a file name such as "demo.yaml"`; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("name %q: got %v, want %q", name, err, want)
		}
	}
}
