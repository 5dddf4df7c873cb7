package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/kplay-dev/kplay/host/roottest"
)

// shape describes every path under dir, one entry each: type and mode,
// owner, link count, and a file's content or a symlink's target; not the
// times, so that two trees made apart compare equal.
func shape(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v %d:%d", fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" links %d %q", st.Nlink, data)
		}
		rel, _ := filepath.Rel(dir, p)
		got[path.Clean("/"+filepath.ToSlash(rel))] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// batchTree is the root both ways of TestCommitMakesWhatDirectWritesMake
// start from: directories, a file behind a relative and an absolute
// symlink, a symlink where a file will go, a hard-linked file.
func batchTree(t *testing.T, dir string) {
	t.Helper()
	buildTree(t, dir, unitTree{
		"/etc/motd":                 "motd\n",
		"/etc/link":                 "-> motd",
		"/var/":                     "",
		"/cni":                      "-> /etc/kubernetes/cni",
		"/etc/kubernetes/cni/net.d": "-> /etc/cni/net.d",
		"/etc/cni/net.d/00.conf":    "{}\n",
		"/srv/rel":                  "-> ../etc",
		"/srv/old/gone":             "bye\n",
	})
	if err := os.Link(filepath.Join(dir, "etc/motd"), filepath.Join(dir, "var/motd.hard")); err != nil {
		t.Fatal(err)
	}
}

// TestCommitMakesWhatDirectWritesMake runs each sequence of writes two
// ways on copies of one root: straight on a Real, and on a recording Dry
// over a Real whose ops a Commit then makes. The trees must be the same,
// and the commit must leave no temp file.
func TestCommitMakesWhatDirectWritesMake(t *testing.T) {
	t.Parallel()
	type step func(ctx context.Context, h Host) error
	write := func(name, data string, perm fs.FileMode) step {
		return func(ctx context.Context, h Host) error {
			return h.WriteFile(ctx, name, []byte(data), perm, -1, -1)
		}
	}
	mkdir := func(name string, perm fs.FileMode) step {
		return func(ctx context.Context, h Host) error { return h.Mkdir(ctx, name, perm, -1, -1) }
	}
	chmod := func(name string, perm fs.FileMode) step {
		return func(ctx context.Context, h Host) error { return h.Chmod(ctx, name, perm) }
	}
	remove := func(name string) step {
		return func(ctx context.Context, h Host) error { return h.Remove(ctx, name) }
	}
	symlink := func(target, name string) step {
		return func(ctx context.Context, h Host) error { return h.Symlink(ctx, target, name) }
	}
	uid := os.Getuid()
	chown := func(name string) step {
		return func(ctx context.Context, h Host) error { return h.Chown(ctx, name, uid, uid) }
	}
	tests := map[string][]step{
		"files in new directories": {
			mkdir("/srv/app", 0o700), write("/srv/app/a.conf", "a\n", 0o600),
			write("/srv/app/sub/b.conf", "b\n", 0o644), write("/srv/c.conf", "c\n", 0o640),
		},
		"a file written twice": {write("/etc/x", "one\n", 0o644), write("/etc/y", "y\n", 0o644), write("/etc/x", "two\n", 0o600)},
		"a file written, then its mode set": {
			write("/etc/x", "x\n", 0o644), chmod("/etc/x", 0o600), chown("/etc/x"),
		},
		"a file written, then its directory closed": {
			write("/srv/d/f", "f\n", 0o644), chmod("/srv/d", 0o500), chown("/srv/d"),
		},
		"writes through symlinked directories": {
			write("/cni/net.d/10.conf", "{10}\n", 0o644), write("/etc/cni/net.d/20.conf", "{20}\n", 0o644),
			write("/srv/rel/motd2", "m\n", 0o644), chmod("/etc/kubernetes/cni/net.d/10.conf", 0o600),
		},
		"a symlink at the file replaced": {write("/etc/link", "now a file\n", 0o644)},
		"a file removed, then written again": {
			remove("/etc/motd"), write("/etc/motd", "new motd\n", 0o644),
		},
		"a directory removed, then a file in its place": {
			remove("/srv/old/gone"), remove("/srv/old"), write("/srv/old", "a file now\n", 0o644),
		},
		"a file, then a symlink to it, then a write through the link": {
			write("/srv/target", "t\n", 0o644), symlink("target", "/srv/via"), write("/srv/rel/through", "r\n", 0o644),
		},
		"a symlink made, then written through": {
			symlink("/etc/cni", "/srv/cni"), write("/srv/cni/net.d/30.conf", "{30}\n", 0o644),
		},
		"a hard-linked file's mode set": {chmod("/var/motd.hard", 0o600), write("/var/after", "a\n", 0o644)},
		"a written file removed":        {write("/etc/tmp", "t\n", 0o644), remove("/etc/tmp"), write("/etc/z", "z\n", 0o644)},
	}
	for name, steps := range tests {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			base := t.TempDir()
			direct, batched := filepath.Join(base, "direct"), filepath.Join(base, "batched")
			batchTree(t, direct)
			batchTree(t, batched)

			d := openReal(t, direct)
			for i, s := range steps {
				if err := s(ctx, d); err != nil {
					t.Fatalf("direct, step %d: %v", i, err)
				}
			}
			r := openReal(t, batched)
			dry := NewDry(r)
			dry.Record()
			for i, s := range steps {
				if err := s(ctx, dry); err != nil {
					t.Fatalf("dry, step %d: %v", i, err)
				}
			}
			if failed, err := r.Commit(ctx, dry.Ops()); err != nil {
				t.Fatalf("commit: op %d: %v", failed, err)
			}
			want, got := shape(t, direct), shape(t, batched)
			if !maps.Equal(want, got) {
				t.Errorf("the trees differ (-direct +batched):\n%s", diffTrees(want, got))
			}
			for p := range got {
				if tempPattern.MatchString(filepath.Base(p)) {
					t.Errorf("a temp file is left: %s", p)
				}
			}
		})
	}
}

