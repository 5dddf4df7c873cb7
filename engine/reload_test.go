package engine_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/etcdv2"
)

// fakeSystemd is a fake live systemd that records the calls it gets and
// keeps unit states in memory. The real D-Bus backend is tested against a
// booted systemd in host/live and end to end in cmd/kplay.
type fakeSystemd struct {
	mu      sync.Mutex
	calls   []string
	onCall  func(call string) // if set, called with each call as it comes
	active  map[string]bool
	enabled map[string]bool
}

func newFakeSystemd() *fakeSystemd {
	return &fakeSystemd{active: map[string]bool{}, enabled: map[string]bool{}}
}

func (f *fakeSystemd) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	if f.onCall != nil {
		f.onCall(call)
	}
}

func (f *fakeSystemd) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeSystemd) Live() bool { return true }
func (f *fakeSystemd) UnitFileState(_ context.Context, unit string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.enabled[unit] {
		return "enabled", nil
	}
	return "disabled", nil
}
func (f *fakeSystemd) ActiveState(_ context.Context, unit string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.active[unit] {
		return "active", nil
	}
	return "inactive", nil
}
func (f *fakeSystemd) EnableLinks(context.Context, string) ([]host.Link, error)  { return nil, nil }
func (f *fakeSystemd) DisableLinks(context.Context, string) ([]host.Link, error) { return nil, nil }
func (f *fakeSystemd) Enable(_ context.Context, unit string) error {
	f.record("enable " + unit)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.enabled[unit] = true
	return nil
}
func (f *fakeSystemd) Disable(_ context.Context, unit string) error {
	f.record("disable " + unit)
	return nil
}
func (f *fakeSystemd) Mask(_ context.Context, unit string) error {
	f.record("mask " + unit)
	return nil
}
func (f *fakeSystemd) Unmask(_ context.Context, unit string) error {
	f.record("unmask " + unit)
	return nil
}
func (f *fakeSystemd) Job(_ context.Context, action, unit string, _ time.Duration) error {
	f.record(action + " " + unit)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.active[unit] = action != "stop"
	return nil
}
func (f *fakeSystemd) DaemonReload(context.Context) error { f.record("daemon-reload"); return nil }

// liveRoot is a root whose systemd is the fake live one.
func liveRoot(t *testing.T, root string, sd host.Systemd) *host.Real {
	t.Helper()
	real, err := host.OpenReal(root, true, host.WithEtcd(etcdv2.New), host.WithSystemd(sd))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { real.Close() })
	return real
}

