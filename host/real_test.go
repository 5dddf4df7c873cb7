package host

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/kplay-dev/kplay/host/roottest"
)

// openReal makes dir and opens it as a root, closed at the end of the test.
func openReal(t *testing.T, dir string, opts ...Option) *Real {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := OpenReal(dir, true, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

// diskMode returns the type and permission bits of name on disk.
func diskMode(t *testing.T, name string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

func TestRealWriteFileSetsModeAndOwner(t *testing.T) {
	t.Parallel()
	// 0777 and 0666 would lose bits to a usual umask (022) without the
	// fchmod; setuid, setgid and sticky need it too.
	tests := map[string]struct {
		perm fs.FileMode
		want fs.FileMode
	}{
		"private_0600":      {perm: 0o600, want: 0o600},
		"exec_0755":         {perm: 0o755, want: 0o755},
		"open_0777":         {perm: 0o777, want: 0o777},
		"open_0666":         {perm: 0o666, want: 0o666},
		"setuid_4755":       {perm: 0o755 | fs.ModeSetuid, want: 0o755 | fs.ModeSetuid},
		"setgid_2755":       {perm: 0o755 | fs.ModeSetgid, want: 0o755 | fs.ModeSetgid},
		"sticky_1644":       {perm: 0o644 | fs.ModeSticky, want: 0o644 | fs.ModeSticky},
		"type_bits_ignored": {perm: fs.ModeDir | 0o640, want: 0o640},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			r := openReal(t, dir)
			ctx := t.Context()
			data := []byte("hello " + name + "\n")
			if err := r.WriteFile(ctx, "/etc/deep/motd", data, tc.perm, os.Getuid(), os.Getgid()); err != nil {
				t.Fatal(err)
			}
			got, err := r.ReadFile(ctx, "/etc/deep/motd")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("content: got %q, want %q", got, data)
			}
			fi, err := r.Lstat(ctx, "/etc/deep/motd")
			if err != nil {
				t.Fatal(err)
			}
			want := FileInfo{Mode: tc.want, UID: os.Getuid(), GID: os.Getgid(), Size: int64(len(data)), Links: 1}
			if fi != want {
				t.Errorf("Lstat: got %+v, want %+v", fi, want)
			}
			if got := diskMode(t, filepath.Join(dir, "etc/deep/motd")); got != tc.want {
				t.Errorf("mode on disk: got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRealWriteFileCreatesParents0755(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := openReal(t, dir)
	if err := r.WriteFile(t.Context(), "/a/b/c/file", []byte("x"), 0o600, -1, -1); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "a/b", "a/b/c"} {
		if got, want := diskMode(t, filepath.Join(dir, p)), fs.ModeDir|0o755; got != want {
			t.Errorf("%s: got %v, want %v", p, got, want)
		}
	}
}

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func TestRealWriteFileReplacesAndLeavesNoTempFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := openReal(t, dir)
	ctx := t.Context()
	roottest.WriteFile(t, filepath.Join(dir, "etc/motd"), "old content that is longer\n", 0o644)
	// A leftover of an earlier process with our pid must be skipped, not
	// reused or removed.
	stale := filepath.Join(dir, "etc", fmt.Sprintf(".motd.kplay-%d-1", os.Getpid()))
	roottest.WriteFile(t, stale, "stale", 0o600)

	for i, content := range []string{"first\n", "second\n"} {
		if err := r.WriteFile(ctx, "/etc/motd", []byte(content), 0o640, -1, -1); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		got, err := os.ReadFile(filepath.Join(dir, "etc/motd"))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != content {
			t.Errorf("write %d: got %q, want %q", i, got, content)
		}
	}
	if got, want := strings.Join(entries(t, filepath.Join(dir, "etc")), " "), filepath.Base(stale)+" motd"; got != want {
		t.Errorf("entries of /etc: got %q, want %q", got, want)
	}
	if got, err := os.ReadFile(stale); err != nil || string(got) != "stale" {
		t.Errorf("stale temp file: got %q, %v; want it untouched", got, err)
	}
}

func TestRealWriteFileErrorLeavesTargetAndNoTempFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := openReal(t, dir)
	ctx := t.Context()
	roottest.WriteFile(t, filepath.Join(dir, "etc/motd"), "old\n", 0o644)
	if err := os.Mkdir(filepath.Join(dir, "etc/dir"), 0o755); err != nil {
		t.Fatal(err)
	}

	err := r.WriteFile(ctx, "/etc/dir", []byte("x"), 0o644, -1, -1)
	if !errors.Is(err, syscall.EISDIR) || err.Error() != "write /etc/dir: is a directory" {
		t.Errorf("write onto a directory: got %v, want %q", err, "write /etc/dir: is a directory")
	}
	if os.Getuid() != 0 {
		// Without privilege, the chown of the temp file fails after it
		// was created: the temp file must go, the target must stay.
		err := r.WriteFile(ctx, "/etc/motd", []byte("new\n"), 0o644, os.Getuid()+1, os.Getgid())
		if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "run kplay as root") {
			t.Errorf("write with another owner: got %v, want EPERM with a hint", err)
		}
	}
	if got, want := strings.Join(entries(t, filepath.Join(dir, "etc")), " "), "dir motd"; got != want {
		t.Errorf("entries of /etc: got %q, want %q", got, want)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "etc/motd")); string(got) != "old\n" {
		t.Errorf("/etc/motd: got %q, want it unchanged", got)
	}
}

