package main

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kplay-dev/kplay/host/etcdtest"
	"github.com/kplay-dev/kplay/host/kube/kubetest"
)

// modifiedIndex is the modifiedIndex of key, 0 if absent.
func modifiedIndex(t *testing.T, url, key string) uint64 {
	t.Helper()
	_, _, index := etcdtest.Get(t, url, key)
	return index
}

// TestCheckWithClusterBuiltinsChangesNothing runs kplay check on a
// playbook that uses all five cluster builtins against a real etcd: the
// plan lists every change, and nothing changes in etcd (same
// modifiedIndex), on the HTTP server (no POST, no wait) or in the root.
func TestCheckWithClusterBuiltinsChangesNothing(t *testing.T) {
	t.Parallel()
	etcd := etcdtest.Start(t)
	etcdtest.Put(t, etcd.URL, "/coreos.com/network/config", `{"Network":"10.9.0.0/16"}`)
	before := modifiedIndex(t, etcd.URL, "/coreos.com/network/config")

	fake := kubetest.NewFakeAPIServer()
	srv := httptest.NewServer(fake)
	defer srv.Close()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	play := filepath.Join(dir, "cluster.star")
	src := fmt.Sprintf(`
etcd_put("/coreos.com/network/config", {"Network": "10.2.0.0/16", "Backend": {"Type": "vxlan"}}, endpoints = %[1]q)
etcd_put("/kplay/new-key", "x", endpoints = %[1]q)
manifest("apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-proxy\nspec:\n  containers:\n  - name: kube-proxy\n    image: quay.io/coreos/hyperkube:v1.4.0_coreos.0\n")
wait_http(%[2]q)
kube_create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}, server = %[3]q)
http_post(%[4]q, json = {"kind": "Namespace"})
`, etcd.URL, srv.URL+"/version", srv.URL, srv.URL+"/api/v1/namespaces")
	if err := os.WriteFile(play, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"check", play, "--root", root, "-v"}, &stdout, &stderr)
	if code != exitChanges {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitChanges, &stdout, &stderr)
	}
	for _, want := range []string{
		"etcd_put /coreos.com/network/config: update (value changed)",
		`+{"Backend":{"Type":"vxlan"},"Network":"10.2.0.0/16"}`,
		"etcd_put /kplay/new-key: create",
		"manifest /etc/kubernetes/manifests/kube-proxy.yaml: create",
		"wait_http " + srv.URL + "/version: skipped (check does not wait)",
		"kube_create Namespace/kube-system: create",
		"http_post POST " + srv.URL + "/api/v1/namespaces: run",
		"1 to update, 3 to create, 1 action, 0 unchanged, 1 skipped (6 steps)",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, &stdout)
		}
	}
	if after := modifiedIndex(t, etcd.URL, "/coreos.com/network/config"); after != before {
		t.Errorf("check wrote the etcd key: modifiedIndex %d → %d", before, after)
	}
	if index := modifiedIndex(t, etcd.URL, "/kplay/new-key"); index != 0 {
		t.Errorf("check created /kplay/new-key (modifiedIndex %d)", index)
	}
	for _, r := range fake.Requests() {
		if !strings.HasPrefix(r, "GET ") || r == "GET /version" {
			t.Errorf("check sent %s", r)
		}
	}
	if _, err := os.Lstat(root); !os.IsNotExist(err) {
		t.Errorf("check created the root: %v", err)
	}
}

// TestClusterStateIsNeverPruned: an etcd key the playbook stops
// declaring stays in the real etcd; run and check list it as left in
// place, every time (issue 13: cluster state is shared by all masters).
func TestClusterStateIsNeverPruned(t *testing.T) {
	t.Parallel()
	etcd := etcdtest.Start(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	on, off := filepath.Join(dir, "site.star"), filepath.Join(dir, "off", "site.star")
	if err := os.MkdirAll(filepath.Dir(off), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(on, []byte(fmt.Sprintf("etcd_put(\"/kplay/left\", \"x\", endpoints = %q)\nfile(\"/etc/a\", content = \"a\\n\")\n", etcd.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(off, []byte("file(\"/etc/a\", content = \"a\\n\")\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"run", on, "--root", root}, &stdout, &stderr); code != exitOK {
		t.Fatalf("run: exit %d\n%s%s", code, &stdout, &stderr)
	}
	for _, mode := range []string{"run", "check", "run"} {
		stdout.Reset()
		stderr.Reset()
		if code := run(t.Context(), []string{mode, off, "--root", root, "-v"}, &stdout, &stderr); code != exitOK {
			t.Fatalf("%s without the key: exit %d\n%s%s", mode, code, &stdout, &stderr)
		}
		if want := "etcd_put /kplay/left: unchanged (no longer declared; left in place: cluster state is never pruned)"; !strings.Contains(stdout.String(), want) {
			t.Errorf("%s without the key does not say %q:\n%s", mode, want, &stdout)
		}
	}
	if got, ok, _ := etcdtest.Get(t, etcd.URL, "/kplay/left"); !ok || got != "x" {
		t.Errorf("/kplay/left in etcd: %q, %v; want it left as x", got, ok)
	}
}
