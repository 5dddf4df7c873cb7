package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kplay-dev/kplay/fleet/sshdtest"
)

// kplayBinary is this test binary installed as kplay by TestMain
// (testscript puts it first in PATH): run as "kplay", it is kplay, and
// a fleet run sends it to the hosts as its own executable.
func kplayBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("kplay")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// forgetBinary removes, when the test ends, the copy of kplay that the
// test hosts (sshd's on this machine, as root) keep in root's cache, unless
// it was there before.
func forgetBinary(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile(kplayBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	home, err := os.UserHomeDir()
	if err != nil {
		return
	}
	cached := filepath.Join(home, ".cache/kplay/bin", hex.EncodeToString(sum[:]))
	if _, err := os.Stat(cached); err == nil {
		return
	}
	t.Cleanup(func() { os.RemoveAll(cached) })
}

// fleetRun runs kplay args in the fleet's controller namespace and
// returns its stdout, stderr and exit code.
func fleetRun(t *testing.T, f *sshdtest.Fleet, dir string, args ...string) (string, string, int) {
	t.Helper()
	cmd := f.Command(kplayBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "SSH_AUTH_SOCK=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// fleetPlaybook writes a playbook that writes a file from a per-host var
// and one from a src= file next to it, and an inventory of f's hosts,
// each with its own root under dir.
func fleetPlaybook(t *testing.T, dir string, f *sshdtest.Fleet, extra string) (inventory string, roots []string) {
	t.Helper()
	write := func(name, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("play/site.star", `load("lib/motd.star", "motd")
NAME = var("NAME", doc = "the host's name")
TOKEN = var("TOKEN", sensitive = True, doc = "a secret")
motd(NAME)
file("/etc/kplay-src", src = "files/banner.txt", mode = 0o644)
file("/etc/token", content = TOKEN, mode = 0o600)
`)
	write("play/lib/motd.star", `def motd(name):
    file("/etc/motd", content = "hello from %s\n" % name, mode = 0o644)
`)
	write("play/files/banner.txt", "shipped from the controller\n")
	var inv strings.Builder
	fmt.Fprintf(&inv, "ssh:\n  identity: %s\n  known_hosts: %s\nvars:\n  TOKEN: s3cr3t-token\nhosts:\n", f.Identity, f.KnownHosts)
	for _, h := range f.Hosts {
		root := filepath.Join(dir, "roots", h.Name)
		if err := os.MkdirAll(root, 0o755); err != nil {
			t.Fatal(err)
		}
		roots = append(roots, root)
		fmt.Fprintf(&inv, "  %s: {address: %s, root: %s, vars: {NAME: %s}}\n", h.Name, h.Address, root, h.Name)
	}
	inv.WriteString(extra)
	write("masters.yaml", inv.String())
	return filepath.Join(dir, "masters.yaml"), roots
}

// TestFleetTransport converges three hosts over real sshd's, each in its
// own network namespace, and tells apart the ways a host cannot be
// reached: a host key known_hosts does not vouch for, a host that
// refuses the key, a host where nothing listens, an address where no
// host is.
func TestFleetTransport(t *testing.T) {
	f := sshdtest.Start(t, sshdtest.HostOptions{}, sshdtest.HostOptions{}, sshdtest.HostOptions{},
		sshdtest.HostOptions{WrongKey: true}, sshdtest.HostOptions{RefuseAuth: true}, sshdtest.HostOptions{NoSSHD: true})
	forgetBinary(t)
	dir := t.TempDir()
	inv, roots := fleetPlaybook(t, dir, f, fmt.Sprintf("  gone: {address: %s.99, root: %s}\n", sshdtest.Subnet, filepath.Join(dir, "roots", "gone")))

	// check: the good hosts have changes, the others are unreachable;
	// nothing is written anywhere.
	out, errOut, code := fleetRun(t, f, dir, "check", "play/site.star", "--inventory", inv, "--var", "NAME=x", "--max-fail=100%")
	if code != 1 {
		t.Fatalf("check exit %d, want 1 (unreachable hosts)\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"h4: unreachable", "key mismatch", "h5: unreachable", "authentication as root refused", "h6: unreachable", "connection refused", "gone: unreachable"} {
		if !strings.Contains(out+errOut, want) {
			t.Errorf("check output lacks %q:\n%s\n%s", want, out, errOut)
		}
	}
	if strings.Contains(out+errOut, "s3cr3t-token") {
		t.Errorf("check printed the sensitive var:\n%s\n%s", out, errOut)
	}
	if n := strings.Count(out+errOut, "authentication as root refused"); n != 1 {
		t.Errorf("auth refusal reported %d times, want once:\n%s\n%s", n, out, errOut)
	}
	for _, root := range roots {
		if _, err := os.Stat(filepath.Join(root, "etc/motd")); err == nil {
			t.Fatalf("check wrote %s", root)
		}
	}

	// run on the three good hosts, twice: the second changes nothing.
	good := filepath.Join(dir, "good.yaml")
	data, _ := os.ReadFile(inv)
	var keep []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "h4:") || strings.Contains(line, "h5:") || strings.Contains(line, "h6:") || strings.Contains(line, "gone:") {
			continue
		}
		keep = append(keep, line)
	}
	if err := os.WriteFile(good, []byte(strings.Join(keep, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = fleetRun(t, f, dir, "run", "play/site.star", "--inventory", good, "--output", "json")
	if code != 0 {
		t.Fatalf("run exit %d\n%s\n%s", code, out, errOut)
	}
	var doc struct {
		Hosts []struct {
			Name, Outcome string
			BinarySent    bool `json:"binary_sent"`
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(doc.Hosts) != 3 {
		t.Fatalf("json lists %d hosts, want 3", len(doc.Hosts))
	}
	for _, h := range doc.Hosts {
		// The check before sent it; the host keeps it in its cache.
		if h.BinarySent {
			t.Errorf("%s: kplay was sent again; the host should have it in ~/.cache/kplay/bin", h.Name)
		}
	}
	for i, root := range roots[:3] {
		motd, err := os.ReadFile(filepath.Join(root, "etc/motd"))
		if err != nil || string(motd) != fmt.Sprintf("hello from h%d\n", i+1) {
			t.Errorf("%s/etc/motd: %q %v", root, motd, err)
		}
		src, err := os.ReadFile(filepath.Join(root, "etc/kplay-src"))
		if err != nil || string(src) != "shipped from the controller\n" {
			t.Errorf("%s/etc/kplay-src: %q %v", root, src, err)
		}
	}
	if strings.Contains(out+errOut, "s3cr3t-token") {
		t.Errorf("run printed the sensitive var")
	}
	out, errOut, code = fleetRun(t, f, dir, "check", "play/site.star", "--inventory", good)
	if code != 0 {
		t.Fatalf("second check exit %d, want 0 (nothing to change)\n%s\n%s", code, out, errOut)
	}
	// The text report lists each distinct change once, with its hosts.
	banner := filepath.Join(dir, "play/files/banner.txt")
	if err := os.WriteFile(banner, []byte("a new banner\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = fleetRun(t, f, dir, "check", "play/site.star", "--inventory", good)
	if code != 2 || strings.Count(out, "file /etc/kplay-src") != 1 || strings.Count(out, "+a new banner") != 1 ||
		!strings.Contains(out, "all 3 hosts: play/site.star:5:5  file /etc/kplay-src  update") {
		t.Errorf("check with a new src= file: exit %d, want 2 and the change listed once for all 3 hosts:\n%s\n%s", code, out, errOut)
	}

	// --ssh-insecure-accept-new: a host known_hosts does not list is
	// trusted, its key recorded and said; a changed key is refused still.
	partial := filepath.Join(dir, "partial_known_hosts")
	known, err := os.ReadFile(f.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(known)), "\n") {
		if !strings.HasPrefix(l, f.Hosts[0].Address+" ") {
			lines = append(lines, l)
		}
	}
	if err := os.WriteFile(partial, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"check", "play/site.star", "--hosts", "root@" + f.Hosts[0].Address + ",root@" + f.Hosts[3].Address,
		"--ssh-identity", f.Identity, "--ssh-known-hosts", partial, "--var", "NAME=x", "--var", "TOKEN=t", "--root", filepath.Join(dir, "roots/accept")}
	out, errOut, code = fleetRun(t, f, dir, args...)
	if code != 1 || !strings.Contains(out, f.Hosts[0].Address+": unreachable: "+partial+" lists no key") {
		t.Errorf("an unlisted host without --ssh-insecure-accept-new:\n%s\n%s", out, errOut)
	}
	out, errOut, code = fleetRun(t, f, dir, append(args, "--ssh-insecure-accept-new")...)
	if code != 1 || !strings.Contains(errOut, "kplay: "+f.Hosts[0].Address+": added its host key to known_hosts") ||
		!strings.Contains(out, f.Hosts[3].Address+": unreachable: ssh: handshake failed: host key mismatch") {
		t.Errorf("--ssh-insecure-accept-new: exit %d, want 1 (h4's key is still wrong), h1 accepted:\n%s\n%s", code, out, errOut)
	}
	if data, _ := os.ReadFile(partial); !strings.Contains(string(data), f.Hosts[0].Address+" ssh-ed25519 ") {
		t.Errorf("the accepted key is not in known_hosts:\n%s", data)
	}

	// A @cert-authority line is not taken for a changed key.
	pub, err := os.ReadFile(f.Identity + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	caKnown := filepath.Join(dir, "ca_known_hosts")
	if err := os.WriteFile(caKnown, []byte("@cert-authority "+f.Hosts[0].Address+" "+string(pub)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, _ = fleetRun(t, f, dir, "check", "play/site.star", "--hosts", "root@"+f.Hosts[0].Address, "--ssh-identity", f.Identity,
		"--ssh-known-hosts", caKnown, "--var", "NAME=x", "--var", "TOKEN=t", "--root", filepath.Join(dir, "roots/accept"))
	if !strings.Contains(out, caKnown+":1 is a @cert-authority line, and kplay does not check host certificates") {
		t.Errorf("a @cert-authority known_hosts:\n%s\n%s", out, errOut)
	}

	// Nothing of the job (the binary, the vars) stays on the hosts.
	left, _ := filepath.Glob("/tmp/kplay.*")
	for _, l := range left {
		if fi, err := os.Stat(filepath.Join(l, "job.json")); err == nil {
			t.Errorf("a host kept its job: %s (%v)", l, fi.Mode())
		}
	}
}

// TestFleetInterrupt interrupts a fleet run while its host waits (a
// wait_http on a port where nothing answers): the remote kplay stops
// before its next step, the controller exits 1 long before the wait's
// timeout, and the host keeps nothing of the job.
func TestFleetInterrupt(t *testing.T) {
	f := sshdtest.Start(t, sshdtest.HostOptions{})
	forgetBinary(t)
	dir := t.TempDir()
	play := filepath.Join(dir, "wait.star")
	if err := os.WriteFile(play, []byte(`wait_http("http://127.0.0.1:9/", timeout = "5m", interval = "1s")
file("/etc/after", content = "the wait ended\n")
`), 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	before, _ := filepath.Glob("/tmp/kplay.*")
	cmd := f.Command(kplayBinary(t), "run", play, "--hosts", "root@"+f.Hosts[0].Address, "--ssh-identity", f.Identity,
		"--ssh-known-hosts", f.KnownHosts, "--root", root)
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "SSH_AUTH_SOCK=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The host's first stderr line (the wait's progress) says it waits.
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var seen []string
	select {
	case l := <-lines:
		seen = append(seen, l)
	case <-time.After(30 * time.Second):
		t.Log("no progress line from the host within 30s; interrupting anyway")
	}
	began := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for l := range lines {
		seen = append(seen, l)
	}
	err = cmd.Wait()
	took := time.Since(began)
	t.Logf("stopped in %s; stderr:\n%s\nstdout:\n%s", took, strings.Join(seen, "\n"), stdout.String())
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit %d (%v), want 1\n%s\n%s", code, err, stdout.String(), strings.Join(seen, "\n"))
	}
	if took > 20*time.Second {
		t.Errorf("kplay took %s to stop after the interrupt", took)
	}
	if !strings.Contains(stdout.String()+strings.Join(seen, "\n"), "interrupted") {
		t.Errorf("no word of the interrupt:\n%s\n%s", stdout.String(), strings.Join(seen, "\n"))
	}
	if _, err := os.Stat(filepath.Join(root, "etc/after")); err == nil {
		t.Error("the host applied the step after the wait: the interrupt did not stop it")
	}
	after, _ := filepath.Glob("/tmp/kplay.*")
	for _, d := range after {
		if !slices.Contains(before, d) {
			t.Errorf("the host kept %s", d)
		}
	}
}
