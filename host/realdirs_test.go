package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/kplay-dev/kplay/host/roottest"
)

// Reads through the directory handles give what reads from the top give:
// through symlinks that stay in the directory, leave it for elsewhere in
// the root, or leave the root; and in more directories than are kept.
func TestRealReadsThroughDirectoryHandles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	outside := t.TempDir()
	mk := func(name, content string) {
		t.Helper()
		roottest.WriteFile(t, filepath.Join(dir, name), content, 0o644)
	}
	mk("etc/app/conf", "conf")
	mk("usr/lib/app/unit", "unit")
	roottest.WriteFile(t, filepath.Join(outside, "secret"), "outside", 0o644)
	for name, target := range map[string]string{
		"etc/app/same":     "conf",                               // stays in etc/app
		"etc/app/up":       "../../usr/lib/app/unit",             // leaves etc/app, stays in the root
		"etc/app/out":      "../../../" + filepath.Base(outside), // leaves the root
		"etc/app/abs":      "/usr/lib/app/unit",                  // absolute: inside the root
		"etc/alias":        "../usr/lib/app",                     // a directory behind a symlink
		"etc/app/dangling": "missing",
	} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	r := openReal(t, dir)
	ctx := t.Context()
	for name, want := range map[string]string{
		"/etc/app/conf": "conf", "/etc/app/same": "conf", "/etc/app/up": "unit", "/etc/alias/unit": "unit", "/etc/app/abs": "unit",
	} {
		// Twice: the second read uses the handle the first opened.
		for range 2 {
			if got, err := r.ReadFile(ctx, name); err != nil || string(got) != want {
				t.Errorf("read %s: got %q, %v; want %q", name, got, err, want)
			}
		}
	}
	if _, err := r.ReadFile(ctx, "/etc/app/out"); !errors.Is(err, ErrOutsideRoot) {
		t.Errorf("read through a symlink out of the root: got %v, want ErrOutsideRoot", err)
	}
	if _, err := r.ReadFile(ctx, "/etc/app/dangling"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read through a dangling symlink: got %v, want ErrNotExist", err)
	}
	if fi, err := r.Lstat(ctx, "/etc/app/up"); err != nil || fi.Mode&fs.ModeSymlink == 0 {
		t.Errorf("lstat of a symlink: got %+v, %v; want the link itself", fi, err)
	}

	// More directories than handles are kept: every read is still right.
	for i := range maxDirRoots + 10 {
		mk(fmt.Sprintf("srv/d%03d/f", i), fmt.Sprint(i))
	}
	for i := range maxDirRoots + 10 {
		name := fmt.Sprintf("/srv/d%03d/f", i)
		if got, err := r.ReadFile(ctx, name); err != nil || string(got) != fmt.Sprint(i) {
			t.Fatalf("read %s: got %q, %v", name, got, err)
		}
	}
	// ...and counts symlinks as it does through a kept handle (os.Root
	// follows 8 per call): 5 to the directory, then 5 to the file pass,
	// as on a fresh Real and on the dry host.
	mk("l0/f0", "chained")
	for i := 1; i <= 5; i++ {
		roottest.Symlink(t, fmt.Sprintf("l%d", i-1), filepath.Join(dir, fmt.Sprintf("l%d", i)))
		roottest.Symlink(t, fmt.Sprintf("f%d", i-1), filepath.Join(dir, fmt.Sprintf("l0/f%d", i)))
	}
	if got, err := r.ReadFile(ctx, "/l5/f5"); err != nil || string(got) != "chained" {
		t.Errorf("read through 5 and 5 symlinks with every handle taken: got %q, %v", got, err)
	}
}

// A directory that a Remove takes away is not read through a stale
// handle: a new directory of that name is read instead.
func TestRealRemoveDropsDirectoryHandles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	roottest.WriteFile(t, filepath.Join(dir, "etc/app/conf"), "old", 0o644)
	r := openReal(t, dir)
	ctx := t.Context()
	if got, err := r.ReadFile(ctx, "/etc/app/conf"); err != nil || string(got) != "old" {
		t.Fatalf("read: got %q, %v", got, err)
	}
	if err := r.Remove(ctx, "/etc/app/conf"); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(ctx, "/etc/app"); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile(ctx, "/etc/app/conf", []byte("new"), 0o644, -1, -1); err != nil {
		t.Fatal(err)
	}
	if got, err := r.ReadFile(ctx, "/etc/app/conf"); err != nil || string(got) != "new" {
		t.Errorf("read after the directory was made again: got %q, %v; want \"new\"", got, err)
	}
	if _, err := r.Lstat(ctx, "/etc/app/conf"); err != nil {
		t.Errorf("lstat after the directory was made again: %v", err)
	}
}
