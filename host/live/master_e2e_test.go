package live

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kplay-dev/kplay/host/etcdtest"
)

// masterStubs are the files a CoreOS master has under /usr that the
// container's (Debian's) /usr lacks, relative to /usr, with their modes.
// They only sleep: enough for systemd to keep the units active.
var masterStubs = []stub{
	{"lib/coreos/kubelet-wrapper", 0o755, "#!/bin/sh\nexec sleep infinity\n"},
	{"bin/rkt", 0o755, "#!/bin/sh\nexec sleep infinity\n"}, // calico-node.service's ExecStart
	{"lib/systemd/system/flanneld.service", 0o644, `[Unit]
Description=flannel (stub for kplay's tests)

[Service]
ExecStartPre=/usr/bin/mkdir -p /run/flannel
ExecStart=/bin/sleep infinity

[Install]
WantedBy=multi-user.target
`},
	{"lib/systemd/system/docker.service", 0o644, `[Unit]
Description=docker (stub for kplay's tests)

[Service]
ExecStart=/bin/sleep infinity

[Install]
WantedBy=multi-user.target
`},
}

// stub is a file under /usr that a test overlays on the container's.
type stub struct {
	path    string // relative to /usr
	mode    os.FileMode
	content string
}

// writeStubs writes stubs into a new directory, to overlay on the
// container's /usr (--overlay=/usr:DIR:/usr), and returns it.
func writeStubs(t *testing.T, stubs []stub) string {
	t.Helper()
	upper := filepath.Join(t.TempDir(), "usr")
	for _, f := range stubs {
		path := filepath.Join(upper, f.path)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(f.content), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	// The upper dir's root is the container's /usr: t.TempDir's 0700
	// would shut out the services that drop root.
	if err := os.Chmod(upper, 0o755); err != nil {
		t.Fatal(err)
	}
	return upper
}

// TestEndToEndMasterPlaybook runs playbooks/master.star with kplay inside
// a booted systemd (its own container, with stubs of CoreOS's
// kubelet-wrapper, rkt, flanneld.service and docker.service overlaid on
// /usr) against a real etcd, offline from the API server (--skip-tags
// api): the first run leaves flanneld, kubelet and calico-node active and
// enabled and the network config in etcd; a second run changes and
// restarts nothing; a new K8S_VER updates the four manifests and the
// kubelet unit and restarts kubelet alone.
func TestEndToEndMasterPlaybook(t *testing.T) {
	t.Parallel()
	began := time.Now()
	needNspawn(t)
	etcd := etcdtest.Start(t)

	upper := writeStubs(t, masterStubs)
	m := ownMachine(t, "master", "--overlay=/usr:"+upper+":/usr")
	sh := func(args ...string) string {
		t.Helper()
		out, code := m.exec(t, args...)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return strings.TrimSpace(out)
	}
	// The programs the stubs, the playbook's units and drop-ins run.
	for _, prog := range []string{
		"/usr/lib/coreos/kubelet-wrapper", "/usr/bin/rkt", "/bin/sh", "/bin/sleep",
		"/usr/bin/ln", "/usr/bin/mkdir",
	} {
		if _, code := m.exec(t, "test", "-x", prog); code != 0 {
			t.Fatalf("%s is not an executable in the container", prog)
		}
	}
	for _, u := range []string{"flanneld.service", "docker.service"} {
		// Debian's /lib is a link to usr/lib: systemd may say either.
		frag := sh("systemctl", "show", "-p", "FragmentPath", "--value", u)
		if got := sh("readlink", "-f", frag); got != "/usr/lib/systemd/system/"+u {
			t.Fatalf("%s: FragmentPath %q (%q): the overlaid vendor unit is not seen", u, frag, got)
		}
	}

	// The container's /etc starts empty, so its first boot applies the
	// presets (Debian's: enable everything): the stub vendor units come up
	// enabled and running. Undo that, so the playbook starts from units
	// that are installed but neither enabled nor running.
	for _, u := range []string{"flanneld.service", "docker.service"} {
		t.Logf("%s after boot: %s, %s", u, sh("systemctl", "show", "-p", "UnitFileState", "--value", u),
			sh("systemctl", "show", "-p", "ActiveState", "--value", u))
	}
	sh("systemctl", "disable", "--now", "flanneld.service", "docker.service")
	for _, u := range []string{"flanneld.service", "docker.service"} {
		state := sh("systemctl", "show", "-p", "UnitFileState", "--value", u) + ", " +
			sh("systemctl", "show", "-p", "ActiveState", "--value", u)
		if state != "disabled, inactive" {
			t.Fatalf("%s before the first run: %s, want disabled, inactive", u, state)
		}
	}

	// kplay, the playbook and its lib, and throwaway TLS files.
	put := func(path string, data []byte, mode os.FileMode) {
		t.Helper()
		path = filepath.Join(m.root, path)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, mode); err != nil {
			t.Fatal(err)
		}
	}
	m.copyKplay(t, "/tmp/kplay")
	stars, err := filepath.Glob("../../playbooks/lib/*.star")
	if err != nil || len(stars) == 0 {
		t.Fatalf("no playbooks/lib/*.star (%v)", err)
	}
	for _, src := range append(stars, "../../playbooks/master.star") {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		put(filepath.Join("/tmp/pb", strings.TrimPrefix(src, "../../playbooks/")), data, 0o644)
	}
	for _, name := range []string{"ca.pem", "apiserver.pem", "apiserver-key.pem"} {
		put("/tmp/tls/"+name, []byte("throwaway "+name+" for kplay's tests\n"), 0o600)
	}

	units := []string{"flanneld.service", "docker.service", "kubelet.service", "calico-node.service"}
	t.Cleanup(func() {
		out, code := m.exec(t, append([]string{"systemctl", "disable", "--now"}, units...)...)
		if code != 0 {
			t.Errorf("cleanup: systemctl disable --now: exit %d\n%s", code, out)
		}
	})

	vars := []string{"--var", "ADVERTISE_IP=10.0.0.10", "--var", "ETCD_ENDPOINTS=" + etcd.URL, "--var", "TLS_DIR=/tmp/tls"}
	kplay := func(wantCode int, verb string, extra ...string) string {
		t.Helper()
		args := append([]string{"/tmp/kplay", verb, "/tmp/pb/master.star", "--root", "/", "--skip-tags", "api"}, vars...)
		args = append(args, extra...)
		start := time.Now()
		out, code := m.exec(t, args...)
		t.Logf("kplay %s %s: exit %d in %s", verb, strings.Join(extra, " "), code, time.Since(start).Round(time.Millisecond))
		if code != wantCode {
			t.Fatalf("%s: exit %d, want %d\n%s", strings.Join(args, " "), code, wantCode, out)
		}
		return out
	}
	// ActiveEnterTimestamp in µs (the default format has seconds only, and
	// a restart can fall in the same second).
	entered := func() map[string]string {
		t.Helper()
		ts := map[string]string{}
		for _, u := range units {
			ts[u] = sh("systemctl", "show", "--timestamp=us", "-p", "ActiveEnterTimestamp", "--value", u)
		}
		return ts
	}
	wantLines := func(what, out string, lines ...string) {
		t.Helper()
		for _, l := range lines {
			if !strings.Contains(out, l) {
				t.Errorf("%s: no %q in:\n%s", what, l, out)
			}
		}
	}

	// First run: converges.
	out := kplay(0, "run")
	wantLines("first run", out,
		"systemctl daemon-reload: ran",
		"systemctl restart flanneld.service: ran",
		"systemctl restart docker.service: ran",
		"systemctl restart kubelet.service: ran",
		"systemctl restart calico-node.service: ran",
		"systemctl enable flanneld.service: ran",
		"systemctl enable kubelet.service: ran",
		"systemctl enable calico-node.service: ran",
	)
	for _, u := range []string{"flanneld.service", "kubelet.service", "calico-node.service"} {
		if got := sh("systemctl", "is-active", u); got != "active" {
			t.Errorf("is-active %s after the first run: %q", u, got)
		}
		if got := sh("systemctl", "is-enabled", u); got != "enabled" {
			t.Errorf("is-enabled %s after the first run: %q", u, got)
		}
	}
	if got := sh("systemctl", "is-active", "docker.service"); got != "active" {
		t.Errorf("is-active docker.service after the first run: %q", got)
	}
	// flanneld ran the guide's drop-in after its own ExecStartPre.
	if got := sh("readlink", "/run/flannel/options.env"); got != "/etc/flannel/options.env" {
		t.Errorf("/run/flannel/options.env links to %q, want /etc/flannel/options.env", got)
	}
	if got := sh("stat", "-c", "%a %U:%G", "/etc/kubernetes/ssl/apiserver-key.pem"); got != "600 root:root" {
		t.Errorf("apiserver-key.pem: %s, want 600 root:root", got)
	}
	wantNetworkConfig(t, etcd.URL, map[string]any{"Network": "10.2.0.0/16", "Backend": map[string]any{"Type": "vxlan"}})
	before := entered()
	for u, ts := range before {
		if ts == "" {
			t.Errorf("%s has no ActiveEnterTimestamp after the first run", u)
		}
	}

	// Second run: nothing to do, nothing restarted.
	out = kplay(0, "run")
	wantLines("second run", out, "0 updated, 0 created, 0 actions run")
	if after := entered(); !reflect.DeepEqual(after, before) {
		t.Errorf("second run restarted units: ActiveEnterTimestamp\nbefore %v\nafter  %v", before, after)
	}
	kplay(0, "check")

	// A new K8S_VER: the manifests and the kubelet unit; kubelet alone
	// restarts.
	const newVer = "v1.4.1_coreos.0"
	out = kplay(0, "run", "--var", "K8S_VER="+newVer)
	wantLines("run with a new K8S_VER", out,
		"unit /etc/systemd/system/kubelet.service: updated",
		"manifest /etc/kubernetes/manifests/kube-apiserver.yaml: updated",
		"manifest /etc/kubernetes/manifests/kube-proxy.yaml: updated",
		"manifest /etc/kubernetes/manifests/kube-controller-manager.yaml: updated",
		"manifest /etc/kubernetes/manifests/kube-scheduler.yaml: updated",
		"systemctl daemon-reload: ran",
		"systemctl restart kubelet.service: ran",
		"5 updated, 1 restarted, 0 created, 1 action run",
	)
	after := entered()
	for _, u := range units {
		changed := after[u] != before[u]
		if want := u == "kubelet.service"; changed != want {
			t.Errorf("run with a new K8S_VER: %s restarted %v, want %v (ActiveEnterTimestamp %q → %q)", u, changed, want, before[u], after[u])
		}
	}
	t.Logf("kubelet's ActiveEnterTimestamp: %s → %s", before["kubelet.service"], after["kubelet.service"])
	if got := sh("systemctl", "show", "-p", "Environment", "--value", "kubelet.service"); !strings.Contains(got, "KUBELET_VERSION="+newVer) {
		t.Errorf("kubelet's Environment after the restart: %q, want KUBELET_VERSION=%s", got, newVer)
	}

	// Calico off (issue 13): what the playbook no longer declares goes.
	// calico-node is stopped, disabled and deleted, the policy
	// controller's manifest and the CNI conf deleted; the kubelet unit
	// is rewritten and kubelet restarts once; flanneld is left alone.
	before = entered()
	out = kplay(0, "run", "--var", "K8S_VER="+newVer, "--var", "CALICO=false")
	wantLines("run with CALICO=false", out,
		"unit /etc/systemd/system/calico-node.service: deleted",
		"manifest /etc/kubernetes/manifests/policy-controller.yaml: deleted",
		"file /etc/kubernetes/cni/net.d/10-calico.conf: deleted",
		"unit /etc/systemd/system/kubelet.service: updated",
		"systemctl restart kubelet.service: ran",
	)
	if n := strings.Count(out, "systemctl restart kubelet.service: ran"); n != 1 {
		t.Errorf("run with CALICO=false restarted kubelet %d times, want once:\n%s", n, out)
	}
	if got, _ := m.exec(t, "systemctl", "is-active", "calico-node.service"); strings.TrimSpace(got) != "inactive" {
		t.Errorf("is-active calico-node.service after CALICO=false: %q, want inactive", strings.TrimSpace(got))
	}
	if _, code := m.exec(t, "test", "-e", "/etc/systemd/system/multi-user.target.wants/calico-node.service"); code == 0 {
		t.Error("calico-node.service is still enabled after CALICO=false")
	}
	after = entered()
	if after["flanneld.service"] != before["flanneld.service"] {
		t.Errorf("CALICO=false restarted flanneld (ActiveEnterTimestamp %q → %q)", before["flanneld.service"], after["flanneld.service"])
	}
	if after["kubelet.service"] == before["kubelet.service"] {
		t.Error("CALICO=false did not restart kubelet")
	}
	kplay(0, "check", "--var", "K8S_VER="+newVer, "--var", "CALICO=false")

	// And on again: it comes back.
	kplay(0, "run", "--var", "K8S_VER="+newVer, "--var", "CALICO=true")
	if got := sh("systemctl", "is-active", "calico-node.service"); got != "active" {
		t.Errorf("is-active calico-node.service after CALICO=true again: %q", got)
	}
	if got := sh("systemctl", "is-enabled", "calico-node.service"); got != "enabled" {
		t.Errorf("is-enabled calico-node.service after CALICO=true again: %q", got)
	}
	t.Logf("took %s (boot, etcd, five runs and two checks; the halt follows)", time.Since(began).Round(time.Millisecond))
}

// wantNetworkConfig reads flannel's network config from etcd (v2 keys
// API) and compares it as JSON with want.
func wantNetworkConfig(t *testing.T, etcdURL string, want map[string]any) {
	t.Helper()
	resp, err := http.Get(etcdURL + "/v2/keys/coreos.com/network/config")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("etcd /coreos.com/network/config: %s\n%s", resp.Status, body)
	}
	var r struct {
		Node struct{ Value string }
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("etcd's answer: %v\n%s", err, body)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.Node.Value), &got); err != nil {
		t.Fatalf("/coreos.com/network/config is not JSON: %v: %q", err, r.Node.Value)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("/coreos.com/network/config = %s, want %v", r.Node.Value, want)
	}
}
