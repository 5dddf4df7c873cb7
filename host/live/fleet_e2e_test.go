package live

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kplay-dev/kplay/host/etcdtest"
	"github.com/kplay-dev/kplay/host/kube/kubetest"
)

// fleetStubs are masterStubs with a kubelet-wrapper that takes a second
// to stop, so that a restart of kubelet.service lasts a second: two
// restarts at once would overlap for certain.
func fleetStubs() []stub {
	stubs := append(masterStubs[:0:0], masterStubs...)
	for i := range stubs {
		if stubs[i].path == "lib/coreos/kubelet-wrapper" {
			stubs[i].content = "#!/bin/sh\ntrap 'sleep 1; exit 0' TERM\nsleep infinity &\nwait\n"
		}
	}
	return stubs
}

// fleetMachine is a booted container with master stubs and an sshd on
// 127.0.0.1:port that takes the test's key for root.
type fleetMachine struct {
	*machine
	name string
	port int
}

// bootFleetMachine boots a container for a fleet test (recipe B of
// ../shared/recipes/fleet.md): the master stubs overlaid on /usr, the
// stub units disabled and stopped, and sshd on 127.0.0.1:port with
// authorizedKey for root. It returns the known_hosts line of its key.
func bootFleetMachine(t *testing.T, name string, authorizedKey []byte) (*fleetMachine, string) {
	t.Helper()
	upper := writeStubs(t, fleetStubs())
	// Debian's own ssh.service would fail without host keys on the first
	// boot, and systemd would then remove /run/sshd under our sshd.
	m := ownMachine(t, name, "--overlay=/usr:"+upper+":/usr",
		"--bind-ro=/dev/null:/etc/systemd/system/ssh.service",
		"--bind-ro=/dev/null:/etc/systemd/system/ssh.socket")
	fm := &fleetMachine{machine: m, name: name, port: freePort(t)}
	sh := func(args ...string) {
		t.Helper()
		if out, code := m.exec(t, args...); code != 0 {
			t.Fatalf("%s: %s: exit %d\n%s", name, strings.Join(args, " "), code, out)
		}
	}
	sh("systemctl", "disable", "--now", "flanneld.service", "docker.service")
	sh("install", "-d", "-m", "0755", "/run/sshd", "/etc/ssh")
	sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", "/etc/ssh/kplay_host_key")
	sh("systemd-sysusers", "--inline", `u sshd - "sshd privsep" /run/sshd /usr/sbin/nologin`)
	// root is locked in the image; sshd refuses keys for a locked account.
	sh("sed", "-i", "s/^root:[^:]*:/root:*:/", "/etc/shadow")
	if err := os.WriteFile(filepath.Join(m.root, "etc/ssh/kplay_authorized_keys"), authorizedKey, 0o600); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf("ListenAddress 127.0.0.1:%d\nHostKey /etc/ssh/kplay_host_key\nPidFile /run/kplay-sshd.pid\n"+
		"AuthorizedKeysFile /etc/ssh/kplay_authorized_keys\nPermitRootLogin prohibit-password\n"+
		"PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n", fm.port)
	if err := os.WriteFile(filepath.Join(m.root, "etc/ssh/kplay_sshd_config"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	sh("/usr/sbin/sshd", "-f", "/etc/ssh/kplay_sshd_config", "-E", "/run/kplay-sshd.log")
	pub, err := os.ReadFile(filepath.Join(m.root, "etc/ssh/kplay_host_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(pub))
	return fm, fmt.Sprintf("[127.0.0.1]:%d %s %s", fm.port, f[0], f[1])
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// kubeletRestart is the last restart of kubelet.service on m: when it
// left active (the stop began) and when it was active again.
func (m *fleetMachine) kubeletRestart(t *testing.T) (from, to time.Time) {
	t.Helper()
	read := func(prop string) time.Time {
		out, code := m.exec(t, "systemctl", "show", "--timestamp=us+utc", "-p", prop, "--value", "kubelet.service")
		ts, err := time.Parse("Mon 2006-01-02 15:04:05.000000 MST", strings.TrimSpace(out))
		if code != 0 || err != nil {
			t.Fatalf("%s: %s of kubelet.service: %q (%v)", m.name, prop, out, err)
		}
		return ts
	}
	return read("ActiveExitTimestamp"), read("ActiveEnterTimestamp")
}

// fleetDoc is the part of kplay's fleet JSON document the test reads.
type fleetDoc struct {
	Hosts []struct {
		Name, Outcome, Error string
		Document             struct {
			Counts map[string]int
			Steps  []struct {
				Kind, Target, Status, Action, Reason string
			}
		}
	}
}

// TestFleetEndToEnd converges two masters, each a booted systemd in its
// own container running sshd, with one fleet run of
// playbooks/master.star against a real etcd (the flannel config and the
// coordination keys) and an API server that counts its creates: the
// flannel config and each namespace are written once, by one master; a
// second run changes nothing on either; a new K8S_VER with --serial 1
// restarts the kubelets one after the other; and two fleet runs started
// at once, one per master, never restart their kubelets at the same
// time (the rolling lock in etcd).
func TestFleetEndToEnd(t *testing.T) {
	t.Parallel()
	needNspawn(t)
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		t.Skip("sshd is not installed (apt-get install openssh-server)")
	}
	began := time.Now()
	etcd := etcdtest.Start(t)
	api := kubetest.NewFakeAPIServer()
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	identity := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", identity).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(identity + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	var machines []*fleetMachine
	var known []string
	for i := range 2 {
		m, line := bootFleetMachine(t, fmt.Sprintf("fleet%d", i+1), pub)
		machines = append(machines, m)
		known = append(known, line)
	}
	knownHosts := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(knownHosts, []byte(strings.Join(known, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tls := filepath.Join(dir, "tls")
	if err := os.Mkdir(tls, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ca.pem", "apiserver.pem", "apiserver-key.pem"} {
		if err := os.WriteFile(filepath.Join(tls, name), []byte("throwaway "+name+" for kplay's tests\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	inventory := func(names ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "ssh:\n  user: root\n  identity: %s\n  known_hosts: %s\n", identity, knownHosts)
		fmt.Fprintf(&b, "vars:\n  ETCD_ENDPOINTS: %s\n  K8S_API: %s\n  TLS_DIR: %s\n", etcd.URL, srv.URL, tls)
		fmt.Fprintf(&b, "coordination:\n  etcd: %s\n  cluster: e2e\nhosts:\n", etcd.URL)
		for i, m := range machines {
			if len(names) > 0 && !strings.Contains(strings.Join(names, ","), m.name) {
				continue
			}
			fmt.Fprintf(&b, "  %s: {address: 127.0.0.1, port: %d, vars: {ADVERTISE_IP: 10.0.0.%d}}\n", m.name, m.port, 11+i)
		}
		path := filepath.Join(dir, "masters-"+strings.Join(names, "-")+".yaml")
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	all := inventory()
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	kplay := func(wantCode int, args ...string) fleetDoc {
		t.Helper()
		args = append(args, "--output", "json")
		cmd := exec.Command(kplayBinary(t), args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "NO_COLOR=1", "SSH_AUTH_SOCK=")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		err := cmd.Run()
		code := cmd.ProcessState.ExitCode()
		t.Logf("kplay %s: exit %d in %s", strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond))
		if err != nil && code < 0 {
			t.Fatal(err)
		}
		var doc fleetDoc
		if jerr := json.Unmarshal(stdout.Bytes(), &doc); jerr != nil || code != wantCode {
			t.Fatalf("kplay %s: exit %d, want %d (%v)\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, wantCode, jerr, stdout.String(), stderr.String())
		}
		return doc
	}
	t.Cleanup(func() {
		for _, m := range machines {
			m.exec(t, "systemctl", "disable", "--now", "flanneld.service", "docker.service", "kubelet.service", "calico-node.service")
		}
	})

	// First run: both converge; the once steps are done by one master.
	doc := kplay(0, "run", "playbooks/master.star", "--inventory", all)
	once := map[string][]string{} // step → the hosts that changed it
	for _, h := range doc.Hosts {
		if h.Outcome != "ok" {
			t.Fatalf("%s: %s: %s", h.Name, h.Outcome, h.Error)
		}
		for _, s := range h.Document.Steps {
			if s.Kind == "kube_create" || s.Kind == "etcd_put" {
				if s.Status == "changed" {
					once[s.Kind+" "+s.Target] = append(once[s.Kind+" "+s.Target], h.Name)
				}
			}
		}
	}
	if len(once) != 3 {
		t.Errorf("once steps changed: %v, want the flannel config and two namespaces", once)
	}
	for step, hosts := range once {
		if len(hosts) != 1 {
			t.Errorf("%s changed on %v, want on one master", step, hosts)
		}
	}
	if got := api.Created(); strings.Join(got, ",") != "kube-system,calico-system" {
		t.Errorf("namespaces created: %v, want kube-system and calico-system once each", got)
	}
	if n := api.PostsSent(); n != 2 {
		t.Errorf("the API server got %d creates, want 2", n)
	}
	_, exists, modified := etcdtest.Get(t, etcd.URL, "/coreos.com/network/config")
	if !exists {
		t.Fatal("no flannel network config in etcd")
	}
	// The coordination keys: one per once step, each done by a master.
	onceKeys := etcdList(t, etcd.URL, "/kplay/e2e/once")
	if len(onceKeys) != 3 {
		t.Errorf("once keys: %v, want 3", onceKeys)
	}
	for k, v := range onceKeys {
		if !strings.HasPrefix(v, "done:fleet") {
			t.Errorf("%s = %q, want done:<master>", k, v)
		}
	}
	for _, m := range machines {
		if out, _ := m.exec(t, "systemctl", "is-active", "kubelet.service", "flanneld.service"); strings.TrimSpace(out) != "active\nactive" {
			t.Errorf("%s: kubelet, flanneld: %q after the first run", m.name, out)
		}
	}

	// Second run: nothing changes anywhere.
	doc = kplay(0, "run", "playbooks/master.star", "--inventory", all)
	for _, h := range doc.Hosts {
		c := h.Document.Counts
		if h.Outcome != "ok" || c["create"]+c["update"]+c["delete"]+c["run"]+c["restart"] != 0 {
			t.Errorf("second run: %s %s, counts %v, want no change", h.Name, h.Outcome, c)
		}
	}
	if _, _, m2 := etcdtest.Get(t, etcd.URL, "/coreos.com/network/config"); m2 != modified {
		t.Errorf("the second run rewrote the flannel config (modifiedIndex %d → %d)", modified, m2)
	}
	if n := api.PostsSent(); n != 2 {
		t.Errorf("the second run sent creates: %d in all, want 2", n)
	}
	kplay(0, "check", "playbooks/master.star", "--inventory", all)

	// A new K8S_VER, --serial 1: one master after the other.
	kplay(0, "run", "playbooks/master.star", "--inventory", all, "--serial", "1", "--var", "K8S_VER=v1.4.1_coreos.0")
	assertApart(t, machines)

	// Two fleet runs at once, one per master: the rolling lock in etcd
	// keeps their kubelet restarts apart.
	var wg sync.WaitGroup
	for _, m := range machines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kplay(0, "run", "playbooks/master.star", "--inventory", inventory(m.name), "--var", "K8S_VER=v1.4.2_coreos.0")
		}()
	}
	wg.Wait()
	assertApart(t, machines)
	if locks := etcdList(t, etcd.URL, "/kplay/e2e/locks"); len(locks) != 0 {
		t.Errorf("locks left held: %v", locks)
	}
	t.Logf("took %s (boot of 2 masters, sshd, 5 fleet runs)", time.Since(began).Round(time.Millisecond))
}

// assertApart fails unless the last kubelet restarts of the machines do
// not overlap in time.
func assertApart(t *testing.T, machines []*fleetMachine) {
	t.Helper()
	type span struct {
		name     string
		from, to time.Time
	}
	var spans []span
	for _, m := range machines {
		from, to := m.kubeletRestart(t)
		spans = append(spans, span{m.name, from, to})
		t.Logf("%s: kubelet restarted from %s to %s", m.name, from.Format("15:04:05.000000"), to.Format("15:04:05.000000"))
	}
	a, b := spans[0], spans[1]
	if a.from.Before(b.to) && b.from.Before(a.to) {
		t.Errorf("kubelet restarts overlap: %s %s–%s, %s %s–%s", a.name, a.from.Format(time.StampMicro), a.to.Format(time.StampMicro), b.name, b.from.Format(time.StampMicro), b.to.Format(time.StampMicro))
	}
}

// etcdList lists the keys under dir (recursively) with their values.
func etcdList(t *testing.T, etcdURL, dir string) map[string]string {
	t.Helper()
	resp, err := http.Get(etcdURL + "/v2/keys" + dir + "?recursive=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	type node struct {
		Key, Value string
		Dir        bool
		Nodes      []*node
	}
	var r struct{ Node *node }
	if resp.StatusCode == http.StatusNotFound {
		return map[string]string{}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var walk func(n *node)
	walk = func(n *node) {
		if n == nil {
			return
		}
		if !n.Dir {
			out[n.Key] = n.Value
		}
		for _, c := range n.Nodes {
			walk(c)
		}
	}
	walk(r.Node)
	return out
}
