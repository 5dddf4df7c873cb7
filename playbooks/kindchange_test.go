package playbooks

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestKillDuringAKindChangeConverges: a run that turns a file kplay wrote
// into a directory, and a directory it made into a file, killed at each
// of its failpoints in turn (the first is after its ledger says what it
// will do, before anything is removed), leaves a root that the next run
// converges and that check then finds nothing to do in. A killed run
// once left the ledger naming the new kind, so no later run removed the
// old one and every run failed.
func TestKillDuringAKindChangeConverges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("kplay writes its files root:root: run the tests as root")
	}
	work := t.TempDir()
	bin := buildKplay(t, work, "kplay")
	fpBin := buildKplay(t, work, "kplay-failpoints", "kplay_failpoints")
	write := func(name, src string) string {
		p := filepath.Join(work, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Both playbooks have one name, so that they share a ledger.
	for _, d := range []string{"v1", "v2"} {
		if err := os.Mkdir(filepath.Join(work, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	before := write("v1/kind.star", `
file("/etc/app/replace_me", content = "f\n")
directory("/etc/kd", mode = 0o755)
file("/etc/kd/f", content = "x\n")
file("/etc/app/a.conf", content = "a1\n")
`)
	after := write("v2/kind.star", `
directory("/etc/app/replace_me", mode = 0o750)
file("/etc/app/replace_me/inner", content = "in\n")
file("/etc/kd", content = "now a file\n")
file("/etc/app/a.conf", content = "a2\n")
`)
	kplay := func(bin, mode, playbook, root string, env ...string) (exit int, killed bool, out string) {
		cmd := exec.Command(bin, mode, playbook, "--root", root)
		cmd.Env = append(os.Environ(), env...)
		b, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled():
			return -1, true, string(b)
		case errors.As(err, &ee):
			return ee.ExitCode(), false, string(b)
		default:
			t.Fatal(err)
		}
		return 0, false, string(b)
	}
	fresh := func(name string) string {
		root := filepath.Join(work, name)
		if exit, _, out := kplay(bin, "run", before, root); exit != 0 {
			t.Fatalf("the first run: exit %d\n%s", exit, out)
		}
		return root
	}
	_, _, out := kplay(fpBin, "run", after, fresh("count"), failpointEnv+"=-1")
	count := strings.Count(out, "kplay failpoint ")
	if count < 5 {
		t.Fatalf("the run passed %d failpoints; it printed:\n%s", count, out)
	}
	for n := 1; n <= count; n++ {
		root := fresh("root" + strconv.Itoa(n))
		if _, killed, out := kplay(fpBin, "run", after, root, failpointEnv+"="+strconv.Itoa(n)); !killed {
			t.Fatalf("failpoint %d: the run was not killed:\n%s", n, out)
		}
		if exit, _, out := kplay(bin, "run", after, root); exit != 0 {
			t.Errorf("failpoint %d: the run after the kill: exit %d\n%s", n, exit, out)
			continue
		}
		if exit, _, out := kplay(bin, "check", after, root); exit != 0 {
			t.Errorf("failpoint %d: check after: exit %d\n%s", n, exit, out)
		}
		if fi, err := os.Lstat(filepath.Join(root, "etc/kd")); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("failpoint %d: /etc/kd is %v (%v), want the file", n, fi, err)
		}
	}
}
