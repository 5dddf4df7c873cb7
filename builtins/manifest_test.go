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
