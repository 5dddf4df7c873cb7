package builtins

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/etcdv2"
)

// filesPlaybook writes a playbook of n file steps in 100 directories, as
// bench/run.sh generates, and returns its path.
func filesPlaybook(b *testing.B, n int) string {
	b.Helper()
	var src strings.Builder
	for i := range n {
		fmt.Fprintf(&src, "file(\"/srv/bench/d%03d/f%05d.conf\", content = \"setting = %d\\n\")\n", i%100, i, i)
	}
	name := filepath.Join(b.TempDir(), "files.star")
	if err := os.WriteFile(name, []byte(src.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return name
}

// applyPlan checks (dry) or converges plan against root and fails b on
// an error or on a step count other than n.
func applyPlan(b *testing.B, plan *engine.Plan, root string, dry bool, n int) {
	b.Helper()
	real, err := host.OpenReal(root, !dry, host.WithEtcd(etcdv2.New))
	if err != nil {
		b.Fatal(err)
	}
	defer real.Close()
	apply := engine.Converge
	if dry {
		apply = engine.Check
	}
	results, err := apply(b.Context(), plan, real, engine.Selection{}, nil)
	if err != nil || len(results) != n {
		b.Fatalf("got %d results, %v; want %d", len(results), err, n)
	}
}

// BenchmarkPlan1000 measures the three phases of a 1,000-step plan of
// file steps: evaluation (parse, run, validate), check (the diff of every
// step against a fresh and a converged root, through the dry host) and
// run (writing every file into a fresh root: temp file, fsync, rename).
func BenchmarkPlan1000(b *testing.B) {
	const n = 1000
	pb := filesPlaybook(b, n)
	evaluate := func(b *testing.B) *engine.Plan {
		plan, err := engine.Evaluate(b.Context(), engine.EvalOptions{Playbook: pb, Builtins: Predeclared()})
		if err != nil || len(plan.Steps) != n {
			b.Fatalf("evaluate: %v", err)
		}
		return plan
	}
	b.Run("evaluate", func(b *testing.B) {
		for b.Loop() {
			evaluate(b)
		}
	})
	plan := evaluate(b)
	b.Run("check-fresh", func(b *testing.B) {
		root := filepath.Join(b.TempDir(), "root")
		for b.Loop() {
			applyPlan(b, plan, root, true, n)
		}
	})
	b.Run("check-converged", func(b *testing.B) {
		root := filepath.Join(b.TempDir(), "root")
		applyPlan(b, plan, root, false, n)
		for b.Loop() {
			applyPlan(b, plan, root, true, n)
		}
	})
	b.Run("run-fresh", func(b *testing.B) {
		dir := b.TempDir()
		for i := 0; i < b.N; i++ {
			root := filepath.Join(dir, strconv.Itoa(i))
			applyPlan(b, plan, root, false, n)
			b.StopTimer()
			if err := os.RemoveAll(root); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}