// TestCommitOrder follows a commit through its failpoints: every staged
// temp file holds its whole content before the sync, and no target is
// new before it; the renames come after the sync, in the order of the
// ops; nothing is left staged at the end. Both ways of syncing: a few
// files (fsyncs) and more than smallBatch (syncfs).
func TestCommitOrder(t *testing.T) {
	// Not parallel: it sets the package's failpoint.
	for _, n := range []int{4, smallBatch + 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) { commitOrder(t, n) })
	}
}

func commitOrder(t *testing.T, n int) {
	dir := t.TempDir()
	roottest.WriteFile(t, filepath.Join(dir, "etc/a"), "old a\n", 0o644)
	r := openReal(t, dir)
	dry := NewDry(r)
	dry.Record()
	ctx := t.Context()
	files := []string{"/etc/a", "/etc/b", "/srv/c", "/etc/d"}
	for i := len(files); i < n; i++ {
		files = append(files, fmt.Sprintf("/srv/d%d/f%d", i%5, i))
	}
	for _, f := range files {
		if err := dry.WriteFile(ctx, f, []byte("new "+f+"\n"), 0o600, -1, -1); err != nil {
			t.Fatal(err)
		}
	}
	var points []string
	failpoint = func(where string) {
		points = append(points, where)
		for _, f := range files {
			data, err := os.ReadFile(filepath.Join(dir, f))
			isNew := err == nil && string(data) == "new "+f+"\n"
			renamed := slices.Contains(points, "renamed "+f)
			if isNew != renamed {
				t.Errorf("at %q: %s is new: %v, renamed: %v", where, f, isNew, renamed)
			}
			if !renamed && slices.Contains(points, "synced the staged files") {
				// Its temp file is whole, beside it.
				temps := tempsIn(t, filepath.Dir(filepath.Join(dir, f)), filepath.Base(f))
				if len(temps) != 1 || temps[0] != "new "+f+"\n" {
					t.Errorf("at %q: the temp files of %s hold %q, want its whole new content", where, f, temps)
				}
			}
		}
	}
	defer func() { failpoint = nil }()
	if _, err := r.Commit(ctx, dry.Ops()); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range files {
		want = append(want, "staged "+f)
	}
	want = append(want, "synced the staged files")
	for _, f := range files {
		want = append(want, "renamed "+f)
	}
	want = append(want, "synced the batch")
	if !slices.Equal(points, want) {
		t.Errorf("failpoints:\n got %q\nwant %q", points, want)
	}
	for _, f := range files {
		if temps := tempsIn(t, filepath.Dir(filepath.Join(dir, f)), filepath.Base(f)); len(temps) > 0 {
			t.Errorf("temp files of %s left: %q", f, temps)
		}
	}
}

