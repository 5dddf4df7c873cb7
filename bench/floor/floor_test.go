package main

import (
	"go/parser"
	"go/token"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestFloorImportsWhatKplayImports: the floor links every package that
// kplay's packages import from outside the module, and nothing else, so
// that its start-up stays the floor of kplay's. When it fails, the
// message lists the packages to add or remove in main.go.
func TestFloorImportsWhatKplayImports(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH to list kplay's imports with")
	}
	out, err := exec.Command(goTool, "list", "-f", `{{join .Imports "\n"}}`,
		"github.com/kplay-dev/kplay/cmd/kplay", "github.com/kplay-dev/kplay/engine",
		"github.com/kplay-dev/kplay/builtins/...", "github.com/kplay-dev/kplay/host/...",
		"github.com/kplay-dev/kplay/ui", "github.com/kplay-dev/kplay/lint").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var want []string
	for p := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if p != "C" && !strings.HasPrefix(p, "github.com/kplay-dev/kplay") && !slices.Contains(want, p) {
			want = append(want, p)
		}
	}
	slices.Sort(want)
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		got = append(got, p)
	}
	slices.Sort(got)
	for _, p := range want {
		if !slices.Contains(got, p) {
			t.Errorf("kplay imports %s: add _ %q to bench/floor/main.go", p, p)
		}
	}
	for _, p := range got {
		if !slices.Contains(want, p) {
			t.Errorf("kplay no longer imports %s: remove it from bench/floor/main.go", p)
		}
	}
}
