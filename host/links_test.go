package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kplay-dev/kplay/host/roottest"
)

// linkTree makes a root for the Readlink, Symlink, Remove and ReadDir
// tests:
//
//	/etc/motd                      "motd\n"
//	/etc/link -> motd
//	/etc/null -> /dev/null
//	/etc/empty/                    (directory)
//	/etc/full/a, /etc/full/b
//	/usr/lib/systemd/system/foo.service
//	/lib -> usr/lib
func linkTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	buildTree(t, dir, unitTree{
		"/etc/motd":                           "motd\n",
		"/etc/link":                           "-> motd",
		"/etc/null":                           "-> /dev/null",
		"/etc/empty/":                         "",
		"/etc/full/a":                         "a",
		"/etc/full/b":                         "b",
		"/usr/lib/systemd/system/foo.service": "[Service]\n",
		"/lib":                                "-> usr/lib",
	})
	return dir
}

// bothHosts returns a Real and a Dry, each over its own copy of linkTree,
// and the directories they hold.
func bothHosts(t *testing.T) map[string]struct {
	h   Host
	dir string
} {
	t.Helper()
	realDir, dryDir := linkTree(t), linkTree(t)
	return map[string]struct {
		h   Host
		dir string
	}{
		"real": {openReal(t, realDir), realDir},
		"dry":  {NewDry(openReal(t, dryDir)), dryDir},
	}
}

func TestSymlinkAndReadlink(t *testing.T) {
	t.Parallel()
	for kind, hd := range bothHosts(t) {
		h, ctx := hd.h, t.Context()
		// Absolute targets are stored, never followed: /dev/null and a
		// unit path that only makes sense inside the root.
		links := map[string]string{
			"/etc/systemd/system/foo.service":                             "/dev/null",
			"/etc/systemd/system/multi-user.target.wants/kubelet.service": "/etc/systemd/system/kubelet.service",
			"/etc/rel": "../usr/lib/systemd/system/foo.service",
		}
		for name, target := range links {
			if err := h.Symlink(ctx, target, name); err != nil {
				t.Fatalf("%s: symlink %s: %v", kind, name, err)
			}
		}
		for name, target := range links {
			got, err := h.Readlink(ctx, name)
			if err != nil || got != target {
				t.Errorf("%s: readlink %s: got %q, %v; want %q", kind, name, got, err, target)
			}
			fi, err := h.Lstat(ctx, name)
			if err != nil || fi.Mode&fs.ModeSymlink == 0 || fi.Size != int64(len(target)) {
				t.Errorf("%s: lstat %s: got %+v, %v; want a symlink of size %d", kind, name, fi, err, len(target))
			}
		}
		for _, dir := range []string{"/etc/systemd", "/etc/systemd/system", "/etc/systemd/system/multi-user.target.wants"} {
			if fi, err := h.Lstat(ctx, dir); err != nil || fi.Mode != fs.ModeDir|0o755 {
				t.Errorf("%s: parent %s: got %+v, %v; want a directory 0755", kind, dir, fi, err)
			}
		}
		if got, err := h.ReadFile(ctx, "/etc/rel"); err != nil || string(got) != "[Service]\n" {
			t.Errorf("%s: read through a relative symlink: got %q, %v", kind, got, err)
		}
		if got, err := h.Readlink(ctx, "/etc/null"); err != nil || got != "/dev/null" {
			t.Errorf("%s: readlink of a base symlink: got %q, %v", kind, got, err)
		}
		if kind == "dry" {
			if after := listTree(t, hd.dir); after["/etc/systemd"] != "" || after["/etc/rel"] != "" {
				t.Errorf("dry: the disk changed: %v", after)
			}
		} else if got, err := os.Readlink(filepath.Join(hd.dir, "etc/systemd/system/foo.service")); err != nil || got != "/dev/null" {
			t.Errorf("real: on disk: got %q, %v", got, err)
		}
	}
}

