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
	"syscall"
	"testing"
	"time"
)

// The tests of this package share one real systemd, booted in a
// systemd-nspawn container on first use (see
// /work/shared/recipes/live-systemd.md) and halted by TestMain. Booting
// one per test would cost ~1 s each. Tests keep apart by using their own
// unit names; a test that needs another container (other nspawn options)
// boots its own with ownMachine. The other shared state is the kplay
// binary of the end-to-end tests (kplayBinary).
var shared struct {
	once sync.Once
	m    *machine
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	if shared.m != nil {
		began := time.Now()
		if err := shared.m.halt(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		} else {
			fmt.Fprintf(os.Stderr, "live: halted test systemd in %s\n", time.Since(began).Round(time.Millisecond))
			os.Remove(shared.m.log)
		}
	}
	os.Exit(code)
}

// liveMachine returns the shared container, booting it on first use. It
// skips the test when systemd-nspawn is missing or we are not root, and
// fails it when the container does not boot.
func liveMachine(t *testing.T) *machine {
	t.Helper()
	needNspawn(t)
	shared.once.Do(func() {
		// Not t.Context(): the container outlives this test.
		shared.m, shared.err = bootMachine(context.Background(), fmt.Sprintf("kplaylive%d", os.Getpid()))
		if shared.err != nil {
			// Once, not in every test that needs the machine.
			fmt.Fprintln(os.Stderr, shared.err)
		}
	})
	if shared.err != nil {
		t.Fatal("no live systemd: the container did not boot (its log is printed above)")
	}
	return shared.m
}

// ownMachine boots a container for this test alone, with extra
// systemd-nspawn options (such as --overlay=/usr:UPPER:/usr to add stubs
// under the read-only /usr), and halts it when the test ends. Use it when
// the shared one will not do: it costs a boot (~2 s) and a halt.
func ownMachine(t *testing.T, name string, nspawnOpts ...string) *machine {
	t.Helper()
	needNspawn(t)
	m, err := bootMachine(context.Background(), fmt.Sprintf("kplay%s%d", name, os.Getpid()), nspawnOpts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		began := time.Now()
		if err := m.halt(); err != nil {
			t.Error(err)
			return
		}
		t.Logf("halted container in %s", time.Since(began).Round(time.Millisecond))
		os.Remove(m.log)
	})
	return m
}

// needNspawn skips the test when systemd-nspawn is missing or we are not
// root.
func needNspawn(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("systemd-nspawn"); err != nil {
		t.Skip("systemd-nspawn not found (apt-get install systemd-container): no live systemd to test against")
	}
	if os.Geteuid() != 0 {
		t.Skip("not root: systemd-nspawn needs root to boot a test systemd")
	}
}

// machine is a systemd booted in a systemd-nspawn container whose root is
// a tmpfs over the host's read-only /usr: nothing it does reaches the host.
type machine struct {
	nspawn *exec.Cmd
	exited chan struct{} // closed when nspawn has exited
	log    string        // nspawn's output and the container's console
	pid    int           // the container's PID 1, as seen from the host
	root   string        // the container's / seen from the host: /proc/<pid>/root
	sys    *Systemd      // connected to the container's system bus
}

