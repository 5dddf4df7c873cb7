package fleet

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kplay-dev/kplay/ui"
)

func TestLoadInventory(t *testing.T) {
	inv, err := LoadInventory("inv/masters.yaml", []byte(`ssh:
  user: core
  identity: keys/id_ed25519
vars:
  ETCD_ENDPOINTS: http://10.0.0.2:2379
  ADVERTISE_IP: shared
hosts:
  m1: {address: 10.0.0.11, vars: {ADVERTISE_IP: 10.0.0.11}}
  m2: {address: 10.0.0.12, port: 2222, user: root}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Hosts) != 2 || inv.Hosts[0].Name != "m1" || inv.Hosts[1].Name != "m2" {
		t.Fatalf("hosts not in file order: %+v", inv.Hosts)
	}
	m1, m2 := inv.Hosts[0], inv.Hosts[1]
	if m1.Target() != "core@10.0.0.11:22" || m2.Target() != "root@10.0.0.12:2222" {
		t.Errorf("targets %s, %s", m1.Target(), m2.Target())
	}
	if m1.SSH.Identity != filepath.Join("inv", "keys/id_ed25519") {
		t.Errorf("identity %q: want it relative to the inventory", m1.SSH.Identity)
	}
	v := Vars(inv.Vars, m1, map[string]string{"ETCD_ENDPOINTS": "flag"})
	if v["ADVERTISE_IP"] != "10.0.0.11" || v["ETCD_ENDPOINTS"] != "flag" {
		t.Errorf("vars %v: host wins over shared, flags over both", v)
	}
}

func TestLoadInventoryReportsEveryError(t *testing.T) {
	_, err := LoadInventory("m.yaml", []byte(`hosts:
  m1: {adress: 10.0.0.11}
  m2: {address: "-oProxyCommand=x", port: 70000}
`))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`m.yaml:2:8: hosts: m1: unknown key "adress" (did you mean address?)`, "m1: no address", "m.yaml:3:", "port \"70000\""} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestParseHosts(t *testing.T) {
	hosts, err := ParseHosts([]string{"root@10.0.0.11", "core@[fd00::1]:2222", "m3.example"}, SSH{})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, h := range hosts {
		got = append(got, h.Name+"="+h.Target())
	}
	want := "10.0.0.11=root@10.0.0.11:22 [fd00::1]:2222=core@[fd00::1]:2222 m3.example=root@m3.example:22"
	if strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
	if _, err := ParseHosts([]string{"-oProxyCommand=sh@x"}, SSH{}); err == nil {
		t.Error("an option as a user was taken")
	}
}

func TestBundleRoundTrip(t *testing.T) {
	src := t.TempDir()
	pb := filepath.Join(src, "pb", "site.star")
	if err := os.MkdirAll(filepath.Dir(pb), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pb, []byte("print(1)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	job := &Job{Version: JobVersion, Mode: "check", Host: "m1", Root: "/", WorkDir: src, Playbook: "pb/site.star", Vars: map[string]string{"A": "b"}}
	var buf bytes.Buffer
	if err := WriteBundle(&buf, job, []string{pb}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	got, err := ReadBundle(&buf, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Vars["A"] != "b" || got.Playbook != "pb/site.star" {
		t.Errorf("job %+v", got)
	}
	data, err := os.ReadFile(filepath.Join(FilesDir(dir), pb))
	if err != nil || string(data) != "print(1)\n" {
		t.Errorf("shipped file: %q, %v", data, err)
	}
	fi, err := os.Stat(filepath.Join(FilesDir(dir), pb))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("shipped file mode %v, %v: want 0600", fi.Mode(), err)
	}
}

func TestParseDocumentSkipsShellNoise(t *testing.T) {
	doc, err := ParseDocument([]byte("welcome to m1\n{ not json\n{\n  \"command\": \"check\",\n  \"steps\": []\n}\n"))
	if err != nil || doc.Command != "check" {
		t.Fatalf("a line that only starts with { was not skipped: %+v, %v", doc, err)
	}
	doc, err = ParseDocument([]byte("motd line\n{\n  \"command\": \"check\",\n  \"steps\": []\n}\n"))
	if err != nil || doc.Command != "check" {
		t.Fatalf("%+v, %v", doc, err)
	}
	// An rc file that prints a line "{" alone.
	doc, err = ParseDocument([]byte("{\nrc noise\n{\n  \"command\": \"run\",\n  \"steps\": []\n}\n"))
	if err != nil || doc.Command != "run" {
		t.Fatalf("a noise line \"{\" hid the document: %+v, %v", doc, err)
	}
	if _, err := ParseDocument([]byte("no document")); err == nil {
		t.Error("no error without a document")
	}
}

func TestCount(t *testing.T) {
	for in, want := range map[string]int{"1": 1, "50%": 2, "0": 0} {
		c, err := ParseCount(in)
		if err != nil || c.Of(5) != want {
			t.Errorf("%s of 5 = %d, %v; want %d", in, c.Of(5), err, want)
		}
	}
	for _, bad := range []string{"", "-1", "101%", "x"} {
		if _, err := ParseCount(bad); err == nil {
			t.Errorf("%q taken", bad)
		}
	}
}

// A host's document cannot move the cursor or forge report lines, and
// two hosts' sensitive changes are never shown as one.
func TestWriteTextFromHostileDocuments(t *testing.T) {
	step := func(action, diff string, sensitive bool) ui.DocStep {
		return ui.DocStep{Position: "p.star:1:1", Kind: "file", Target: "/etc/x", Status: "changed", Action: action, Diff: diff, Sensitive: sensitive}
	}
	results := []Result{
		{Host: &Host{Name: "h1"}, Outcome: Changes, Doc: &ui.Document{Steps: []ui.DocStep{
			step("\x1b[2Jcreate\x1b]0;title\a", "h2    ok\n3 ok (3 hosts)\n", false),
			step("create", "  (sensitive, 5 bytes, fingerprint 1111)\n", true),
		}}},
		{Host: &Host{Name: "h2"}, Outcome: Changes, Doc: &ui.Document{Steps: []ui.DocStep{
			step("create", "  (sensitive, 5 bytes, fingerprint 1111)\n", true),
		}}},
	}
	var b strings.Builder
	if err := WriteText(&b, results, ReportOptions{Mode: "check"}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.ContainsAny(out, "\x1b\a") {
		t.Errorf("control characters reached the report:\n%q", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "h2    ok") || strings.HasPrefix(line, "3 ok") {
			t.Errorf("a host's diff forged a report line: %q", line)
		}
	}
	if strings.Contains(out, "all 2 hosts") || strings.Count(out, "(sensitive") != 2 {
		t.Errorf("two hosts' sensitive changes were shown as one:\n%s", out)
	}
}

// The inventory's shape errors that YAML itself lets through.
func TestLoadInventoryShape(t *testing.T) {
	for name, tc := range map[string]struct{ text, want string }{
		"empty":        {"", "inv.yaml: empty; list the hosts under hosts:"},
		"two_docs":     {"hosts:\n  m1: {address: 10.0.0.1}\n---\nhosts:\n  m2: {address: 10.0.0.2}\n", "inv.yaml:3: a second YAML document"},
		"same_machine": {"hosts:\n  m1: {address: 10.0.0.1}\n  m2: {address: 10.0.0.1, port: 22}\n", "inv.yaml:3:3: hosts: m2: the same machine and root as m1"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadInventory("inv.yaml", []byte(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skip(err)
	}
	inv, err := LoadInventory("inv.yaml", []byte("ssh: {identity: ~/.ssh/id_ed25519}\nhosts:\n  m1: {address: 10.0.0.1, root: /srv/a}\n  m2: {address: 10.0.0.1, root: /srv/b}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := inv.Hosts[0].SSH.Identity; got != filepath.Join(home, ".ssh/id_ed25519") {
		t.Errorf("~/ in identity: %s", got)
	}
}
