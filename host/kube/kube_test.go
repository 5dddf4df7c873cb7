package kube

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/hostiletest"
	"github.com/kplay-dev/kplay/host/tlstest"
)

func namespace(name string) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name}}
}

func configMap(namespace, name string) map[string]any {
	md := map[string]any{"name": name}
	if namespace != "" {
		md["namespace"] = namespace
	}
	return map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": md, "data": map[string]any{"k": "v"}}
}

func newTestClient(t *testing.T, cfg host.KubeConfig) host.Kube {
	t.Helper()
	k, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return k
}

// lifecycle checks Exists false → Create true → Exists true → Create
// false (409) for obj.
func lifecycle(t *testing.T, k host.Kube, obj map[string]any) {
	t.Helper()
	ctx := t.Context()
	steps := []struct {
		op   string
		call func(context.Context, map[string]any) (bool, error)
		want bool
	}{
		{"Exists", k.Exists, false},
		{"Create", k.Create, true},
		{"Exists", k.Exists, true},
		{"Create", k.Create, false},
	}
	for i, s := range steps {
		got, err := s.call(ctx, obj)
		if err != nil {
			t.Fatalf("step %d: %s: %v", i+1, s.op, err)
		}
		if got != s.want {
			t.Fatalf("step %d: %s = %v, want %v", i+1, s.op, got, s.want)
		}
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		legacy bool
	}{
		"aggregated_discovery": {},
		"legacy_discovery":     {legacy: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAPIServer(t, func(f *fakeAPIServer) { f.legacy = tc.legacy })
			k := newTestClient(t, host.KubeConfig{Server: f.URL})
			lifecycle(t, k, namespace("kube-system"))
			lifecycle(t, k, configMap("kube-system", "c"))
			if f.object("/api/v1/namespaces/kube-system") == nil {
				t.Error("the fake holds no namespace kube-system")
			}
			if got := f.count("POST /api/v1/namespaces"); got != 2 {
				t.Errorf("POST /api/v1/namespaces: %d requests, want 2", got)
			}
			// Whatever discovery the server offers, the client asks the
			// group version for its resources, once.
			if got := f.count("GET /api/v1"); got != 1 {
				t.Errorf("GET /api/v1: %d requests, want 1", got)
			}
		})
	}
}

// TestDiscoveryOnce checks that a client asks for a group version's
// resources once, in plain JSON, and for nothing else: not the group
// list, not the aggregated discovery document.
func TestDiscoveryOnce(t *testing.T) {
	t.Parallel()
	f := newFakeAPIServer(t, nil)
	k := newTestClient(t, host.KubeConfig{Server: f.URL})
	for _, name := range []string{"a", "b", "c"} {
		if _, err := k.Create(t.Context(), namespace(name)); err != nil {
			t.Fatal(err)
		}
		if _, err := k.Exists(t.Context(), configMap(name, "x")); err != nil {
			t.Fatal(err)
		}
	}
	for p, want := range map[string]int{"GET /api/v1": 1, "GET /api": 0, "GET /apis": 0, "GET /apis/apps/v1": 0} {
		if got := f.count(p); got != want {
			t.Errorf("%s: %d requests, want %d", p, got, want)
		}
	}
	f.mu.Lock()
	accept := f.accept["/api/v1"]
	f.mu.Unlock()
	if want := contentJSON; accept != want {
		t.Errorf("Accept of GET /api/v1: got %q, want %q", accept, want)
	}
}

func TestNamespaceDefaults(t *testing.T) {
	t.Parallel()
	f := newFakeAPIServer(t, nil)
	k := newTestClient(t, host.KubeConfig{Server: f.URL})
	if _, err := k.Create(t.Context(), configMap("", "c")); err != nil {
		t.Fatal(err)
	}
	if f.object("/api/v1/namespaces/default/configmaps/c") == nil {
		t.Error("a ConfigMap with no namespace did not go to namespace default")
	}
	// A cluster-scoped object's namespace is not part of its path.
	if created, err := k.Create(t.Context(), namespaceIn("n", "ignored")); err != nil || !created {
		t.Errorf("Create(Namespace with metadata.namespace) = %v, %v; want true, nil", created, err)
	}
}