// tempsIn returns the contents of the temp files of base in dir.
func tempsIn(t *testing.T, dir, base string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if tempPattern.MatchString(e.Name()) && strings.HasPrefix(e.Name(), "."+base+".kplay-") {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(data))
		}
	}
	return out
}

// TestCommitStopsAtTheFailingOp: when the root changed since the Dry read
// it (here a file now stands where a directory was to be made), Commit
// returns the failing op with its error; what came before it is made,
// nothing after it, and no temp file stays.
func TestCommitStopsAtTheFailingOp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := openReal(t, dir)
	dry := NewDry(r)
	dry.Record()
	ctx := t.Context()
	for _, f := range []string{"/a/x", "/b/y", "/c/z"} {
		if err := dry.WriteFile(ctx, f, []byte(f), 0o644, -1, -1); err != nil {
			t.Fatal(err)
		}
	}
	roottest.WriteFile(t, filepath.Join(dir, "b"), "in the way\n", 0o644)
	failed, err := r.Commit(ctx, dry.Ops())
	if failed != 1 || !errors.Is(err, syscall.ENOTDIR) || !strings.HasPrefix(err.Error(), "write /b/y: ") {
		t.Fatalf("commit: op %d, %v; want op 1, write /b/y: not a directory", failed, err)
	}
	want := map[string]string{
		"/":    "drwxr-xr-x",
		"/a":   "drwxr-xr-x",
		"/a/x": `-rw-r--r-- links 1 "/a/x"`,
		"/b":   `-rw-r--r-- links 1 "in the way\n"`,
	}
	got := shape(t, dir)
	for p, desc := range got {
		// Owners are whoever runs the test.
		fields := strings.Fields(desc)
		got[p] = strings.Join(slices.Delete(fields, 1, 2), " ")
	}
	if !maps.Equal(got, want) {
		t.Errorf("the root after the failed commit (-want +got):\n%s", diffTrees(want, got))
	}
}

// TestCommitKeepsTheOrderOfChanges: a remove and a mkdir that follow a
// write wait for its rename, so when the rename fails (here the target
// is a mount point: EBUSY, as a bind-mounted /etc/resolv.conf in a
// container) nothing after it has happened.
func TestCommitKeepsTheOrderOfChanges(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("a bind mount needs root")
	}
	dir := t.TempDir()
	roottest.WriteFile(t, filepath.Join(dir, "etc/resolv.conf"), "nameserver 10.0.0.1\n", 0o644)
	roottest.WriteFile(t, filepath.Join(dir, "etc/old"), "old\n", 0o644)
	src := filepath.Join(t.TempDir(), "resolv.conf")
	roottest.WriteFile(t, src, "host's\n", 0o644)
	target := filepath.Join(dir, "etc/resolv.conf")
	if err := syscall.Mount(src, target, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("bind mount: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(target, syscall.MNT_DETACH) })
	r := openReal(t, dir)
	dry := NewDry(r)
	dry.Record()
	ctx := t.Context()
	if err := dry.WriteFile(ctx, "/etc/resolv.conf", []byte("nameserver 10.0.0.2\n"), 0o644, -1, -1); err != nil {
		t.Fatal(err)
	}
	if err := dry.Remove(ctx, "/etc/old"); err != nil {
		t.Fatal(err)
	}
	if err := dry.Mkdir(ctx, "/etc/kubernetes/ssl", 0o700, -1, -1); err != nil {
		t.Fatal(err)
	}
	failed, err := r.Commit(ctx, dry.Ops())
	if failed != 0 || !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("commit: op %d, %v; want op 0, EBUSY", failed, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "etc/old")); err != nil {
		t.Errorf("/etc/old, removed after the failed write: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "etc/kubernetes")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("/etc/kubernetes, made after the failed write: %v", err)
	}
	if temps := tempsIn(t, filepath.Join(dir, "etc"), "resolv.conf"); len(temps) > 0 {
		t.Errorf("temp files left: %q", temps)
	}
}

// TestCommitNeverWritesThroughAMovedDirectory: a handle kept by an
// earlier read leads to its directory wherever it went; once that
// directory is moved out of the root, a commit writes at the path, in
// the root, and never through the handle.
func TestCommitNeverWritesThroughAMovedDirectory(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	dir, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	roottest.WriteFile(t, filepath.Join(dir, "srv/app/app.conf"), "old\n", 0o644)
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	r := openReal(t, dir)
	ctx := t.Context()
	if _, err := r.ReadFile(ctx, "/srv/app/app.conf"); err != nil { // keeps a handle of /srv/app
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "srv/app"), filepath.Join(outside, "app")); err != nil {
		t.Fatal(err)
	}
	dry := NewDry(r)
	dry.Record()
	if err := dry.WriteFile(ctx, "/srv/app/app.conf", []byte("new\n"), 0o644, -1, -1); err != nil {
		t.Fatal(err)
	}
	if failed, err := r.Commit(ctx, dry.Ops()); err != nil {
		t.Fatalf("commit: op %d: %v", failed, err)
	}
	if data, err := os.ReadFile(filepath.Join(outside, "app/app.conf")); err != nil || string(data) != "old\n" {
		t.Errorf("outside the root: %q, %v; want it untouched", data, err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "srv/app/app.conf")); err != nil || string(data) != "new\n" {
		t.Errorf("in the root: %q, %v; want the new content", data, err)
	}
}

