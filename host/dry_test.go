package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kplay-dev/kplay/host/roottest"
)

// dryTree makes a small root with a file, a setuid tool, a directory and
// a symlink, and returns it with a Dry host over it.
func dryTree(t *testing.T) (string, *Dry) {
	t.Helper()
	dir := t.TempDir()
	roottest.WriteFile(t, filepath.Join(dir, "etc/motd"), "real motd\n", 0o644)
	roottest.WriteFile(t, filepath.Join(dir, "bin/tool"), "#!/bin/sh\n", 0o755|fs.ModeSetuid)
	if err := os.Mkdir(filepath.Join(dir, "var"), 0o700); err != nil {
		t.Fatal(err)
	}
	roottest.Symlink(t, "motd", filepath.Join(dir, "etc/link"))
	return dir, NewDry(openReal(t, dir))
}

func TestDryNeverWritesBase(t *testing.T) {
	t.Parallel()
	dir, d := dryTree(t)
	ctx := t.Context()
	before := roottest.State(t, dir)
	uid, gid := os.Getuid(), os.Getgid()

	steps := []struct {
		what string
		err  error
	}{
		{"write new file", d.WriteFile(ctx, "/etc/flannel/options.env", []byte("FLANNELD_IFACE=10.0.0.10\n"), 0o600, uid, gid)},
		{"replace file", d.WriteFile(ctx, "/etc/motd", []byte("dry motd\n"), 0o640, uid, gid)},
		{"replace symlink", d.WriteFile(ctx, "/etc/link", []byte("now a file\n"), 0o644, -1, -1)},
		{"mkdir new", d.Mkdir(ctx, "/var/lib/kplay", 0o700, uid, gid)},
		{"mkdir existing", d.Mkdir(ctx, "/var", 0o755, uid, gid)},
		{"chmod base dir", d.Chmod(ctx, "/var", 0o755)},
		{"chmod base file", d.Chmod(ctx, "/bin/tool", 0o700)},
		{"chown base file", d.Chown(ctx, "/bin/tool", uid+1, gid+1)},
		{"chown new file", d.Chown(ctx, "/etc/flannel/options.env", uid+2, -1)},
	}
	for _, s := range steps {
		if s.err != nil {
			t.Errorf("%s: %v", s.what, s.err)
		}
	}
	if after := roottest.State(t, dir); after != before {
		t.Errorf("the real tree changed")
	}

	wantInfo := map[string]FileInfo{
		"/etc/flannel":             {Mode: fs.ModeDir | 0o755, UID: os.Geteuid(), GID: os.Getegid()},
		"/etc/flannel/options.env": {Mode: 0o600, UID: uid + 2, GID: gid, Size: 25, Links: 1},
		"/etc/motd":                {Mode: 0o640, UID: uid, GID: gid, Size: 9, Links: 1},
		"/etc/link":                {Mode: 0o644, UID: os.Geteuid(), GID: os.Getegid(), Size: 11, Links: 1},
		"/var/lib":                 {Mode: fs.ModeDir | 0o755, UID: os.Geteuid(), GID: os.Getegid()},
		"/var/lib/kplay":           {Mode: fs.ModeDir | 0o700, UID: uid, GID: gid},
		"/bin/tool":                {Mode: 0o700, UID: uid + 1, GID: gid + 1, Size: 10, Links: 1},
	}
	for name, want := range wantInfo {
		got, err := d.Lstat(ctx, name)
		if err != nil || got != want {
			t.Errorf("Lstat %s: got %+v, %v; want %+v", name, got, err, want)
		}
	}
	if got, err := d.Lstat(ctx, "/var"); err != nil || got.Mode != fs.ModeDir|0o755 {
		t.Errorf("Lstat /var: got %+v, %v; want mode %v", got, err, fs.ModeDir|0o755)
	}
	wantData := map[string]string{
		"/etc/flannel/options.env": "FLANNELD_IFACE=10.0.0.10\n",
		"/etc/motd":                "dry motd\n",
		"/etc/link":                "now a file\n",
		"/bin/tool":                "#!/bin/sh\n", // chmod and chown only: read from the base
	}
	for name, want := range wantData {
		got, err := d.ReadFile(ctx, name)
		if err != nil || string(got) != want {
			t.Errorf("ReadFile %s: got %q, %v; want %q", name, got, err, want)
		}
	}
}