func TestRealWriteFileReplacesFinalSymlink(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	dir, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	roottest.WriteFile(t, filepath.Join(outside, "secret"), "secret\n", 0o600)
	r := openReal(t, dir)
	roottest.Symlink(t, filepath.Join(outside, "secret"), filepath.Join(dir, "link"))
	before := roottest.State(t, outside)

	if err := r.WriteFile(t.Context(), "/link", []byte("mine\n"), 0o644, -1, -1); err != nil {
		t.Fatal(err)
	}
	if got := diskMode(t, filepath.Join(dir, "link")); got != 0o644 {
		t.Errorf("/link: got mode %v, want a regular file 0644", got)
	}
	if after := roottest.State(t, outside); after != before {
		t.Errorf("the tree outside the root changed")
	}
}

func TestRealMkdir(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		perm fs.FileMode
		want fs.FileMode
	}{
		"private_0700": {perm: 0o700, want: 0o700},
		"open_0777":    {perm: 0o777, want: 0o777},
		"sticky_1777":  {perm: 0o777 | fs.ModeSticky, want: 0o777 | fs.ModeSticky},
		"setgid_2750":  {perm: 0o750 | fs.ModeSetgid, want: 0o750 | fs.ModeSetgid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			r := openReal(t, dir)
			ctx := t.Context()
			if err := r.Mkdir(ctx, "/var/lib/kplay", tc.perm, os.Getuid(), os.Getgid()); err != nil {
				t.Fatal(err)
			}
			fi, err := r.Lstat(ctx, "/var/lib/kplay")
			if err != nil {
				t.Fatal(err)
			}
			if want := fs.ModeDir | tc.want; fi.Mode != want || fi.UID != os.Getuid() || fi.GID != os.Getgid() {
				t.Errorf("got %+v, want mode %v owner %d:%d", fi, want, os.Getuid(), os.Getgid())
			}
			for _, p := range []string{"var", "var/lib"} {
				if got := diskMode(t, filepath.Join(dir, p)); got != fs.ModeDir|0o755 {
					t.Errorf("parent %s: got %v, want %v", p, got, fs.ModeDir|0o755)
				}
			}
		})
	}
}

func TestRealMkdirExisting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := openReal(t, dir)
	ctx := t.Context()
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o700); err != nil {
		t.Fatal(err)
	}
	roottest.Symlink(t, "d", filepath.Join(dir, "dlink"))
	roottest.WriteFile(t, filepath.Join(dir, "f"), "", 0o644)

	for _, name := range []string{"/", "/d", "/dlink"} {
		if err := r.Mkdir(ctx, name, 0o755, -1, -1); err != nil {
			t.Errorf("mkdir %s: got %v, want nil", name, err)
		}
	}
	if got := diskMode(t, filepath.Join(dir, "d")); got != fs.ModeDir|0o700 {
		t.Errorf("existing /d: got %v, want it left at %v", got, fs.ModeDir|0o700)
	}
	err := r.Mkdir(ctx, "/f", 0o755, -1, -1)
	if !errors.Is(err, syscall.ENOTDIR) || err.Error() != "mkdir /f: not a directory" {
		t.Errorf("mkdir over a file: got %v, want %q", err, "mkdir /f: not a directory")
	}
	err = r.WriteFile(ctx, "/f/x", nil, 0o644, -1, -1)
	if !errors.Is(err, syscall.ENOTDIR) || err.Error() != "write /f/x: not a directory" {
		t.Errorf("write under a file: got %v, want %q", err, "write /f/x: not a directory")
	}
}

