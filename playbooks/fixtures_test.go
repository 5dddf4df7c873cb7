// Package playbooks holds the acceptance tests of the playbooks in this
// directory; it has no code of its own. The fixtures here build what the
// tests run against: a CoreOS-like root, throwaway TLS assets, and a
// semantic comparison of a root against a golden tree.
package playbooks

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/unit"
	"sigs.k8s.io/yaml"

	"github.com/kplay-dev/kplay/ui"
)

// baseRoot is the CoreOS-like root the tests start from.
const baseRoot = "../testdata/roots/coreos"

// rootModes are the modes of the files of baseRoot that are not 0644
// (git keeps no modes but 0644 and 0755, and a checkout's umask may
// change those).
var rootModes = map[string]fs.FileMode{
	"usr/lib/coreos/kubelet-wrapper": 0o755,
}

// rootDirs are directories of the root that git cannot hold (it keeps no
// empty directory): copyRoot makes them.
var rootDirs = []string{
	"etc/systemd/system/multi-user.target.wants",
}

// copyRoot copies baseRoot into a new temp dir and returns it: files get
// the modes of rootModes (0644 otherwise), directories 0755.
func copyRoot(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "root")
	err := filepath.WalkDir(baseRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(baseRoot, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return mkdirMode(to, 0o755)
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			mode, ok := rootModes[filepath.ToSlash(rel)]
			if !ok {
				mode = 0o644
			}
			if err := os.WriteFile(to, data, mode); err != nil {
				return err
			}
			return os.Chmod(to, mode) // WriteFile's mode passes the umask
		}
		return fmt.Errorf("%s: only files and directories belong in the base root", p)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", baseRoot, err)
	}
	for _, d := range rootDirs {
		if err := os.MkdirAll(filepath.Join(dst, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func mkdirMode(p string, mode fs.FileMode) error {
	if err := os.MkdirAll(p, mode); err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

// writeTLS writes a throwaway CA and an apiserver certificate signed by
// it, as the guide's "TLS Assets" are: ca.pem, apiserver.pem and
// apiserver-key.pem (0600) in dir. Each call makes new keys, so no key is
// ever committed.
func writeTLS(t *testing.T, dir string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "kube-ca (kplay test)"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"kubernetes", "kubernetes.default"},
		IPAddresses:  []net.IP{net.ParseIP("10.3.0.1"), net.ParseIP("10.0.0.10")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name, typ string
		der       []byte
		mode      fs.FileMode
	}{
		{"ca.pem", "CERTIFICATE", caDER, 0o644},
		{"apiserver.pem", "CERTIFICATE", der, 0o644},
		{"apiserver-key.pem", "EC PRIVATE KEY", keyDER, 0o600},
	} {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), f.mode); err != nil {
			t.Fatal(err)
		}
	}
}

func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// symlinks returns every symlink under root, by path inside the root
// ("/etc/systemd/system/multi-user.target.wants/kubelet.service"), with
// its target.
func symlinks(t *testing.T, root string) map[string]string {
	t.Helper()
	links := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		links["/"+filepath.ToSlash(rel)] = target
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return links
}

// goldenEntry is one line of a golden tree's MODES file.
type goldenEntry struct {
	path  string // inside the root; a directory ends in "/"
	mode  fs.FileMode
	owner string // "root:root"
}

// readModes reads goldenDir/MODES: lines of `path mode owner:group`, with
// # comments. Git keeps no modes, so they live there.
func readModes(t *testing.T, goldenDir string) []goldenEntry {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(goldenDir, "MODES"))
	if err != nil {
		t.Fatal(err)
	}
	var entries []goldenEntry
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 || !strings.HasPrefix(f[0], "/") || !strings.Contains(f[2], ":") {
			t.Fatalf("%s/MODES:%d: %q: want `path mode owner:group`", goldenDir, i+1, line)
		}
		mode, err := strconv.ParseUint(f[1], 8, 32)
		if err != nil {
			t.Fatalf("%s/MODES:%d: mode %q: %v", goldenDir, i+1, f[1], err)
		}
		entries = append(entries, goldenEntry{path: f[0], mode: fs.FileMode(mode), owner: f[2]})
	}
	return entries
}

// checkedTrees are the directories of the root where every file kplay
// wrote must be in the golden tree (symlinks aside).
var checkedTrees = []string{"/etc/kubernetes", "/etc/flannel", "/etc/systemd/system"}

