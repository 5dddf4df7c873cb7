package engine_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
)

// fakeSystemd is a fake live systemd that records the calls it gets and
// keeps unit states in memory. The real D-Bus backend is tested against a
// booted systemd in host/live and end to end in cmd/kplay.
type fakeSystemd struct {
	mu      sync.Mutex
	calls   []string
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
	real, err := host.OpenReal(root, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { real.Close() })
	real.UseSystemd(sd)
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
