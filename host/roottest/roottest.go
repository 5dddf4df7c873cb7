// Package roottest describes a directory tree for tests, the way
// net/http/httptest serves HTTP: State lists every path with its mode,
// owner, size, mtime, symlink target and content hash, so two equal states
// mean nothing in the tree was written, created, removed, chmodded or
// chowned.
package roottest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// State describes every path under dir (dir included), one line each:
// path, mode, uid:gid, size, mtime in ns, then the symlink target or the
// sha256 of a regular file. An absent dir has the state "(absent)".
func State(tb testing.TB, dir string) string {
	tb.Helper()
	if _, err := os.Lstat(dir); os.IsNotExist(err) {
		return "(absent)\n"
	}
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%q %v %d:%d %d %d", rel, fi.Mode(), st.Uid, st.Gid, fi.Size(), fi.ModTime().UnixNano())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " -> %q", target)
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			fmt.Fprintf(&b, " sha256:%s", hex.EncodeToString(sum[:]))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		tb.Fatalf("state of tree %s: %v", dir, err)
	}
	return b.String()
}

// WriteFile writes name with content and exactly mode (whatever the
// umask), making its missing parents 0755, or fails the test.
func WriteFile(tb testing.TB, name, content string, mode fs.FileMode) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), mode); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(name, mode); err != nil {
		tb.Fatal(err)
	}
}

// Symlink makes the symlink name to target, making the missing parents
// of name 0755, or fails the test.
func Symlink(tb testing.TB, target, name string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.Symlink(target, name); err != nil {
		tb.Fatal(err)
	}
}
