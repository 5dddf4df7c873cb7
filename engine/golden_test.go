package engine_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/etcdv2"
	"github.com/kplay-dev/kplay/ui"
)

var update = flag.Bool("update", false, "rewrite the plan goldens in testdata/plans")

// TestPlanGoldens checks each testdata/plans/<name>.star against an empty
// root and compares the text and JSON plans with <name>.plan.golden and
// <name>.json.golden. go test ./engine -update rewrites them.
func TestPlanGoldens(t *testing.T) {
	t.Parallel()
	playbooks, err := filepath.Glob("../testdata/plans/*.star")
	if err != nil || len(playbooks) == 0 {
		t.Fatalf("no plan goldens: %v", err)
	}
	for _, playbook := range playbooks {
		name := strings.TrimSuffix(playbook, ".star")
		t.Run(filepath.Base(name), func(t *testing.T) {
			t.Parallel()
			plan, err := eval(t, playbook, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			real, err := host.OpenReal(filepath.Join(t.TempDir(), "fresh"), false, host.WithEtcd(etcdv2.New))
			if err != nil {
				t.Fatal(err)
			}
			defer real.Close()
			var text, js bytes.Buffer
			p := ui.New(&text, ui.Options{Mode: "check", Verbosity: ui.Every})
			results, err := engine.Check(t.Context(), plan, real, engine.Selection{}, p.Step)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Finish(playbook, results, nil); err != nil {
				t.Fatal(err)
			}
			if err := ui.New(&js, ui.Options{JSON: true, Mode: "check"}).Finish(playbook, results, nil); err != nil {
				t.Fatal(err)
			}
			compareGolden(t, name+".plan.golden", text.Bytes())
			compareGolden(t, name+".json.golden", js.Bytes())
		})
	}
}

func compareGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(name, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("%v (run go test ./engine -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (review, then go test ./engine -update):\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}
