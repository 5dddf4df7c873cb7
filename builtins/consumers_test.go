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

// TestConfDirNamesAgreeWithSystemd: for the configuration directories
// of systemd's tools, kplay refuses exactly the names that
// systemd-analyze cat-config does not list.
func TestConfDirNamesAgreeWithSystemd(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed")
	}
	names := []string{"10-a.conf", ".x.conf", "99-k8s", "a.conf~", "b.CONF", "c.conf.bak", "d e.conf"}
	for config, dir := range map[string]string{
		"sysctl.d":                       "etc/sysctl.d",
		"modules-load.d":                 "etc/modules-load.d",
		"tmpfiles.d":                     "etc/tmpfiles.d",
		"systemd/journald.conf":          "etc/systemd/journald.conf.d",
		"systemd/network/10-eth.network": "etc/systemd/network/10-eth.network.d",
	} {
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(root, dir, n), []byte("# "+n+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out, _ := exec.Command("systemd-analyze", "--root="+root, "cat-config", config).CombinedOutput()
		for _, n := range names {
			read := strings.Contains(string(out), "# "+filepath.Join(root, dir, n)+"\n")
			err := consumerNameError("/" + dir + "/" + n)
			if (err == nil) != read {
				t.Errorf("%s/%s: systemd reads it: %v; kplay: %v", dir, n, read, err)
			}
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
		"/etc/kubernetes/manifests/sub/pod.yaml":                                "the kubelet reads static pods only directly in /etc/kubernetes/manifests, not below it",
		"/etc/cni/net.d/sub/10.conf":                                            "CNI reads configurations only directly in /etc/cni/net.d, not below it",
		"/etc/systemd/system/multi-user.target.wants/foo":                       `systemd reads only symlinks in /etc/systemd/system/multi-user.target.wants, named as units`,
		"/etc/systemd/system/multi-user.target.wants/foo.service":               `systemd reads only symlinks in /etc/systemd/system/multi-user.target.wants, named as units: /etc/systemd/system/multi-user.target.wants/foo.service would be ignored`,
		"/etc/sysctl.d/sub/x.conf":                                              "systemd-sysctl reads only files directly in /etc/sysctl.d, not below it",
		"/etc/modprobe.d/x":                                                     "modprobe reads only files whose names end in .conf",
		"/etc/systemd/system/notaunit.d/x.conf":                                 "systemd reads drop-ins only in a directory named after a unit",
		"/etc/systemd/system/t.scope":                                           "systemd never loads a .scope unit from a file",
		"/etc/systemd/system/t.scope.d/10.conf":                                 "",
		"/etc/systemd/network/10-eth0.txt":                                      "systemd-networkd reads only files whose names end in .network, .netdev, .link",
		"/etc/systemd/network/10-eth0.network":                                  "",
		"/etc/systemd/network/10-eth0.network.d/mtu.conf":                       "",
		"/usr/lib/systemd/network/99-default.link.d/x.conf":                     "",
		"/etc/systemd/network/10-eth0.network.d/mtu":                            "systemd-networkd reads only files whose names end in .conf",
		"/etc/systemd/network/sub/10.network":                                   "systemd-networkd reads only files directly in /etc/systemd/network, not below it",
		"/etc/udev/rules.d/99-x":                                                "udev reads only files whose names end in .rules",
		"/etc/sysctl.d/99-k8s.conf":                                             "",
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
