package roottest

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestStateSeesEveryKindOfChange(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	if err := os.WriteFile(name, []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	changes := map[string]func() error{
		"content": func() error { return os.WriteFile(name, []byte("b"), 0o644) },
		"mode":    func() error { return os.Chmod(name, 0o600) },
		"mtime":   func() error { return os.Chtimes(name, time.Unix(1, 0), time.Unix(1, 0)) },
		"new":     func() error { return os.WriteFile(filepath.Join(dir, "g"), nil, 0o644) },
		"symlink": func() error { return os.Symlink("f", filepath.Join(dir, "l")) },
	}
	for _, what := range []string{"content", "mode", "mtime", "new", "symlink"} {
		before := State(t, dir)
		if err := changes[what](); err != nil {
			t.Fatal(err)
		}
		if State(t, dir) == before {
			t.Errorf("a change of %s left the state as it was", what)
		}
	}
	if got := State(t, filepath.Join(dir, "absent")); got != "(absent)\n" {
		t.Errorf("absent dir: got %q", got)
	}
}