func TestDaemonReloadIsBatched(t *testing.T) {
	t.Parallel()
	plan := mustEval(t, `
a = unit("a.service", "[Service]\nExecStart=/bin/true\n")
b = dropin("b.service", "10-x.conf", "[Service]\nEnvironment=X=1\n")
systemctl("start", "a.service")
systemctl("daemon-reload")
systemctl("restart", "b.service", on_change = [b])
unit("c.service", "[Service]\nExecStart=/bin/true\n")
systemctl("enable", "a.service")
systemctl("start", "c.service")
`)
	root := t.TempDir()
	sd := newFakeSystemd()
	real := liveRoot(t, root, sd)

	// check: the dry host records what a run would do; the fake gets no call.
	results, err := engine.Check(t.Context(), plan, real, engine.Selection{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"unit /etc/systemd/system/a.service: create",
		"dropin /etc/systemd/system/b.service.d/10-x.conf: create",
		"systemctl daemon-reload: run",
		"systemctl start a.service: run",
		"systemctl daemon-reload: unchanged (no unit file changed)",
		"systemctl restart b.service: run",
		"unit /etc/systemd/system/c.service: create",
		"systemctl daemon-reload: run",
		"systemctl enable a.service: run",
		"systemctl start c.service: run",
	}
	if got := describe(results); !slices.Equal(got, want) {
		t.Fatalf("check:\n got %q\nwant %q", got, want)
	}
	if calls := sd.Calls(); len(calls) != 0 {
		t.Fatalf("check called systemd: %q", calls)
	}

	if _, err := engine.Converge(t.Context(), plan, real, engine.Selection{}, nil); err != nil {
		t.Fatal(err)
	}
	wantCalls := []string{"daemon-reload", "start a.service", "restart b.service", "daemon-reload", "enable a.service", "start c.service"}
	if got := sd.Calls(); !slices.Equal(got, wantCalls) {
		t.Fatalf("run called:\n got %q\nwant %q", got, wantCalls)
	}

	// A second run finds nothing to do and calls nothing that changes.
	results, err = engine.Converge(t.Context(), plan, real, engine.Selection{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Status == engine.Changed {
			t.Errorf("second run changed %s %s", r.Step.Meta().Kind, r.Step.Meta().Target)
		}
	}
	if got := sd.Calls(); !slices.Equal(got, wantCalls) {
		t.Errorf("second run called more: %q", got[len(wantCalls):])
	}
}

func TestDaemonReloadAtTheEnd(t *testing.T) {
	t.Parallel()
	plan := mustEval(t, `unit("a.service", "[Service]\nExecStart=/bin/true\n")`)
	sd := newFakeSystemd()
	results, err := engine.Converge(t.Context(), plan, liveRoot(t, t.TempDir(), sd), engine.Selection{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := describe(results); !slices.Equal(got, []string{"unit /etc/systemd/system/a.service: create", "systemctl daemon-reload: run"}) {
		t.Errorf("got %q", got)
	}
	if got := sd.Calls(); !slices.Equal(got, []string{"daemon-reload"}) {
		t.Errorf("calls: got %q", got)
	}
}

// describe renders results as engine.Result.String lines.
func describe(results []engine.Result) []string {
	var out []string
	for _, r := range results {
		out = append(out, r.String())
	}
	return out
}

// TestTagsNeverDropADaemonReload: a daemon-reload goes with any selected
// step that needs it, whatever the tags, and an owed reload stays owed
// until it has run (issue 12, item 1).
func TestTagsNeverDropADaemonReload(t *testing.T) {
	t.Parallel()
	const dropin = `d = dropin("flanneld.service", "40-ExecStartPre-symlink.conf", "[Service]\nExecStartPre=/usr/bin/ln -sf /etc/flannel/options.env /run/flannel/options.env\n", tags = [%q])
`
	tests := map[string]struct {
		playbook string
		runs     []engine.Selection // one run after another on the same root
		want     [][]string         // the calls systemd got after each run
	}{
		"both_steps_tagged": {
			playbook: fmt.Sprintf(dropin, "flannel") + `systemctl("restart", "flanneld.service", on_change = [d], tags = ["flannel"])`,
			runs:     []engine.Selection{{Tags: []string{"flannel"}}},
			want:     [][]string{{"daemon-reload", "restart flanneld.service"}},
		},
		"dropin_alone_then_all": {
			playbook: fmt.Sprintf(dropin, "conf") + `systemctl("restart", "flanneld.service", on_change = [d], tags = ["flannel"])`,
			runs:     []engine.Selection{{Tags: []string{"conf"}}, {}},
			want:     [][]string{{"daemon-reload"}, {"daemon-reload", "restart flanneld.service"}},
		},
		"own_reload_left_out": {
			playbook: fmt.Sprintf(dropin, "conf") + `systemctl("daemon-reload", tags = ["reload"])
systemctl("restart", "flanneld.service", on_change = [d], tags = ["conf"])`,
			runs: []engine.Selection{{Tags: []string{"conf"}}},
			want: [][]string{{"daemon-reload", "restart flanneld.service"}},
		},
		"skip_tags": {
			playbook: fmt.Sprintf(dropin, "conf") + `systemctl("restart", "flanneld.service", on_change = [d], tags = ["restart"])`,
			runs:     []engine.Selection{{SkipTags: []string{"restart"}}, {}},
			want:     [][]string{{"daemon-reload"}, {"daemon-reload", "restart flanneld.service"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			plan := mustEval(t, tc.playbook)
			sd := newFakeSystemd()
			real := liveRoot(t, t.TempDir(), sd)
			for i, sel := range tc.runs {
				// check says what run will do: the reload runs.
				results, err := engine.Check(t.Context(), plan, real, sel, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range results {
					if m := r.Step.Meta(); m.ID < 0 && r.Status == engine.Skipped { // the engine's own reload
						t.Errorf("run %d: check says %s", i+1, r)
					}
				}
				if _, err := engine.Converge(t.Context(), plan, real, sel, nil); err != nil {
					t.Fatal(err)
				}
				if got := sd.Calls(); !slices.Equal(got, tc.want[i]) {
					t.Errorf("after run %d (%+v), systemd got %q, want %q", i+1, sel, got, tc.want[i])
				}
			}
		})
	}
}

// TestFileIntoUnitDirOwesAReload: a unit or drop-in written with file()
// is a unit file like one written with unit(): its change owes a
// daemon-reload before the restart.
func TestFileIntoUnitDirOwesAReload(t *testing.T) {
	t.Parallel()
	for name, playbook := range map[string]string{
		"explicit_reload": `f = file("/etc/systemd/system/x.service", content = "[Service]\nExecStart=/bin/true\n")
systemctl("daemon-reload", on_change = [f])
systemctl("restart", "x.service", on_change = [f])`,
		"dropin_by_file": `f = file("/etc/systemd/system/x.service.d/10-env.conf", content = "[Service]\nEnvironment=A=1\n")
systemctl("restart", "x.service", on_change = [f])`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sd := newFakeSystemd()
			if _, err := engine.Converge(t.Context(), mustEval(t, playbook), liveRoot(t, t.TempDir(), sd), engine.Selection{}, nil); err != nil {
				t.Fatal(err)
			}
			if got, want := sd.Calls(), []string{"daemon-reload", "restart x.service"}; !slices.Equal(got, want) {
				t.Errorf("systemd got %q, want %q", got, want)
			}
		})
	}
}
