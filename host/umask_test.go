package host

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// umaskChildEnv, when set, makes TestRootModesIgnoreUmask the child: it
// converges a fresh root under the umask its parent gave it.
const umaskChildEnv = "KPLAY_TEST_UMASK_ROOT"

// TestRootModesIgnoreUmask makes a fresh root, its lock and a directory
// under umask 077 (in a child process, since the umask is the process's)
// and expects the modes kplay promises: 0755 for directories it makes on
// its own, the playbook's mode for the others, 0644 for the lock.
func TestRootModesIgnoreUmask(t *testing.T) {
	t.Parallel()
	if dir := os.Getenv(umaskChildEnv); dir != "" {
		umaskChild(t, dir)
		return
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("sh not found")
	}
	dir := filepath.Join(t.TempDir(), "a", "root")
	cmd := exec.CommandContext(t.Context(), sh, "-c", `umask 077 && exec "$0" -test.run '^TestRootModesIgnoreUmask$' -test.v`, os.Args[0])
	cmd.Env = append(os.Environ(), umaskChildEnv+"="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	want := map[string]os.FileMode{
		"..":              0o755, // a parent of the root that the run made
		".":               0o755,
		"run":             0o755,
		"run/kplay.lock":  0o644,
		"etc":             0o755,
		"etc/kubernetes":  0o750,
		"var/lib/x":       0o755,
		"var/lib/x/a.txt": 0o640,
	}
	for name, mode := range want {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s has mode %v under umask 077, want %v", name, fi.Mode().Perm(), mode)
		}
	}
}

func umaskChild(t *testing.T, dir string) {
	if old := syscall.Umask(0o077); old != 0o077 {
		t.Fatalf("child runs under umask %o, want 077", old)
	}
	ctx := context.Background()
	r, err := OpenReal(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	unlock, err := r.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := r.Mkdir(ctx, "/etc/kubernetes", 0o750, -1, -1); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile(ctx, "/var/lib/x/a.txt", []byte("a\n"), 0o640, -1, -1); err != nil {
		t.Fatal(err)
	}
}