func TestRealChmodChown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := openReal(t, dir)
	ctx := t.Context()
	roottest.WriteFile(t, filepath.Join(dir, "bin/tool"), "#!/bin/sh\n", 0o644)
	roottest.Symlink(t, "tool", filepath.Join(dir, "bin/link"))

	if err := r.Chown(ctx, "/bin/tool", os.Getuid(), os.Getgid()); err != nil {
		t.Fatal(err)
	}
	if err := r.Chmod(ctx, "/bin/tool", 0o4755); err != nil {
		t.Fatal(err)
	}
	// os.FileMode(0o4755) is not setuid: Chmod takes the fs bits.
	if err := r.Chmod(ctx, "/bin/tool", 0o755|fs.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	fi, err := r.Lstat(ctx, "/bin/tool")
	if err != nil {
		t.Fatal(err)
	}
	want := FileInfo{Mode: 0o755 | fs.ModeSetuid, UID: os.Getuid(), GID: os.Getgid(), Size: 10, Links: 1}
	if fi != want {
		t.Errorf("got %+v, want %+v", fi, want)
	}

	for op, err := range map[string]error{
		"chmod": r.Chmod(ctx, "/bin/link", 0o600),
		"chown": r.Chown(ctx, "/bin/link", os.Getuid(), os.Getgid()),
	} {
		if want := op + " /bin/link: is a symlink"; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s of a symlink: got %v, want %q...", op, err, want)
		}
	}
	if got := diskMode(t, filepath.Join(dir, "bin/tool")); got != 0o755|fs.ModeSetuid {
		t.Errorf("symlink target: got %v, want it unchanged", got)
	}

	err = r.Chmod(ctx, "/bin/none", 0o600)
	if !errors.Is(err, fs.ErrNotExist) || err.Error() != "chmod /bin/none: no such file or directory" {
		t.Errorf("chmod of a missing file: got %v", err)
	}
}