// compareGolden compares root with the golden tree goldenDir:
//
//   - every path of goldenDir/MODES exists in root, as a directory (a path
//     ending in "/") or a regular file, with that mode and owner (names
//     looked up in the root's /etc/passwd and /etc/group);
//   - every file of goldenDir is in MODES, and the same path in root has
//     equal content, compared by kind (see sameContent), after each
//     @NAME@ in the golden text is replaced by vars[NAME];
//   - no other file or directory is under checkedTrees in root, but for
//     symlinks (the caller checks them) and directories that hold some.
//
// A path in MODES with no file in goldenDir is checked for mode and owner
// only: its content is the caller's to compare (the TLS assets it made).
func compareGolden(t *testing.T, root, goldenDir string, vars map[string]string) {
	t.Helper()
	entries := readModes(t, goldenDir)
	listed := map[string]bool{}
	for _, e := range entries {
		listed[strings.TrimSuffix(e.path, "/")] = true
	}
	users, groups := idsOf(t, root, "etc/passwd"), idsOf(t, root, "etc/group")

	// The golden files themselves.
	for _, name := range walkFiles(t, goldenDir) {
		if name == "/MODES" {
			continue
		}
		if !listed[name] {
			t.Errorf("golden %s: %s is not in MODES", goldenDir, name)
		}
		want, err := os.ReadFile(filepath.Join(goldenDir, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		want = []byte(expand(t, name, string(want), vars))
		if diff := sameContent(name, want, got); diff != "" {
			t.Errorf("%s differs from %s%s (compared as %s):\n%s", name, goldenDir, name, kindOf(name), diff)
		}
	}

	// Modes and owners.
	for _, e := range entries {
		name := strings.TrimSuffix(e.path, "/")
		fi, err := os.Lstat(filepath.Join(root, name))
		if err != nil {
			t.Errorf("%s: %v", e.path, err)
			continue
		}
		isDir := strings.HasSuffix(e.path, "/")
		switch {
		case isDir && !fi.IsDir():
			t.Errorf("%s: a %v, want a directory", name, fi.Mode().Type())
			continue
		case !isDir && !fi.Mode().IsRegular():
			t.Errorf("%s: a %v, want a regular file", name, fi.Mode().Type())
			continue
		}
		if fi.Mode().Perm() != e.mode {
			t.Errorf("%s: mode %04o, want %04o", name, fi.Mode().Perm(), e.mode)
		}
		user, group, _ := strings.Cut(e.owner, ":")
		st := fi.Sys().(*syscall.Stat_t)
		uid, ok := users[user]
		if !ok {
			t.Errorf("%s: owner %q is not in the root's /etc/passwd", name, user)
		}
		gid, ok := groups[group]
		if !ok {
			t.Errorf("%s: group %q is not in the root's /etc/group", name, group)
		}
		if int(st.Uid) != uid || int(st.Gid) != gid {
			t.Errorf("%s: owner %d:%d, want %s (%d:%d)", name, st.Uid, st.Gid, e.owner, uid, gid)
		}
	}

	// Nothing else.
	ancestors := map[string]bool{}
	for name := range listed {
		for d := path.Dir(name); d != "/"; d = path.Dir(d) {
			ancestors[d] = true
		}
	}
	base := map[string]bool{}
	for _, d := range rootDirs {
		base["/"+d] = true
	}
	for _, tree := range checkedTrees {
		for _, e := range walkTree(t, root, tree) {
			switch {
			case listed[e.name] || ancestors[e.name] || base[e.name] || e.mode&fs.ModeSymlink != 0:
			case e.mode.IsDir():
				if !holdsSymlink(t, filepath.Join(root, e.name)) {
					t.Errorf("%s: a directory that the golden tree %s has not", e.name, goldenDir)
				}
			default:
				t.Errorf("%s: a file that the golden tree %s has not", e.name, goldenDir)
			}
		}
	}
}

// treeEntry is a path inside a root and its type.
type treeEntry struct {
	name string // "/etc/flannel/options.env"
	mode fs.FileMode
}

// walkTree lists what is under root/tree (tree itself excluded), by path
// inside root; nothing if tree does not exist.
func walkTree(t *testing.T, root, tree string) []treeEntry {
	t.Helper()
	dir := filepath.Join(root, tree)
	var entries []treeEntry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if os.IsNotExist(err) && p == dir {
			return nil
		}
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		entries = append(entries, treeEntry{name: "/" + filepath.ToSlash(rel), mode: d.Type()})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// walkFiles lists the regular files under dir, by path inside it.
func walkFiles(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	for _, e := range walkTree(t, dir, "/") {
		if e.mode.IsRegular() {
			names = append(names, e.name)
		}
	}
	return names
}

// holdsSymlink reports whether dir has a symlink in it (the .wants/
// directories of enabled units).
func holdsSymlink(t *testing.T, dir string) bool {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(des, func(d fs.DirEntry) bool { return d.Type()&fs.ModeSymlink != 0 })
}

// idsOf reads the name:x:id lines of the root's passwd or group file.
func idsOf(t *testing.T, root, file string) map[string]int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 3 {
			continue
		}
		if id, err := strconv.Atoi(f[2]); err == nil {
			ids[f[0]] = id
		}
	}
	return ids
}

// placeholder is an @NAME@ of golden text.
var placeholder = regexp.MustCompile(`@([A-Z][A-Z0-9_]*)@`)

// expand replaces each @NAME@ of golden text with vars[NAME]; a name
// without a value fails the test.
func expand(t *testing.T, name, text string, vars map[string]string) string {
	t.Helper()
	return placeholder.ReplaceAllStringFunc(text, func(m string) string {
		v, ok := vars[strings.Trim(m, "@")]
		if !ok {
			t.Fatalf("golden %s: placeholder %s has no value", name, m)
		}
		return v
	})
}

// kindOf says how sameContent compares the file name.
func kindOf(name string) string {
	ext := path.Ext(name)
	switch {
	case strings.Contains(name, "/systemd/") && (ext == ".service" || ext == ".conf"):
		return "unit"
	case ext == ".yaml" || ext == ".yml":
		return "yaml"
	case ext == ".json" || strings.HasPrefix(name, "/etc/kubernetes/cni/net.d/"):
		return "json"
	case ext == ".env":
		return "env"
	}
	return "bytes"
}

// sameContent compares want and got by the kind of name, and returns ""
// if they mean the same, or a unified diff of their normal forms (as kplay
// test diffs a golden: ui.ContentDiff, which sums up binary content and
// content past its bounds):
//
//   - unit: systemd unit files, parsed with go-systemd's unit package; a
//     backslash-newline joins lines (as systemd reads it) and runs of
//     blanks count as one; the lists of (section, name, value) must be
//     equal, in order;
//   - yaml, json: decoded values equal;
//   - env: NAME=value lines, equal as a map (blank and # lines ignored);
//   - bytes: equal bytes.
func sameContent(name string, want, got []byte) string {
	norm := func(b []byte) (string, error) { return string(b), nil }
	switch kindOf(name) {
	case "unit":
		norm = normUnit
	case "yaml":
		norm = func(b []byte) (string, error) {
			j, err := yaml.YAMLToJSON(b)
			if err != nil {
				return "", err
			}
			return normJSON(j)
		}
	case "json":
		norm = normJSON
	case "env":
		norm = normEnv
	}
	w, err := norm(want)
	if err != nil {
		return fmt.Sprintf("golden: %v", err)
	}
	g, err := norm(got)
	if err != nil {
		return fmt.Sprintf("root: %v\n%s", err, got)
	}
	if w == g {
		return ""
	}
	if kindOf(name) == "yaml" || kindOf(name) == "json" {
		// Decoded values decide; the text of two equal values is equal too.
		var wv, gv any
		_ = json.Unmarshal([]byte(w), &wv)
		_ = json.Unmarshal([]byte(g), &gv)
		if reflect.DeepEqual(wv, gv) {
			return ""
		}
	}
	return ui.ContentDiff([]byte(w), []byte(g), "want", "got")
}

// normUnit is a unit file as one "[Section] Name=Value" line per option.
func normUnit(b []byte) (string, error) {
	opts, err := unit.DeserializeOptions(bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	var s strings.Builder
	for _, o := range opts {
		v := strings.Join(strings.Fields(strings.ReplaceAll(o.Value, "\\\n", " ")), " ")
		fmt.Fprintf(&s, "[%s] %s=%s\n", o.Section, o.Name, v)
	}
	return s.String(), nil
}

// normJSON is a JSON value re-encoded with sorted keys and indentation.
func normJSON(b []byte) (string, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return "", err
	}
	out, err := json.MarshalIndent(v, "", "  ")
	return string(out) + "\n", err
}

// normEnv is an env file as sorted NAME=value lines.
func normEnv(b []byte) (string, error) {
	m := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return "", fmt.Errorf("line %d: %q is not NAME=value", i+1, line)
		}
		if _, dup := m[k]; dup {
			return "", fmt.Errorf("line %d: %s set twice", i+1, k)
		}
		m[k] = v
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var s strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&s, "%s=%s\n", k, m[k])
	}
	return s.String(), nil
}
