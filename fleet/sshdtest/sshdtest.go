// Package sshdtest starts real OpenSSH servers for fleet tests, each in
// its own network namespace on a bridge that exists only inside a
// namespace of the controller's (../shared/recipes/fleet.md, recipe A):
// every address is inside namespaces the test creates and deletes.
// It needs root, ip(8) and /usr/sbin/sshd; Start skips the test
// without them.
package sshdtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Subnet is the /24 of the test hosts: host N is Subnet.N, the bridge
// in the controller's namespace Subnet.254.
const Subnet = "10.213.77"

// HostOptions make a host fail in one way.
type HostOptions struct {
	// NoSSHD: the namespace exists, nothing listens (connection refused).
	NoSSHD bool
	// RefuseAuth: sshd accepts no key (authentication fails).
	RefuseAuth bool
	// WrongKey: known_hosts lists another key for the host.
	WrongKey bool
}

// Host is one test host.
type Host struct {
	Name    string // h1, h2, ...
	Address string // Subnet.N
	Dir     string // its sshd's files
	ns      string
}

// Fleet is a set of test hosts and the controller's namespace.
type Fleet struct {
	// Ctl is the controller's network namespace: run the client there
	// (Command), the only place the hosts' addresses route.
	Ctl string
	// Identity is the private key every host (but RefuseAuth ones)
	// accepts for root; KnownHosts lists each host's key (a wrong one
	// for WrongKey hosts).
	Identity, KnownHosts string
	Hosts                []*Host
	dir                  string
}

// Available says why the fleet cannot start here, or "".
func Available() string {
	switch {
	case os.Geteuid() != 0:
		return "network namespaces need root"
	case !executable("/usr/sbin/sshd"):
		return "sshd is not installed (apt-get install openssh-server)"
	}
	for _, tool := range []string{"ip", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " is not installed"
		}
	}
	return ""
}

func executable(name string) bool {
	fi, err := os.Stat(name)
	return err == nil && fi.Mode()&0o111 != 0
}

// Start makes one host per entry of opts and stops them when the test
// ends.
func Start(t testing.TB, opts ...HostOptions) *Fleet {
	t.Helper()
	if why := Available(); why != "" {
		t.Skip(why)
	}
	var id [3]byte
	_, _ = rand.Read(id[:])
	prefix := "kp" + hex.EncodeToString(id[:])
	f := &Fleet{Ctl: prefix + "c", dir: t.TempDir()}
	t.Cleanup(f.stop)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	run("ip", "netns", "add", f.Ctl)
	run("ip", "-n", f.Ctl, "link", "add", "br0", "type", "bridge")
	run("ip", "-n", f.Ctl, "addr", "add", Subnet+".254/24", "dev", "br0")
	run("ip", "-n", f.Ctl, "link", "set", "br0", "up")
	run("ip", "-n", f.Ctl, "link", "set", "lo", "up")
	f.Identity = filepath.Join(f.dir, "id_ed25519")
	run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kplay-test", "-f", f.Identity)
	pub, err := os.ReadFile(f.Identity + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	var known bytes.Buffer
	for i, o := range opts {
		n := i + 1
		h := &Host{Name: fmt.Sprintf("h%d", n), Address: fmt.Sprintf("%s.%d", Subnet, n), Dir: filepath.Join(f.dir, fmt.Sprintf("h%d", n)), ns: fmt.Sprintf("%sh%d", prefix, n)}
		f.Hosts = append(f.Hosts, h)
		if err := os.MkdirAll(h.Dir, 0o700); err != nil {
			t.Fatal(err)
		}
		run("ip", "netns", "add", h.ns)
		run("ip", "link", "add", "v"+h.Name, "netns", h.ns, "type", "veth", "peer", "name", "p"+h.Name, "netns", f.Ctl)
		run("ip", "-n", h.ns, "addr", "add", h.Address+"/24", "dev", "v"+h.Name)
		run("ip", "-n", h.ns, "link", "set", "v"+h.Name, "up")
		run("ip", "-n", h.ns, "link", "set", "lo", "up")
		run("ip", "-n", f.Ctl, "link", "set", "p"+h.Name, "master", "br0")
		run("ip", "-n", f.Ctl, "link", "set", "p"+h.Name, "up")
		hostKey := filepath.Join(h.Dir, "hostkey")
		run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey)
		listed := hostKey + ".pub"
		if o.WrongKey {
			other := filepath.Join(h.Dir, "otherkey")
			run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other)
			listed = other + ".pub"
		}
		key, err := os.ReadFile(listed)
		if err != nil {
			t.Fatal(err)
		}
		fields := strings.Fields(string(key))
		fmt.Fprintf(&known, "%s %s %s\n", h.Address, fields[0], fields[1])
		auth := filepath.Join(h.Dir, "authorized_keys")
		authorized := pub
		if o.RefuseAuth {
			authorized = nil
		}
		if err := os.WriteFile(auth, authorized, 0o600); err != nil {
			t.Fatal(err)
		}
		if o.NoSSHD {
			continue
		}
		config := filepath.Join(h.Dir, "sshd_config")
		text := fmt.Sprintf("ListenAddress %s:22\nHostKey %s\nPidFile %s\nAuthorizedKeysFile %s\n"+
			"PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n",
			h.Address, hostKey, filepath.Join(h.Dir, "sshd.pid"), auth)
		if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		// sshd forks into the background once it listens: when this
		// returns, the host accepts connections.
		run("ip", "netns", "exec", h.ns, "/usr/sbin/sshd", "-f", config, "-E", filepath.Join(h.Dir, "sshd.log"))
	}
	f.KnownHosts = filepath.Join(f.dir, "known_hosts")
	if err := os.WriteFile(f.KnownHosts, known.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// Command is name with args run in the controller's namespace.
func (f *Fleet) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", f.Ctl, name}, args...)...)
}

// Log is host h's sshd log.
func (h *Host) Log() string {
	data, _ := os.ReadFile(filepath.Join(h.Dir, "sshd.log"))
	return string(data)
}

func (f *Fleet) stop() {
	for _, h := range f.Hosts {
		if pid, err := os.ReadFile(filepath.Join(h.Dir, "sshd.pid")); err == nil {
			_ = exec.Command("kill", strings.TrimSpace(string(pid))).Run()
		}
		_ = exec.Command("ip", "netns", "del", h.ns).Run()
	}
	_ = exec.Command("ip", "netns", "del", f.Ctl).Run()
}