// TestKubeconfig checks the server, credentials and namespace a
// kubeconfig gives. client-go sends credentials over https only.
func TestKubeconfig(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "cluster-ca")
	f := newFakeAPIServer(t, func(f *fakeAPIServer) { f.ca = ca })
	path := writeKubeconfig(t, f.URL, ca.CertFile, "secret-token", "team")
	k := newTestClient(t, host.KubeConfig{Kubeconfig: path, Server: "http://127.0.0.1:1"})
	if _, err := k.Create(t.Context(), namespace("team")); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Create(t.Context(), configMap("", "c")); err != nil {
		t.Fatal(err)
	}
	if f.object("/api/v1/namespaces/team/configmaps/c") == nil {
		t.Error("a ConfigMap with no namespace did not go to the context's namespace team")
	}
	f.mu.Lock()
	auth := f.auth
	f.mu.Unlock()
	if want := "Bearer secret-token"; auth != want {
		t.Errorf("Authorization: got %q, want %q", auth, want)
	}
}

// writeKubeconfig writes a kubeconfig for server, whose certificate the
// CA in the file ca signs ("" for an http server), with a bearer token
// and a namespace ("" for none) to a temp dir, and returns its path.
func writeKubeconfig(t *testing.T, server, ca, token, namespace string) string {
	t.Helper()
	ns := ""
	if namespace != "" {
		ns = "\n    namespace: " + namespace
	}
	caLine := ""
	if ca != "" {
		caLine = "\n    certificate-authority: " + ca
	}
	text := `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: ` + server + caLine + `
users:
- name: admin
  user:
    token: ` + token + `
contexts:
- name: test
  context:
    cluster: test
    user: admin` + ns + `
current-context: test
`
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUnknownKind(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		apiVersion, kind string
		want             string // %s is the server
		// lists is how often the client asks for the group version's
		// resources: twice when it finds no such kind (the kind may have
		// just been defined), once when the kind is there in another
		// case (a new kind cannot take that name).
		lists int
		// groups is how often it asks for the group list (/apis): once
		// to look for the kind in other groups for a hint, not when the
		// group version itself gives the hint.
		groups int
	}{
		"unknown_kind":  {apiVersion: "v1", kind: "Foo", want: "kind Foo (v1) is not served by %s", lists: 2, groups: 1},
		"unknown_group": {apiVersion: "example.com/v1", kind: "Foo", want: "kind Foo (example.com/v1) is not served by %s", lists: 2, groups: 1},
		"wrong_group":   {apiVersion: "v1", kind: "Deployment", want: `kind Deployment (v1) is not served by %s (try apiVersion "apps/v1")`, lists: 2, groups: 1},
		"wrong_version": {apiVersion: "apps/v1beta1", kind: "Deployment", want: `kind Deployment (apps/v1beta1) is not served by %s (try apiVersion "apps/v1")`, lists: 2, groups: 1},
		// The server would refuse "namespace": a resource answers to its kind only.
		"wrong_case": {apiVersion: "v1", kind: "namespace", want: `kind namespace (v1) is not served by %s (try kind "Namespace")`, lists: 1, groups: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAPIServer(t, nil)
			k := newTestClient(t, host.KubeConfig{Server: f.URL})
			obj := map[string]any{"apiVersion": tc.apiVersion, "kind": tc.kind, "metadata": map[string]any{"name": "x"}}
			_, err := k.Exists(t.Context(), obj)
			if want := strings.ReplaceAll(tc.want, "%s", f.URL); err == nil || err.Error() != want {
				t.Fatalf("Exists: got %v, want %s", err, want)
			}
			if !meta.IsNoMatchError(err) {
				t.Errorf("meta.IsNoMatchError(%v) = false", err)
			}
			listPath := "GET /apis/" + tc.apiVersion
			if tc.apiVersion == "v1" {
				listPath = "GET /api/v1"
			}
			if got := f.count(listPath); got != tc.lists {
				t.Errorf("%s: %d requests, want %d", listPath, got, tc.lists)
			}
			if got := f.count("GET /apis"); got != tc.groups {
				t.Errorf("GET /apis: %d requests, want %d", got, tc.groups)
			}
			if got := f.count("GET /api"); got != 0 {
				t.Errorf("GET /api: %d requests, want 0", got)
			}
		})
	}
}

