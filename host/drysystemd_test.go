package host

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeLive is a live Systemd that answers reads from its maps and fails
// the test on any change: a dry wrapper must never call those.
type fakeLive struct {
	t      *testing.T
	file   map[string]string
	active map[string]string
	links  []Link
}

func (f *fakeLive) Live() bool { return true }

func (f *fakeLive) UnitFileState(ctx context.Context, unit string) (string, error) {
	if s, ok := f.file[unit]; ok {
		return s, nil
	}
	return "", errors.New("unit " + unit + " not loaded")
}

func (f *fakeLive) ActiveState(ctx context.Context, unit string) (string, error) {
	return f.active[unit], nil
}

func (f *fakeLive) EnableLinks(ctx context.Context, unit string) ([]Link, error) { return f.links, nil }
func (f *fakeLive) DisableLinks(ctx context.Context, unit string) ([]Link, error) {
	return f.links, nil
}

func (f *fakeLive) change(what string) error {
	f.t.Errorf("the dry wrapper called the live %s", what)
	return errors.New("called")
}

func (f *fakeLive) Enable(ctx context.Context, unit string) error  { return f.change("Enable") }
func (f *fakeLive) Disable(ctx context.Context, unit string) error { return f.change("Disable") }
func (f *fakeLive) Mask(ctx context.Context, unit string) error    { return f.change("Mask") }
func (f *fakeLive) Unmask(ctx context.Context, unit string) error  { return f.change("Unmask") }
func (f *fakeLive) Job(ctx context.Context, action, unit string, timeout time.Duration) error {
	return f.change("Job")
}
func (f *fakeLive) DaemonReload(ctx context.Context) error { return f.change("DaemonReload") }

// countingHost counts the calls of Systemd on its Real.
type countingHost struct {
	*Real
	mu    sync.Mutex
	calls int
}

func (c *countingHost) Systemd() Systemd {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	return c.Real.Systemd()
}

func TestRealSystemd(t *testing.T) {
	t.Parallel()
	r := openReal(t, t.TempDir())
	if o, ok := r.Systemd().(*Offline); !ok || o.Live() {
		t.Fatalf("default: got %T, want *Offline", r.Systemd())
	}
	live := &fakeLive{t: t}
	r = openReal(t, t.TempDir(), WithSystemd(live))
	if got := r.Systemd(); got != live {
		t.Errorf("with WithSystemd: got %T, want the given one", got)
	}
}

func TestDrySystemdIsBuiltOnce(t *testing.T) {
	t.Parallel()
	base := &countingHost{Real: openReal(t, t.TempDir(), WithSystemd(&fakeLive{t: t}))}
	d := NewDry(base)
	var wg sync.WaitGroup
	got := make([]Systemd, 8)
	for i := range got {
		wg.Go(func() { got[i] = d.Systemd() })
	}
	wg.Wait()
	for _, s := range got {
		if s != got[0] {
			t.Fatal("Systemd returned different values")
		}
	}
	if _, ok := got[0].(*dryLive); !ok {
		t.Errorf("over a live base: got %T, want the dry wrapper", got[0])
	}
	if base.calls != 1 {
		t.Errorf("base Systemd called %d times, want 1", base.calls)
	}
}

func TestDryLiveRecordsChanges(t *testing.T) {
	t.Parallel()
	live := &fakeLive{
		t: t,
		file: map[string]string{
			"kubelet.service": "disabled", "docker.service": "enabled",
			"masked.service": "masked", "etcd.service": "static",
		},
		active: map[string]string{"kubelet.service": "inactive", "docker.service": "active", "etcd.service": "failed"},
		links:  []Link{{Name: "/etc/systemd/system/x.target.wants/y.service", Target: "/usr/lib/systemd/system/y.service"}},
	}
	r := openReal(t, t.TempDir(), WithSystemd(live))
	s := NewDry(r).Systemd()
	ctx := t.Context()
	if !s.Live() {
		t.Error("Live: got false")
	}
	steps := []struct {
		what string
		err  error
	}{
		{"enable kubelet", s.Enable(ctx, "kubelet.service")},
		{"disable docker", s.Disable(ctx, "docker.service")},
		{"mask etcd", s.Mask(ctx, "etcd.service")},
		{"unmask masked", s.Unmask(ctx, "masked.service")},
		{"start kubelet", s.Job(ctx, "start", "kubelet.service", time.Minute)},
		{"stop docker", s.Job(ctx, "stop", "docker.service", time.Minute)},
		{"try-restart etcd", s.Job(ctx, "try-restart", "etcd.service", time.Minute)},
		{"reload flanneld", s.Job(ctx, "reload", "flanneld.service", time.Minute)},
		{"daemon-reload", s.DaemonReload(ctx)},
	}
	for _, st := range steps {
		if st.err != nil {
			t.Errorf("%s: %v", st.what, st.err)
		}
	}
	wantFile := map[string]string{
		"kubelet.service": "enabled",
		"docker.service":  "disabled",
		"etcd.service":    "masked",
		"masked.service":  "disabled",
	}
	for unit, want := range wantFile {
		if got, err := s.UnitFileState(ctx, unit); err != nil || got != want {
			t.Errorf("UnitFileState %s: got %q, %v; want %q", unit, got, err, want)
		}
	}
	wantActive := map[string]string{
		"kubelet.service":  "active",
		"docker.service":   "inactive",
		"etcd.service":     "failed",
		"flanneld.service": "active",
	}
	for unit, want := range wantActive {
		if got, err := s.ActiveState(ctx, unit); err != nil || got != want {
			t.Errorf("ActiveState %s: got %q, %v; want %q", unit, got, err, want)
		}
	}
	if got, err := s.EnableLinks(ctx, "y.service"); err != nil || !slices.Equal(got, live.links) {
		t.Errorf("EnableLinks: got %v, %v; want the live answer", got, err)
	}
	if got, err := s.DisableLinks(ctx, "y.service"); err != nil || !slices.Equal(got, live.links) {
		t.Errorf("DisableLinks: got %v, %v; want the live answer", got, err)
	}
	if err := s.Enable(ctx, "etcd.service"); err == nil || err.Error() != "enable etcd.service: unit is masked (unmask it first)" {
		t.Errorf("enable a unit masked in memory: got %v", err)
	}
	if err := s.Job(ctx, "frobnicate", "etcd.service", time.Minute); err == nil ||
		err.Error() != "frobnicate etcd.service: unknown job (use start, stop, restart, reload or try-restart)" {
		t.Errorf("unknown job: got %v", err)
	}
	if _, err := s.UnitFileState(ctx, "nope.service"); err == nil {
		t.Error("UnitFileState of a unit the live manager does not know: got no error")
	}
}
