package engine_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/builtins"
	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/etcdv2"
)

// fakeCoordinator stands in for fleet's etcd coordinator: it records
// what it was asked and answers Once with doneBy.
type fakeCoordinator struct {
	doneBy   string
	once     []string
	finished []bool
	locks    []string
	unlocked int
}

func (f *fakeCoordinator) Once(_ context.Context, key string) (string, func(bool) error, error) {
	f.once = append(f.once, key)
	if f.doneBy != "" {
		return f.doneBy, nil, nil
	}
	return "", func(failed bool) error { f.finished = append(f.finished, failed); return nil }, nil
}

func (f *fakeCoordinator) Lock(_ context.Context, name string) (func() error, error) {
	f.locks = append(f.locks, name)
	return func() error { f.unlocked++; return nil }, nil
}

// countingStep is a step that always has something to do and counts
// the Applies on the real host.
type countingStep struct {
	meta    engine.StepMeta
	applied *int
}

func (s *countingStep) Meta() *engine.StepMeta { return &s.meta }
func (s *countingStep) Diff(context.Context, host.Host) (engine.Change, error) {
	return engine.Change{Action: engine.Run, Summary: "always"}, nil
}
func (s *countingStep) Apply(_ context.Context, h host.Host, _ engine.Change) error {
	if _, dry := h.(*host.Dry); !dry {
		*s.applied++
	}
	return nil
}

func coordPlan(t *testing.T, applied *int) *engine.Plan {
	t.Helper()
	dir := writeTree(t, map[string]string{"play.star": `
once_step()
rolling_step()
`})
	predeclared := builtins.Predeclared()
	predeclared["once_step"] = starlark.NewBuiltin("once_step", func(thread *starlark.Thread, _ *starlark.Builtin, _ starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
		return engine.Record(thread, &countingStep{meta: engine.StepMeta{Kind: "once_step", Target: "x", Once: engine.OnceCluster}, applied: applied})
	})
	predeclared["rolling_step"] = starlark.NewBuiltin("rolling_step", func(thread *starlark.Thread, _ *starlark.Builtin, _ starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
		return engine.Record(thread, &countingStep{meta: engine.StepMeta{Kind: "rolling_step", Target: "kubelet.service", Rolling: true}, applied: applied})
	})
	plan, err := engine.Evaluate(t.Context(), engine.EvalOptions{Playbook: filepath.Join(dir, "play.star"), Builtins: predeclared})
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// A run asks the coordinator before a once step and a rolling restart
// apply, in its real pass only; a once step another host did is
// unchanged, "done by" it, and not applied.
func TestCoordinatorIsAskedBeforeApply(t *testing.T) {
	t.Parallel()
	for _, doneBy := range []string{"", "m1"} {
		applied := 0
		plan := coordPlan(t, &applied)
		co := &fakeCoordinator{doneBy: doneBy}
		real, err := host.OpenReal(t.TempDir(), true, host.WithEtcd(etcdv2.New))
		if err != nil {
			t.Fatal(err)
		}
		results, err := engine.Converge(engine.WithCoordinator(t.Context(), co), plan, real, engine.Selection{}, nil)
		real.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(co.once) != 1 || co.once[0] != engine.OnceKey(plan.Steps[0].Meta()) {
			t.Errorf("doneBy %q: Once asked for %v, want the once step's key once", doneBy, co.once)
		}
		if !slices.Equal(co.locks, []string{"restart-kubelet.service"}) || co.unlocked != 1 {
			t.Errorf("doneBy %q: locks %v, %d unlocked; want restart-kubelet.service taken and released once", doneBy, co.locks, co.unlocked)
		}
		switch doneBy {
		case "":
			if applied != 2 || !slices.Equal(co.finished, []bool{false}) || statuses(results)[0] != "run" {
				t.Errorf("won the once step: applied %d, finished %v, %v", applied, co.finished, statuses(results))
			}
		default:
			if applied != 1 || results[0].Reason != "done by m1" || statuses(results)[0] != "unchanged" {
				t.Errorf("lost the once step: applied %d, %v %q", applied, statuses(results), results[0].Reason)
			}
		}
	}
}

// check never coordinates: it changes nothing.
func TestCheckDoesNotCoordinate(t *testing.T) {
	t.Parallel()
	applied := 0
	plan := coordPlan(t, &applied)
	co := &fakeCoordinator{}
	real, err := host.OpenReal(t.TempDir(), false, host.WithEtcd(etcdv2.New))
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	if _, err := engine.Check(engine.WithCoordinator(t.Context(), co), plan, real, engine.Selection{}, nil); err != nil {
		t.Fatal(err)
	}
	if len(co.once)+len(co.locks) != 0 || applied != 0 {
		t.Errorf("check coordinated: once %v, locks %v, applied %d", co.once, co.locks, applied)
	}
}

// A rolling restart takes the lock of its unit, whatever its action or
// the wording of its target: restart and try-restart of one unit never
// run on two hosts at once.
func TestRollingLockIsTheUnits(t *testing.T) {
	t.Parallel()
	for _, action := range []string{"restart", "try-restart"} {
		plan := mustEval(t, `
conf = file("/etc/kubernetes/kubelet.env", content = "A=1\n")
systemctl("`+action+`", "kubelet.service", on_change = [conf], rolling = True)
`)
		plan.Steps[1].Meta().Target = "kubelet.service, rolling" // another wording
		co := &fakeCoordinator{}
		real := liveRoot(t, t.TempDir(), newFakeSystemd())
		if _, err := engine.Converge(engine.WithCoordinator(t.Context(), co), plan, real, engine.Selection{}, nil); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(co.locks, []string{"restart-kubelet.service"}) || co.unlocked != 1 {
			t.Errorf("%s: locks %q, %d unlocked; want restart-kubelet.service taken and released once", action, co.locks, co.unlocked)
		}
	}
}