// TestLinkOpsFailAsRealDoes runs each failing operation on a Real and a
// Dry over the same tree and expects the same error, and no change.
func TestLinkOpsFailAsRealDoes(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		op      func(ctx context.Context, h Host) error
		wantIs  error
		wantErr string // %s is the root
	}{
		"symlink_over_file": {
			op:      func(ctx context.Context, h Host) error { return h.Symlink(ctx, "/dev/null", "/etc/motd") },
			wantIs:  fs.ErrExist,
			wantErr: "symlink /etc/motd: file exists",
		},
		"symlink_over_symlink": {
			op:      func(ctx context.Context, h Host) error { return h.Symlink(ctx, "motd", "/etc/link") },
			wantIs:  fs.ErrExist,
			wantErr: "symlink /etc/link: file exists",
		},
		"symlink_under_file": {
			op:      func(ctx context.Context, h Host) error { return h.Symlink(ctx, "x", "/etc/motd/x") },
			wantIs:  syscall.ENOTDIR,
			wantErr: "symlink /etc/motd/x: not a directory",
		},
		"symlink_relative_name": {
			op:      func(ctx context.Context, h Host) error { return h.Symlink(ctx, "x", "etc/x") },
			wantIs:  ErrOutsideRoot,
			wantErr: `symlink "etc/x": name must be absolute inside the root (write "/etc/x")`,
		},
		"readlink_file": {
			op: func(ctx context.Context, h Host) error {
				_, err := h.Readlink(ctx, "/etc/motd")
				return err
			},
			wantIs:  syscall.EINVAL,
			wantErr: "readlink /etc/motd: invalid argument",
		},
		"readlink_missing": {
			op: func(ctx context.Context, h Host) error {
				_, err := h.Readlink(ctx, "/etc/nope")
				return err
			},
			wantIs:  fs.ErrNotExist,
			wantErr: "readlink /etc/nope: no such file or directory",
		},
		"remove_missing": {
			op:      func(ctx context.Context, h Host) error { return h.Remove(ctx, "/etc/nope") },
			wantIs:  fs.ErrNotExist,
			wantErr: "remove /etc/nope: no such file or directory",
		},
		"remove_full_directory": {
			op:      func(ctx context.Context, h Host) error { return h.Remove(ctx, "/etc/full") },
			wantIs:  syscall.ENOTEMPTY,
			wantErr: "remove /etc/full: directory not empty",
		},
		"remove_root": {
			op:      func(ctx context.Context, h Host) error { return h.Remove(ctx, "/") },
			wantIs:  syscall.EBUSY,
			wantErr: "remove /: device or resource busy",
		},
		"remove_dot_dot": {
			op:      func(ctx context.Context, h Host) error { return h.Remove(ctx, "/etc/../x") },
			wantIs:  ErrOutsideRoot,
			wantErr: `remove "/etc/../x": path leaves the root %s (".." is not allowed in a name)`,
		},
		"readdir_file": {
			op: func(ctx context.Context, h Host) error {
				_, err := h.ReadDir(ctx, "/etc/motd")
				return err
			},
			wantIs:  syscall.ENOTDIR,
			wantErr: "readdir /etc/motd: not a directory",
		},
		"readdir_missing": {
			op: func(ctx context.Context, h Host) error {
				_, err := h.ReadDir(ctx, "/nope")
				return err
			},
			wantIs:  fs.ErrNotExist,
			wantErr: "readdir /nope: no such file or directory",
		},
		// An absolute target is a path in the root, as chroot(2) sees
		// it: ROOT/dev/null is missing.
		"readdir_through_absolute_symlink": {
			op: func(ctx context.Context, h Host) error {
				_, err := h.ReadDir(ctx, "/etc/null")
				return err
			},
			wantIs:  fs.ErrNotExist,
			wantErr: `readdir /etc/null: no such file or directory`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for kind, hd := range bothHosts(t) {
				before := roottest.State(t, hd.dir)
				err := tc.op(t.Context(), hd.h)
				want := tc.wantErr
				if strings.Contains(want, "%s") {
					want = fmt.Sprintf(want, hd.dir)
				}
				if err == nil || err.Error() != want || !errors.Is(err, tc.wantIs) {
					t.Errorf("%s: got %v, want %q wrapping %v", kind, err, want, tc.wantIs)
				}
				if roottest.State(t, hd.dir) != before {
					t.Errorf("%s: the tree changed", kind)
				}
			}
		})
	}
}

