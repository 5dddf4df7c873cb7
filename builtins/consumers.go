package builtins

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host/unitfile"
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

// confDir is a directory of configuration snippets that a systemd tool
// reads with conf_files_list: only names with one of exts, and no hidden
// ones (systemd's hidden_or_backup_file).
type confDir struct {
	reader string   // who reads it, for the error
	exts   []string // the suffixes it reads
}

// confDirOf returns the confDir that dir is, if any: the *.d directories
// of systemd-sysctl, systemd-modules-load, systemd-tmpfiles,
// systemd-sysusers and systemd-binfmt (sysctl.d(5) and the like), the
// drop-in directories of systemd's own configuration files
// (/etc/systemd/system.conf.d, journald.conf.d, …), systemd-networkd's
// directory and udev's rules.d, each under /etc, /run, /usr/lib and
// /usr/local/lib.
func confDirOf(dir string) (confDir, bool) {
	for _, prefix := range []string{"/etc/", "/run/", "/usr/lib/", "/usr/local/lib/"} {
		rest, ok := strings.CutPrefix(dir, prefix)
		if !ok {
			continue
		}
		switch rest {
		case "sysctl.d":
			return confDir{"systemd-sysctl", []string{".conf"}}, true
		case "modules-load.d":
			return confDir{"systemd-modules-load", []string{".conf"}}, true
		case "tmpfiles.d":
			return confDir{"systemd-tmpfiles", []string{".conf"}}, true
		case "sysusers.d":
			return confDir{"systemd-sysusers", []string{".conf"}}, true
		case "binfmt.d":
			return confDir{"systemd-binfmt", []string{".conf"}}, true
		case "modprobe.d":
			return confDir{"modprobe", []string{".conf"}}, true
		case "systemd/network":
			return confDir{"systemd-networkd", []string{".network", ".netdev", ".link"}}, true
		case "udev/rules.d":
			return confDir{"udev", []string{".rules"}}, true
		}
		if d, ok := strings.CutPrefix(rest, "systemd/"); ok && strings.HasSuffix(d, ".conf.d") && !strings.Contains(d, "/") {
			return confDir{"systemd", []string{".conf"}}, true
		}
		if d, ok := strings.CutPrefix(rest, "systemd/network/"); ok && !strings.Contains(d, "/") &&
			(strings.HasSuffix(d, ".network.d") || strings.HasSuffix(d, ".netdev.d") || strings.HasSuffix(d, ".link.d")) {
			return confDir{"systemd-networkd", []string{".conf"}}, true // drop-ins of one file
		}
	}
	return confDir{}, false
}

