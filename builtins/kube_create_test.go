package builtins

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/kube"
	"github.com/kplay-dev/kplay/host/kube/kubetest"
	"github.com/kplay-dev/kplay/host/tlstest"
)

// fakeKube is an in-memory stand-in for the API server, for the engine
// side of kube_create. host/kube tests the client against a fake API
// server and a real kube-apiserver.
type fakeKube struct {
	mu      sync.Mutex
	objects map[string]bool
	creates int
	// raceLost makes Create answer like a 409: another writer was first.
	raceLost bool
	cfgs     []host.KubeConfig
}

func (f *fakeKube) key(obj map[string]any) string { return objectName(obj) }

func (f *fakeKube) Exists(_ context.Context, obj map[string]any) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.objects[f.key(obj)], nil
}

func (f *fakeKube) Create(_ context.Context, obj map[string]any) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates++
	if f.raceLost || f.objects[f.key(obj)] {
		return false, nil
	}
	f.objects[f.key(obj)] = true
	return true, nil
}

// use is the option that gives a root's host this fake as its
// Kubernetes client.
func (f *fakeKube) use() host.Option {
	return host.WithKube(func(cfg host.KubeConfig) (host.Kube, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.cfgs = append(f.cfgs, cfg)
		return f, nil
	})
}

func TestKubeCreate(t *testing.T) {
	t.Parallel()
	kube := &fakeKube{objects: map[string]bool{}}
	plan := mustEvaluate(t, `
kube_create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}})
kube_create("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: calico-system\n", server = "http://127.0.0.1:18080")
`)
	results, err := apply(t, plan, t.TempDir(), true, kube.use())
	if err != nil {
		t.Fatal(err)
	}
	if got := describe(results); !slices.Equal(got, []string{"kube_create Namespace/kube-system: create", "kube_create Namespace/calico-system: create"}) {
		t.Fatalf("check: got %q", got)
	}
	if kube.creates != 0 {
		t.Fatalf("check created %d objects", kube.creates)
	}
	if _, err := apply(t, plan, t.TempDir(), false, kube.use()); err != nil {
		t.Fatal(err)
	}
	if kube.creates != 2 || !kube.objects["Namespace/kube-system"] || !kube.objects["Namespace/calico-system"] {
		t.Fatalf("run: %d creates, objects %v", kube.creates, kube.objects)
	}
	// The check pass's prefetches may ask for clients in any order, even
	// after the run's own steps: look for the second step's server among
	// all that were asked for.
	kube.mu.Lock()
	cfgs := slices.Clone(kube.cfgs)
	kube.mu.Unlock()
	if !slices.ContainsFunc(cfgs, func(c host.KubeConfig) bool { return c.Server == "http://127.0.0.1:18080" }) {
		t.Errorf("no client for the second step's server http://127.0.0.1:18080: asked for %v", cfgs)
	}
	results, err = apply(t, plan, t.TempDir(), false, kube.use())
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(results); !slices.Equal(got, []string{"-", "-"}) || kube.creates != 2 {
		t.Errorf("second run: got %v and %d creates, want unchanged and no create", got, kube.creates)
	}
}

func TestKubeCreateLostRaceIsUnchanged(t *testing.T) {
	t.Parallel()
	kube := &fakeKube{objects: map[string]bool{}, raceLost: true}
	plan := mustEvaluate(t, `kube_create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}})`)
	results, err := apply(t, plan, t.TempDir(), false, kube.use())
	if err != nil {
		t.Fatal(err)
	}
	if r := results[0]; r.Status != engine.Unchanged || r.Reason != "already created by another writer" {
		t.Errorf("got %v %q, want unchanged (already created by another writer)", r.Status, r.Reason)
	}
}

