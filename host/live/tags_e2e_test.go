package live

import (
	"strings"
	"testing"
)

// tagsPlaybook changes a drop-in's Environment= to $V and restarts the
// unit on that change; the tags of each step come from vars, so one
// playbook serves each selection.
const tagsPlaybook = `
conf = var("CONF_TAG")
restart = var("RESTART_TAG")
unit("kplay-tags.service", "[Service]\nExecStart=/bin/sleep infinity\n", tags = [conf])
d = dropin("kplay-tags.service", "10-env.conf", "[Service]\nEnvironment=KPLAY_TAGS=%s\n" % var("V"), tags = [conf])
systemctl("start", "kplay-tags.service", tags = [restart])
systemctl("restart", "kplay-tags.service", on_change = [d], tags = [restart])
`

// TestTagsKeepTheDaemonReloadInsideTheContainer runs kplay with --tags
// on a booted systemd (issue 12, item 1): the restart of a unit whose
// drop-in changed runs after a daemon-reload whatever the tags, so the
// service gets the new Environment=; and a run that changes only the
// drop-in (--tags conf) reloads, so a later run's restart does too.
func TestTagsKeepTheDaemonReloadInsideTheContainer(t *testing.T) {
	t.Parallel()
	// Its own machine: kplay's journal of owed actions
	// (/var/lib/kplay) is per root, and the shared machine's root is
	// used by the other end-to-end tests at the same time.
	m := ownMachine(t, "tags")
	dir := "/tmp/kplay-tags"
	m.installKplay(t, dir, tagsPlaybook)
	run := func(v, conf, restart string, tags ...string) string {
		t.Helper()
		args := []string{dir + "/kplay", "run", dir + "/play.star", "--root", "/",
			"--var", "V=" + v, "--var", "CONF_TAG=" + conf, "--var", "RESTART_TAG=" + restart}
		out, code := m.exec(t, append(args, tags...)...)
		if code != 0 {
			t.Fatalf("kplay run %v: exit %d\n%s", tags, code, out)
		}
		return out
	}
	env := func() string {
		t.Helper()
		out, _ := m.exec(t, "systemctl", "show", "-p", "Environment", "--value", "kplay-tags.service")
		return strings.TrimSpace(out)
	}

	// Every step tagged flannel, --tags flannel.
	run("1", "flannel", "flannel", "--tags", "flannel")
	out := run("2", "flannel", "flannel", "--tags", "flannel")
	if !strings.Contains(out, "systemctl daemon-reload: ran") || strings.Contains(out, "daemon-reload: skipped") {
		t.Errorf("--tags flannel left out the daemon-reload:\n%s", out)
	}
	if got := env(); got != "KPLAY_TAGS=2" {
		t.Errorf("Environment after --tags flannel: %q, want KPLAY_TAGS=2 (restarted against the old unit)", got)
	}

	// --tags conf changes the drop-in alone; a full run then restarts.
	run("3", "conf", "restart", "--tags", "conf")
	run("3", "conf", "restart")
	if got := env(); got != "KPLAY_TAGS=3" {
		t.Errorf("Environment after --tags conf and a full run: %q, want KPLAY_TAGS=3", got)
	}
	if out, _ := m.exec(t, "systemctl", "show", "-p", "NeedDaemonReload", "--value", "kplay-tags.service"); strings.TrimSpace(out) != "no" {
		t.Errorf("NeedDaemonReload=%s: a reload was left out", strings.TrimSpace(out))
	}
}