// TestCommitRefusesKplaysState: a symlink planted after the check, which
// the run's dry pass follows into /var/lib/kplay, makes the commit fail
// at that write, which never happens.
func TestCommitRefusesKplaysState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	roottest.WriteFile(t, filepath.Join(dir, "var/lib/kplay/pending.json"), `{"pending": ["systemctl restart a.service"]}`+"\n", 0o600)
	roottest.Symlink(t, "../var/lib/kplay", filepath.Join(dir, "srv/zz"))
	r := openReal(t, dir)
	dry := NewDry(r)
	dry.Record()
	ctx := t.Context()
	if err := dry.WriteFile(ctx, "/srv/zz/pending.json", []byte("{}\n"), 0o644, -1, -1); err != nil {
		t.Fatal(err)
	}
	failed, err := r.Commit(ctx, dry.Ops())
	if failed != 0 || !strings.Contains(err.Error(), "write /srv/zz/pending.json: a symlink in the root makes it /var/lib/kplay/pending.json") {
		t.Fatalf("commit: op %d, %v; want op 0 refused as kplay's state", failed, err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "var/lib/kplay/pending.json")); !strings.Contains(string(data), "restart") {
		t.Errorf("the journal was overwritten: %q", data)
	}
}

// TestCommitPublishesStateFirst: kplay's own files (Op.State) are made
// durable before anything else of the batch is made, even the directory
// of its first file; a remove that follows waits for that file.
func TestCommitPublishesStateFirst(t *testing.T) {
	// Not parallel: it sets the package's failpoint.
	dir := t.TempDir()
	roottest.WriteFile(t, filepath.Join(dir, "etc/old"), "old\n", 0o644)
	r := openReal(t, dir)
	dry := NewDry(r)
	dry.Record()
	ctx := t.Context()
	if err := dry.WriteFile(ctx, "/srv/new/a", []byte("a\n"), 0o644, -1, -1); err != nil {
		t.Fatal(err)
	}
	if err := dry.Remove(ctx, "/etc/old"); err != nil {
		t.Fatal(err)
	}
	state := Op{Kind: OpWrite, Name: "/var/lib/kplay/pending.json", At: "/var/lib/kplay/pending.json", Data: []byte("{}\n"), Perm: 0o600, UID: -1, GID: -1, State: true}
	var points []string
	failpoint = func(where string) {
		points = append(points, where)
		_, err := os.Stat(filepath.Join(dir, "srv"))
		if where == "synced the batch" && len(points) == 4 && err == nil {
			t.Errorf("/srv was made before kplay's state was durable")
		}
	}
	defer func() { failpoint = nil }()
	if failed, err := r.Commit(ctx, append([]Op{state}, dry.Ops()...)); err != nil {
		t.Fatalf("commit: op %d: %v", failed, err)
	}
	want := []string{"staged /var/lib/kplay/pending.json", "synced the staged files", "renamed /var/lib/kplay/pending.json", "synced the batch",
		"staged /srv/new/a", "synced the staged files", "renamed /srv/new/a", "synced the batch",
		"remove /etc/old", "synced the batch"}
	if !slices.Equal(points, want) {
		t.Errorf("failpoints:\n got %q\nwant %q", points, want)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "var/lib/kplay/pending.json")); err != nil || string(data) != "{}\n" {
		t.Errorf("the state file: %q, %v", data, err)
	}
}