func TestDryReadsBase(t *testing.T) {
	t.Parallel()
	dir, d := dryTree(t)
	ctx := t.Context()
	if got, err := d.ReadFile(ctx, "/etc/link"); err != nil || string(got) != "real motd\n" {
		t.Errorf("read through a symlink: got %q, %v", got, err)
	}
	if got, err := d.Lstat(ctx, "/etc/link"); err != nil || got.Mode&fs.ModeSymlink == 0 {
		t.Errorf("Lstat of a symlink: got %+v, %v", got, err)
	}
	if _, err := d.Lstat(ctx, "/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lstat of a missing file: got %v, want fs.ErrNotExist", err)
	}
	if d.Root() != dir {
		t.Errorf("Root: got %q, want %q", d.Root(), dir)
	}
	local := filepath.Join(t.TempDir(), "src")
	roottest.WriteFile(t, local, "src\n", 0o644)
	if got, err := d.ReadLocal(ctx, local); err != nil || string(got) != "src\n" {
		t.Errorf("ReadLocal: got %q, %v", got, err)
	}
}

func TestDryReturnsCopies(t *testing.T) {
	t.Parallel()
	_, d := dryTree(t)
	ctx := t.Context()
	data := []byte("abc")
	if err := d.WriteFile(ctx, "/f", data, 0o644, -1, -1); err != nil {
		t.Fatal(err)
	}
	data[0] = 'X'
	got, err := d.ReadFile(ctx, "/f")
	if err != nil || string(got) != "abc" {
		t.Fatalf("got %q, %v; want %q", got, err, "abc")
	}
	got[0] = 'Y'
	if again, _ := d.ReadFile(ctx, "/f"); string(again) != "abc" {
		t.Errorf("got %q, want %q", again, "abc")
	}
}

func TestDryChownClearsSetuidAsRealDoes(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		mode fs.FileMode
		dir  bool
	}{
		"setuid_exec":       {mode: 0o755 | fs.ModeSetuid},
		"setuid_setgid":     {mode: 0o755 | fs.ModeSetuid | fs.ModeSetgid},
		"setuid_not_exec":   {mode: 0o644 | fs.ModeSetuid},
		"setgid_no_group_x": {mode: 0o745 | fs.ModeSetgid},
		"setgid_dir":        {mode: 0o755 | fs.ModeSetgid, dir: true},
		"sticky_file":       {mode: 0o755 | fs.ModeSticky},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			r := openReal(t, dir)
			ctx := t.Context()
			d := NewDry(r)
			if tc.dir {
				err := r.Mkdir(ctx, "/x", tc.mode, -1, -1)
				if err != nil {
					t.Fatal(err)
				}
			} else if err := r.WriteFile(ctx, "/x", nil, tc.mode, -1, -1); err != nil {
				t.Fatal(err)
			}
			if err := d.Chown(ctx, "/x", os.Getuid(), os.Getgid()); err != nil {
				t.Fatal(err)
			}
			if err := r.Chown(ctx, "/x", os.Getuid(), os.Getgid()); err != nil {
				t.Fatal(err)
			}
			real, err := r.Lstat(ctx, "/x")
			if err != nil {
				t.Fatal(err)
			}
			dry, err := d.Lstat(ctx, "/x")
			if err != nil {
				t.Fatal(err)
			}
			if dry != real {
				t.Errorf("dry %+v, real %+v", dry, real)
			}
		})
	}
}