func TestRemove(t *testing.T) {
	t.Parallel()
	for kind, hd := range bothHosts(t) {
		h, ctx := hd.h, t.Context()
		for _, name := range []string{"/etc/link", "/etc/full/a", "/etc/empty", "/etc/null"} {
			if err := h.Remove(ctx, name); err != nil {
				t.Fatalf("%s: remove %s: %v", kind, name, err)
			}
			if _, err := h.Lstat(ctx, name); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: lstat %s after remove: got %v, want fs.ErrNotExist", kind, name, err)
			}
		}
		if _, err := h.ReadFile(ctx, "/etc/full/a"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: read a removed file: got %v, want fs.ErrNotExist", kind, err)
		}
		if _, err := h.Readlink(ctx, "/etc/link"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: readlink a removed symlink: got %v, want fs.ErrNotExist", kind, err)
		}
		if got, err := h.ReadFile(ctx, "/etc/motd"); err != nil || string(got) != "motd\n" {
			t.Errorf("%s: the removed symlink's target: got %q, %v", kind, got, err)
		}
		// The directory is empty now: it goes, and a write makes it anew.
		if err := h.Remove(ctx, "/etc/full/b"); err != nil {
			t.Fatal(err)
		}
		if err := h.Remove(ctx, "/etc/full"); err != nil {
			t.Fatalf("%s: remove the emptied directory: %v", kind, err)
		}
		if err := h.WriteFile(ctx, "/etc/full/c", []byte("c"), 0o644, -1, -1); err != nil {
			t.Fatal(err)
		}
		if got, err := h.ReadDir(ctx, "/etc/full"); err != nil || strings.Join(got, " ") != "c" {
			t.Errorf("%s: readdir of the new directory: got %v, %v; want [c]", kind, got, err)
		}
		// A symlink can replace what was removed.
		if err := h.Symlink(ctx, "/dev/null", "/etc/full/a"); err != nil {
			t.Errorf("%s: symlink over a removed file: %v", kind, err)
		}
	}
}

func TestReadDir(t *testing.T) {
	t.Parallel()
	for kind, hd := range bothHosts(t) {
		h, ctx := hd.h, t.Context()
		steps := []error{
			h.WriteFile(ctx, "/etc/zz", nil, 0o644, -1, -1),
			h.Symlink(ctx, "/dev/null", "/etc/aa"),
			h.Mkdir(ctx, "/etc/mm", 0o755, -1, -1),
			h.Remove(ctx, "/etc/link"),
			h.WriteFile(ctx, "/etc/motd", []byte("new"), 0o644, -1, -1),
		}
		for i, err := range steps {
			if err != nil {
				t.Fatalf("%s: step %d: %v", kind, i, err)
			}
		}
		tests := map[string]string{
			"/":                        "etc lib usr",
			"/etc":                     "aa empty full mm motd null zz",
			"/etc/empty":               "",
			"/etc/mm":                  "",
			"/lib/systemd/system":      "foo.service", // a relative symlink on the way is followed
			"/usr/lib/systemd/system/": "",
		}
		for dir, want := range tests {
			if dir == "/usr/lib/systemd/system/" {
				continue // not clean: covered by the name tests
			}
			got, err := h.ReadDir(ctx, dir)
			if err != nil || strings.Join(got, " ") != want {
				t.Errorf("%s: readdir %s: got %q, %v; want %q", kind, dir, got, err, want)
			}
		}
	}
}

func TestDryLinkOpsNeverWriteBase(t *testing.T) {
	t.Parallel()
	dir := linkTree(t)
	d := NewDry(openReal(t, dir))
	ctx := t.Context()
	before := roottest.State(t, dir)
	steps := []struct {
		what string
		err  error
	}{
		{"symlink new", d.Symlink(ctx, "/dev/null", "/etc/systemd/system/foo.service")},
		{"remove base symlink", d.Remove(ctx, "/etc/link")},
		{"remove base file", d.Remove(ctx, "/etc/full/a")},
		{"remove base dir", d.Remove(ctx, "/etc/empty")},
		{"symlink where a base file was", d.Symlink(ctx, "b", "/etc/full/a")},
		{"remove dry symlink", d.Remove(ctx, "/etc/systemd/system/foo.service")},
		{"remove dry dir", d.Remove(ctx, "/etc/systemd/system")},
	}
	for _, s := range steps {
		if s.err != nil {
			t.Errorf("%s: %v", s.what, s.err)
		}
	}
	if roottest.State(t, dir) != before {
		t.Errorf("the real tree changed")
	}
	want := map[string]string{
		"/etc":                                "d",
		"/etc/motd":                           "f",
		"/etc/null":                           "-> /dev/null",
		"/etc/full":                           "d",
		"/etc/full/a":                         "-> b",
		"/etc/full/b":                         "f",
		"/etc/systemd":                        "d",
		"/lib":                                "-> usr/lib",
		"/usr":                                "d",
		"/usr/lib":                            "d",
		"/usr/lib/systemd":                    "d",
		"/usr/lib/systemd/system":             "d",
		"/usr/lib/systemd/system/foo.service": "f",
	}
	if got := listHost(t, d); !maps.Equal(got, want) {
		t.Errorf("dry tree:\n%s", diffTrees(want, got))
	}
	if got, err := d.ReadFile(ctx, "/etc/full/a"); err != nil || string(got) != "b" {
		t.Errorf("read through a dry symlink: got %q, %v", got, err)
	}
}
