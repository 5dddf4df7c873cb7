package builtins

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kplay-dev/kplay/host/roottest"
)

func TestRequireFile(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	plan := mustEvaluate(t, `
require_file("/usr/lib/coreos/kubelet-wrapper", msg = "this playbook needs CoreOS 962.0.0 or later")
file("/etc/after", content = "x")
`)
	_, err := apply(t, plan, root, false)
	want := `play.star:2:13: require_file /usr/lib/coreos/kubelet-wrapper: /usr/lib/coreos/kubelet-wrapper is missing in root ` + root + `: this playbook needs CoreOS 962.0.0 or later`
	if err == nil || relErr(err) != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	if _, exists := readDirNames(t, root)["etc"]; exists {
		t.Error("a step after the failed requirement was applied")
	}
	roottest.WriteFile(t, filepath.Join(root, "usr/lib/coreos/kubelet-wrapper"), "#!/bin/sh\n", 0o755)
	if got := actions(mustApply(t, plan, root, false)); !slices.Equal(got, []string{"-", "create"}) {
		t.Errorf("with the file: got %v, want [- create]", got)
	}
	if _, err := evaluate(t, playbook(t, `require_file("usr/x")`, nil), nil); err == nil || !strings.Contains(err.Error(), `"usr/x" is not absolute`) {
		t.Errorf("relative path: got %v", err)
	}
}

func readDirNames(t *testing.T, dir string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	matches, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, m := range matches {
		names[filepath.Base(m)] = true
	}
	return names
}