// TestDryFailsAsRealDoes runs the same operation on a Real and on a Dry
// over an identical tree and expects the same error.
func TestDryFailsAsRealDoes(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		setup   func(ctx context.Context, h Host) error // run on both before op, through the host
		op      func(ctx context.Context, h Host) error
		wantIs  error
		wantErr string // %s is the root
	}{
		"write_under_base_file": {
			op:      func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/etc/motd/x", nil, 0o644, -1, -1) },
			wantIs:  syscall.ENOTDIR,
			wantErr: "write /etc/motd/x: not a directory",
		},
		"write_under_written_file": {
			setup:   func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/new", nil, 0o644, -1, -1) },
			op:      func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/new/x/y", nil, 0o644, -1, -1) },
			wantIs:  syscall.ENOTDIR,
			wantErr: "write /new/x/y: not a directory",
		},
		"mkdir_under_written_file": {
			setup:   func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/new", nil, 0o644, -1, -1) },
			op:      func(ctx context.Context, h Host) error { return h.Mkdir(ctx, "/new/d", 0o755, -1, -1) },
			wantIs:  syscall.ENOTDIR,
			wantErr: "mkdir /new/d: not a directory",
		},
		"read_under_written_file": {
			setup: func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/new", nil, 0o644, -1, -1) },
			op: func(ctx context.Context, h Host) error {
				_, err := h.ReadFile(ctx, "/new/x")
				return err
			},
			wantIs:  syscall.ENOTDIR,
			wantErr: "read /new/x: not a directory",
		},
		"write_onto_dir": {
			op:      func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/var", nil, 0o644, -1, -1) },
			wantIs:  syscall.EISDIR,
			wantErr: "write /var: is a directory",
		},
		"write_onto_made_dir": {
			setup:   func(ctx context.Context, h Host) error { return h.Mkdir(ctx, "/d", 0o755, -1, -1) },
			op:      func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/d", nil, 0o644, -1, -1) },
			wantIs:  syscall.EISDIR,
			wantErr: "write /d: is a directory",
		},
		"read_made_dir": {
			setup: func(ctx context.Context, h Host) error { return h.Mkdir(ctx, "/d", 0o755, -1, -1) },
			op: func(ctx context.Context, h Host) error {
				_, err := h.ReadFile(ctx, "/d")
				return err
			},
			wantIs:  syscall.EISDIR,
			wantErr: "read /d: is a directory",
		},
		"mkdir_onto_file": {
			op:      func(ctx context.Context, h Host) error { return h.Mkdir(ctx, "/etc/motd", 0o755, -1, -1) },
			wantIs:  syscall.ENOTDIR,
			wantErr: "mkdir /etc/motd: not a directory",
		},
		"chmod_missing": {
			op:      func(ctx context.Context, h Host) error { return h.Chmod(ctx, "/nope", 0o644) },
			wantIs:  fs.ErrNotExist,
			wantErr: "chmod /nope: no such file or directory",
		},
		"chown_missing": {
			op:      func(ctx context.Context, h Host) error { return h.Chown(ctx, "/nope", -1, -1) },
			wantIs:  fs.ErrNotExist,
			wantErr: "chown /nope: no such file or directory",
		},
		"chmod_symlink": {
			op:      func(ctx context.Context, h Host) error { return h.Chmod(ctx, "/etc/link", 0o600) },
			wantErr: "chmod /etc/link: is a symlink (kplay does not follow it; name its target instead)",
		},
		"read_missing": {
			op: func(ctx context.Context, h Host) error {
				_, err := h.ReadFile(ctx, "/nope")
				return err
			},
			wantIs:  fs.ErrNotExist,
			wantErr: "read /nope: no such file or directory",
		},
		"write_relative_name": {
			op:      func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "etc/x", nil, 0o644, -1, -1) },
			wantIs:  ErrOutsideRoot,
			wantErr: `write "etc/x": name must be absolute inside the root (write "/etc/x")`,
		},
		"mkdir_dot_dot": {
			op:      func(ctx context.Context, h Host) error { return h.Mkdir(ctx, "/a/../../x", 0o755, -1, -1) },
			wantIs:  ErrOutsideRoot,
			wantErr: `mkdir "/a/../../x": path leaves the root %s (".." is not allowed in a name)`,
		},
		"write_through_absolute_symlink": {
			op:      func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/abs/x", nil, 0o644, -1, -1) },
			wantIs:  ErrOutsideRoot,
			wantErr: `write /abs/x: path leaves the root %s (a symlink or ".." points outside it)`,
		},
		"mkdir_through_relative_chain": {
			op:      func(ctx context.Context, h Host) error { return h.Mkdir(ctx, "/chain/a/b", 0o755, -1, -1) },
			wantIs:  ErrOutsideRoot,
			wantErr: `mkdir /chain/a/b: path leaves the root %s (a symlink or ".." points outside it)`,
		},
		"chmod_through_relative_chain": {
			op:      func(ctx context.Context, h Host) error { return h.Chmod(ctx, "/chain/secret", 0o777) },
			wantIs:  ErrOutsideRoot,
			wantErr: `chmod /chain/secret: path leaves the root %s (a symlink or ".." points outside it)`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, kind := range []string{"real", "dry"} {
				base := t.TempDir()
				dir, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
				roottest.WriteFile(t, filepath.Join(dir, "etc/motd"), "motd\n", 0o644)
				roottest.Symlink(t, "motd", filepath.Join(dir, "etc/link"))
				if err := os.Mkdir(filepath.Join(dir, "var"), 0o755); err != nil {
					t.Fatal(err)
				}
				roottest.WriteFile(t, filepath.Join(outside, "secret"), "secret\n", 0o600)
				roottest.Symlink(t, outside, filepath.Join(dir, "abs"))
				roottest.Symlink(t, "sub/up", filepath.Join(dir, "chain"))
				if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
					t.Fatal(err)
				}
				roottest.Symlink(t, "../../outside", filepath.Join(dir, "sub/up"))
				var h Host = openReal(t, dir)
				if kind == "dry" {
					h = NewDry(h)
				}
				before := roottest.State(t, base)
				if tc.setup != nil {
					if err := tc.setup(t.Context(), h); err != nil {
						t.Fatalf("%s: setup: %v", kind, err)
					}
					before = roottest.State(t, base)
				}
				err := tc.op(t.Context(), h)
				want := tc.wantErr
				if strings.Contains(want, "%s") {
					want = fmt.Sprintf(want, dir)
				}
				if err == nil || err.Error() != want {
					t.Errorf("%s: got %v, want %q", kind, err, want)
				}
				if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
					t.Errorf("%s: got %v, want errors.Is %v", kind, err, tc.wantIs)
				}
				if after := roottest.State(t, base); after != before {
					t.Errorf("%s: the tree changed", kind)
				}
			}
		})
	}
}

func TestDryOverMissingRoot(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "fresh")
	r, err := OpenReal(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d := NewDry(r)
	ctx := t.Context()
	if _, err := d.Lstat(ctx, "/etc/motd"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lstat before any write: got %v, want fs.ErrNotExist", err)
	}
	if err := d.WriteFile(ctx, "/etc/motd", []byte("hi\n"), 0o644, -1, -1); err != nil {
		t.Fatal(err)
	}
	if got, err := d.ReadFile(ctx, "/etc/motd"); err != nil || string(got) != "hi\n" {
		t.Errorf("got %q, %v", got, err)
	}
	for _, name := range []string{"/", "/etc"} {
		if fi, err := d.Lstat(ctx, name); err != nil || fi.Mode != fs.ModeDir|0o755 {
			t.Errorf("Lstat %s: got %+v, %v; want a directory 0755", name, fi, err)
		}
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("root: got %v, want it still missing", err)
	}
}
