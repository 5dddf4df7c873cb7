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
// over identical trees and expects both to fail with the same error, or
// both to succeed, and to leave trees that read the same through either
// host. The expected values are what the Real host (os.Root, the kernel)
// says. A failing operation leaves the real tree as it was unless the
// case says it makes parents first, as Real does.
func TestDryFailsAsRealDoes(t *testing.T) {
	t.Parallel()
	a240, a255, b255, a256 := strings.Repeat("a", 240), strings.Repeat("a", 255), strings.Repeat("b", 255), strings.Repeat("a", 256)
	euro := strings.Repeat("€", 85)                         // 255 bytes, 3 to a character
	smile := strings.Repeat("😀", 63) + "a\u00e9"            // 255 bytes, 4 to a character, then 1 and 2
	deep := strings.Repeat("/"+strings.Repeat("d", 99), 42) // 4200 bytes: longer than PATH_MAX
	target4095 := strings.Repeat("t/", 2047) + "t"
	tests := map[string]struct {
		setup   func(ctx context.Context, h Host) error // run on both before op, through the host
		op      func(ctx context.Context, h Host) error
		wantIs  error
		wantErr string // %s is the root; empty when op succeeds
		parents bool   // op makes parents before it fails
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
		// An absolute target is a path in the root (issue 12): /abs
		// leads to ROOT/<outside>, which is missing, as chroot(2) sees it.
		"write_through_absolute_symlink": {
			op:      func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/abs/x", nil, 0o644, -1, -1) },
			wantIs:  syscall.ENOTDIR,
			wantErr: `write /abs/x: not a directory`,
		},
		"write_through_absolute_dir_symlink": {
			op: func(ctx context.Context, h Host) error {
				return h.WriteFile(ctx, "/cni/net.d/10.conf", []byte("{}"), 0o644, -1, -1)
			},
		},
		"mkdir_through_absolute_dir_symlink": {
			op: func(ctx context.Context, h Host) error { return h.Mkdir(ctx, "/cni/net.d/sub/d", 0o700, -1, -1) },
		},
		"mkdir_absolute_dir_symlink_is_left": {
			op: func(ctx context.Context, h Host) error { return h.Mkdir(ctx, "/cni/net.d", 0o700, -1, -1) },
		},
		"write_through_absolute_slash_symlink": {
			op: func(ctx context.Context, h Host) error {
				return h.WriteFile(ctx, "/slash/etc/motd", []byte("new\n"), 0o600, -1, -1)
			},
		},
		"chmod_through_absolute_dir_symlink": {
			op: func(ctx context.Context, h Host) error { return h.Chmod(ctx, "/cni/net.d/00.conf", 0o600) },
		},
		"remove_through_absolute_dir_symlink": {
			op: func(ctx context.Context, h Host) error { return h.Remove(ctx, "/cni/net.d/00.conf") },
		},
		"symlink_through_absolute_dir_symlink": {
			op: func(ctx context.Context, h Host) error { return h.Symlink(ctx, "00.conf", "/cni/net.d/01.conf") },
		},
		"remove_absolute_symlink_keeps_target": {
			op: func(ctx context.Context, h Host) error { return h.Remove(ctx, "/cni/net.d") },
		},
		"chmod_absolute_symlink_refused": {
			op:      func(ctx context.Context, h Host) error { return h.Chmod(ctx, "/cni/net.d", 0o700) },
			wantErr: "chmod /cni/net.d: is a symlink (kplay does not follow it; name its target instead)",
		},
		"read_through_absolute_links_both_ways": {
			op: func(ctx context.Context, h Host) error {
				data, err := h.ReadFile(ctx, "/cni/net.d/00.conf")
				if err == nil && string(data) != "{}\n" {
					err = fmt.Errorf("read %q", data)
				}
				return err
			},
		},
		"readdir_through_absolute_dir_symlink": {
			op: func(ctx context.Context, h Host) error {
				names, err := h.ReadDir(ctx, "/cni/net.d")
				if err == nil && strings.Join(names, ",") != "00.conf,up" {
					err = fmt.Errorf("readdir %q", names)
				}
				return err
			},
		},
		// The kernel stops at the missing element; ".." never undoes
		// it (found by the attack on issue 12): a symlink that leads
		// nowhere, as /dangle.
		"absolute_symlink_dot_dot_after_missing": {
			op:      func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/gone-up/keep", nil, 0o644, -1, -1) },
			wantIs:  syscall.ENOTDIR,
			wantErr: `write /gone-up/keep: not a directory`,
		},
		"absolute_symlink_then_dot_dot_above_root": {
			op: func(ctx context.Context, h Host) error {
				return h.WriteFile(ctx, "/cni/net.d/up/x", nil, 0o644, -1, -1)
			},
			wantIs:  ErrOutsideRoot,
			wantErr: `write /cni/net.d/up/x: path leaves the root %s (a symlink or ".." points outside it)`,
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

		// Temp names fit in NAME_MAX whatever the name (issue 11).
		"mkdir_240_byte_name": {
			op: func(ctx context.Context, h Host) error { return h.Mkdir(ctx, "/"+a240, 0o700, -1, -1) },
		},
		"mkdir_255_byte_name": {
			op: func(ctx context.Context, h Host) error { return h.Mkdir(ctx, "/"+a255, 0o700, -1, -1) },
		},
		"mkdir_255_byte_names_nested": {
			op: func(ctx context.Context, h Host) error { return h.Mkdir(ctx, "/"+a255+"/"+b255, 0o700, -1, -1) },
		},
		"mkdir_255_byte_utf8_names_nested": {
			op: func(ctx context.Context, h Host) error { return h.Mkdir(ctx, "/etc/"+euro+"/"+smile, 0o700, -1, -1) },
		},
		"write_240_byte_name": {
			op: func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/"+a240, []byte("x"), 0o600, -1, -1) },
		},
		"write_255_byte_name": {
			op: func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/"+a255, []byte("x"), 0o600, -1, -1) },
		},
		"write_255_byte_names_nested": {
			op: func(ctx context.Context, h Host) error {
				return h.WriteFile(ctx, "/"+a255+"/"+b255+"/"+a255, []byte("x"), 0o600, -1, -1)
			},
		},
		"write_255_byte_utf8_names_nested": {
			op: func(ctx context.Context, h Host) error {
				return h.WriteFile(ctx, "/"+euro+"/"+smile+"/"+euro, []byte("x"), 0o600, -1, -1)
			},
		},
		"symlink_255_byte_names_nested": {
			op: func(ctx context.Context, h Host) error { return h.Symlink(ctx, "x", "/"+smile+"/"+a255) },
		},
		"write_path_longer_than_path_max": {
			op: func(ctx context.Context, h Host) error { return h.WriteFile(ctx, deep, []byte("x"), 0o600, -1, -1) },
		},
		"symlink_target_of_4095_bytes": {
			op: func(ctx context.Context, h Host) error { return h.Symlink(ctx, target4095, "/t") },
		},

		// Names the file system refuses.
		"write_256_byte_name": {
			op:      func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/new/"+a256, nil, 0o644, -1, -1) },
			wantIs:  syscall.ENAMETOOLONG,
			wantErr: "write /new/" + a256 + ": file name too long",
			parents: true,
		},
		"mkdir_256_byte_name_nested": {
			op:      func(ctx context.Context, h Host) error { return h.Mkdir(ctx, "/new/"+a256+"/d", 0o755, -1, -1) },
			wantIs:  syscall.ENAMETOOLONG,
			wantErr: "mkdir /new/" + a256 + "/d: file name too long",
			parents: true,
		},
		"symlink_256_byte_name": {
			op:      func(ctx context.Context, h Host) error { return h.Symlink(ctx, "x", "/"+a256) },
			wantIs:  syscall.ENAMETOOLONG,
			wantErr: "symlink /" + a256 + ": file name too long",
		},
		"lstat_256_byte_name": {
			op: func(ctx context.Context, h Host) error {
				_, err := h.Lstat(ctx, "/etc/"+a256)
				return err
			},
			wantIs:  syscall.ENAMETOOLONG,
			wantErr: "lstat /etc/" + a256 + ": file name too long",
		},
		"chmod_256_byte_name_nested": {
			op:      func(ctx context.Context, h Host) error { return h.Chmod(ctx, "/etc/"+a256+"/x", 0o644) },
			wantIs:  syscall.ENAMETOOLONG,
			wantErr: "chmod /etc/" + a256 + "/x: file name too long",
		},
		"read_256_byte_name_under_missing": {
			op: func(ctx context.Context, h Host) error {
				_, err := h.ReadFile(ctx, "/nope/"+a256)
				return err
			},
			wantIs:  fs.ErrNotExist,
			wantErr: "read /nope/" + a256 + ": no such file or directory",
		},
		"write_nul_in_name": {
			op:      func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/etc/a\x00b", nil, 0o644, -1, -1) },
			wantIs:  syscall.EINVAL,
			wantErr: "write /etc/a\x00b: invalid argument",
		},
		"mkdir_nul_in_parent": {
			op:      func(ctx context.Context, h Host) error { return h.Mkdir(ctx, "/etc/a\x00b/c", 0o755, -1, -1) },
			wantIs:  syscall.EINVAL,
			wantErr: "mkdir /etc/a\x00b/c: invalid argument",
		},
		"symlink_target_of_4096_bytes": {
			op:      func(ctx context.Context, h Host) error { return h.Symlink(ctx, target4095+"t", "/t") },
			wantIs:  syscall.ENAMETOOLONG,
			wantErr: "symlink /t: file name too long",
		},
		"symlink_empty_target": {
			op:      func(ctx context.Context, h Host) error { return h.Symlink(ctx, "", "/t") },
			wantIs:  fs.ErrNotExist,
			wantErr: "symlink /t: no such file or directory",
		},
		"symlink_nul_in_target": {
			op:      func(ctx context.Context, h Host) error { return h.Symlink(ctx, "a\x00b", "/t") },
			wantIs:  syscall.EINVAL,
			wantErr: "symlink /t: invalid argument",
		},

		// A dangling symlink on the way (issue 11): /dangle -> /nonexistent,
		// /missing -> gone, /deep -> a/b/c.
		"write_under_dangling_absolute_symlink": {
			op:      func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/dangle/x", nil, 0o644, -1, -1) },
			wantIs:  syscall.ENOTDIR,
			wantErr: `write /dangle/x: not a directory`,
		},
		"mkdir_dangling_absolute_symlink": {
			op:      func(ctx context.Context, h Host) error { return h.Mkdir(ctx, "/dangle", 0o755, -1, -1) },
			wantIs:  syscall.ENOTDIR,
			wantErr: `mkdir /dangle: not a directory`,
		},
		"write_under_dangling_relative_symlink": {
			op:      func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/missing/x", nil, 0o644, -1, -1) },
			wantIs:  syscall.ENOTDIR,
			wantErr: "write /missing/x: not a directory",
		},
		"mkdir_under_dangling_relative_symlink": {
			op:      func(ctx context.Context, h Host) error { return h.Mkdir(ctx, "/missing/sub/d", 0o755, -1, -1) },
			wantIs:  syscall.ENOTDIR,
			wantErr: "mkdir /missing/sub/d: not a directory",
		},
		"mkdir_dangling_relative_symlink": {
			op:      func(ctx context.Context, h Host) error { return h.Mkdir(ctx, "/missing", 0o755, -1, -1) },
			wantIs:  syscall.ENOTDIR,
			wantErr: "mkdir /missing: not a directory",
		},
		"symlink_under_dangling_relative_symlink": {
			op:      func(ctx context.Context, h Host) error { return h.Symlink(ctx, "x", "/missing/x") },
			wantIs:  syscall.ENOTDIR,
			wantErr: "symlink /missing/x: not a directory",
		},
		"write_under_dangling_symlink_chain": {
			op:      func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/deep/x", nil, 0o644, -1, -1) },
			wantIs:  syscall.ENOTDIR,
			wantErr: "write /deep/x: not a directory",
		},
		"read_under_dangling_relative_symlink": {
			op: func(ctx context.Context, h Host) error {
				_, err := h.ReadFile(ctx, "/missing/x")
				return err
			},
			wantIs:  fs.ErrNotExist,
			wantErr: "read /missing/x: no such file or directory",
		},
		"lstat_under_dangling_relative_symlink": {
			op: func(ctx context.Context, h Host) error {
				_, err := h.Lstat(ctx, "/missing/x")
				return err
			},
			wantIs:  fs.ErrNotExist,
			wantErr: "lstat /missing/x: no such file or directory",
		},
		"chmod_under_dangling_relative_symlink": {
			op:      func(ctx context.Context, h Host) error { return h.Chmod(ctx, "/missing/x", 0o644) },
			wantIs:  fs.ErrNotExist,
			wantErr: "chmod /missing/x: no such file or directory",
		},
		"remove_under_dangling_relative_symlink": {
			op:      func(ctx context.Context, h Host) error { return h.Remove(ctx, "/missing/x") },
			wantIs:  fs.ErrNotExist,
			wantErr: "remove /missing/x: no such file or directory",
		},
		"readdir_dangling_relative_symlink": {
			op: func(ctx context.Context, h Host) error {
				_, err := h.ReadDir(ctx, "/missing")
				return err
			},
			wantIs:  fs.ErrNotExist,
			wantErr: "readdir /missing: no such file or directory",
		},

		// A symlink loop on the way: /loop -> loop, /loop1 <-> /loop2.
		"write_under_symlink_loop": {
			op:      func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/loop/x", nil, 0o644, -1, -1) },
			wantIs:  syscall.ELOOP,
			wantErr: "write /loop/x: too many levels of symbolic links",
		},
		"mkdir_symlink_loop": {
			op:      func(ctx context.Context, h Host) error { return h.Mkdir(ctx, "/loop1", 0o755, -1, -1) },
			wantIs:  syscall.ELOOP,
			wantErr: "mkdir /loop1: too many levels of symbolic links",
		},
		"read_symlink_loop": {
			op: func(ctx context.Context, h Host) error {
				_, err := h.ReadFile(ctx, "/loop1")
				return err
			},
			wantIs:  syscall.ELOOP,
			wantErr: "read /loop1: too many levels of symbolic links",
		},
		"chown_under_symlink_loop": {
			op:      func(ctx context.Context, h Host) error { return h.Chown(ctx, "/loop2/x", -1, -1) },
			wantIs:  syscall.ELOOP,
			wantErr: "chown /loop2/x: too many levels of symbolic links",
		},
		"readlink_under_symlink_loop": {
			op: func(ctx context.Context, h Host) error {
				_, err := h.Readlink(ctx, "/loop/x")
				return err
			},
			wantIs:  syscall.ELOOP,
			wantErr: "readlink /loop/x: too many levels of symbolic links",
		},
		"write_through_8_symlinks": {
			op: func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/l8/x", []byte("x"), 0o644, -1, -1) },
		},
		"write_through_9_symlinks": {
			op:      func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/l9/x", nil, 0o644, -1, -1) },
			wantIs:  syscall.ELOOP,
			wantErr: "write /l9/x: too many levels of symbolic links",
		},
		"read_through_5_symlinks_then_5": {
			// os.Root counts 8 per call; Real reads through a handle
			// of the directory, so 5 and 5 pass.
			op: func(ctx context.Context, h Host) error {
				_, err := h.ReadFile(ctx, "/l5/f5")
				return err
			},
		},

		// A symlink to a file on the way: /tofile -> etc/motd.
		"write_under_symlink_to_file": {
			op:      func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/tofile/x", nil, 0o644, -1, -1) },
			wantIs:  syscall.ENOTDIR,
			wantErr: "write /tofile/x: not a directory",
		},
		"mkdir_symlink_to_file": {
			op:      func(ctx context.Context, h Host) error { return h.Mkdir(ctx, "/tofile", 0o755, -1, -1) },
			wantIs:  syscall.ENOTDIR,
			wantErr: "mkdir /tofile: not a directory",
		},
		"read_under_symlink_to_file": {
			op: func(ctx context.Context, h Host) error {
				_, err := h.ReadFile(ctx, "/tofile/x")
				return err
			},
			wantIs:  syscall.ENOTDIR,
			wantErr: "read /tofile/x: not a directory",
		},
		"symlink_under_symlink_to_file": {
			op:      func(ctx context.Context, h Host) error { return h.Symlink(ctx, "x", "/tofile/x") },
			wantIs:  syscall.ENOTDIR,
			wantErr: "symlink /tofile/x: not a directory",
		},
		"mkdir_symlink_to_dir": {
			op: func(ctx context.Context, h Host) error { return h.Mkdir(ctx, "/l1", 0o700, -1, -1) },
		},

		// A symlink that leaves the root: /up -> ..
		"write_under_symlink_to_dot_dot": {
			op:      func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/up/x", nil, 0o644, -1, -1) },
			wantIs:  ErrOutsideRoot,
			wantErr: `write /up/x: path leaves the root %s (a symlink or ".." points outside it)`,
		},
		"read_under_symlink_to_dot_dot": {
			op: func(ctx context.Context, h Host) error {
				_, err := h.ReadFile(ctx, "/up/etc/motd")
				return err
			},
			wantIs:  ErrOutsideRoot,
			wantErr: `read /up/etc/motd: path leaves the root %s (a symlink or ".." points outside it)`,
		},

		// Symlinks that an earlier step made: the dry host follows them
		// as Real does.
		"write_under_made_dangling_symlink": {
			setup:   func(ctx context.Context, h Host) error { return h.Symlink(ctx, "gone", "/made") },
			op:      func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/made/x", nil, 0o644, -1, -1) },
			wantIs:  syscall.ENOTDIR,
			wantErr: "write /made/x: not a directory",
		},
		"write_under_made_symlink_loop": {
			setup:   func(ctx context.Context, h Host) error { return h.Symlink(ctx, "made", "/made") },
			op:      func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/made/x", nil, 0o644, -1, -1) },
			wantIs:  syscall.ELOOP,
			wantErr: "write /made/x: too many levels of symbolic links",
		},
		"mkdir_under_made_symlink_to_file": {
			setup:   func(ctx context.Context, h Host) error { return h.Symlink(ctx, "etc/motd", "/made") },
			op:      func(ctx context.Context, h Host) error { return h.Mkdir(ctx, "/made/d", 0o755, -1, -1) },
			wantIs:  syscall.ENOTDIR,
			wantErr: "mkdir /made/d: not a directory",
		},
		"write_through_made_symlink_to_dot_dot": {
			setup:   func(ctx context.Context, h Host) error { return h.Symlink(ctx, "../..", "/etc/made") },
			op:      func(ctx context.Context, h Host) error { return h.WriteFile(ctx, "/etc/made/x", nil, 0o644, -1, -1) },
			wantIs:  ErrOutsideRoot,
			wantErr: `write /etc/made/x: path leaves the root %s (a symlink or ".." points outside it)`,
		},
		"read_made_absolute_symlink": {
			setup: func(ctx context.Context, h Host) error { return h.Symlink(ctx, "/etc/motd", "/made") },
			op: func(ctx context.Context, h Host) error {
				data, err := h.ReadFile(ctx, "/made")
				if err == nil && string(data) != "motd\n" {
					err = fmt.Errorf("read %q", data)
				}
				return err
			},
		},
		"write_through_made_absolute_dir_symlink": {
			setup: func(ctx context.Context, h Host) error { return h.Symlink(ctx, "/var", "/made") },
			op: func(ctx context.Context, h Host) error {
				return h.WriteFile(ctx, "/made/x", []byte("x"), 0o644, -1, -1)
			},
		},
		"read_made_symlink_leaving_root": {
			setup: func(ctx context.Context, h Host) error { return h.Symlink(ctx, "../../outside/secret", "/etc/up") },
			op: func(ctx context.Context, h Host) error {
				_, err := h.ReadFile(ctx, "/etc/up")
				return err
			},
			wantIs:  ErrOutsideRoot,
			wantErr: `read /etc/up: path leaves the root %s (a symlink or ".." points outside it)`,
		},
		"read_made_symlink_loop": {
			setup: func(ctx context.Context, h Host) error {
				return errors.Join(h.Symlink(ctx, "made2", "/made1"), h.Symlink(ctx, "made1", "/made2"))
			},
			op: func(ctx context.Context, h Host) error {
				_, err := h.ReadFile(ctx, "/made1")
				return err
			},
			wantIs:  syscall.ELOOP,
			wantErr: "read /made1: too many levels of symbolic links",
		},
		"write_through_made_symlink_to_dir": {
			setup: func(ctx context.Context, h Host) error {
				return errors.Join(h.Mkdir(ctx, "/d", 0o755, -1, -1), h.Symlink(ctx, "../d", "/etc/made"))
			},
			op: func(ctx context.Context, h Host) error {
				return h.WriteFile(ctx, "/etc/made/x", []byte("x"), 0o644, -1, -1)
			},
		},
		"read_through_made_symlink_to_dir": {
			setup: func(ctx context.Context, h Host) error { return h.Symlink(ctx, "etc", "/made") },
			op: func(ctx context.Context, h Host) error {
				data, err := h.ReadFile(ctx, "/made/link")
				if err == nil && string(data) != "motd\n" {
					err = fmt.Errorf("read %q", data)
				}
				return err
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			views := map[string]map[string]string{}
			base := t.TempDir()
			outside := filepath.Join(base, "outside")
			roottest.WriteFile(t, filepath.Join(outside, "secret"), "secret\n", 0o600)
			for _, kind := range []string{"real", "dry"} {
				dir := filepath.Join(base, kind)
				buildTree(t, dir, unitTree{
					"/etc/motd":                 "motd\n",
					"/etc/link":                 "-> motd",
					"/var/":                     "",
					"/abs":                      "-> " + outside,
					"/chain":                    "-> sub/up",
					"/sub/up":                   "-> ../../outside",
					"/dangle":                   "-> /nonexistent",
					"/missing":                  "-> gone",
					"/deep":                     "-> a/b/c",
					"/loop":                     "-> loop",
					"/loop1":                    "-> loop2",
					"/loop2":                    "-> loop1",
					"/tofile":                   "-> etc/motd",
					"/up":                       "-> ..",
					"/cni":                      "-> /etc/kubernetes/cni",
					"/etc/kubernetes/cni/net.d": "-> /etc/cni/net.d",
					"/etc/cni/net.d/00.conf":    "{}\n",
					"/etc/cni/net.d/up":         "-> ../../../..",
					"/slash":                    "-> /",
					"/gone-up":                  "-> /nonexistent/../../../etc",
					"/srv/f":                    "srv\n",
					"/srv/f1":                   "-> f",
					"/srv/f2":                   "-> f1",
					"/srv/f3":                   "-> f2",
					"/srv/f4":                   "-> f3",
					"/srv/f5":                   "-> f4",
					"/l1":                       "-> srv",
					"/l2":                       "-> l1",
					"/l3":                       "-> l2",
					"/l4":                       "-> l3",
					"/l5":                       "-> l4",
					"/l6":                       "-> l5",
					"/l7":                       "-> l6",
					"/l8":                       "-> l7",
					"/l9":                       "-> l8",
				})
				var h Host = openReal(t, dir)
				if kind == "dry" {
					h = NewDry(h)
				}
				before := roottest.State(t, dir) + roottest.State(t, outside)
				if tc.setup != nil {
					if err := tc.setup(t.Context(), h); err != nil {
						t.Fatalf("%s: setup: %v", kind, err)
					}
				}
				if kind == "real" {
					before = roottest.State(t, dir) + roottest.State(t, outside)
				}
				err := tc.op(t.Context(), h)
				switch want := tc.wantErr; {
				case want == "" && err != nil:
					t.Errorf("%s: %v", kind, err)
				case want == "":
				case err == nil || err.Error() != strings.ReplaceAll(want, "%s", dir):
					t.Errorf("%s: got %v, want %q", kind, err, strings.ReplaceAll(want, "%s", dir))
				case tc.wantIs != nil && !errors.Is(err, tc.wantIs):
					t.Errorf("%s: got %v, want errors.Is %v", kind, err, tc.wantIs)
				}
				// Not for every real op: os.Lstat cannot reach a path
				// longer than PATH_MAX, which Real can make.
				if kind == "dry" || tc.wantErr != "" && !tc.parents {
					if roottest.State(t, dir)+roottest.State(t, outside) != before {
						t.Errorf("%s: the tree changed", kind)
					}
				}
				views[kind] = hostView(t, h)
			}
			if !maps.Equal(views["real"], views["dry"]) {
				t.Errorf("the tree after the op (-real +dry):\n%s", diffTrees(views["real"], views["dry"]))
			}
		})
	}
}

// hostView lists every path of h's tree as listHost does, with the mode
// of a directory ("d 0755") and the mode and content of a file.
func hostView(t *testing.T, h Host) map[string]string { return walkHost(t, h, true) }

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