func TestRealChownOtherUser(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := openReal(t, dir)
	ctx := t.Context()
	roottest.WriteFile(t, filepath.Join(dir, "etc/x"), "", 0o644)
	other := os.Getuid() + 4242

	err := r.Chown(ctx, "/etc/x", other, -1)
	if os.Getuid() == 0 {
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := r.Lstat(ctx, "/etc/x"); err != nil || fi.UID != other || fi.GID != os.Getgid() {
			t.Errorf("got %+v, %v; want owner %d:%d", fi, err, other, os.Getgid())
		}
		return
	}
	want := "chown /etc/x: operation not permitted (run kplay as root, or set owner to the running user)"
	if !errors.Is(err, fs.ErrPermission) || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

// allOps runs each Host operation on name and returns its error.
func allOps(t *testing.T, h Host, name string) map[string]error {
	t.Helper()
	ctx := t.Context()
	_, lstatErr := h.Lstat(ctx, name)
	_, readErr := h.ReadFile(ctx, name)
	_, readlinkErr := h.Readlink(ctx, name)
	_, readdirErr := h.ReadDir(ctx, name)
	return map[string]error{
		"lstat":    lstatErr,
		"read":     readErr,
		"readlink": readlinkErr,
		"readdir":  readdirErr,
		"write":    h.WriteFile(ctx, name, []byte("x"), 0o644, -1, -1),
		"mkdir":    h.Mkdir(ctx, name, 0o755, -1, -1),
		"chmod":    h.Chmod(ctx, name, 0o600),
		"chown":    h.Chown(ctx, name, os.Getuid(), os.Getgid()),
		"symlink":  h.Symlink(ctx, "/dev/null", name),
		"remove":   h.Remove(ctx, name),
	}
}

func TestRelName(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		name    string
		want    string
		wantErr string
	}{
		"root":            {name: "/", want: "."},
		"file":            {name: "/etc/motd", want: "etc/motd"},
		"dot_file":        {name: "/etc/.hidden", want: "etc/.hidden"},
		"dot_dot_prefix":  {name: "/etc/..x", want: "etc/..x"},
		"empty":           {name: "", wantErr: `read "": name is empty (write an absolute path such as "/etc/motd")`},
		"parent":          {name: "../x", wantErr: `read "../x": path leaves the root /r (".." is not allowed in a name)`},
		"parent_in_abs":   {name: "/a/../../x", wantErr: `read "/a/../../x": path leaves the root /r (".." is not allowed in a name)`},
		"parent_at_end":   {name: "/etc/..", wantErr: `read "/etc/..": path leaves the root /r (".." is not allowed in a name)`},
		"relative":        {name: "relative", wantErr: `read "relative": name must be absolute inside the root (write "/relative")`},
		"dot":             {name: ".", wantErr: `read ".": name must be absolute inside the root (write "/")`},
		"double_slash":    {name: "/etc//motd", wantErr: `read "/etc//motd": name is not clean (write "/etc/motd")`},
		"trailing_slash":  {name: "/etc/", wantErr: `read "/etc/": name is not clean (write "/etc")`},
		"dot_element":     {name: "/etc/./motd", wantErr: `read "/etc/./motd": name is not clean (write "/etc/motd")`},
		"leading_slashes": {name: "//etc", wantErr: `read "//etc": name is not clean (write "/etc")`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := relName("read", "/r", tc.name)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr || !errors.Is(err, ErrOutsideRoot) {
					t.Errorf("got %q, %v; want error %q wrapping ErrOutsideRoot", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestRealRefusesBadNames(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	dir := filepath.Join(base, "root")
	r := openReal(t, dir)
	roottest.WriteFile(t, filepath.Join(base, "x"), "outside\n", 0o644)
	before := roottest.State(t, base)
	for _, name := range []string{"../x", "/a/../../x", "/../x", "relative", "x", "", "/etc//x"} {
		for op, err := range allOps(t, r, name) {
			if !errors.Is(err, ErrOutsideRoot) {
				t.Errorf("%s %q: got %v, want ErrOutsideRoot", op, name, err)
			}
		}
	}
	if after := roottest.State(t, base); after != before {
		t.Errorf("the tree changed")
	}
}

// escapeTree makes base/root with symlinks that lead out of it to
// base/outside, if followed as the machine's kernel would follow them:
//
//	/slash -> /                        (absolute, to the real root)
//	/abs -> <base>/outside             (absolute)
//	/etc -> sub/up -> ../../outside    (relative chain)
//	/absfile -> <base>/outside/secret  (absolute, final element)
//	/absup -> /../outside              (absolute, then above the root)
func escapeTree(t *testing.T) (dir, outside string) {
	t.Helper()
	base := t.TempDir()
	dir, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	roottest.WriteFile(t, filepath.Join(outside, "secret"), "secret\n", 0o600)
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	roottest.Symlink(t, "/", filepath.Join(dir, "slash"))
	roottest.Symlink(t, outside, filepath.Join(dir, "abs"))
	roottest.Symlink(t, "sub/up", filepath.Join(dir, "etc"))
	roottest.Symlink(t, "../../outside", filepath.Join(dir, "sub/up"))
	roottest.Symlink(t, filepath.Join(outside, "secret"), filepath.Join(dir, "absfile"))
	roottest.Symlink(t, "/../outside", filepath.Join(dir, "absup"))
	return dir, outside
}

// escapeNames are names of escapeTree whose resolution climbs above the
// root through "..": Real refuses them, as before issue 12.
func escapeNames() map[string][]string {
	return map[string][]string{
		"relative_chain":            {"/etc/secret", "/etc/new", "/etc/newdir/x"},
		"absolute_then_dot_dot":     {"/absup/secret", "/absup/new"},
		"absolute_dot_dot_via_link": {"/slash/absup/secret"},
	}
}

// insideNames are names of escapeTree through absolute symlinks, which
// resolve inside the root as chroot(2) resolves them (issue 12): through
// /slash and /abs they lead to ROOT/<base>/outside, never to
// <base>/outside.
func insideNames(outside string) []string {
	viaSlash := "/slash" + outside
	return []string{
		viaSlash + "/secret", viaSlash + "/new", viaSlash + "/newdir/x",
		"/abs/secret", "/abs/new", "/abs/newdir/x", "/absfile",
	}
}

func TestRealRefusesEscapes(t *testing.T) {
	t.Parallel()
	dir, outside := escapeTree(t)
	r := openReal(t, dir)
	before := roottest.State(t, outside)
	for how, names := range escapeNames() {
		for _, name := range names {
			for op, err := range allOps(t, r, name) {
				want := fmt.Sprintf(`%s %s: path leaves the root %s (a symlink or ".." points outside it)`, op, name, dir)
				if !errors.Is(err, ErrOutsideRoot) || err.Error() != want {
					t.Errorf("%s: got %v, want %q", how, err, want)
				}
			}
		}
	}
	for _, name := range insideNames(outside) {
		for op, err := range allOps(t, r, name) {
			if errors.Is(err, ErrOutsideRoot) {
				t.Errorf("%s %s: got %v, want it resolved inside the root", op, name, err)
			}
		}
	}
	if after := roottest.State(t, outside); after != before {
		t.Errorf("the tree outside the root changed")
	}
}

// TestRealAbsoluteSymlinksResolveInside writes and reads through
// absolute symlinks: each lands where chroot(2) into the root would put
// it, ROOT/<target>, and nothing outside the root changes.
func TestRealAbsoluteSymlinksResolveInside(t *testing.T) {
	t.Parallel()
	dir, outside := escapeTree(t)
	r := openReal(t, dir)
	ctx := t.Context()
	before := roottest.State(t, outside)
	// /abs dangles until ROOT/<outside> is made: kplay does not make
	// a directory behind a symlink (mkdir -p does not either).
	if err := r.WriteFile(ctx, "/abs/new", []byte("in\n"), 0o644, -1, -1); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("write /abs/new: got %v, want ENOTDIR (ROOT%s is missing)", err, outside)
	}
	// Through /slash, the missing directories are made in the root.
	for _, name := range []string{"/slash" + outside + "/other", "/abs/new", "/absfile"} {
		if err := r.WriteFile(ctx, name, []byte(name+"\n"), 0o644, -1, -1); err != nil {
			t.Errorf("write %s: %v", name, err)
		}
	}
	// A write replaces a final symlink rather than follow it.
	if fi, err := os.Lstat(filepath.Join(dir, "absfile")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("write /absfile: got %v, %v; want the symlink replaced by a file", fi, err)
	}
	for _, name := range []string{"new", "other"} {
		got, err := os.ReadFile(filepath.Join(dir, outside, name))
		if err != nil || !strings.HasSuffix(string(got), name+"\n") {
			t.Errorf("ROOT%s/%s: got %q, %v", outside, name, got, err)
		}
	}
	if got, err := r.ReadFile(ctx, "/abs/other"); err != nil || string(got) != "/slash"+outside+"/other\n" {
		t.Errorf("read /abs/other: got %q, %v", got, err)
	}
	if after := roottest.State(t, outside); after != before {
		t.Errorf("the tree outside the root changed")
	}
}

func TestRealNotExist(t *testing.T) {
	t.Parallel()
	r := openReal(t, t.TempDir())
	ctx := t.Context()
	_, err := r.Lstat(ctx, "/nope")
	if !errors.Is(err, fs.ErrNotExist) || err.Error() != "lstat /nope: no such file or directory" {
		t.Errorf("lstat: got %v", err)
	}
	_, err = r.ReadFile(ctx, "/nope/x")
	if !errors.Is(err, fs.ErrNotExist) || err.Error() != "read /nope/x: no such file or directory" {
		t.Errorf("read: got %v", err)
	}
}

func TestOpenRealMissingRoot(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "fresh", "root")
	r, err := OpenReal(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := t.Context()

	for _, name := range []string{"/", "/etc/motd"} {
		if _, err := r.Lstat(ctx, name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("lstat %s: got %v, want fs.ErrNotExist", name, err)
		}
		if _, err := r.ReadFile(ctx, name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("read %s: got %v, want fs.ErrNotExist", name, err)
		}
	}
	for op, err := range allOps(t, r, "/etc/motd") {
		if op == "lstat" || op == "read" || op == "readlink" || op == "readdir" {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: got %v, want fs.ErrNotExist", op, err)
			}
			continue
		}
		want := fmt.Sprintf("%s /etc/motd: root %s does not exist", op, dir)
		if !errors.Is(err, ErrNoRoot) || err.Error() != want {
			t.Errorf("got %v, want %q", err, want)
		}
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("root: got %v, want it still missing", err)
	}
	if _, err := r.Lstat(ctx, "../x"); !errors.Is(err, ErrOutsideRoot) {
		t.Errorf("bad name: got %v, want ErrOutsideRoot", err)
	}
}

func TestOpenRealCreateAtFirstWrite(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "fresh", "root")
	r, err := OpenReal(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Lstat(t.Context(), "/etc"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lstat before the first write: got %v, want ErrNotExist", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "..")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the root was made before the first write: %v", err)
	}
	if err := r.WriteFile(t.Context(), "/etc/motd", []byte("hi\n"), 0o644, -1, -1); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "etc/motd")); err != nil || string(got) != "hi\n" {
		t.Errorf("got %q, %v", got, err)
	}
	if r.Root() != dir {
		t.Errorf("Root: got %q, want %q", r.Root(), dir)
	}
}

