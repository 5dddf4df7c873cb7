package builtins

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestConsumerNamesAgreeWithSystemd writes drop-ins of many names into a
// root and asks systemd which it reads (systemd-analyze cat-config, the
// real conf_files_list): consumerNameError must accept exactly those
// (issue 12, item 3).
func TestConsumerNamesAgreeWithSystemd(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed")
	}
	root := t.TempDir()
	dir := filepath.Join(root, "etc/systemd/system/demo.service.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	names := []string{"10-a.conf", ".override.conf", ".conf", "20-b.conf.bak", "30-c.CONF", "40-d", "50 e.conf", "60-f.conf~", "x.conf.d", "-.conf", "a.b.conf", "über.conf"}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("[Service]\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("systemd-analyze", "--root="+root, "cat-config", "systemd/system/demo.service.d").CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze cat-config: %v\n%s", err, out)
	}
	read := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# .*/demo\.service\.d/(.+)$`).FindAllStringSubmatch(string(out), -1) {
		read[m[1]] = true
	}
	if len(read) == 0 {
		t.Fatalf("systemd read no drop-in:\n%s", out)
	}
	for _, n := range names {
		err := consumerNameError("/etc/systemd/system/demo.service.d/" + n)
		if (err == nil) != read[n] {
			t.Errorf("%q: systemd reads it: %v; kplay: %v", n, read[n], err)
		}
	}
}

// TestConsumerNames: the kubelet's and CNI's documented rules, and the
// unit name rule, for files written into their directories.
func TestConsumerNames(t *testing.T) {
	t.Parallel()
	for p, want := range map[string]string{
		"/etc/kubernetes/manifests/kube-apiserver.yaml":                         "",
		"/etc/kubernetes/manifests/.demo.yaml":                                  `the kubelet skips manifests whose names start with ".": /etc/kubernetes/manifests/.demo.yaml would never run`,
		"/etc/kubernetes/cni/net.d/10-calico.conf":                              "",
		"/etc/kubernetes/cni/net.d/10-calico.conflist":                          "",
		"/etc/cni/net.d/10-flannel.json":                                        "",
		"/etc/kubernetes/cni/net.d/10-calico.yaml":                              "CNI reads only .conf, .conflist and .json files from /etc/kubernetes/cni/net.d",
		"/etc/systemd/system/kubelet.service":                                   "",
		"/etc/systemd/system/@x.service":                                        `systemd reads only unit files named as units in /etc/systemd/system: "@x.service" has no name before its "@"`,
		"/etc/systemd/system/kubelet":                                           "systemd reads only unit files named as units",
		"/etc/systemd/system/flanneld.service.d/40.conf":                        "",
		"/etc/flannel/options.env":                                              "",
		"/etc/kubernetes/.hidden":                                               "",
		"/etc/systemd/system/x.service.d/sub/y.conf":                            "systemd reads drop-ins only directly in /etc/systemd/system/x.service.d, not below it",
		"/etc/systemd/system/service.d/10-x.conf":                               "",
		"/etc/systemd/system/x.service.d/.conf":                                 `(name it such as "40-override.conf")`,
		"/etc/systemd/system/x.service.d/" + strings.Repeat("a", 251) + ".conf": "a file name is at most 255 bytes",
	} {
		err := consumerNameError(p)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v, want no error", p, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: %v, want an error containing %q", p, err, want)
		}
	}
}