func TestKubeCreateBadArguments(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ src, wantErr string }{
		"no_kind":     {`kube_create({"apiVersion": "v1", "metadata": {"name": "x"}})`, `kind is missing`},
		"no_name":     {`kube_create({"apiVersion": "v1", "kind": "Namespace"})`, `metadata.name is missing`},
		"not_yaml":    {`kube_create("kind: [")`, `not a YAML object`},
		"list":        {`kube_create([1])`, `got list, want a dict or YAML text`},
		"bad_server":  {`kube_create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}, server = "127.0.0.1:8080")`, `kube_create: for parameter "server": "127.0.0.1:8080" is not an absolute URL`},
		"missing_obj": {`kube_create()`, `missing argument for obj`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := evaluate(t, playbook(t, tc.src, nil), nil)
			if err == nil || !strings.HasPrefix(relErr(err), "play.star:1:12: ") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want play.star:1:12: ...%s", err, tc.wantErr)
			}
		})
	}
}

// TestKubeCreateHTTPS creates a namespace on an https API server (the
// fake of host/kube/kubetest, with a certificate of a private CA) with
// the real client: ca, cert and key_file are relative to the playbook.
func TestKubeCreateHTTPS(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "cluster-ca")
	api := kubetest.NewFakeAPIServer()
	srv := ca.NewServer(t, api, true)
	certFile, keyFile, _ := ca.Issue(t, "admin", false)
	files := map[string]string{"tls/ca.pem": readFile(t, ca.CertFile), "tls/admin.pem": readFile(t, certFile), "tls/admin-key.pem": readFile(t, keyFile)}
	src := fmt.Sprintf(`kube_create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}, server = %q, ca = "tls/ca.pem", cert = "tls/admin.pem", key_file = "tls/admin-key.pem")`, srv.URL)
	path := playbook(t, src, files)
	plan, err := evaluate(t, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	useKube := host.WithKube(kube.New)
	results, err := apply(t, plan, t.TempDir(), false, useKube)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(results); !slices.Equal(got, []string{"create"}) || !slices.Equal(api.Created(), []string{"kube-system"}) {
		t.Errorf("got %v and namespaces %q created, want one create of kube-system", got, api.Created())
	}

	// Without ca: the certificate does not verify, and the error says
	// what to give.
	plan = mustEvaluate(t, fmt.Sprintf(`kube_create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}, server = %q)`, srv.URL))
	_, err = apply(t, plan, t.TempDir(), true, useKube)
	want := "play.star:1:12: kube_create Namespace/x: kube " + srv.URL + ": discover v1 Namespace: tls: failed to verify certificate: x509: certificate signed by unknown authority (give ca= the CA certificate that signed the server's certificate)"
	if err == nil || relErr(err) != want {
		t.Errorf("no ca:\n got %v\nwant %s", err, want)
	}
}

// TestKubeCreateEmptyKubeconfig: an empty kubeconfig is an error at the
// step, with the real client; never a fallback to another identity.
func TestKubeCreateEmptyKubeconfig(t *testing.T) {
	t.Parallel()
	path := playbook(t, `kube_create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}, kubeconfig = "admin.conf")`, map[string]string{"admin.conf": ""})
	plan, err := evaluate(t, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = apply(t, plan, t.TempDir(), true, host.WithKube(kube.New))
	want := fmt.Sprintf("play.star:1:12: kube_create Namespace/x: kubeconfig %q: empty (", filepath.Join(filepath.Dir(path), "admin.conf"))
	if err == nil || !strings.HasPrefix(relErr(err), want) {
		t.Errorf("got  %v\nwant %s…", err, want)
	}
}

func TestKubeCreateTLSFiles(t *testing.T) {
	t.Parallel()
	fake := &fakeKube{objects: map[string]bool{}}
	path := playbook(t, `kube_create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}, server = "https://10.0.0.10:443", ca = "tls/ca.pem", cert = "/etc/kubernetes/ssl/admin.pem", key_file = "tls/admin-key.pem")`, nil)
	plan, err := evaluate(t, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := apply(t, plan, t.TempDir(), true, fake.use()); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	want := host.KubeConfig{Server: "https://10.0.0.10:443", TLS: host.TLSFiles{
		CAFile: filepath.Join(dir, "tls/ca.pem"), CertFile: "/etc/kubernetes/ssl/admin.pem", KeyFile: filepath.Join(dir, "tls/admin-key.pem"),
	}}
	if len(fake.cfgs) == 0 || fake.cfgs[0] != want {
		t.Errorf("got %+v, want %+v", fake.cfgs, want)
	}
}
