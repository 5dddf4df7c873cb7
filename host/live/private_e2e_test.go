package live

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKplayWithoutSystemBusInsideTheContainer: on a machine that runs
// systemd but has no system bus (dbus stopped: early boot, an image
// without dbus), `kplay run --root /` reaches systemd through its
// private socket and restarts the unit, rather than taking the machine
// for an offline root and skipping the restart (issue 12, item 2).
// systemd takes private connections only from its own PID namespace, so
// kplay runs inside its own container.
func TestKplayWithoutSystemBusInsideTheContainer(t *testing.T) {
	t.Parallel()
	m := ownMachine(t, "nobus")
	if out, code := m.exec(t, "systemctl", "stop", "dbus.socket", "dbus.service"); code != 0 {
		t.Fatalf("stop dbus: %s", out)
	}
	_ = os.Remove(filepath.Join(m.root, SystemBus))
	dir := "/tmp/kplay-nobus"
	m.installKplay(t, dir, `
unit("kplay-nobus.service", "[Service]\nExecStart=/bin/sleep infinity\n")
systemctl("restart", "kplay-nobus.service")
`)
	out, code := m.exec(t, dir+"/kplay", "run", dir+"/play.star", "--root", "/")
	if code != 0 || !strings.Contains(out, "systemctl restart kplay-nobus.service: ran") || strings.Contains(out, "offline root") {
		t.Fatalf("kplay run without a system bus: exit %d\n%s", code, out)
	}
	if state, _ := m.exec(t, "systemctl", "is-active", "kplay-nobus.service"); strings.TrimSpace(state) != "active" {
		t.Errorf("is-active after run: %q", state)
	}
}
