package live

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/kplay-dev/kplay/host"
)

// stopAtEnd stops unit when the test ends (t.Context is done by then).
func stopAtEnd(t *testing.T, s *Systemd, unit string) {
	t.Helper()
	t.Cleanup(func() {
		if err := s.Job(context.Background(), "stop", unit, 30*time.Second); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

func wantState(t *testing.T, what string, get func(context.Context, string) (string, error), unit, want string) {
	t.Helper()
	got, err := get(t.Context(), unit)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("%s of %s: got %q, want %q", what, unit, got, want)
	}
}

// eventually polls cond every 20 ms until it holds or 10 s have passed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	m := liveMachine(t)
	s, ctx := m.sys, t.Context()
	const unit = "kplay-start.service"
	m.writeUnit(t, "/etc/systemd/system", unit, "[Service]\nExecStart=/bin/sleep infinity\n")
	stopAtEnd(t, s, unit)

	if !s.Live() {
		t.Error("Live: got false, want true")
	}
	if err := s.DaemonReload(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Job(ctx, "start", unit, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	wantState(t, "ActiveState", s.ActiveState, unit, "active")
	if err := s.Job(ctx, "stop", unit, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	wantState(t, "ActiveState", s.ActiveState, unit, "inactive")
}

func TestEnableDisable(t *testing.T) {
	t.Parallel()
	m := liveMachine(t)
	s, ctx := m.sys, t.Context()
	const unit = "kplay-enable.service"
	m.writeUnit(t, "/etc/systemd/system", unit,
		"[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n")
	link := filepath.Join(m.root, "/etc/systemd/system/multi-user.target.wants", unit)
	t.Cleanup(func() { os.Remove(link) })

	wantState(t, "UnitFileState", s.UnitFileState, unit, "disabled")
	for _, f := range []func(context.Context, string) ([]host.Link, error){s.EnableLinks, s.DisableLinks} {
		if links, err := f(ctx, unit); links != nil || err != nil {
			t.Errorf("EnableLinks/DisableLinks: got %v, %v; want nil, nil", links, err)
		}
	}

	for range 2 { // enabling an enabled unit is no error
		if err := s.Enable(ctx, unit); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := os.Readlink(link); err != nil || got != "/etc/systemd/system/"+unit {
		t.Errorf("link after Enable: got %q, %v; want %q", got, err, "/etc/systemd/system/"+unit)
	}
	wantState(t, "UnitFileState", s.UnitFileState, unit, "enabled")

	for range 2 {
		if err := s.Disable(ctx, unit); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Lstat(link); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("link after Disable: got %v, want it gone", err)
	}
	// No DaemonReload in between: the state comes from the files.
	wantState(t, "UnitFileState", s.UnitFileState, unit, "disabled")
}

func TestJobFailed(t *testing.T) {
	t.Parallel()
	m := liveMachine(t)
	s, ctx := m.sys, t.Context()
	const unit = "kplay-broken.service"
	m.writeUnit(t, "/etc/systemd/system", unit, "[Service]\nType=oneshot\nExecStart=/bin/false\n")
	if err := s.DaemonReload(ctx); err != nil {
		t.Fatal(err)
	}

	err := s.Job(ctx, "start", unit, 30*time.Second)
	t.Logf("error:\n%v", err)
	var je *JobError
	if !errors.As(err, &je) {
		t.Fatalf("got %v, want a *JobError", err)
	}
	want := JobError{Action: "start", Unit: unit, Result: "failed",
		ActiveState: "failed", SubState: "failed", UnitResult: "exit-code"}
	got := *je
	got.Journal = nil // best effort: may or may not have arrived
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	const wantMsg = "start kplay-broken.service: job failed (ActiveState=failed, SubState=failed, Result=exit-code); "
	if !strings.HasPrefix(err.Error(), wantMsg) {
		t.Errorf("message: got %q, want it to begin with %q", err, wantMsg)
	}
	wantState(t, "ActiveState", s.ActiveState, unit, "failed")
}

// With Type=simple the start job is done once the process is forked: a
// failing ExecStart is not a job failure, only the unit's state shows it.
func TestJobSimpleServiceFailsAfterStart(t *testing.T) {
	t.Parallel()
	m := liveMachine(t)
	s, ctx := m.sys, t.Context()
	const unit = "kplay-broken-simple.service"
	m.writeUnit(t, "/etc/systemd/system", unit, "[Service]\nExecStart=/bin/false\n")
	if err := s.DaemonReload(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Job(ctx, "start", unit, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, unit+" failed", func() bool {
		state, err := s.ActiveState(ctx, unit)
		return err == nil && state == "failed"
	})
}

func TestRestartReload(t *testing.T) {
	t.Parallel()
	m := liveMachine(t)
	s, ctx := m.sys, t.Context()
	const unit = "kplay-restart.service"
	starts := filepath.Join(m.root, "/run/kplay-restart.starts")
	m.writeUnit(t, "/etc/systemd/system", unit, "[Service]\n"+
		"ExecStart=/bin/sh -c 'echo started >>/run/kplay-restart.starts; exec /bin/sleep infinity'\n"+
		"ExecReload=/bin/true\n")
	stopAtEnd(t, s, unit)
	// Type=simple: the job is done when the shell is forked, perhaps
	// before it wrote its line.
	wantStarts := func(n int) {
		t.Helper()
		eventually(t, fmt.Sprintf("%s started %d times", unit, n), func() bool {
			b, _ := os.ReadFile(starts)
			return strings.Count(string(b), "started") == n
		})
	}
	job := func(action string) {
		t.Helper()
		if err := s.Job(ctx, action, unit, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DaemonReload(ctx); err != nil {
		t.Fatal(err)
	}

	job("start")
	wantStarts(1)
	job("restart")
	wantStarts(2)
	job("reload")
	job("try-restart")
	wantStarts(3)
	wantState(t, "ActiveState", s.ActiveState, unit, "active")

	job("stop")
	job("try-restart") // of a stopped unit: done, and it stays stopped
	wantState(t, "ActiveState", s.ActiveState, unit, "inactive")
	wantStarts(3)

	err := s.Job(ctx, "reload", unit, 30*time.Second)
	const want = "reload kplay-restart.service: job does not apply to the unit in its state (a reload needs an active unit) (ActiveState=inactive, SubState=dead, Result=success)"
	var je *JobError
	if !errors.As(err, &je) || je.Result != "invalid" || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("reload of a stopped unit: got %v, want a *JobError beginning %q", err, want)
	}
}

func TestMaskUnmask(t *testing.T) {
	t.Parallel()
	m := liveMachine(t)
	s, ctx := m.sys, t.Context()
	const unit = "kplay-mask.service"
	// A vendor unit: /run/systemd/system comes after /etc/systemd/system
	// in the search path, as /usr/lib/systemd/system does.
	m.writeUnit(t, "/run/systemd/system", unit, "[Service]\nExecStart=/bin/sleep infinity\n")
	link := filepath.Join(m.root, "/etc/systemd/system", unit)
	t.Cleanup(func() { os.Remove(link) })
	stopAtEnd(t, s, unit)
	if err := s.DaemonReload(ctx); err != nil {
		t.Fatal(err)
	}
	wantState(t, "UnitFileState", s.UnitFileState, unit, "static")

	for range 2 { // masking a masked unit is no error
		if err := s.Mask(ctx, unit); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := os.Readlink(link); err != nil || got != "/dev/null" {
		t.Errorf("link after Mask: got %q, %v; want %q", got, err, "/dev/null")
	}
	wantState(t, "UnitFileState", s.UnitFileState, unit, "masked")
	if err := s.DaemonReload(ctx); err != nil {
		t.Fatal(err)
	}
	err := s.Job(ctx, "start", unit, 30*time.Second)
	const want = "start kplay-mask.service: unit kplay-mask.service is masked"
	if err == nil || err.Error() != want {
		t.Errorf("start of a masked unit: got %v, want %q", err, want)
	}

	for range 2 { // unmasking an unmasked unit is no error
		if err := s.Unmask(ctx, unit); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Lstat(link); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("link after Unmask: got %v, want it gone", err)
	}
	wantState(t, "UnitFileState", s.UnitFileState, unit, "static")
	if err := s.DaemonReload(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Job(ctx, "start", unit, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestMaskRefusesUnitFile(t *testing.T) {
	t.Parallel()
	m := liveMachine(t)
	const unit = "kplay-mask-file.service"
	m.writeUnit(t, "/etc/systemd/system", unit, "[Service]\nExecStart=/bin/sleep infinity\n")
	err := m.sys.Mask(t.Context(), unit)
	const want = "mask kplay-mask-file.service: file /etc/systemd/system/kplay-mask-file.service already exists"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

func TestUnknownUnit(t *testing.T) {
	t.Parallel()
	m := liveMachine(t)
	s, ctx := m.sys, t.Context()
	const unit = "kplay-nosuch.service"
	wantState(t, "UnitFileState", s.UnitFileState, unit, "not-found")
	wantState(t, "ActiveState", s.ActiveState, unit, "inactive")
	err := s.Job(ctx, "start", unit, 30*time.Second)
	const want = "start kplay-nosuch.service: unit kplay-nosuch.service not found"
	if err == nil || err.Error() != want {
		t.Errorf("start: got %v, want %q", err, want)
	}
}

// slowUnit writes a unit whose start takes 30 s, in ExecStartPre.
func slowUnit(t *testing.T, m *machine, unit string) {
	t.Helper()
	m.writeUnit(t, "/etc/systemd/system", unit,
		"[Service]\nExecStartPre=/bin/sleep 30\nExecStart=/bin/sleep infinity\n")
	if err := m.sys.DaemonReload(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestJobTimeout(t *testing.T) {
	t.Parallel()
	m := liveMachine(t)
	const unit = "kplay-slow.service"
	slowUnit(t, m, unit)
	// Its own connection: Progress is not to be set on the shared one.
	s, err := Dial(t.Context(), m.root+SystemBus)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var progress []string
	s.Progress = func(msg string) { progress = append(progress, msg) }

	err = s.Job(t.Context(), "start", unit, 2500*time.Millisecond)
	t.Logf("error:\n%v", err)
	var je *JobError
	if !errors.As(err, &je) || je.Waited != 2500*time.Millisecond || je.Result != "" {
		t.Fatalf("got %#v, want a *JobError with Waited 2.5s", err)
	}
	const want = "start kplay-slow.service: job did not finish within 2.5s (state activating/start-pre)"
	if first, _, _ := strings.Cut(err.Error(), "\n"); !strings.HasPrefix(first, want) {
		t.Errorf("message: got %q, want it to begin with %q", first, want)
	}
	wantProgress := []string{"start kplay-slow.service: waiting 2s (activating/start-pre)"}
	if strings.Join(progress, "\n") != strings.Join(wantProgress, "\n") {
		t.Errorf("progress: got %q, want %q", progress, wantProgress)
	}

	// The start job is still queued in systemd: a stop replaces it.
	if err := s.Job(t.Context(), "stop", unit, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// The stop kills ExecStartPre with SIGTERM: systemd 252 then says
	// failed/failed, Result=signal.
	if active, err := s.ActiveState(t.Context(), unit); err != nil || (active != "inactive" && active != "failed") {
		t.Errorf("ActiveState after stop: got %q, %v; want inactive or failed", active, err)
	}
}

func TestJobContextDone(t *testing.T) {
	t.Parallel()
	m := liveMachine(t)
	const unit = "kplay-slow-ctx.service"
	slowUnit(t, m, unit)
	stopAtEnd(t, m.sys, unit)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err := m.sys.Job(ctx, "start", unit, time.Minute)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "start kplay-slow-ctx.service: ") {
		t.Errorf("got %v, want %q wrapping context.DeadlineExceeded", err, "start kplay-slow-ctx.service: ...")
	}
}

func TestRunningInContainer(t *testing.T) {
	t.Parallel()
	m := liveMachine(t)
	if !running(m.root) {
		t.Errorf("running(%q): got false, want true", m.root)
	}
}

// TestDialRunningNeitherAnswers: a machine that runs systemd, where
// neither socket answers, is an error naming both, never an offline
// root.
func TestDialRunningNeitherAnswers(t *testing.T) {
	t.Parallel()
	root, err := os.MkdirTemp("", "kl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = dialRunning(t.Context(), root)
	want := "this machine runs systemd (" + filepath.Join(root, "run/systemd/system") + " exists), but kplay cannot talk to it: no system bus socket at " +
		filepath.Join(root, SystemBus) + "; connect to systemd at " + filepath.Join(root, PrivateSocket) + ": "
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "(run kplay as root, or give --root DIR for an offline root)") {
		t.Errorf("got %v\nwant it to begin %q", err, want)
	}
}

func TestJobUnknownAction(t *testing.T) {
	t.Parallel()
	err := (&Systemd{}).Job(t.Context(), "frobnicate", "a.service", time.Second)
	const want = `job "frobnicate" for a.service: unknown action (use start, stop, restart, reload or try-restart)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

func TestDialNoSocket(t *testing.T) {
	t.Parallel()
	socket := filepath.Join(t.TempDir(), "nosuch")
	_, err := Dial(t.Context(), socket)
	if want := "connect to systemd at " + socket + ": "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v, want it to begin with %q", err, want)
	}
}

func TestRunning(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		systemdDir, socket, regular bool
		want                        bool
	}{
		"none":            {},
		"no_systemd":      {socket: true},
		"no_bus":          {systemdDir: true, want: true}, // DialRunning tries the private socket
		"bus_not_socket":  {systemdDir: true, regular: true, want: true},
		"systemd_and_bus": {systemdDir: true, socket: true, want: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// Short: a unix socket path is limited to 108 bytes.
			root, err := os.MkdirTemp("", "kl")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(root) })
			if tt.systemdDir {
				os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755)
			}
			bus := filepath.Join(root, SystemBus)
			os.MkdirAll(filepath.Dir(bus), 0o755)
			if tt.socket {
				l, err := net.Listen("unix", bus)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
			}
			if tt.regular {
				os.WriteFile(bus, nil, 0o644)
			}
			if got := running(root); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestJournalRoot(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		socket string
		root   string
		ok     bool
	}{
		"this_machine":     {socket: "/run/dbus/system_bus_socket", ok: true},
		"var_run":          {socket: "/var/run/dbus/system_bus_socket", ok: true},
		"unclean":          {socket: "/run//dbus/./system_bus_socket", ok: true},
		"container":        {socket: "/proc/42/root/run/dbus/system_bus_socket", root: "/proc/42/root", ok: true},
		"other_layout":     {socket: "/tmp/forwarded.sock"},
		"relative_in_root": {socket: "mnt/run/dbus/system_bus_socket", root: "mnt", ok: true},
		"private":          {socket: "/run/systemd/private", ok: true},
		"private_in_root":  {socket: "/proc/42/root/run/systemd/private", root: "/proc/42/root", ok: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			root, ok := journalRoot(tt.socket)
			if root != tt.root || ok != tt.ok {
				t.Errorf("got %q, %v; want %q, %v", root, ok, tt.root, tt.ok)
			}
		})
	}
}

func TestJobErrorMessage(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in   JobError
		want string
	}{
		"failed": {
			in: JobError{Action: "start", Unit: "broken.service", Result: "failed",
				ActiveState: "failed", SubState: "failed", UnitResult: "exit-code"},
			want: "start broken.service: job failed (ActiveState=failed, SubState=failed, Result=exit-code); see journalctl -u broken.service",
		},
		"failed_with_journal": {
			in: JobError{Action: "start", Unit: "broken.service", Result: "failed",
				ActiveState: "failed", SubState: "failed", UnitResult: "exit-code",
				Journal: []string{"a: Starting broken.service...", "a: Failed to start broken.service."}},
			want: "start broken.service: job failed (ActiveState=failed, SubState=failed, Result=exit-code); journalctl -u broken.service:\n" +
				"    a: Starting broken.service...\n    a: Failed to start broken.service.",
		},
		"dependency_no_state": {
			in:   JobError{Action: "start", Unit: "b.target", Result: "dependency"},
			want: "start b.target: job failed: a unit it depends on failed; see journalctl -u b.target",
		},
		"timeout": {
			in: JobError{Action: "restart", Unit: "kubelet.service", Waited: 90 * time.Second,
				ActiveState: "activating", SubState: "start"},
			want: "restart kubelet.service: job did not finish within 1m30s (state activating/start)",
		},
		"timeout_no_state": {
			in:   JobError{Action: "stop", Unit: "a.service", Waited: time.Second},
			want: "stop a.service: job did not finish within 1s",
		},
		"unknown_result": {
			in:   JobError{Action: "stop", Unit: "a.service", Result: "odd"},
			want: `stop a.service: job ended with result "odd"; see journalctl -u a.service`,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tt.in.Error(); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestUnitType(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"a.service": "Service", "a.socket": "Socket", "b.c.mount": "Mount",
		"a.target": "", "a.device": "", "noext": "",
	}
	for in, want := range tests {
		if got := unitType(in); got != want {
			t.Errorf("unitType(%q): got %q, want %q", in, got, want)
		}
	}
}

func TestBusErrorWording(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in   dbus.Error
		want string
	}{
		"sentence":     {in: dbus.Error{Body: []any{"Unit foo.service not found."}}, want: "unit foo.service not found"},
		"path":         {in: dbus.Error{Body: []any{"File /etc/a already exists."}}, want: "file /etc/a already exists"},
		"acronym_kept": {in: dbus.Error{Body: []any{"D-Bus connection closed"}}, want: "D-Bus connection closed"},
		"no_body":      {in: dbus.Error{Name: "org.freedesktop.DBus.Error.Failed"}, want: "org.freedesktop.DBus.Error.Failed"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			err := cleanBusError(tt.in)
			var be dbus.Error
			if !errors.As(err, &be) {
				t.Errorf("errors.As dbus.Error: got false, want true")
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	wrapped := fmt.Errorf("call: %w", dbus.Error{Body: []any{"Odd."}})
	if got := cleanBusError(wrapped); got != wrapped {
		t.Errorf("wrapped: got %v, want it unchanged", got)
	}
}
