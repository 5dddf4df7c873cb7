package playbooks

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kplay-dev/kplay/builtins"
	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/etcdv2"
	"github.com/kplay-dev/kplay/host/roottest"
	"github.com/kplay-dev/kplay/ui"
)

// The plans kplay shows, end to end: evaluation, check and the ui's text
// and JSON, held to goldens and to themselves.

var updatePlans = flag.Bool("update", false, "rewrite the plan goldens in ../testdata/plans")

// evalPlan evaluates playbook with kplay's builtins and no vars.
func evalPlan(t *testing.T, playbook string) (*engine.Plan, error) {
	t.Helper()
	return engine.Evaluate(t.Context(), engine.EvalOptions{Playbook: playbook, Builtins: builtins.Predeclared()})
}

// TestPlanGoldens checks each testdata/plans/<name>.star against an empty
// root and compares the text and JSON plans with <name>.plan.golden and
// <name>.json.golden. go test ./playbooks -run TestPlanGoldens -update rewrites them.
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
			plan, err := evalPlan(t, playbook)
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
			comparePlanGolden(t, name+".plan.golden", text.Bytes())
			comparePlanGolden(t, name+".json.golden", js.Bytes())
		})
	}
}

func comparePlanGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	if *updatePlans {
		if err := os.WriteFile(name, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("%v (run go test ./playbooks -run TestPlanGoldens -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (review, then go test ./playbooks -run TestPlanGoldens -update):\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

// TestSamePlanEveryTime evaluates and checks one playbook 20 times and
// compares the rendered plans byte for byte.
func TestSamePlanEveryTime(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"play.star": `
load("lib/parts.star", "parts")
NAMES = var("NAMES", default = "c,a,b")
conf = {n: "value of " + n for n in NAMES.split(",")}
for name, value in conf.items():
    file("/etc/conf.d/" + name, content = subst("${V}\n", {"V": value}), tags = ["conf"])
for p in sorted(set(parts)):
    directory("/var/lib/" + p, mode = 0o700)
file("/etc/key.pem-key.pem", content = "SECRET")
`,
		"lib/parts.star": `parts = ["x", "b", "x", "a"]`,
	} {
		roottest.WriteFile(t, filepath.Join(dir, name), content, 0o644)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc/conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/conf.d/a"), []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	render := func() []byte {
		plan, err := evalPlan(t, filepath.Join(dir, "play.star"))
		if err != nil {
			t.Fatal(err)
		}
		real, err := host.OpenReal(root, false, host.WithEtcd(etcdv2.New))
		if err != nil {
			t.Fatal(err)
		}
		defer real.Close()
		var text, js bytes.Buffer
		pt := ui.New(&text, ui.Options{Mode: "check"})
		results, err := engine.Check(t.Context(), plan, real, engine.Selection{}, pt.Step)
		if err != nil {
			t.Fatal(err)
		}
		if err := pt.Finish("play.star", results, nil); err != nil {
			t.Fatal(err)
		}
		if err := ui.New(&js, ui.Options{JSON: true, Mode: "check"}).Finish("play.star", results, nil); err != nil {
			t.Fatal(err)
		}
		return append(text.Bytes(), js.Bytes()...)
	}
	first := render()
	if !bytes.Contains(first, []byte("-old\n+value of a\n")) || bytes.Contains(first, []byte("SECRET")) {
		t.Fatalf("unexpected plan:\n%s", first)
	}
	for i := 1; i < 20; i++ {
		if got := render(); !bytes.Equal(got, first) {
			t.Fatalf("evaluation %d gave another plan:\n%s\nfirst:\n%s", i, got, first)
		}
	}
}
