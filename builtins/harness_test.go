package builtins

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/etcdv2"
	"github.com/kplay-dev/kplay/host/roottest"
)

// playbook writes src as play.star (and any extra files, by name) into a
// fresh directory and returns the playbook's path.
func playbook(t *testing.T, src string, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range extra {
		roottest.WriteFile(t, filepath.Join(dir, name), content, 0o644)
	}
	name := filepath.Join(dir, "play.star")
	roottest.WriteFile(t, name, src, 0o644)
	return name
}

func evaluate(t *testing.T, name string, vars map[string]string) (*engine.Plan, error) {
	t.Helper()
	return engine.Evaluate(t.Context(), engine.EvalOptions{Playbook: name, Vars: vars, Builtins: Predeclared()})
}

// mustEvaluate evaluates the playbook source and fails the test on error.
func mustEvaluate(t *testing.T, src string) *engine.Plan {
	t.Helper()
	plan, err := evaluate(t, playbook(t, src, nil), nil)
	if err != nil {
		t.Fatalf("evaluate: %v", err)
	}
	return plan
}

// apply checks (dry) or converges the plan against the root directory.
// The root's host has the real etcd client; options add to it, such as
// a Kubernetes client.
func apply(t *testing.T, plan *engine.Plan, root string, dry bool, options ...host.Option) ([]engine.Result, error) {
	t.Helper()
	real, err := host.OpenReal(root, !dry, append([]host.Option{host.WithEtcd(etcdv2.New)}, options...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	if dry {
		return engine.Check(t.Context(), plan, real, engine.Selection{}, nil)
	}
	return engine.Converge(t.Context(), plan, real, engine.Selection{}, nil)
}

func mustApply(t *testing.T, plan *engine.Plan, root string, dry bool) []engine.Result {
	t.Helper()
	results, err := apply(t, plan, root, dry)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return results
}

// actions lists the action of each result, "-" for an unchanged or
// skipped step, for compact comparisons.
func actions(results []engine.Result) []string {
	var out []string
	for _, r := range results {
		if r.Status != engine.Changed {
			out = append(out, "-")
			continue
		}
		out = append(out, r.Change.Action.String())
	}
	return out
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func perm(t *testing.T, name string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}
