package live

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// e2ePlaybook writes a unit and a drop-in, and starts, enables and
// restarts-on-change the unit: the shape of the guide's systemd part.
const e2ePlaybook = `
u = unit("kplay-e2e.service", """\
[Unit]
Description=kplay end-to-end test

[Service]
ExecStart=/bin/sleep infinity

[Install]
WantedBy=multi-user.target
""")
d = dropin("kplay-e2e.service", "10-env.conf", "[Service]\nEnvironment=KPLAY_E2E=1\n")
systemctl("start", "kplay-e2e.service")
systemctl("enable", "kplay-e2e.service")
systemctl("restart", "kplay-e2e.service", on_change = [u, d])
`

// TestEndToEndKplayInsideTheContainer builds the kplay binary, copies it
// into the booted container and runs a playbook there with --root /, so
// the CLI picks the live D-Bus backend: a first run converges, a second
// changes and restarts nothing, and an edited drop-in brings exactly one
// daemon-reload and the restart.
func TestEndToEndKplayInsideTheContainer(t *testing.T) {
	t.Parallel()
	m := liveMachine(t)
	dir := "/tmp/kplay-e2e"
	m.installKplay(t, dir, e2ePlaybook)
	t.Cleanup(func() {
		m.exec(t, "systemctl", "disable", "--now", "kplay-e2e.service")
		os.RemoveAll(filepath.Join(m.root, "etc/systemd/system/kplay-e2e.service.d"))
		os.Remove(filepath.Join(m.root, "etc/systemd/system/kplay-e2e.service"))
	})
	kplay := func(wantCode int, args ...string) string {
		t.Helper()
		out, code := m.exec(t, append([]string{dir + "/kplay"}, args...)...)
		if code != wantCode {
			t.Fatalf("kplay %s: exit %d, want %d\n%s", strings.Join(args, " "), code, wantCode, out)
		}
		return out
	}
	play := dir + "/play.star"

	out := kplay(0, "run", play, "--root", "/")
	for _, want := range []string{
		`unit /etc/systemd/system/kplay-e2e.service: created`,
		`dropin /etc/systemd/system/kplay-e2e.service.d/10-env.conf: created`,
		`systemctl daemon-reload: ran`,
		`systemctl start kplay-e2e.service: ran`,
		`systemctl enable kplay-e2e.service: ran`,
		`systemctl restart kplay-e2e.service: ran`,
		`0 updated, 1 restarted, 2 created, 3 actions run, 0 unchanged, 0 skipped (6 steps)`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("first run lacks %q:\n%s", want, out)
		}
	}
	if state, _ := m.exec(t, "systemctl", "is-active", "kplay-e2e.service"); strings.TrimSpace(state) != "active" {
		t.Errorf("is-active after run: %q", state)
	}
	if state, _ := m.exec(t, "systemctl", "is-enabled", "kplay-e2e.service"); strings.TrimSpace(state) != "enabled" {
		t.Errorf("is-enabled after run: %q", state)
	}
	pid, _ := m.exec(t, "systemctl", "show", "-p", "MainPID", "--value", "kplay-e2e.service")

	out = kplay(0, "run", play, "--root", "/")
	if !strings.Contains(out, "0 updated, 0 created, 0 actions run, 5 unchanged, 0 skipped (5 steps)") {
		t.Errorf("second run changed something:\n%s", out)
	}
	if again, _ := m.exec(t, "systemctl", "show", "-p", "MainPID", "--value", "kplay-e2e.service"); again != pid {
		t.Errorf("second run restarted the unit: MainPID %q → %q", strings.TrimSpace(pid), strings.TrimSpace(again))
	}
	kplay(0, "check", play, "--root", "/")

	dropin := filepath.Join(m.root, "etc/systemd/system/kplay-e2e.service.d/10-env.conf")
	if err := os.WriteFile(dropin, []byte("[Service]\nEnvironment=KPLAY_E2E=edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out = kplay(2, "check", play, "--root", "/")
	for _, want := range []string{
		"dropin /etc/systemd/system/kplay-e2e.service.d/10-env.conf: update (content changed)",
		"-Environment=KPLAY_E2E=edited",
		"+Environment=KPLAY_E2E=1",
		"systemctl daemon-reload: run",
		"systemctl restart kplay-e2e.service: run",
		"1 to update, 1 restart, 0 to create, 1 action, 3 unchanged, 0 skipped (6 steps)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check after editing the drop-in lacks %q:\n%s", want, out)
		}
	}
	out = kplay(0, "run", play, "--root", "/")
	if !strings.Contains(out, "1 updated, 1 restarted, 0 created, 1 action run, 3 unchanged, 0 skipped (6 steps)") {
		t.Errorf("run after editing the drop-in:\n%s", out)
	}
	if env, _ := m.exec(t, "systemctl", "show", "-p", "Environment", "--value", "kplay-e2e.service"); strings.TrimSpace(env) != "KPLAY_E2E=1" {
		t.Errorf("Environment after run: %q (the restart did not pick up the drop-in)", env)
	}
}

// installKplay copies the kplay binary to dir/kplay and playbook to
// dir/play.star inside the container.
func (m *machine) installKplay(t *testing.T, dir, playbook string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(m.root, dir), 0o755); err != nil {
		t.Fatal(err)
	}
	m.copyKplay(t, filepath.Join(dir, "kplay"))
	if err := os.WriteFile(filepath.Join(m.root, dir, "play.star"), []byte(playbook), 0o644); err != nil {
		t.Fatal(err)
	}
}

// copyKplay copies the kplay binary to path inside the container. cp
// writes it, not this process: a file this process held open for writing
// could be inherited by a child that another test forks at that moment,
// and exec of it would then fail with "text file busy"
// (go.dev/issue/22315).
func (m *machine) copyKplay(t *testing.T, path string) {
	t.Helper()
	dst := filepath.Join(m.root, path)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", kplayBinary(t), dst).CombinedOutput(); err != nil {
		t.Fatalf("copy kplay into the container: %v\n%s", err, out)
	}
}

// built is the kplay binary, built once for the end-to-end tests; TestMain
// removes its directory.
var built struct {
	once sync.Once
	dir  string
	err  error
}

// kplayBinary builds the kplay command (once per test binary: the
// end-to-end tests share it) and returns its path, to be copied into a
// container. go build writes it, so this process never holds it open.
func kplayBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "kplay-live-bin-*")
		if built.err != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(built.dir, "kplay"), "github.com/kplay-dev/kplay/cmd/kplay").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return filepath.Join(built.dir, "kplay")
}

// exec runs a command inside the container and returns its combined
// output and exit code.
func (m *machine) exec(t *testing.T, args ...string) (string, int) {
	t.Helper()
	// Not t.Context(): cleanups run commands too, after it is done.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(m.pid), "-a"}, args...)...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return out.String(), exit.ExitCode()
	case err != nil:
		t.Fatalf("nsenter %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), 0
}
