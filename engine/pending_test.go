package engine_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/builtins"
	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
)

// owedRestart runs a playbook that changes kubelet.env, which a
// restart watches, and fails before the restart, on a root whose systemd
// is a fake live one. It returns that systemd, the root's host and the
// plan of the same playbook without the failing step.
func owedRestart(t *testing.T) (*fakeSystemd, *host.Real, *engine.Plan) {
	t.Helper()
	root := t.TempDir()
	sd := newFakeSystemd()
	real := liveRoot(t, root, sd)
	src := `
conf = file("/etc/kubernetes/kubelet.env", content = "KUBELET_VERSION=v2\n")
%s
systemctl("restart", "kubelet.service", on_change = [conf])
`
	dir := writeTree(t, map[string]string{
		"failing.star": strings.Replace(src, "%s", "boom()", 1),
		"plain.star":   strings.Replace(src, "%s", "", 1),
	})
	predeclared := builtins.Predeclared()
	predeclared["boom"] = starlark.NewBuiltin("boom", func(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		return engine.Record(thread, &failingStep{meta: engine.StepMeta{Kind: "boom", Target: "/etc/y"}})
	})
	failing, err := engine.Evaluate(t.Context(), engine.EvalOptions{Playbook: filepath.Join(dir, "failing.star"), Builtins: predeclared})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := eval(t, filepath.Join(dir, "plain.star"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Converge(t.Context(), failing, real, engine.Selection{}, nil); err == nil {
		t.Fatal("the failing run did not fail")
	}
	if calls := sd.Calls(); len(calls) != 0 {
		t.Fatalf("the failing run called systemd: %q", calls)
	}
	return sd, real, plain
}

// TestLostRestartIsRunNextTime: a run changes a file that a restart
// watches and fails before the restart; the next run, which finds the file
// as it wants it, still restarts, once.
func TestLostRestartIsRunNextTime(t *testing.T) {
	t.Parallel()
	sd, real, plain := owedRestart(t)
	root := real.Root()
	data, err := os.ReadFile(filepath.Join(root, "var/lib/kplay/pending.json"))
	if err != nil || !strings.Contains(string(data), `"systemctl restart kubelet.service"`) {
		t.Fatalf("journal after the failed run: %q, %v", data, err)
	}

	// check shows the owed restart and writes nothing.
	results, err := engine.Check(t.Context(), plain, real, engine.Selection{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := results[len(results)-1]; r.Status != engine.Changed || r.Change.Summary != "owed by an earlier run that stopped before it" {
		t.Errorf("check: restart is %v %q, want it owed", r.Status, r.Change.Summary)
	}

	if _, err := engine.Converge(t.Context(), plain, real, engine.Selection{}, nil); err != nil {
		t.Fatal(err)
	}
	if got := sd.Calls(); !slices.Equal(got, []string{"restart kubelet.service"}) {
		t.Errorf("the next run called %q, want the owed restart", got)
	}
	if _, err := os.Lstat(filepath.Join(root, "var/lib/kplay/pending.json")); !os.IsNotExist(err) {
		t.Errorf("the journal is still there after the restart ran: %v", err)
	}
	if _, err := engine.Converge(t.Context(), plain, real, engine.Selection{}, nil); err != nil {
		t.Fatal(err)
	}
	if got := sd.Calls(); len(got) != 1 {
		t.Errorf("a third run restarted again: %q", got)
	}
}

// TestOwedActionKnownByKeyNotTarget: the journal names an owed action by
// the step's Key (kind and Resource), not by the text shown for it, so a
// kplay that words a restart's Target differently still runs the restart
// an earlier run owed.
func TestOwedActionKnownByKeyNotTarget(t *testing.T) {
	t.Parallel()
	sd, real, plain := owedRestart(t)
	restart := plain.Steps[len(plain.Steps)-1].Meta()
	restart.Target = "kubelet.service, restarted" // another wording
	if got, want := restart.Key(), "systemctl restart kubelet.service"; got != want {
		t.Fatalf("Key: got %q, want %q", got, want)
	}
	if _, err := engine.Converge(t.Context(), plain, real, engine.Selection{}, nil); err != nil {
		t.Fatal(err)
	}
	if got := sd.Calls(); !slices.Equal(got, []string{"restart kubelet.service"}) {
		t.Errorf("the next run called %q, want the owed restart", got)
	}
}

// TestRestartSkippedByTagsStaysOwed: a watched file changes in a run that
// skips the restart by tag; a later run restarts.
func TestRestartSkippedByTagsStaysOwed(t *testing.T) {
	t.Parallel()
	sd := newFakeSystemd()
	real := liveRoot(t, t.TempDir(), sd)
	plan := mustEval(t, `
conf = file("/etc/flannel/options.env", content = "FLANNELD_IFACE=10.0.0.10\n")
systemctl("restart", "flanneld.service", on_change = [conf], tags = ["restarts"])
`)
	if _, err := engine.Converge(t.Context(), plan, real, engine.Selection{SkipTags: []string{"restarts"}}, nil); err != nil {
		t.Fatal(err)
	}
	if calls := sd.Calls(); len(calls) != 0 {
		t.Fatalf("a skipped restart ran: %q", calls)
	}
	if _, err := engine.Converge(t.Context(), plan, real, engine.Selection{}, nil); err != nil {
		t.Fatal(err)
	}
	if got := sd.Calls(); !slices.Equal(got, []string{"restart flanneld.service"}) {
		t.Errorf("later run: got %q, want the owed restart", got)
	}
}

// TestOwedActionOfARemovedStepIsForgotten: a journal entry for a step the
// plan no longer has (Calico turned off since) is dropped, not kept for
// ever.
func TestOwedActionOfARemovedStepIsForgotten(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	journal := filepath.Join(root, "var/lib/kplay/pending.json")
	if err := os.MkdirAll(filepath.Dir(journal), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(journal, []byte(`{"pending": ["systemctl restart calico-node.service"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	plan := mustEval(t, `
conf = file("/etc/flannel/options.env", content = "x")
systemctl("restart", "flanneld.service", on_change = [conf])
`)
	if _, err := converge(t, plan, root, engine.Selection{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(journal); !os.IsNotExist(err) {
		data, _ := os.ReadFile(journal)
		t.Errorf("journal still there: %s", data)
	}
}