// bootMachine boots a container named name (unique among the running
// ones) with the extra systemd-nspawn options opts, waits until its
// systemd says "running" and connects to its bus. On failure it halts what
// it started, and the error holds the container's log.
func bootMachine(ctx context.Context, name string, opts ...string) (*machine, error) {
	began := time.Now()
	logf, err := os.CreateTemp("", "kplay-live-nspawn-*.log")
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	m := &machine{exited: make(chan struct{}), log: logf.Name()}
	args := []string{
		"--directory=/", "--volatile=yes", "--register=no", "--keep-unit",
		"--machine=" + name, "--console=pipe",
		// Keep the boot clean: "running", 0 failed units.
		"--bind-ro=/dev/null:/etc/systemd/system/systemd-firstboot.service",
		"--bind-ro=/dev/null:/etc/systemd/system/etcd.service",
	}
	args = append(append(args, opts...), "-b")
	m.nspawn = exec.Command("systemd-nspawn", args...)
	m.nspawn.Stdout, m.nspawn.Stderr = logf, logf
	// Setsid: the container gets no signal meant for the test's terminal.
	// Pdeathsig: if the test binary dies, nspawn halts the container.
	m.nspawn.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM}
	if err := m.nspawn.Start(); err != nil {
		return nil, fmt.Errorf("start systemd-nspawn: %w", err)
	}
	go func() {
		m.nspawn.Wait()
		close(m.exited)
	}()
	fail := func(err error) (*machine, error) {
		herr := m.halt()
		log, _ := os.ReadFile(m.log)
		return nil, fmt.Errorf("boot systemd container: %w (halt: %v); log %s:\n%s", err, herr, m.log, log)
	}

	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if m.pid, err = m.waitPID1(ctx); err != nil {
		return fail(err)
	}
	m.root = fmt.Sprintf("/proc/%d/root", m.pid)
	if err := m.waitRunning(ctx); err != nil {
		return fail(err)
	}
	if m.sys, err = Dial(ctx, m.root+SystemBus); err != nil {
		return fail(err)
	}
	fmt.Fprintf(os.Stderr, "live: booted systemd in container %s (PID 1 = host pid %d) in %s\n",
		name, m.pid, time.Since(began).Round(time.Millisecond))
	return m, nil
}

// waitPID1 finds the systemd that nspawn started: its child named systemd.
func (m *machine) waitPID1(ctx context.Context) (int, error) {
	for {
		if pid := childNamed(m.nspawn.Process.Pid, "systemd"); pid != 0 {
			return pid, nil
		}
		select {
		case <-m.exited:
			return 0, errors.New("systemd-nspawn exited before starting systemd")
		case <-ctx.Done():
			return 0, fmt.Errorf("no systemd under systemd-nspawn (pid %d): %w", m.nspawn.Process.Pid, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// childNamed returns the pid of a child of parent whose command name is
// comm, or 0.
func childNamed(parent int, comm string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may hold spaces and parens.
		open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(string(stat[end+1:]))
		if len(f) > 1 && string(stat[open+1:end]) == comm && f[1] == strconv.Itoa(parent) {
			return pid
		}
	}
	return 0
}

// waitRunning waits until `systemctl is-system-running --wait` inside the
// container says "running" ("degraded" is accepted and its failed units
// are printed). Right after PID 1 starts, systemctl cannot connect yet:
// retry until ctx ends.
func (m *machine) waitRunning(ctx context.Context) error {
	var last string
	for {
		out, _ := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(m.pid), "-a",
			"systemctl", "is-system-running", "--wait").CombinedOutput()
		last = strings.TrimSpace(string(out))
		switch last {
		case "running":
			return nil
		case "degraded":
			failed, _ := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(m.pid), "-a",
				"systemctl", "--failed", "--no-pager").CombinedOutput()
			fmt.Fprintf(os.Stderr, "live: test systemd is degraded:\n%s", failed)
			return nil
		}
		select {
		case <-m.exited:
			return fmt.Errorf("systemd-nspawn exited while booting (is-system-running: %q)", last)
		case <-ctx.Done():
			return fmt.Errorf("systemd did not come up: is-system-running says %q: %w", last, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// halt closes the bus connection and halts the container cleanly
// (SIGTERM to nspawn, ~2 s), killing nspawn if it takes more than 30 s.
func (m *machine) halt() error {
	if m.sys != nil {
		m.sys.Close()
	}
	m.nspawn.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
		return nil
	case <-time.After(30 * time.Second):
		m.nspawn.Process.Kill()
		<-m.exited
		return fmt.Errorf("systemd-nspawn (pid %d) did not halt within 30s: killed; log in %s", m.nspawn.Process.Pid, m.log)
	}
}

// writeUnit writes a unit file into the container at dir (e.g.
// "/etc/systemd/system") and removes it when the test ends.
func (m *machine) writeUnit(t *testing.T, dir, name, content string) {
	t.Helper()
	path := filepath.Join(m.root, dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
}
