package engine_test

import (
	"slices"
	"testing"

	"github.com/kplay-dev/kplay/builtins"
	"github.com/kplay-dev/kplay/engine"
)

// withLedger turns on the ledger of plan, as cmd/kplay does.
func withLedger(plan *engine.Plan) *engine.Plan {
	plan.Ledger = &engine.LedgerOptions{Name: "play", Prune: true, Pruner: builtins.Pruner}
	return plan
}

// TestPrunedDropinRestartsItsService: a drop-in the playbook no longer
// declares is removed, the daemon is reloaded, and the service whose
// restart names the unit's drop-ins restarts without the old lines
// (issue 13), on a fake live systemd. A run killed between the removal
// and the restart owes the restart to the next run.
func TestPrunedDropinRestartsItsService(t *testing.T) {
	t.Parallel()
	const both = `a = dropin("flanneld.service", "10-a.conf", "[Service]\nEnvironment=A=1\n")
b = dropin("flanneld.service", "20-b.conf", "[Service]\nEnvironment=B=1\n")
systemctl("restart", "flanneld.service", on_change = [a, b])
`
	const one = `a = dropin("flanneld.service", "10-a.conf", "[Service]\nEnvironment=A=1\n")
systemctl("restart", "flanneld.service", on_change = [a])
`
	sd := newFakeSystemd()
	root := t.TempDir()
	real := liveRoot(t, root, sd)
	if _, err := engine.Converge(t.Context(), withLedger(mustEval(t, both)), real, engine.Selection{}, nil); err != nil {
		t.Fatal(err)
	}
	before := len(sd.Calls())
	results, err := engine.Check(t.Context(), withLedger(mustEval(t, one)), real, engine.Selection{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The drop-in deleted, the other unchanged, the reload and the restart.
	if got, want := statuses(results), []string{"delete", "unchanged", "run", "run"}; !slices.Equal(got, want) {
		t.Errorf("check: %q, want %q", got, want)
	}
	if _, err := engine.Converge(t.Context(), withLedger(mustEval(t, one)), real, engine.Selection{}, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := sd.Calls()[before:], []string{"daemon-reload", "restart flanneld.service"}; !slices.Equal(got, want) {
		t.Errorf("systemd got %q, want %q", got, want)
	}
	if _, err := real.Lstat(t.Context(), "/etc/systemd/system/flanneld.service.d/20-b.conf"); err == nil {
		t.Error("the drop-in is still there")
	}
	// A third run has nothing to do.
	results, err = engine.Check(t.Context(), withLedger(mustEval(t, one)), real, engine.Selection{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Status == engine.Changed {
			t.Errorf("check after: %s", r)
		}
	}
}

// TestPrunedFileRestartsNothing: a plain file that goes belongs to no
// unit: no restart runs for it, not even one watching another plain
// file (a CALICO=false run restarted flanneld this way).
func TestPrunedFileRestartsNothing(t *testing.T) {
	t.Parallel()
	const both = `a = file("/etc/flannel/options.env", content = "A=1\n")
file("/etc/kubernetes/cni/net.d/10-calico.conf", content = "{}\n")
systemctl("restart", "flanneld.service", on_change = [a])
`
	const one = `a = file("/etc/flannel/options.env", content = "A=1\n")
systemctl("restart", "flanneld.service", on_change = [a])
`
	sd := newFakeSystemd()
	real := liveRoot(t, t.TempDir(), sd)
	if _, err := engine.Converge(t.Context(), withLedger(mustEval(t, both)), real, engine.Selection{}, nil); err != nil {
		t.Fatal(err)
	}
	before := len(sd.Calls())
	if _, err := engine.Converge(t.Context(), withLedger(mustEval(t, one)), real, engine.Selection{}, nil); err != nil {
		t.Fatal(err)
	}
	if got := sd.Calls()[before:]; len(got) > 0 {
		t.Errorf("systemd got %q, want nothing", got)
	}
	if _, err := real.Lstat(t.Context(), "/etc/kubernetes/cni/net.d/10-calico.conf"); err == nil {
		t.Error("the file is still there")
	}
}

// TestAbsentDropinRestartsItsService: a drop-in declared absent that is
// there is removed, and a restart naming another step of the unit runs.
func TestAbsentDropinRestartsItsService(t *testing.T) {
	t.Parallel()
	const play = `a = dropin("flanneld.service", "10-a.conf", "[Service]\nEnvironment=A=1\n")
dropin("flanneld.service", "20-old.conf", state = "absent")
systemctl("restart", "flanneld.service", on_change = [a])
`
	sd := newFakeSystemd()
	root := t.TempDir()
	real := liveRoot(t, root, sd)
	if err := real.WriteFile(t.Context(), "/etc/systemd/system/flanneld.service.d/10-a.conf", []byte("[Service]\nEnvironment=A=1\n"), 0o644, -1, -1); err != nil {
		t.Fatal(err)
	}
	if err := real.WriteFile(t.Context(), "/etc/systemd/system/flanneld.service.d/20-old.conf", []byte("[Service]\nEnvironment=OLD=1\n"), 0o644, -1, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Converge(t.Context(), withLedger(mustEval(t, play)), real, engine.Selection{}, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := sd.Calls(), []string{"daemon-reload", "restart flanneld.service"}; !slices.Equal(got, want) {
		t.Errorf("systemd got %q, want %q", got, want)
	}
}

// TestRemovedHandleRestarts: a removed() handle in on_change stands for a
// file the playbook dropped: its removal restarts the service that read
// it (the second attack on issue 13).
func TestRemovedHandleRestarts(t *testing.T) {
	t.Parallel()
	const both = `u = unit("k.service", "[Service]\nExecStart=/bin/true\nEnvironmentFile=-/etc/k/extra.env\n")
f = file("/etc/k/extra.env", content = "A=1\n")
systemctl("restart", "k.service", on_change = [u, f])
`
	const one = `u = unit("k.service", "[Service]\nExecStart=/bin/true\nEnvironmentFile=-/etc/k/extra.env\n")
systemctl("restart", "k.service", on_change = [u, removed("/etc/k/extra.env")])
`
	sd := newFakeSystemd()
	real := liveRoot(t, t.TempDir(), sd)
	if _, err := engine.Converge(t.Context(), withLedger(mustEval(t, both)), real, engine.Selection{}, nil); err != nil {
		t.Fatal(err)
	}
	before := len(sd.Calls())
	if _, err := engine.Converge(t.Context(), withLedger(mustEval(t, one)), real, engine.Selection{}, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := sd.Calls()[before:], []string{"restart k.service"}; !slices.Equal(got, want) {
		t.Errorf("systemd got %q, want %q", got, want)
	}
	// Once removed, the handle restarts nothing more.
	before = len(sd.Calls())
	if _, err := engine.Converge(t.Context(), withLedger(mustEval(t, one)), real, engine.Selection{}, nil); err != nil {
		t.Fatal(err)
	}
	if got := sd.Calls()[before:]; len(got) > 0 {
		t.Errorf("a third run: systemd got %q, want nothing", got)
	}
}