// consumerNameError returns an error if the program that reads the
// directory of p would never read a file of that name, so the step
// would be written and take no effect:
//   - a drop-in (in "<unit>.d" below a unit directory) must end in .conf
//     and not be hidden: systemd lists drop-ins with conf_files_list,
//     "*.conf" without dot files (held to systemd-analyze cat-config by
//     TestConsumerNamesAgreeWithSystemd);
//   - a file in a unit directory must be a unit name systemd accepts
//     (unitfile.NameError);
//   - a static pod must not be hidden: the kubelet's file source skips
//     names that start with "." (pkg/kubelet/config/file.go);
//   - a CNI configuration must end in .conf, .conflist or .json;
//   - neither the kubelet nor libcni reads subdirectories;
//   - a link in a .wants or .requires directory must be named as a
//     unit, and a drop-in directory after a unit or a unit type;
//   - systemd never loads a .scope unit from a file;
//   - the *.d directories of systemd's tools (sysctl.d, tmpfiles.d,
//     journald.conf.d, …; confDirOf) read only their suffixes, without
//     dot files (held to systemd-analyze cat-config by
//     TestConfDirNamesAgreeWithSystemd).
func consumerNameError(p string) error {
	if err := engine.StatePathError(p); err != nil {
		return err
	}
	dir, base := path.Split(p)
	dir = path.Clean(dir)
	if len(base) > 255 {
		return fmt.Errorf("%s: a file name is at most 255 bytes, this one is %d", p, len(base))
	}
	if d := dropinDirAbove(dir); d != "" && d != dir {
		return fmt.Errorf("systemd reads drop-ins only directly in %s, not below it: %s would never be read", d, p)
	}
	if d := readDirAbove(dir, manifestDirs); d != "" {
		return fmt.Errorf("the kubelet reads static pods only directly in %s, not below it: %s would never run", d, p)
	}
	if d := readDirAbove(dir, cniDirs); d != "" {
		return fmt.Errorf("CNI reads configurations only directly in %s, not below it: %s would never be read", d, p)
	}
	if c, ok := confDirOf(dir); ok {
		if strings.HasPrefix(base, ".") || !slices.Contains(c.exts, path.Ext(base)) {
			return fmt.Errorf("%s reads only files whose names end in %s and do not start with \".\" from %s: %s would never be read", c.reader, strings.Join(c.exts, ", "), dir, p)
		}
		return nil
	}
	for d := path.Dir(dir); d != "/"; d = path.Dir(d) {
		if c, ok := confDirOf(d); ok {
			return fmt.Errorf("%s reads only files directly in %s, not below it: %s would never be read", c.reader, d, p)
		}
	}
	if b := path.Base(dir); (strings.HasSuffix(b, ".wants") || strings.HasSuffix(b, ".requires")) && slices.Contains(unitDirs, path.Dir(dir)) {
		// What is written here is a file, and systemd reads only
		// symlinks ("is not a symlink, ignoring").
		return fmt.Errorf("systemd reads only symlinks in %s, named as units: %s would be ignored (enable the unit with systemctl(\"enable\", …) and a WantedBy= in its [Install] section)", dir, p)
	}
	switch {
	case isDropinDir(dir):
		if unit := strings.TrimSuffix(path.Base(dir), ".d"); !unitfile.IsType(unit) && unitfile.NameError(unit) != nil {
			return fmt.Errorf("systemd reads drop-ins only in a directory named after a unit (such as kubelet.service.d) or a unit type (service.d): %s is neither, so %s would never be read", path.Base(dir), p)
		}
		switch {
		case strings.HasPrefix(base, "."):
			return fmt.Errorf("systemd skips hidden drop-ins (names that start with \".\"): %s would never be read (name it such as %q)", p, dropinHint(base))
		case path.Ext(base) != ".conf":
			return fmt.Errorf("systemd reads only drop-ins that end in .conf: %s would never be read (try %q)", p, dropinHint(base))
		}
	case slices.Contains(unitDirs, dir):
		if err := unitfile.NameError(base); err != nil {
			return fmt.Errorf("systemd reads only unit files named as units in %s: %v", dir, err)
		}
		return scopeFileError(base)
	case slices.Contains(manifestDirs, dir):
		return hiddenManifestError(p)
	case slices.Contains(cniDirs, dir):
		if !slices.Contains(cniExts, path.Ext(base)) {
			return fmt.Errorf("CNI reads only .conf, .conflist and .json files from %s: %s would never be read", dir, p)
		}
	}
	return nil
}

// scopeFileError refuses a unit file for the scope name: systemd makes
// scope units only at run time (systemd-run --scope, a D-Bus call) and
// never loads one from a file ("Unit foo.scope not found"). Drop-ins for
// a scope are read.
func scopeFileError(name string) error {
	if strings.HasSuffix(name, ".scope") {
		return fmt.Errorf("systemd never loads a .scope unit from a file: %s would be ignored (scopes are made at run time, by systemd-run --scope; configure one with a drop-in, or write a .service)", name)
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

// readDirAbove returns the directory of dirs that dir lies below (not
// dir itself), or "": the kubelet and libcni read only the files
// directly in their directory.
func readDirAbove(dir string, dirs []string) string {
	for _, d := range dirs {
		if dir != d && strings.HasPrefix(dir, d+"/") {
			return d
		}
	}
	return ""
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

// isDropinPath reports whether a file at p is a drop-in systemd reads.
func isDropinPath(p string) bool { return isDropinDir(path.Dir(p)) }

// isManifestPath reports whether a file at p is one the kubelet runs as
// a static pod.
func isManifestPath(p string) bool {
	return slices.Contains(manifestDirs, path.Dir(p))
}

// isUnitFilePath reports whether a file at p is read by systemd as a
// unit file or a drop-in, so that writing it owes a daemon-reload.
func isUnitFilePath(p string) bool {
	dir := path.Dir(p)
	return slices.Contains(unitDirs, dir) || isDropinDir(dir)
}
