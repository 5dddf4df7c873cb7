package host

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/kplay-dev/kplay/host/roottest"
)

// A dry host reads a small base file once, and a large one each time, so
// that a check does not hold every large file it compares.
func TestDryKeepsSmallBaseFilesOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	small, large := []byte("root:x:0:0::/root:/bin/sh\n"), bytes.Repeat([]byte("x"), maxCachedFile+1)
	roottest.WriteFile(t, filepath.Join(dir, "etc/passwd"), string(small), 0o644)
	roottest.WriteFile(t, filepath.Join(dir, "opt/big.bin"), string(large), 0o644)
	d := NewDry(openReal(t, dir))
	ctx := t.Context()
	for name, data := range map[string][]byte{"/etc/passwd": small, "/opt/big.bin": large} {
		if got, err := d.ReadFile(ctx, name); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %s: %d bytes, %v", name, len(got), err)
		}
	}
	// Changed behind the dry host's back: the small file's first answer
	// stays, the large file is read again.
	roottest.WriteFile(t, filepath.Join(dir, "etc/passwd"), "changed\n", 0o644)
	if err := os.WriteFile(filepath.Join(dir, "opt/big.bin"), []byte("small now"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.ReadFile(ctx, "/etc/passwd"); !bytes.Equal(got, small) {
		t.Errorf("small file: got %q, want the first answer", got)
	}
	if got, _ := d.ReadFile(ctx, "/opt/big.bin"); string(got) != "small now" {
		t.Errorf("large file: got %d bytes, want it read again", len(got))
	}
}

// What a read cache returns is the caller's to change.
func TestReadCacheReturnsCopies(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	roottest.WriteFile(t, filepath.Join(dir, "etc/group"), "root:x:0:\n", 0o644)
	roottest.WriteFile(t, filepath.Join(dir, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n", 0o644)
	c := newReadCache(openReal(t, dir))
	ctx := t.Context()
	for range 2 {
		data, err := c.ReadFile(ctx, "/etc/group")
		if err != nil || string(data) != "root:x:0:\n" {
			t.Fatalf("read: got %q, %v", data, err)
		}
		data[0] = 'X'
		names, err := c.ReadDir(ctx, "/etc")
		if err != nil || len(names) != 2 || names[0] != "group" {
			t.Fatalf("readdir: got %q, %v", names, err)
		}
		names[0] = "changed"
	}
}
