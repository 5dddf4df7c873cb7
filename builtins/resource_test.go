package builtins

import (
	"testing"

	"github.com/kplay-dev/kplay/engine"
)

// TestEveryStepHasAResource: every kind of step a builtin records, and
// every step pruning makes, names its Resource, so that its Key (the
// journal's name for it) never falls back to the display Target.
func TestEveryStepHasAResource(t *testing.T) {
	t.Parallel()
	plan := mustEvaluate(t, `
d = directory("/etc/kubernetes")
f = file("/etc/kubernetes/a.conf", content = "a\n")
file("/etc/kubernetes/old.conf", state = "absent")
u = unit("kubelet.service", "[Service]\nExecStart=/bin/true\n")
unit("old.service", state = "absent")
dropin("kubelet.service", "10-x.conf", "[Service]\nEnvironment=A=1\n")
dropin("kubelet.service", "20-old.conf", state = "absent")
manifest("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: i\n")
manifest(name = "old.yaml", state = "absent")
removed("/etc/kubernetes/gone.conf")
require_file("/etc/hostname")
systemctl("daemon-reload")
systemctl("restart", "kubelet.service", on_change = [f, u])
etcd_put("/coreos.com/network/config", "{}", "http://127.0.0.1:2379")
http_post("http://127.0.0.1:8080/api", json = {})
wait_http("http://127.0.0.1:8080/healthz")
kube_create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
`)
	steps := plan.Steps
	for _, obj := range []engine.Object{
		{Kind: "file", Target: "/etc/a"}, {Kind: "manifest", Target: "/etc/kubernetes/manifests/p.yaml"},
		{Kind: "unit", Target: "/etc/systemd/system/x.service"}, {Kind: "dropin", Target: "/etc/systemd/system/x.service.d/a.conf"},
		{Kind: "enable", Target: "x.service"}, {Kind: "directory", Target: "/etc/x"},
		{Kind: "etcd_put", Target: "/k"}, {Kind: "kube_create", Target: "Namespace/x"},
	} {
		if s, ok := Pruner(obj); ok {
			steps = append(steps, s)
		}
	}
	kinds := map[string]bool{}
	for _, s := range steps {
		m := s.Meta()
		kinds[m.Kind] = true
		if m.Resource == "" {
			t.Errorf("%s %s: no Resource", m.Kind, m.Target)
		}
		if want := m.Kind + " " + m.Resource; m.Key() != want {
			t.Errorf("%s %s: Key %q, want %q", m.Kind, m.Target, m.Key(), want)
		}
	}
	// Every builtin but these records steps.
	noSteps := map[string]bool{"cidr_contains": true, "cidr_overlaps": true, "fail": true, "subst": true, "var": true}
	for _, b := range List() {
		if !noSteps[b.Name] && !kinds[b.Name] {
			t.Errorf("builtin %s records steps, and the playbook above makes none", b.Name)
		}
	}
}
