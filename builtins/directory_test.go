package builtins

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host/roottest"
)

func TestDirectory(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	plan := mustEvaluate(t, `directory("/etc/kubernetes/ssl", mode = 0o700)`)
	if got := actions(mustApply(t, plan, root, true)); !slices.Equal(got, []string{"create"}) {
		t.Fatalf("check: got %v, want [create]", got)
	}
	if got := actions(mustApply(t, plan, root, false)); !slices.Equal(got, []string{"create"}) {
		t.Fatalf("run: got %v, want [create]", got)
	}
	name := filepath.Join(root, "etc/kubernetes/ssl")
	if got := perm(t, name); got != 0o700 {
		t.Errorf("mode: got %04o, want 0700 whatever the umask", got)
	}
	if got := perm(t, filepath.Join(root, "etc/kubernetes")); got != 0o755 {
		t.Errorf("parent mode: got %04o, want 0755", got)
	}
	if got := actions(mustApply(t, plan, root, false)); !slices.Equal(got, []string{"-"}) {
		t.Fatalf("second run: got %v, want unchanged", got)
	}

	if err := os.Chmod(name, 0o755); err != nil {
		t.Fatal(err)
	}
	results := mustApply(t, plan, root, false)
	if c := results[0].Change; c.Action != engine.Update || c.Summary != "mode 0755 → 0700" {
		t.Fatalf("drift: got %v %q, want update \"mode 0755 → 0700\"", c.Action, c.Summary)
	}
	if got := perm(t, name); got != 0o700 {
		t.Errorf("mode after fixing drift: got %04o, want 0700", got)
	}
}

func TestDirectoryOverAFileFails(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	roottest.WriteFile(t, filepath.Join(root, "etc/x"), "a file", 0o644)
	plan := mustEvaluate(t, `directory("/etc/x")`)
	_, err := apply(t, plan, root, false)
	if err == nil || !strings.Contains(err.Error(), "/etc/x is a regular file, not a directory") {
		t.Fatalf("got %v, want an error saying /etc/x is a regular file", err)
	}
	if got := readFile(t, filepath.Join(root, "etc/x")); got != "a file" {
		t.Errorf("the file was changed: %q", got)
	}
}

func TestFileSeesDirectoryPlannedEarlierInCheck(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	plan := mustEvaluate(t, `
directory("/etc/kubernetes/ssl", mode = 0o700)
file("/etc/kubernetes/ssl/ca.pem", content = "CERT")
`)
	got := actions(mustApply(t, plan, root, true))
	if !slices.Equal(got, []string{"create", "create"}) {
		t.Fatalf("check: got %v, want [create create]", got)
	}
	entries, err := os.ReadDir(root)
	if err != nil || len(entries) != 0 {
		t.Fatalf("check wrote into the root: %v %v", entries, err)
	}
}

func TestDirectoryBadArguments(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ src, wantErr string }{
		"relative":  {`directory("etc")`, `"etc" is not absolute`},
		"bad_mode":  {`directory("/etc", mode = -1)`, `-1 is not a file mode`},
		"bad_group": {`directory("/etc", group = [])`, `for parameter "group": got list, want string`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := evaluate(t, playbook(t, tc.src, nil), nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(relErr(err), "play.star:1:10: ") {
				t.Fatalf("got %v, want play.star:1:10: ...%s", err, tc.wantErr)
			}
		})
	}
}