func TestOpenRealNotADirectory(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	roottest.WriteFile(t, file, "", 0o644)
	_, err := OpenReal(file, true)
	if want := "open root " + file + ": not a directory"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

func TestRealReadLocal(t *testing.T) {
	t.Parallel()
	local := t.TempDir()
	r := openReal(t, t.TempDir())
	roottest.WriteFile(t, filepath.Join(local, "motd"), "local\n", 0o600)
	got, err := r.ReadLocal(t.Context(), filepath.Join(local, "motd"))
	if err != nil || string(got) != "local\n" {
		t.Errorf("got %q, %v", got, err)
	}
	missing := filepath.Join(local, "none")
	_, err = r.ReadLocal(t.Context(), missing)
	if want := "read local file " + missing + ": no such file or directory"; !errors.Is(err, fs.ErrNotExist) || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

func TestRealWriteFileRemovesStaleTemps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := openReal(t, dir)
	dead := 4194000
	if err := syscall.Kill(dead, 0); err != syscall.ESRCH {
		t.Skipf("pid %d is in use here", dead)
	}
	stale := filepath.Join(dir, "etc/.apiserver-key.pem.kplay-"+strconv.Itoa(dead)+"-3")
	roottest.WriteFile(t, stale, "OLD KEY", 0o600)
	other := filepath.Join(dir, "etc/.apiserver-key.pem.kplay-"+strconv.Itoa(os.Getpid())+"-1")
	roottest.WriteFile(t, other, "a temp of a live run", 0o600)
	if err := r.WriteFile(t.Context(), "/etc/apiserver-key.pem", []byte("NEW KEY"), 0o600, -1, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(stale); !os.IsNotExist(err) {
		t.Errorf("the temp file of a dead run is still there: %v", err)
	}
	if _, err := os.Lstat(other); err != nil {
		t.Errorf("the temp file of a live run was removed: %v", err)
	}
}

// TestRealReadsRegularFilesOnly: a named pipe planted where kplay reads
// (/etc/passwd, to look up an owner) would block it for ever, and a
// device such as /dev/zero would fill its memory; both are refused at
// once, without a read.
func TestRealReadsRegularFilesOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "etc/passwd"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{"/etc/passwd": "read /etc/passwd: a named pipe, not a regular file (kplay reads only regular files in the root; remove it)"}
	if os.Geteuid() == 0 {
		// The device numbers of /dev/zero: major 1, minor 5.
		if err := syscall.Mknod(filepath.Join(dir, "etc/group"), syscall.S_IFCHR|0o644, 1<<8|5); err != nil {
			t.Fatal(err)
		}
		tests["/etc/group"] = "read /etc/group: a device, not a regular file (kplay reads only regular files in the root; remove it)"
	}
	r := openReal(t, dir)
	for name, want := range tests {
		if _, err := r.ReadFile(t.Context(), name); err == nil || err.Error() != want {
			t.Errorf("ReadFile(%s): got %v, want %s", name, err, want)
		}
	}
	// The src of a file step, outside the root.
	local := filepath.Join(dir, "etc/passwd")
	want := "read local file " + local + ": a named pipe, not a regular file (give a regular file)"
	if _, err := r.ReadLocal(t.Context(), local); err == nil || err.Error() != want {
		t.Errorf("ReadLocal(%s): got %v, want %s", local, err, want)
	}
}

// TestTempName: every temp name fits in NAME_MAX whatever the name it
// stands beside (1 to 255 bytes, of characters of 1 to 4 bytes, or not
// UTF-8 at all), keeps as much of it as fits without splitting a
// character, and reads back as a temp of its pid.
func TestTempName(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ char string }{
		"ascii":           {char: "a"},
		"two_byte_utf8":   {char: "é"},
		"three_byte_utf8": {char: "€"},
		"four_byte_utf8":  {char: "😀"},
		"mixed_utf8":      {char: "a€é😀"},
		"newline":         {char: "\n"},
		"not_utf8":        {char: "\xff\x80"},
		"temp_name":       {char: ".x.kplay-1-2"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			long := strings.Repeat(tc.char, nameMax)
			for size := 1; size <= nameMax; size++ {
				base := long[:size]
				for _, pid := range []int{1, 4194304} {
					for _, n := range []uint64{1, 1 << 63} {
						got := tempName(base, pid, n)
						suffix := ".kplay-" + strconv.Itoa(pid) + "-" + strconv.FormatUint(n, 10)
						kept := strings.TrimSuffix(got[1:], suffix)
						switch m := tempPattern.FindStringSubmatch(got); {
						case len(got) > nameMax:
							t.Errorf("base of %d bytes: temp name of %d bytes, more than %d", size, len(got), nameMax)
						case m == nil || m[1] != strconv.Itoa(pid):
							t.Errorf("base %q: %q does not read back as a temp of pid %d (%q)", base, got, pid, m)
						case !strings.HasPrefix(got, ".") || !strings.HasSuffix(got, suffix) || !strings.HasPrefix(base, kept):
							t.Errorf("base %q: got %q, want . + a prefix of it + %q", base, got, suffix)
						case utf8.ValidString(base) && !utf8.ValidString(got):
							t.Errorf("base %q: got %q, split a character", base, got)
						case len(kept) < len(base) && len(got) <= nameMax-utf8.UTFMax:
							t.Errorf("base of %d bytes: got %d bytes, cut more than a character", size, len(got))
						}
					}
				}
			}
		})
	}
}

