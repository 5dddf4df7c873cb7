package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kplay-dev/kplay/host/roottest"

	"github.com/kplay-dev/kplay/host/unitfile"
)

// unitTree describes a root: a value "-> target" is a symlink, a name
// ending in "/" a directory, anything else a file with that content.
type unitTree map[string]string

func buildTree(t *testing.T, dir string, tree unitTree) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(tree)) {
		p := filepath.Join(dir, name)
		content := tree[name]
		switch {
		case strings.HasSuffix(name, "/"):
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(content, "-> "):
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			roottest.Symlink(t, strings.TrimPrefix(content, "-> "), p)
		default:
			roottest.WriteFile(t, p, content, 0o644)
		}
	}
}

// listTree lists every path under dir but dir itself: "d" for a
// directory, "-> target" for a symlink, "f" for anything else.
func listTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel := "/" + filepath.ToSlash(strings.TrimPrefix(p, dir+"/"))
		switch {
		case de.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			got[rel] = "-> " + target
		case de.IsDir():
			got[rel] = "d"
		default:
			got[rel] = "f"
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// listHost lists a Host's tree as listTree does, through ReadDir, Lstat
// and Readlink.
func listHost(t *testing.T, h Host) map[string]string { return walkHost(t, h, false) }

// walkHost lists every path of h's tree: "d" for a directory, "f" for a
// file, "-> target" for a symlink; with detail, a directory's mode too
// ("d -rwxr-xr-x") and a file's mode and content.
func walkHost(t *testing.T, h Host, detail bool) map[string]string {
	t.Helper()
	ctx := t.Context()
	got := map[string]string{}
	var walk func(dir string)
	walk = func(dir string) {
		names, err := h.ReadDir(ctx, dir)
		if err != nil {
			t.Fatalf("readdir %s: %v", dir, err)
		}
		for _, n := range names {
			p := path.Join(dir, n)
			fi, err := h.Lstat(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case fi.Mode&fs.ModeSymlink != 0:
				target, err := h.Readlink(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				got[p] = "-> " + target
			case fi.IsDir() && detail:
				got[p] = fmt.Sprintf("d %v", fi.Perm())
				walk(p)
			case fi.IsDir():
				got[p] = "d"
				walk(p)
			case detail:
				data, err := h.ReadFile(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				got[p] = fmt.Sprintf("f %v %q", fi.Perm(), data)
			default:
				got[p] = "f"
			}
		}
	}
	walk("/")
	return got
}

// links keeps the symlinks of a listing.
func links(tree map[string]string) map[string]string {
	got := map[string]string{}
	for name, v := range tree {
		if target, ok := strings.CutPrefix(v, "-> "); ok {
			got[name] = target
		}
	}
	return got
}

// systemctl runs the real systemctl on root and returns its stdout and
// stderr.
func systemctl(t *testing.T, root string, args ...string) (string, string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "systemctl", append([]string{"--root=" + root, "--no-pager"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("systemctl %v: %v", args, err)
	}
	return stdout.String(), stderr.String()
}

// systemctlState is what systemctl is-enabled says, "not-found" for
// "No such file or directory", "error" for another failure.
func systemctlState(t *testing.T, root, unit string) string {
	t.Helper()
	stdout, stderr := systemctl(t, root, "is-enabled", unit)
	if s := strings.TrimSpace(stdout); s != "" {
		return s
	}
	if strings.Contains(stderr, "No such file or directory") {
		return "not-found"
	}
	return "error"
}

// needSystemctl skips the test when systemctl is not installed.
func needSystemctl(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("systemctl"); err != nil {
		t.Skip("systemctl is not installed: cannot compare offline enable with systemctl --root")
	}
}

// step is one systemctl verb applied to both roots.
type step struct {
	verb, unit string
	wantErr    string // our error must contain this; "" for none
}

// offlineOp runs verb on o, and for enable and disable checks that the
// links EnableLinks and DisableLinks announced are what changed.
func offlineOp(t *testing.T, h Host, o *Offline, s step) error {
	t.Helper()
	ctx := t.Context()
	var planned []Link
	var planErr error
	switch s.verb {
	case "enable":
		planned, planErr = o.EnableLinks(ctx, s.unit)
	case "disable":
		planned, planErr = o.DisableLinks(ctx, s.unit)
	}
	before := links(listHost(t, h))
	var err error
	switch s.verb {
	case "enable":
		err = o.Enable(ctx, s.unit)
	case "disable":
		err = o.Disable(ctx, s.unit)
	case "mask":
		err = o.Mask(ctx, s.unit)
	case "unmask":
		err = o.Unmask(ctx, s.unit)
	default:
		t.Fatalf("unknown verb %q", s.verb)
	}
	if (planErr == nil) != (err == nil) {
		t.Errorf("%s %s: plan error %v, but apply error %v", s.verb, s.unit, planErr, err)
	}
	after := links(listHost(t, h))
	if err != nil || (s.verb != "enable" && s.verb != "disable") {
		return err
	}
	var changed []Link
	for name, target := range after {
		if before[name] != target && s.verb == "enable" {
			changed = append(changed, Link{Name: name, Target: target})
		}
	}
	for name, target := range before {
		if _, ok := after[name]; !ok && s.verb == "disable" {
			changed = append(changed, Link{Name: name, Target: target})
		}
	}
	slices.SortFunc(changed, func(a, b Link) int { return strings.Compare(a.Name, b.Name) })
	if !slices.Equal(planned, changed) {
		t.Errorf("%s %s: planned %v, but changed %v", s.verb, s.unit, planned, changed)
	}
	return nil
}

// crossCheckTests are the cases run against systemctl --root: the same
// tree in two roots, the same steps, then the same tree and the same
// is-enabled answers for the units in check.
var crossCheckTests = map[string]struct {
	tree  unitTree
	steps []step
	check []string
}{
	"wanted_by": {
		tree:  unitTree{"/etc/systemd/system/foo.service": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"},
		steps: []step{{verb: "enable", unit: "foo.service"}},
		check: []string{"foo.service"},
	},
	"required_by": {
		tree:  unitTree{"/usr/lib/systemd/system/foo.service": "[Install]\nRequiredBy=kubelet.service\n"},
		steps: []step{{verb: "enable", unit: "foo.service"}},
		check: []string{"foo.service"},
	},
	"multiple_targets": {
		tree: unitTree{"/usr/lib/systemd/system/foo.service": "[Unit]\nDescription=x\n[Install]\n" +
			"WantedBy=a.target b.target\nWantedBy=c.target\nRequiredBy=d.target \\\n  e.target\n# WantedBy=z.target\n"},
		steps: []step{{verb: "enable", unit: "foo.service"}},
		check: []string{"foo.service"},
	},
	"quoted_values_and_reset": {
		tree: unitTree{
			"/usr/lib/systemd/system/foo.service":                 "[Install]\nWantedBy=old.target\nWantedBy=\nWantedBy=\"a.target\" b.target\n",
			"/etc/systemd/system/foo.service.d/10-extra.conf":     "[Install]\nRequiredBy=c.target\n",
			"/usr/lib/systemd/system/foo.service.d/10-extra.conf": "[Install]\nRequiredBy=hidden.target\n",
		},
		steps: []step{{verb: "enable", unit: "foo.service"}},
		check: []string{"foo.service"},
	},
	"alias": {
		tree: unitTree{"/usr/lib/systemd/system/foo.service": "[Install]\nWantedBy=multi-user.target\nAlias=bar.service baz.service\n"},
		steps: []step{
			{verb: "enable", unit: "foo.service"},
			{verb: "enable", unit: "foo.service"},
		},
		check: []string{"foo.service", "bar.service", "baz.service"},
	},
	"alias_only": {
		tree:  unitTree{"/usr/lib/systemd/system/foo.service": "[Install]\nAlias=bar.service\n"},
		steps: []step{{verb: "enable", unit: "foo.service"}},
		check: []string{"foo.service", "bar.service"},
	},
	"disable_through_alias_name": {
		tree:  unitTree{"/usr/lib/systemd/system/foo.service": "[Install]\nWantedBy=multi-user.target\nAlias=bar.service\n"},
		steps: []step{{verb: "enable", unit: "foo.service"}, {verb: "disable", unit: "bar.service"}},
		check: []string{"foo.service", "bar.service"},
	},
	"also": {
		tree: unitTree{
			"/usr/lib/systemd/system/foo.socket":   "[Install]\nWantedBy=sockets.target\nAlso=foo.service\n",
			"/usr/lib/systemd/system/foo.service":  "[Install]\nWantedBy=multi-user.target\n",
			"/usr/lib/systemd/system/only.service": "[Install]\nAlso=foo.socket missing.service\n",
		},
		steps: []step{{verb: "enable", unit: "only.service"}},
		check: []string{"only.service", "foo.socket", "foo.service", "missing.service"},
	},
	"also_disable": {
		tree: unitTree{
			"/usr/lib/systemd/system/foo.socket":  "[Install]\nWantedBy=sockets.target\nAlso=foo.service\n",
			"/usr/lib/systemd/system/foo.service": "[Install]\nWantedBy=multi-user.target\n",
		},
		steps: []step{{verb: "enable", unit: "foo.socket"}, {verb: "disable", unit: "foo.socket"}},
		check: []string{"foo.socket", "foo.service"},
	},
	"also_masked": {
		tree: unitTree{
			"/usr/lib/systemd/system/only.service": "[Install]\nAlso=m.service\nWantedBy=x.target\n",
			"/usr/lib/systemd/system/m.service":    "[Install]\nWantedBy=x.target\n",
			"/etc/systemd/system/m.service":        "-> /dev/null",
		},
		steps: []step{{verb: "enable", unit: "only.service"}, {verb: "disable", unit: "only.service"}, {verb: "enable", unit: "only.service"}},
		check: []string{"only.service", "m.service"},
	},
	"masked_default_instance": {
		tree: unitTree{
			"/usr/lib/systemd/system/foo@.service": "[Install]\nWantedBy=multi-user.target\nDefaultInstance=bar\n",
			"/etc/systemd/system/foo@bar.service":  "-> /dev/null",
		},
		steps: []step{
			{verb: "enable", unit: "foo@.service", wantErr: "unit foo@bar.service is masked by /etc/systemd/system/foo@bar.service"},
			{verb: "enable", unit: "foo@x.service"},
		},
		check: []string{"foo@.service", "foo@bar.service", "foo@x.service"},
	},
	"template_default_instance": {
		tree:  unitTree{"/etc/systemd/system/foo@.service": "[Install]\nWantedBy=multi-user.target\nDefaultInstance=bar\n"},
		steps: []step{{verb: "enable", unit: "foo@.service"}},
		check: []string{"foo@.service", "foo@bar.service", "foo@x.service"},
	},
	"instance": {
		tree: unitTree{"/usr/lib/systemd/system/foo@.service": "[Install]\nWantedBy=multi-user.target\n"},
		steps: []step{
			{verb: "enable", unit: "foo@.service", wantErr: "multi-user.target is not a template"},
			{verb: "enable", unit: "foo@x.service"},
		},
		check: []string{"foo@.service", "foo@x.service", "foo@y.service"},
	},
	"instance_then_disable_template": {
		tree: unitTree{"/usr/lib/systemd/system/foo@.service": "[Install]\nWantedBy=multi-user.target\nDefaultInstance=d\n"},
		steps: []step{
			{verb: "enable", unit: "foo@x.service"},
			{verb: "enable", unit: "foo@y.service"},
			{verb: "disable", unit: "foo@x.service"},
		},
		check: []string{"foo@.service", "foo@x.service", "foo@y.service", "foo@d.service"},
	},
	"instance_drop_in_and_specifiers": {
		tree: unitTree{
			"/usr/lib/systemd/system/foo@.service":            "[Install]\nWantedBy=t-%i.target %p.target\nAlias=al-%i@.service\n",
			"/etc/systemd/system/foo@.service.d/install.conf": "[Install]\nRequiredBy=%N.target\n",
		},
		steps: []step{{verb: "enable", unit: "foo@x.service"}, {verb: "enable", unit: "foo@y.service"}},
		check: []string{"foo@x.service", "al-x@x.service", "foo@.service"},
	},
	"etc_overrides_usr_lib": {
		tree: unitTree{
			"/usr/lib/systemd/system/foo.service": "[Install]\nWantedBy=a.target\n",
			"/etc/systemd/system/foo.service":     "[Install]\nWantedBy=b.target\n",
		},
		steps: []step{{verb: "enable", unit: "foo.service"}},
		check: []string{"foo.service"},
	},
	"enabled_from_usr_lib_then_overridden": {
		tree: unitTree{
			"/usr/lib/systemd/system/foo.service":              "[Install]\nWantedBy=a.target\n",
			"/etc/systemd/system/foo.service":                  "[Install]\nWantedBy=a.target\n",
			"/etc/systemd/system/a.target.wants/foo.service":   "-> /usr/lib/systemd/system/foo.service",
			"/etc/systemd/system/a.target.wants/other.service": "-> ../../../../usr/lib/systemd/system/other.service",
			"/usr/lib/systemd/system/other.service":            "[Install]\nWantedBy=a.target\n",
		},
		steps: []step{{verb: "enable", unit: "foo.service"}, {verb: "enable", unit: "other.service"}},
		check: []string{"foo.service", "other.service"},
	},
	"masked": {
		tree: unitTree{"/usr/lib/systemd/system/foo.service": "[Install]\nWantedBy=multi-user.target\n"},
		steps: []step{
			{verb: "enable", unit: "foo.service"},
			{verb: "mask", unit: "foo.service"},
			{verb: "mask", unit: "foo.service"},
			{verb: "enable", unit: "foo.service", wantErr: "unit is masked by /etc/systemd/system/foo.service"},
			{verb: "disable", unit: "foo.service"},
			{verb: "mask", unit: "nothing.service"},
		},
		check: []string{"foo.service", "nothing.service"},
	},
	"unmask": {
		tree: unitTree{
			"/usr/lib/systemd/system/foo.service": "[Install]\nWantedBy=multi-user.target\n",
			"/etc/systemd/system/empty.service":   "",
			"/run/systemd/system/rt.service":      "-> /dev/null",
			"/usr/lib/systemd/system/rt.service":  "[Install]\nWantedBy=multi-user.target\n",
		},
		steps: []step{
			{verb: "mask", unit: "foo.service"},
			{verb: "unmask", unit: "foo.service"},
			{verb: "unmask", unit: "foo.service"},
			{verb: "unmask", unit: "empty.service"},
			{verb: "mask", unit: "rt.service"},
			{verb: "unmask", unit: "rt.service"},
		},
		check: []string{"foo.service", "empty.service", "rt.service"},
	},
	"static": {
		tree: unitTree{
			"/usr/lib/systemd/system/foo.service": "[Service]\nExecStart=/bin/true\n",
			"/usr/lib/systemd/system/up.service":  "[Install]\nUpheldBy=multi-user.target\n",
		},
		steps: []step{{verb: "enable", unit: "foo.service"}, {verb: "enable", unit: "up.service"}, {verb: "disable", unit: "foo.service"}},
		check: []string{"foo.service", "up.service", "nope.service"},
	},
	"drop_in_adds_wanted_by": {
		tree: unitTree{
			"/usr/lib/systemd/system/foo.service":                 "[Service]\nExecStart=/bin/true\n",
			"/etc/systemd/system/foo.service.d/10-install.conf":   "[Install]\nWantedBy=multi-user.target\n",
			"/run/systemd/system/foo.service.d/20-alias.conf":     "[Install]\nAlias=bar.service\n",
			"/usr/lib/systemd/system/foo.service.d/05-empty.conf": "",
		},
		steps: []step{{verb: "enable", unit: "foo.service"}},
		check: []string{"foo.service", "bar.service"},
	},
	"disable_removes_only_our_links": {
		tree: unitTree{
			"/usr/lib/systemd/system/foo.service":                          "[Install]\nWantedBy=multi-user.target\nAlias=foo-alias.service\n",
			"/usr/lib/systemd/system/bar.service":                          "[Install]\nWantedBy=multi-user.target\nRequiredBy=foo.service\n",
			"/etc/systemd/system/multi-user.target.wants/handmade.service": "-> /usr/lib/systemd/system/foo.service",
			"/etc/systemd/system/other.target.wants/notaunit":              "-> /usr/lib/systemd/system/foo.service",
			"/etc/systemd/system/other.target.wants/gone.service":          "-> /usr/lib/systemd/system/gone.service",
			"/run/systemd/system/rt.target.wants/foo.service":              "-> /usr/lib/systemd/system/foo.service",
		},
		steps: []step{
			{verb: "enable", unit: "foo.service"},
			{verb: "enable", unit: "bar.service"},
			{verb: "disable", unit: "foo.service"},
			{verb: "disable", unit: "foo.service"},
		},
		check: []string{"foo.service", "bar.service", "foo-alias.service"},
	},
	"disable_unit_without_file": {
		tree: unitTree{
			"/etc/systemd/system/multi-user.target.wants/nope.service": "-> /etc/systemd/system/nope.service",
			"/etc/systemd/system/multi-user.target.wants/keep.service": "-> /etc/systemd/system/keep.service",
		},
		steps: []step{{verb: "disable", unit: "nope.service"}},
		check: []string{"nope.service"},
	},
	"reenable_idempotent": {
		tree: unitTree{"/usr/lib/systemd/system/foo.service": "[Install]\nWantedBy=multi-user.target\n"},
		steps: []step{
			{verb: "enable", unit: "foo.service"},
			{verb: "enable", unit: "foo.service"},
			{verb: "disable", unit: "foo.service"},
			{verb: "enable", unit: "foo.service"},
		},
		check: []string{"foo.service"},
	},
	"replaces_foreign_wants_link": {
		tree: unitTree{
			"/usr/lib/systemd/system/foo.service":            "[Install]\nWantedBy=x.target\n",
			"/etc/systemd/system/x.target.wants/foo.service": "-> /opt/other.service",
		},
		steps: []step{{verb: "enable", unit: "foo.service"}},
		check: []string{"foo.service"},
	},
	"linked_unit_file": {
		tree: unitTree{
			"/opt/foo.service":                "[Install]\nWantedBy=multi-user.target\n",
			"/etc/systemd/system/foo.service": "-> /opt/foo.service",
			"/opt/rel.service":                "[Install]\nWantedBy=multi-user.target\n",
			"/etc/systemd/system/rel.service": "-> ../../../opt/rel.service",
		},
		steps: []step{
			{verb: "enable", unit: "foo.service"},
			{verb: "enable", unit: "rel.service"},
			{verb: "disable", unit: "foo.service"},
		},
		check: []string{"foo.service", "rel.service"},
	},
	"merged_usr": {
		tree: unitTree{
			"/lib":                                "-> usr/lib",
			"/usr/lib/systemd/system/foo.service": "[Install]\nWantedBy=multi-user.target\n",
			"/usr/lib/systemd/system/bar.service": "-> foo.service",
		},
		steps: []step{{verb: "enable", unit: "foo.service"}},
		check: []string{"foo.service", "bar.service"},
	},
	"vendor_alias_name": {
		tree: unitTree{
			"/usr/lib/systemd/system/foo.service": "[Install]\nWantedBy=multi-user.target\n",
			"/usr/lib/systemd/system/bar.service": "-> foo.service",
			"/etc/systemd/system/conf.service":    "-> /usr/lib/systemd/system/foo.service",
		},
		steps: []step{
			{verb: "enable", unit: "bar.service"},
			{verb: "enable", unit: "conf.service", wantErr: "refuses to operate on it"},
		},
		check: []string{"foo.service", "bar.service", "conf.service"},
	},
	"runtime_and_generated": {
		tree: unitTree{
			"/usr/lib/systemd/system/foo.service":            "[Install]\nWantedBy=x.target\n",
			"/run/systemd/system/x.target.wants/foo.service": "-> /usr/lib/systemd/system/foo.service",
			"/run/systemd/generator/gen.service":             "[Install]\nWantedBy=x.target\n",
			"/run/systemd/transient/tr.service":              "[Install]\nWantedBy=x.target\n",
			"/usr/local/lib/systemd/system/local.service":    "[Install]\nWantedBy=x.target\n",
			"/etc/systemd/system/self.service":               "-> /usr/lib/systemd/system/self.service",
			"/usr/lib/systemd/system/self.service":           "[Install]\nWantedBy=x.target\n",
		},
		steps: []step{
			{verb: "disable", unit: "foo.service"},
			{verb: "enable", unit: "gen.service", wantErr: "generated or transient"},
			{verb: "enable", unit: "local.service"},
			{verb: "enable", unit: "self.service", wantErr: "a unit of the same name"},
		},
		check: []string{"foo.service", "gen.service", "tr.service", "local.service", "self.service"},
	},
}

func TestOfflineMatchesSystemctl(t *testing.T) {
	t.Parallel()
	needSystemctl(t)
	for name, tc := range crossCheckTests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ours, theirs, dry := t.TempDir(), t.TempDir(), t.TempDir()
			for _, dir := range []string{ours, theirs, dry} {
				buildTree(t, dir, tc.tree)
			}
			r := openReal(t, ours)
			d := NewDry(openReal(t, dry))
			dryBefore := roottest.State(t, dry)
			for _, s := range tc.steps {
				out, errOut := systemctl(t, theirs, s.verb, s.unit)
				t.Logf("systemctl %s %s: %s%s", s.verb, s.unit, out, errOut)
				for _, h := range []Host{r, d} {
					err := offlineOp(t, h, h.Systemd().(*Offline), s)
					switch {
					case s.wantErr == "" && err != nil:
						t.Errorf("%s %s: %v", s.verb, s.unit, err)
					case s.wantErr != "" && (err == nil || !strings.Contains(err.Error(), s.wantErr)):
						t.Errorf("%s %s: got %v, want an error with %q", s.verb, s.unit, err, s.wantErr)
					}
				}
			}
			want := listTree(t, theirs)
			if got := listTree(t, ours); !maps.Equal(got, want) {
				t.Errorf("real tree differs from systemctl's:\n%s", diffTrees(want, got))
			}
			if got := listHost(t, d); !maps.Equal(got, want) {
				t.Errorf("dry tree differs from systemctl's:\n%s", diffTrees(want, got))
			}
			if roottest.State(t, dry) != dryBefore {
				t.Errorf("the dry host changed the disk")
			}
			for _, unit := range tc.check {
				want := systemctlState(t, theirs, unit)
				for kind, h := range map[string]Host{"real": r, "dry": d} {
					got, err := h.Systemd().UnitFileState(t.Context(), unit)
					if err != nil {
						got = "error"
						t.Logf("%s: is-enabled %s: %v", kind, unit, err)
					}
					if got != want {
						t.Errorf("%s: is-enabled %s: got %q, systemctl says %q", kind, unit, got, want)
					}
				}
			}
		})
	}
}

// diffTrees lists the paths whose entries differ, "-" systemctl's, "+"
// ours.
func diffTrees(want, got map[string]string) string {
	var b strings.Builder
	names := slices.Sorted(maps.Keys(want))
	for n := range got {
		if _, ok := want[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		w, wok := want[n]
		g, gok := got[n]
		if wok && gok && w == g {
			continue
		}
		if wok {
			fmt.Fprintf(&b, "-%s %s\n", n, w)
		}
		if gok {
			fmt.Fprintf(&b, "+%s %s\n", n, g)
		}
	}
	return b.String()
}

// TestOfflineOverDryEnablesPlannedUnit is check on a fresh machine: the
// unit file exists only in the dry host, yet enabling it works, and
// nothing reaches the disk.
func TestOfflineOverDryEnablesPlannedUnit(t *testing.T) {
	t.Parallel()
	for _, fresh := range []bool{false, true} {
		t.Run(fmt.Sprintf("missing_root_%v", fresh), func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			dir := base
			if fresh {
				dir = filepath.Join(base, "root") // check before the first run: no root yet
			}
			r, err := OpenReal(dir, false)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			testEnablePlannedUnit(t, NewDry(r), base)
		})
	}
}

func testEnablePlannedUnit(t *testing.T, d *Dry, dir string) {
	ctx := t.Context()
	before := roottest.State(t, dir)
	unit := "[Unit]\nDescription=kubelet\n[Service]\nExecStart=/usr/bin/kubelet\n[Install]\nWantedBy=multi-user.target\n"
	if err := d.WriteFile(ctx, "/etc/systemd/system/kubelet.service", []byte(unit), 0o644, -1, -1); err != nil {
		t.Fatal(err)
	}
	sd := d.Systemd()
	if sd.Live() {
		t.Fatal("Systemd of a dry host over an offline root is live")
	}
	if sd != d.Systemd() {
		t.Error("Systemd built twice")
	}
	if state, err := sd.UnitFileState(ctx, "kubelet.service"); err != nil || state != "disabled" {
		t.Errorf("before enable: got %q, %v; want disabled", state, err)
	}
	want := []Link{{Name: "/etc/systemd/system/multi-user.target.wants/kubelet.service", Target: "/etc/systemd/system/kubelet.service"}}
	got, err := sd.EnableLinks(ctx, "kubelet.service")
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("EnableLinks: got %v, %v; want %v", got, err, want)
	}
	if err := sd.Enable(ctx, "kubelet.service"); err != nil {
		t.Fatal(err)
	}
	if target, err := d.Readlink(ctx, want[0].Name); err != nil || target != want[0].Target {
		t.Errorf("dry link: got %q, %v", target, err)
	}
	if fi, err := d.Lstat(ctx, "/etc/systemd/system/multi-user.target.wants"); err != nil || fi.Mode != fs.ModeDir|0o755 {
		t.Errorf(".wants directory: got %+v, %v; want a directory 0755", fi, err)
	}
	if state, err := sd.UnitFileState(ctx, "kubelet.service"); err != nil || state != "enabled" {
		t.Errorf("after enable: got %q, %v; want enabled", state, err)
	}
	if got, err := sd.EnableLinks(ctx, "kubelet.service"); err != nil || len(got) != 0 {
		t.Errorf("EnableLinks after enable: got %v, %v; want none", got, err)
	}
	if roottest.State(t, dir) != before {
		t.Errorf("the disk changed")
	}
	if entries := entries(t, dir); len(entries) != 0 {
		t.Errorf("root: got entries %v, want none", entries)
	}
}

// TestOfflineDropInLinkedToDevNull: a drop-in linked to /dev/null is
// skipped, as on a booted system. systemctl --root agrees only when the
// root has a /dev/null node; without one it fails with "unit foo.service
// does not exist", which Offline does not copy.
func TestOfflineDropInLinkedToDevNull(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	buildTree(t, dir, unitTree{
		"/usr/lib/systemd/system/foo.service":          "[Install]\nWantedBy=a.target\n",
		"/usr/lib/systemd/system/foo.service.d/b.conf": "[Install]\nWantedBy=b.target\n",
		"/etc/systemd/system/foo.service.d/b.conf":     "-> /dev/null",
	})
	o := NewOffline(openReal(t, dir))
	want := []Link{{Name: "/etc/systemd/system/a.target.wants/foo.service", Target: "/usr/lib/systemd/system/foo.service"}}
	if got, err := o.EnableLinks(t.Context(), "foo.service"); err != nil || !slices.Equal(got, want) {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
}

func TestInstallLinks(t *testing.T) {
	t.Parallel()
	const usr = "/usr/lib/systemd/system/"
	tests := map[string]struct {
		u       unitInfo
		want    []string // "name -> target", "!" before a forced one
		wantErr string
	}{
		"wanted_and_required_by": {
			u: unitInfo{name: "foo.service", path: usr + "foo.service", Install: unitfile.Install{
				WantedBy: []string{"a.target", "b.target"}, RequiredBy: []string{"c.service"}}},
			want: []string{
				"!/etc/systemd/system/a.target.wants/foo.service -> " + usr + "foo.service",
				"!/etc/systemd/system/b.target.wants/foo.service -> " + usr + "foo.service",
				"!/etc/systemd/system/c.service.requires/foo.service -> " + usr + "foo.service",
			},
		},
		"alias_first_and_self_alias_skipped": {
			u: unitInfo{name: "foo.service", path: "/etc/systemd/system/foo.service", Install: unitfile.Install{
				Aliases: []string{"foo.service", "bar.service"}, WantedBy: []string{"a.target"}}},
			want: []string{
				"/etc/systemd/system/bar.service -> /etc/systemd/system/foo.service",
				"!/etc/systemd/system/a.target.wants/foo.service -> /etc/systemd/system/foo.service",
			},
		},
		"linked_unit_file": {
			u: unitInfo{name: "foo.service", path: "/opt/foo.service", Install: unitfile.Install{WantedBy: []string{"a.target"}}},
			want: []string{
				"/etc/systemd/system/foo.service -> /opt/foo.service",
				"!/etc/systemd/system/a.target.wants/foo.service -> /opt/foo.service",
			},
		},
		"template_default_instance": {
			u: unitInfo{name: "foo@.service", path: usr + "foo@.service", Install: unitfile.Install{
				WantedBy: []string{"t-%i.target"}, Aliases: []string{"bar@.service"}, DefaultInstance: "d"}},
			want: []string{
				"/etc/systemd/system/bar@.service -> " + usr + "foo@.service",
				"!/etc/systemd/system/t-d.target.wants/foo@d.service -> " + usr + "foo@.service",
			},
		},
		"template_into_template": {
			u: unitInfo{name: "foo@.service", path: usr + "foo@.service", Install: unitfile.Install{
				WantedBy: []string{"bar@.target"}}},
			want: []string{"!/etc/systemd/system/bar@.target.wants/foo@.service -> " + usr + "foo@.service"},
		},
		"instance": {
			u: unitInfo{name: "foo@x.service", path: usr + "foo@.service", Install: unitfile.Install{
				WantedBy: []string{"%p-%i.target"}, Aliases: []string{"bar@.service"}}},
			want: []string{
				"/etc/systemd/system/bar@x.service -> " + usr + "foo@.service",
				"!/etc/systemd/system/foo-x.target.wants/foo@x.service -> " + usr + "foo@.service",
			},
		},
		"static": {
			u: unitInfo{name: "foo.service", path: usr + "foo.service", Install: unitfile.Install{Also: []string{"bar.service"}}},
		},
		"template_without_instance": {
			u:       unitInfo{name: "foo@.service", path: usr + "foo@.service", Install: unitfile.Install{WantedBy: []string{"multi-user.target"}}},
			wantErr: `WantedBy=multi-user.target: multi-user.target is not a template, so a template without DefaultInstance= cannot be linked into it (enable an instance such as "foo@name.service", or set DefaultInstance=)`,
		},
		"bad_target": {
			u:       unitInfo{name: "foo.service", path: usr + "foo.service", Install: unitfile.Install{RequiredBy: []string{"a b"}}},
			wantErr: `RequiredBy=a b: "a b" is not a valid unit name (fix /usr/lib/systemd/system/foo.service)`,
		},
		"bad_alias": {
			u:       unitInfo{name: "foo.service", path: usr + "foo.service", Install: unitfile.Install{Aliases: []string{"foo.timer"}}},
			wantErr: "cannot alias foo.service as foo.timer: foo.timer and foo.service have different types (fix Alias= in /usr/lib/systemd/system/foo.service)",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			links, err := installLinks(&tc.u)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Errorf("got %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range links {
				s := l.Name + " -> " + l.Target
				if l.force {
					s = "!" + s
				}
				got = append(got, s)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestOfflineErrors(t *testing.T) {
	t.Parallel()
	tree := unitTree{
		"/usr/lib/systemd/system/foo.service":   "[Install]\nWantedBy=multi-user.target\nAlias=bar.service\n",
		"/etc/systemd/system/bar.service":       "[Service]\n",
		"/usr/lib/systemd/system/sock.service":  "[Install]\nAlias=x.socket\n",
		"/usr/lib/systemd/system/host.service":  "[Install]\nWantedBy=%H.target\n",
		"/etc/systemd/system/file.service":      "[Service]\n",
		"/etc/systemd/system/link.service":      "-> /usr/lib/systemd/system/other.service",
		"/usr/lib/systemd/system/other.service": "[Service]\n",
		"/etc/systemd/system/dangling.service":  "-> /usr/lib/systemd/system/gone.service",
		"/usr/lib/systemd/system/req.service":   "[Install]\nRequiredBy=x.target\n",
		"/etc/systemd/system/x.target.requires": "f",
		"/usr/lib/systemd/system/up.service":    "[Install]\nWantedBy=up.target\n",
		"/etc/systemd/system/up.target.wants":   "-> ../../../../out",
		"/usr/lib/systemd/system/st.service":    "[Install]\nWantedBy=st.target\n",
		"/etc/systemd/system/st.target.wants":   "-> /var/lib/kplay",
		"/var/lib/kplay/":                       "",
	}
	tests := map[string]struct {
		op      func(ctx context.Context, o *Offline) error
		wantErr string
		wantIs  error
	}{
		"enable_no_unit_file": {
			op:      func(ctx context.Context, o *Offline) error { return o.Enable(ctx, "nope.service") },
			wantErr: "enable nope.service: no unit file nope.service in /etc/systemd/system.control, ",
			wantIs:  fs.ErrNotExist,
		},
		"enable_no_unit_file_names_search_path": {
			op:      func(ctx context.Context, o *Offline) error { return o.Enable(ctx, "nope@x.service") },
			wantErr: "/lib/systemd/system, /usr/lib/systemd/system, /run/systemd/generator.late (write the unit file first, or check the name)",
		},
		"enable_alias_taken": {
			op:      func(ctx context.Context, o *Offline) error { return o.Enable(ctx, "foo.service") },
			wantErr: "enable foo.service: /etc/systemd/system/bar.service already exists (Alias=bar.service needs it)",
		},
		"enable_alias_other_type": {
			op:      func(ctx context.Context, o *Offline) error { return o.Enable(ctx, "sock.service") },
			wantErr: "enable sock.service: cannot alias sock.service as x.socket",
		},
		"enable_machine_specifier": {
			op:      func(ctx context.Context, o *Offline) error { return o.Enable(ctx, "host.service") },
			wantErr: "enable host.service: WantedBy=%H.target: specifier not supported offline: %H",
			wantIs:  unitfile.ErrSpecifier,
		},
		"enable_requires_path_is_a_file": {
			op:      func(ctx context.Context, o *Offline) error { return o.Enable(ctx, "req.service") },
			wantErr: "enable req.service: ",
		},
		"enable_dangling_alias": {
			op:      func(ctx context.Context, o *Offline) error { return o.Enable(ctx, "dangling.service") },
			wantErr: "enable dangling.service: /etc/systemd/system/dangling.service links to gone.service, which has no unit file",
		},
		// systemctl --root 252 writes this link outside the root; kplay
		// refuses the ".." as for any path it writes (attack on issue 12).
		"enable_through_a_link_above_the_root": {
			op:      func(ctx context.Context, o *Offline) error { return o.Enable(ctx, "up.service") },
			wantErr: `enable up.service: resolve /etc/systemd/system/up.target.wants/up.service: path leaves the root`,
			wantIs:  ErrOutsideRoot,
		},
		// kplay's own state is never written, through any link (third
		// attack on issue 12).
		"enable_into_the_state_dir": {
			op:      func(ctx context.Context, o *Offline) error { return o.Enable(ctx, "st.service") },
			wantErr: `enable st.service: /etc/systemd/system/st.target.wants/st.service: a symlink in the root makes it /var/lib/kplay/st.service: /var/lib/kplay/st.service is kplay's own state`,
		},
		"enable_not_a_unit_name": {
			op:      func(ctx context.Context, o *Offline) error { return o.Enable(ctx, "kubelet") },
			wantErr: `enable "kubelet": not a unit name (write "kubelet.service")`,
		},
		"disable_bad_name": {
			op:      func(ctx context.Context, o *Offline) error { return o.Disable(ctx, "a/b.service") },
			wantErr: `disable "a/b.service": not a valid unit name`,
		},
		"mask_over_file": {
			op:      func(ctx context.Context, o *Offline) error { return o.Mask(ctx, "file.service") },
			wantErr: "mask file.service: /etc/systemd/system/file.service already exists (remove it first to mask the unit)",
		},
		"mask_over_link": {
			op: func(ctx context.Context, o *Offline) error { return o.Mask(ctx, "link.service") },
			wantErr: `mask link.service: /etc/systemd/system/link.service already exists and is a symlink to ` +
				`"/usr/lib/systemd/system/other.service" (remove it first to mask the unit)`,
		},
		"start": {
			op: func(ctx context.Context, o *Offline) error {
				return o.Job(ctx, "start", "kubelet.service", time.Minute)
			},
			wantErr: "start kubelet.service: not applicable to an offline root",
			wantIs:  ErrNotApplicable,
		},
		"daemon_reload": {
			op:      func(ctx context.Context, o *Offline) error { return o.DaemonReload(ctx) },
			wantErr: "daemon-reload: not applicable to an offline root",
			wantIs:  ErrNotApplicable,
		},
		"active_state": {
			op: func(ctx context.Context, o *Offline) error {
				_, err := o.ActiveState(ctx, "kubelet.service")
				return err
			},
			wantErr: "is-active kubelet.service: not applicable to an offline root",
			wantIs:  ErrNotApplicable,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			buildTree(t, dir, tree)
			if err := os.Remove(filepath.Join(dir, "etc/systemd/system/x.target.requires")); err != nil {
				t.Fatal(err)
			}
			roottest.WriteFile(t, filepath.Join(dir, "etc/systemd/system/x.target.requires"), "", 0o644)
			before := roottest.State(t, dir)
			err := tc.op(t.Context(), NewOffline(openReal(t, dir)))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %v, want an error with %q", err, tc.wantErr)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("got %v, want errors.Is %v", err, tc.wantIs)
			}
			if roottest.State(t, dir) != before {
				t.Errorf("the tree changed")
			}
		})
	}
}
