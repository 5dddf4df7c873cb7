package builtins

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/builtins.md")

// TestReferenceIsCurrent fails when docs/builtins.md differs from the doc
// strings; `go test ./builtins -update` rewrites it.
func TestReferenceIsCurrent(t *testing.T) {
	t.Parallel()
	const name = "../docs/builtins.md"
	want := Reference()
	if *update {
		if err := os.WriteFile(name, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("%v (run go test ./builtins -update)", err)
	}
	if string(got) != want {
		t.Errorf("%s is stale; run go test ./builtins -update and commit it", name)
	}
}

func TestEveryBuiltinIsDocumented(t *testing.T) {
	t.Parallel()
	for _, b := range List() {
		sig, rest, _ := strings.Cut(b.Doc, "\n")
		if !strings.HasPrefix(sig, b.Name+"(") {
			t.Errorf("%s: doc starts with %q, want the call signature", b.Name, sig)
		}
		if strings.TrimSpace(rest) == "" {
			t.Errorf("%s: doc has no description", b.Name)
		}
	}
}