// TestRealRemovesStaleTempsOfLongNames: the temps of names of 255 bytes,
// or with a newline, left by a dead run are found and removed, files and
// directories alike; a live run's are kept.
func TestRealRemovesStaleTempsOfLongNames(t *testing.T) {
	t.Parallel()
	dead := 4194000
	if err := syscall.Kill(dead, 0); err != syscall.ESRCH {
		t.Skipf("pid %d is in use here", dead)
	}
	dir := t.TempDir()
	r := openReal(t, dir)
	etc := filepath.Join(dir, "etc")
	staleFiles := []string{tempName(strings.Repeat("k", nameMax), dead, 3), tempName("a\nb", dead, 4)}
	staleDir := tempName(strings.Repeat("€", 85), dead, 5)
	live := tempName(strings.Repeat("k", nameMax), os.Getpid(), 1<<40)
	for _, n := range append(staleFiles, live) {
		roottest.WriteFile(t, filepath.Join(etc, n), "OLD KEY", 0o600)
	}
	if err := os.Mkdir(filepath.Join(etc, staleDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile(t.Context(), "/etc/x", nil, 0o644, -1, -1); err != nil {
		t.Fatal(err)
	}
	for _, n := range append(staleFiles, staleDir) {
		if _, err := os.Lstat(filepath.Join(etc, n)); !os.IsNotExist(err) {
			t.Errorf("%q of a dead run is still there: %v", n, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(etc, live)); err != nil {
		t.Errorf("the temp of a live run was removed: %v", err)
	}
}

// TestRealMkdirSkipsLeftoverTemp: a temp directory that an earlier
// process with our pid left (a container's kplay is often pid 1) is
// skipped, not an error, and not removed.
func TestRealMkdirSkipsLeftoverTemp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := openReal(t, dir)
	ctx := t.Context()
	leftover := filepath.Join(dir, tempName("d", os.Getpid(), 1))
	if err := os.Mkdir(leftover, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := r.Mkdir(ctx, "/d", 0o750, -1, -1); err != nil {
		t.Fatal(err)
	}
	if fi, err := r.Lstat(ctx, "/d"); err != nil || fi.Mode != fs.ModeDir|0o750 {
		t.Errorf("got %+v, %v; want a directory 0750", fi, err)
	}
	if _, err := os.Lstat(leftover); err != nil {
		t.Errorf("the leftover: %v", err)
	}
}