func TestServerDown(t *testing.T) {
	t.Parallel()
	server := "http://" + hostiletest.DeadAddr(t)
	k := newTestClient(t, host.KubeConfig{Server: server})
	want := "kube " + server + ": no answer (connection refused); is the API server up?"
	for _, op := range []struct {
		name string
		call func(context.Context, map[string]any) (bool, error)
	}{{"Exists", k.Exists}, {"Create", k.Create}} {
		start := time.Now()
		_, err := op.call(t.Context(), namespace("x"))
		if err == nil || err.Error() != want {
			t.Fatalf("%s: got %v, want %s", op.name, err, want)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("%s: errors.Is(%v, ECONNREFUSED) = false", op.name, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: took %s to say the server is down", op.name, d)
		}
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	f := newFakeAPIServer(t, func(f *fakeAPIServer) { f.hang = true })
	k, err := newClient(host.KubeConfig{Server: f.URL}, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = k.Exists(t.Context(), namespace("x"))
	want := "kube " + f.URL + ": no answer in 200ms (discover v1 Namespace); is the API server up?"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s, want about 200ms", d)
	}
}

func TestCanceled(t *testing.T) {
	t.Parallel()
	f := newFakeAPIServer(t, func(f *fakeAPIServer) { f.hang = true })
	k := newTestClient(t, host.KubeConfig{Server: f.URL})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var err error
	wg.Go(func() { _, err = k.Create(ctx, namespace("x")) })
	cancel()
	wg.Wait()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want an error wrapping context.Canceled", err)
	}
}

func TestStatusErrors(t *testing.T) {
	t.Parallel()
	f := newFakeAPIServer(t, func(f *fakeAPIServer) { f.forbidCreate = true })
	k := newTestClient(t, host.KubeConfig{Server: f.URL})
	_, err := k.Create(t.Context(), namespace("x"))
	want := "kube " + f.URL + `: create v1 Namespace "x": 403 Forbidden: namespaces is forbidden: User "system:anonymous" cannot create resource "namespaces" in API group "" at the cluster scope`
	if err == nil || err.Error() != want {
		t.Errorf("forbidden: got %v\nwant %s", err, want)
	}
	if !apierrors.IsForbidden(err) {
		t.Errorf("apierrors.IsForbidden(%v) = false", err)
	}

	f = newFakeAPIServer(t, nil)
	k = newTestClient(t, host.KubeConfig{Server: f.URL})
	_, err = k.Create(t.Context(), configMap("missing", "c"))
	want = "kube " + f.URL + `: create v1 ConfigMap "c" in namespace "missing": 404 Not Found: namespaces "missing" not found`
	if err == nil || err.Error() != want {
		t.Errorf("missing namespace: got %v\nwant %s", err, want)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		cfg     host.KubeConfig
		wantErr string
	}{
		"nothing":          {cfg: host.KubeConfig{}, wantErr: `kube: no server given (set a server such as "http://127.0.0.1:8080", or a kubeconfig)`},
		"no_scheme":        {cfg: host.KubeConfig{Server: "127.0.0.1:8080"}, wantErr: `kube server "127.0.0.1:8080": not an http or https URL (write a URL such as "http://127.0.0.1:8080")`},
		"other_scheme":     {cfg: host.KubeConfig{Server: "ftp://x"}, wantErr: `kube server "ftp://x": not an http or https URL`},
		"no_kubeconfig":    {cfg: host.KubeConfig{Kubeconfig: "/nonexistent/kubeconfig"}, wantErr: `kubeconfig "/nonexistent/kubeconfig": `},
		"server_is_fine":   {cfg: host.KubeConfig{Server: "https://10.0.0.10:6443"}},
		"insecure_is_fine": {cfg: host.KubeConfig{Server: "http://127.0.0.1:8080"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.cfg)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr)):
				t.Fatalf("got %v, want %s…", err, tc.wantErr)
			}
		})
	}
}

func TestInvalidObjects(t *testing.T) {
	t.Parallel()
	// Nothing listens: an invalid object is refused before any request.
	k := newTestClient(t, host.KubeConfig{Server: "http://" + hostiletest.DeadAddr(t)})
	tests := map[string]struct {
		obj     map[string]any
		wantErr string
	}{
		"no_api_version": {obj: map[string]any{"kind": "Namespace", "metadata": map[string]any{"name": "x"}}, wantErr: `kube object has no apiVersion (add one, such as "v1")`},
		"no_kind":        {obj: map[string]any{"apiVersion": "v1", "metadata": map[string]any{"name": "x"}}, wantErr: `kube object has no kind (add one, such as "Namespace")`},
		"no_name":        {obj: map[string]any{"apiVersion": "v1", "kind": "Namespace"}, wantErr: `kube v1 Namespace has no metadata.name (add one)`},
		"bad_version":    {obj: map[string]any{"apiVersion": "a/b/c", "kind": "Namespace", "metadata": map[string]any{"name": "x"}}, wantErr: `kube Namespace: apiVersion "a/b/c" is not valid (write "v1" or "group/version", such as "apps/v1")`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := k.Create(t.Context(), tc.obj); err == nil || err.Error() != tc.wantErr {
				t.Fatalf("got %v, want %s", err, tc.wantErr)
			}
		})
	}
}

// namespaceIn is a Namespace that names a namespace, which a
// cluster-scoped object has no use for: the server drops it.
func namespaceIn(name, ns string) map[string]any {
	obj := namespace(name)
	obj["metadata"].(map[string]any)["namespace"] = ns
	return obj
}
