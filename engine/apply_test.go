package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/builtins"
	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/etcdv2"
	"github.com/kplay-dev/kplay/host/roottest"
)

func mustEval(t *testing.T, src string) *engine.Plan {
	t.Helper()
	dir := writeTree(t, map[string]string{"play.star": src})
	plan, err := eval(t, filepath.Join(dir, "play.star"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func statuses(results []engine.Result) []string {
	var out []string
	for _, r := range results {
		s := r.Status.String()
		if r.Status == engine.Changed {
			s = r.Change.Action.String()
		}
		out = append(out, s)
	}
	return out
}

func converge(t *testing.T, plan *engine.Plan, root string, sel engine.Selection) ([]engine.Result, error) {
	t.Helper()
	real, err := host.OpenReal(root, true, host.WithEtcd(etcdv2.New))
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	return engine.Converge(t.Context(), plan, real, sel, nil)
}

func TestOnChangeRunsOnlyAfterAChange(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	plan := mustEval(t, `
conf = file("/etc/a.conf", content = "a")
other = file("/etc/b.conf", content = "b")
file("/etc/a.stamp", content = "restarted", on_change = [conf])
`)
	results, err := converge(t, plan, root, engine.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(results); !slices.Equal(got, []string{"create", "create", "create"}) {
		t.Fatalf("first run: got %v", got)
	}
	if err := os.Remove(filepath.Join(root, "etc/a.stamp")); err != nil {
		t.Fatal(err)
	}
	// Nothing it watches changed: the missing stamp is left alone.
	results, err = converge(t, plan, root, engine.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(results); !slices.Equal(got, []string{"unchanged", "unchanged", "unchanged"}) {
		t.Fatalf("second run: got %v", got)
	}
	if results[2].Reason != "nothing in on_change changed" {
		t.Errorf("reason: got %q", results[2].Reason)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/a.conf"), []byte("drift"), 0o644); err != nil {
		t.Fatal(err)
	}
	results, err = converge(t, plan, root, engine.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(results); !slices.Equal(got, []string{"update", "unchanged", "create"}) {
		t.Fatalf("after drift: got %v", got)
	}
}

func TestTagsSelectSteps(t *testing.T) {
	t.Parallel()
	src := `
tls = file("/etc/tls", content = "t", tags = ["tls"])
file("/etc/api", content = "a", tags = ["api", "net"])
file("/etc/plain", content = "p")
file("/etc/after-tls", content = "x", on_change = [tls])
`
	tests := map[string]struct {
		sel  engine.Selection
		want []string
	}{
		"all":           {engine.Selection{}, []string{"create", "create", "create", "create"}},
		"tags":          {engine.Selection{Tags: []string{"api"}}, []string{"skipped", "create", "skipped", "skipped"}},
		"skip_tags":     {engine.Selection{SkipTags: []string{"net"}}, []string{"create", "skipped", "create", "create"}},
		"skip_watched":  {engine.Selection{SkipTags: []string{"tls"}}, []string{"skipped", "create", "create", "unchanged"}},
		"skip_wins":     {engine.Selection{Tags: []string{"api"}, SkipTags: []string{"api"}}, []string{"skipped", "skipped", "skipped", "skipped"}},
		"tags_multiple": {engine.Selection{Tags: []string{"tls", "api"}}, []string{"create", "create", "skipped", "skipped"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			results, err := converge(t, mustEval(t, src), t.TempDir(), tc.sel)
			if err != nil {
				t.Fatal(err)
			}
			if got := statuses(results); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestUnusedTagsWarn(t *testing.T) {
	t.Parallel()
	plan := mustEval(t, `file("/etc/x", content = "", tags = ["api", "tls"])`)
	got := engine.Selection{Tags: []string{"apu"}, SkipTags: []string{"tls", "zzz"}}.Unused(plan)
	want := []string{
		"--tags apu: no step has this tag (did you mean api?)",
		"--skip-tags zzz: no step has this tag (tags in this playbook: api, tls)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// failingStep is a step whose Apply fails, as a write that the dry host
// cannot foresee would (a full disk, a lost permission).
type failingStep struct{ meta engine.StepMeta }

func (s *failingStep) Meta() *engine.StepMeta { return &s.meta }
func (s *failingStep) Diff(context.Context, host.Host) (engine.Change, error) {
	return engine.Change{Action: engine.Run, Summary: "always"}, nil
}
func (s *failingStep) Apply(_ context.Context, h host.Host, _ engine.Change) error {
	if _, dry := h.(*host.Dry); dry {
		return nil
	}
	return errors.New("write /etc/y: no space left on device")
}

func TestApplyStopsAtFirstErrorAndReportsWhatWasDone(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{"play.star": `
file("/etc/first", content = "1")
boom()
file("/etc/never", content = "3")
`})
	predeclared := builtins.Predeclared()
	predeclared["boom"] = starlark.NewBuiltin("boom", func(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		return engine.Record(thread, &failingStep{meta: engine.StepMeta{Kind: "boom", Target: "/etc/y"}})
	})
	plan, err := engine.Evaluate(t.Context(), engine.EvalOptions{Playbook: filepath.Join(dir, "play.star"), Builtins: predeclared})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	results, err := converge(t, plan, root, engine.Selection{})
	if got := statuses(results); !slices.Equal(got, []string{"create"}) {
		t.Errorf("results before the error: got %v, want [create]", got)
	}
	want := filepath.Join(dir, "play.star") + ":3:5: boom /etc/y: write /etc/y: no space left on device"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/never")); !os.IsNotExist(err) {
		t.Errorf("a step after the error ran")
	}
}

func TestBadInputFoundByDiffWritesNothing(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	plan := mustEval(t, `
file("/etc/first", content = "1")
file("/etc/second", src = "does-not-exist.pem")
`)
	if _, err := converge(t, plan, root, engine.Selection{}); err == nil || !strings.Contains(err.Error(), "does-not-exist.pem") {
		t.Fatalf("got %v, want an error naming the missing src", err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("run wrote %v before failing", entries)
	}
}

func TestCheckChangesNothingInTheRoot(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for name, content := range map[string]string{"etc/motd": "old\n", "etc/keep/x": "x"} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("keep", filepath.Join(root, "etc/link")); err != nil {
		t.Fatal(err)
	}
	plan := mustEval(t, `
directory("/etc/keep", mode = 0o700)
directory("/etc/new/deep", mode = 0o750)
file("/etc/motd", content = "new\n", mode = 0o600)
file("/etc/new/deep/f", content = "f")
file("/etc/link/y", content = "through a symlink inside the root")
file("/etc/keep/x", content = "x", mode = 0o640)
`)
	before := roottest.State(t, root)
	real, err := host.OpenReal(root, false, host.WithEtcd(etcdv2.New))
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	results, err := engine.Check(t.Context(), plan, real, engine.Selection{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(results); !slices.Equal(got, []string{"update", "create", "update", "create", "create", "update"}) {
		t.Errorf("check: got %v", got)
	}
	if after := roottest.State(t, root); after != before {
		t.Errorf("check changed the root:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestConvergeWaitsForTheRunLock(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	holder, err := host.OpenReal(root, true)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	unlock, err := holder.Lock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()

	real, err := host.OpenReal(root, true, host.WithLockTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	plan := mustEval(t, `file("/etc/x", content = "x")`)
	if _, err := engine.Converge(t.Context(), plan, real, engine.Selection{}, nil); err == nil || !strings.Contains(err.Error(), "is locked by another kplay run (pid ") {
		t.Fatalf("run while another holds the lock: got %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/x")); !os.IsNotExist(err) {
		t.Error("a run that did not get the lock wrote")
	}
	// check takes no lock.
	if _, err := engine.Check(t.Context(), plan, real, engine.Selection{}, nil); err != nil {
		t.Errorf("check while a run holds the lock: %v", err)
	}
}
