package builtins

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/kplay-dev/kplay/host"
)

// Directories that another program reads, and what it reads from them.
var (
	// unitDirs are systemd's unit search path for the system manager
	// (systemd.unit(5)); a "<unit>.d" directory below one holds drop-ins.
	unitDirs = []string{"/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}
	// manifestDirs hold the kubelet's static pods: the guide's
	// --pod-manifest-path.
	manifestDirs = []string{"/etc/kubernetes/manifests"}
	// cniDirs hold CNI network configurations: the default and the
	// guide's --cni-conf-dir.
	cniDirs = []string{"/etc/cni/net.d", "/etc/kubernetes/cni/net.d"}
	// cniExts are what libcni's ConfFiles reads (libcni/conf.go, as the
	// kubelet calls it).
	cniExts = []string{".conf", ".conflist", ".json"}
)

// consumerNameError returns an error if the program that reads the
// directory of p would never read a file of that name, so the step
// would be written and take no effect:
//   - a drop-in (in "<unit>.d" below a unit directory) must end in .conf
//     and not be hidden: systemd lists drop-ins with conf_files_list,
//     "*.conf" without dot files (held to systemd-analyze cat-config by
//     TestConsumerNamesAgreeWithSystemd);
//   - a file in a unit directory must be a unit name systemd accepts
//     (host.UnitNameError);
//   - a static pod must not be hidden: the kubelet's file source skips
//     names that start with "." (pkg/kubelet/config/file.go);
//   - a CNI configuration must end in .conf, .conflist or .json.
func consumerNameError(p string) error {
	dir, base := path.Split(p)
	dir = path.Clean(dir)
	if len(base) > 255 {
		return fmt.Errorf("%s: a file name is at most 255 bytes, this one is %d", p, len(base))
	}
	if d := dropinDirAbove(dir); d != "" && d != dir {
		return fmt.Errorf("systemd reads drop-ins only directly in %s, not below it: %s would never be read", d, p)
	}
	switch {
	case isDropinDir(dir):
		switch {
		case strings.HasPrefix(base, "."):
			return fmt.Errorf("systemd skips hidden drop-ins (names that start with \".\"): %s would never be read (name it such as %q)", p, dropinHint(base))
		case path.Ext(base) != ".conf":
			return fmt.Errorf("systemd reads only drop-ins that end in .conf: %s would never be read (try %q)", p, dropinHint(base))
		}
	case slices.Contains(unitDirs, dir):
		if err := host.UnitNameError(base); err != nil {
			return fmt.Errorf("systemd reads only unit files named as units in %s: %v", dir, err)
		}
	case slices.Contains(manifestDirs, dir):
		return hiddenManifestError(p)
	case slices.Contains(cniDirs, dir):
		if !slices.Contains(cniExts, path.Ext(base)) {
			return fmt.Errorf("CNI reads only .conf, .conflist and .json files from %s: %s would never be read", dir, p)
		}
	}
	return nil
}

// hiddenManifestError refuses a static pod manifest p whose name starts
// with ".": the kubelet's file source skips it, so the pod never runs.
func hiddenManifestError(p string) error {
	if base := path.Base(p); strings.HasPrefix(base, ".") {
		return fmt.Errorf("the kubelet skips manifests whose names start with \".\": %s would never run (name it such as %q)", p, strings.TrimLeft(base, "."))
	}
	return nil
}

// isDropinDir reports whether dir holds drop-ins: "<unit>.d" (or a
// top-level "<type>.d", such as service.d) directly in a unit directory.
func isDropinDir(dir string) bool {
	return strings.HasSuffix(dir, ".d") && slices.Contains(unitDirs, path.Dir(dir))
}

// dropinDirAbove returns the drop-in directory that dir is or lies
// below, or "".
func dropinDirAbove(dir string) string {
	for d := dir; d != "/" && d != "."; d = path.Dir(d) {
		if isDropinDir(d) {
			return d
		}
	}
	return ""
}

// dropinHint is a drop-in name systemd reads, made from base.
func dropinHint(base string) string {
	stem := strings.TrimSuffix(strings.TrimLeft(base, "."), path.Ext(base))
	if stem == "" || stem == "conf" {
		stem = "override"
	}
	if !strings.HasPrefix(stem, "40-") && (stem[0] < '0' || stem[0] > '9') {
		stem = "40-" + stem
	}
	return stem + ".conf"
}

// isUnitFilePath reports whether a file at p is read by systemd as a
// unit file or a drop-in, so that writing it owes a daemon-reload.
func isUnitFilePath(p string) bool {
	dir := path.Dir(p)
	return slices.Contains(unitDirs, dir) || isDropinDir(dir)
}
