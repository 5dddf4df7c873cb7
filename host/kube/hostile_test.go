package kube

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/hostiletest"
	"github.com/kplay-dev/kplay/host/tlstest"
)

// endless writes a body without end to w until the client goes away or
// max bytes are out, and adds what it wrote to sent.
func endless(w http.ResponseWriter, max int64, sent *atomic.Int64) {
	w.Header().Set("Content-Type", contentJSON)
	hostiletest.Endless(w, "{", ' ', max, sent)
}

// TestEndlessBody is the issue's API server that streams an endless
// body (check reached 3.7 GB in 6s): at discovery, and at the GET of the
// object once discovery is done.
func TestEndlessBody(t *testing.T) {
	t.Parallel()
	const max = 1 << 30 // the server stops here, whatever the client does
	tests := map[string]struct {
		path string // that streams without end
		op   string
	}{
		"discovery": {path: "/api/v1", op: "discover v1 Namespace"},
		"object":    {path: "/api/v1/namespaces/x", op: `get v1 Namespace "x"`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAPIServer(t, nil)
			var sent atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == tt.path {
					endless(w, max, &sent)
					return
				}
				f.serve(w, r)
			}))
			t.Cleanup(srv.Close)
			// The bound under test is the body's, not the time's: under
			// -race on a busy CI machine, reading 64 MiB took longer than
			// Timeout (15s in one run), so this client waits longer.
			k, err := newClient(host.KubeConfig{Server: srv.URL}, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			_, err = k.Exists(t.Context(), namespace("x"))
			want := "kube " + srv.URL + ": " + tt.op + ": response body larger than 64 MiB (kplay reads no more; is this an API server?)"
			var tooLong *host.BodyLimitError
			if err == nil || err.Error() != want || !errors.As(err, &tooLong) {
				t.Errorf("got  %v\nwant %s (a *host.BodyLimitError)", err, want)
			}
			srv.Close() // waits for the handler
			// Socket buffers hold a few MiB that the client never read.
			if n := sent.Load(); n >= max || n > BodyLimit+32<<20 {
				t.Errorf("the server sent %d MiB before the client went away, want about %d MiB", n>>20, BodyLimit>>20)
			}
		})
	}
}

// TestRedirects checks that the client's credentials (here a bearer
// token from a kubeconfig, over https) never follow a redirect to
// another server, and that no request body does: client-go adds the
// token to every request it sends, redirected or not.
func TestRedirects(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "cluster-ca")
	var mu sync.Mutex
	var otherGot []string
	other := ca.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		otherGot = append(otherGot, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		mu.Unlock()
	}), false)
	tests := map[string]struct {
		redirect func(r *http.Request) string // where to, or "" to answer
		call     func(k host.Kube) error
		wantErr  string // %s is the server, %o the other
	}{
		"discovery_to_other_server": {
			redirect: func(r *http.Request) string { return other.URL + r.URL.Path },
			call:     func(k host.Kube) error { _, err := k.Exists(t.Context(), namespace("x")); return err },
			wantErr:  "kube %s: discover v1 Namespace: the server redirects to %o, another server than %s (kplay follows a redirect only to the same scheme, host and port: give the URL it redirects to)",
		},
		"get_to_other_server": {
			redirect: func(r *http.Request) string {
				if r.URL.Path == "/api/v1/namespaces/x" {
					return other.URL + r.URL.Path
				}
				return ""
			},
			call:    func(k host.Kube) error { _, err := k.Exists(t.Context(), namespace("x")); return err },
			wantErr: `kube %s: get v1 Namespace "x": the server redirects to %o, another server than %s (`,
		},
		"post_to_other_server": {
			redirect: func(r *http.Request) string {
				if r.Method == http.MethodPost {
					return other.URL + r.URL.Path
				}
				return ""
			},
			call:    func(k host.Kube) error { _, err := k.Create(t.Context(), namespace("x")); return err },
			wantErr: `kube %s: create v1 Namespace "x": the server redirects the POST to %o (kplay does not follow the redirect of a POST: give the URL it redirects to)`,
		},
		"post_to_same_server": {
			redirect: func(r *http.Request) string {
				if r.Method == http.MethodPost && r.URL.Query().Get("again") == "" {
					return r.URL.Path + "?again=1"
				}
				return ""
			},
			call:    func(k host.Kube) error { _, err := k.Create(t.Context(), namespace("x")); return err },
			wantErr: `kube %s: create v1 Namespace "x": the server redirects the POST to %s (`,
		},
		"get_to_same_server": {
			redirect: func(r *http.Request) string {
				if r.URL.Path == "/api/v1" && r.URL.Query().Get("again") == "" {
					return "/api/v1?again=1"
				}
				return ""
			},
			call: func(k host.Kube) error { _, err := k.Exists(t.Context(), namespace("x")); return err },
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAPIServer(t, nil)
			srv := ca.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if to := tt.redirect(r); to != "" {
					http.Redirect(w, r, to, http.StatusTemporaryRedirect)
					return
				}
				f.serve(w, r)
			}), false)
			k := newTestClient(t, host.KubeConfig{Kubeconfig: writeKubeconfig(t, srv.URL, ca.CertFile, "secret-token", "")})
			err := tt.call(k)
			want := strings.NewReplacer("%s", srv.URL, "%o", other.URL).Replace(tt.wantErr)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("got %v, want the redirect followed", err)
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), want)):
				t.Errorf("got  %v\nwant %s…", err, want)
			}
		})
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if len(otherGot) > 0 {
			t.Errorf("the other server got %q, want nothing", otherGot)
		}
	})
}

// TestServerTLS checks an https server given with a CA file, and a
// client certificate, as kube_create(server=, ca=, cert=, key_file=)
// gives them.
func TestServerTLS(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "cluster-ca")
	certFile, keyFile, _ := ca.Issue(t, "kplay", false)
	tests := map[string]struct {
		clientCert bool // the server requires one
		tls        host.TLSFiles
		wantErr    string // %s is the server
	}{
		"ca":             {tls: host.TLSFiles{CAFile: ca.CertFile}},
		"no_ca":          {wantErr: "kube %s: discover v1 Namespace: tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		"client_cert":    {clientCert: true, tls: host.TLSFiles{CAFile: ca.CertFile, CertFile: certFile, KeyFile: keyFile}},
		"no_client_cert": {clientCert: true, tls: host.TLSFiles{CAFile: ca.CertFile}, wantErr: "kube %s: discover v1 Namespace: remote error: tls: certificate required"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAPIServer(t, func(f *fakeAPIServer) { f.ca, f.clientCert = ca, tt.clientCert })
			k := newTestClient(t, host.KubeConfig{Server: f.URL, TLS: tt.tls})
			if tt.wantErr == "" {
				lifecycle(t, k, namespace("x"))
				return
			}
			_, err := k.Exists(t.Context(), namespace("x"))
			if want := strings.ReplaceAll(tt.wantErr, "%s", f.URL); err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("got  %v\nwant %s…", err, want)
			}
		})
	}
}

func TestTLSConfigErrors(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "ca.pem")
	ca := tlstest.NewCA(t, "cluster-ca")
	kubeconfig := writeKubeconfig(t, "https://127.0.0.1:6443", ca.CertFile, "t", "")
	tests := map[string]struct {
		cfg     host.KubeConfig
		wantErr string
	}{
		"missing_ca": {cfg: host.KubeConfig{Server: "https://127.0.0.1:6443", TLS: host.TLSFiles{CAFile: missing}},
			wantErr: "kube https://127.0.0.1:6443: read CA file " + missing + ": no such file or directory"},
		"password_not_shown": {cfg: host.KubeConfig{Server: "https://u:secret-pass@127.0.0.1:6443", TLS: host.TLSFiles{CAFile: missing}},
			wantErr: "kube https://xxxxx@127.0.0.1:6443: read CA file "},
		"cert_without_key": {cfg: host.KubeConfig{Server: "https://127.0.0.1:6443", TLS: host.TLSFiles{CertFile: ca.CertFile}},
			wantErr: "kube https://127.0.0.1:6443: client certificate " + ca.CertFile + " has no key file (give both)"},
		"kubeconfig_and_tls": {cfg: host.KubeConfig{Kubeconfig: kubeconfig, TLS: host.TLSFiles{CAFile: ca.CertFile}},
			wantErr: fmt.Sprintf("kubeconfig %q: TLS files are given too (a kubeconfig names its own CA and client certificate: give one or the other)", kubeconfig)},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tt.cfg)
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "secret-pass") {
				t.Errorf("got  %v\nwant %s…", err, tt.wantErr)
			}
		})
	}
}

// TestUnusableKubeconfig: each kubeconfig that names no server and user
// to act as is an error, before any request.
func TestUnusableKubeconfig(t *testing.T) {
	t.Parallel()
	const cluster = "clusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n"
	const user = "users:\n- name: u\n  user:\n    token: secret-token\n"
	tests := map[string]struct {
		text    string
		wantErr string // after `kubeconfig "PATH": `
	}{
		"empty_file":      {text: "", wantErr: "empty (give a kubeconfig with a current-context, its cluster's server and its user, such as /etc/kubernetes/admin.conf)"},
		"header_only":     {text: "apiVersion: v1\nkind: Config\n", wantErr: "empty ("},
		"no_contexts":     {text: cluster + user, wantErr: "no contexts (add one that names a cluster and a user, and set current-context to it)"},
		"no_current":      {text: cluster + user + "contexts:\n- name: b\n  context: {cluster: c, user: u}\n- name: a\n  context: {cluster: c, user: u}\n", wantErr: "no current-context (set it to one of its contexts: a, b)"},
		"unknown_current": {text: cluster + user + "contexts:\n- name: a\n  context: {cluster: c, user: u}\ncurrent-context: z\n", wantErr: `current-context "z" is not among its contexts (set it to one of: a)`},
		"no_cluster":      {text: cluster + user + "contexts:\n- name: a\n  context: {user: u}\ncurrent-context: a\n", wantErr: `context "a" names no cluster (add cluster: to it)`},
		"unknown_cluster": {text: cluster + user + "contexts:\n- name: a\n  context: {cluster: z, user: u}\ncurrent-context: a\n", wantErr: `context "a" names cluster "z", which the file does not define (add it under clusters:)`},
		"no_server":       {text: "clusters:\n- name: c\n  cluster: {}\n" + user + "contexts:\n- name: a\n  context: {cluster: c, user: u}\ncurrent-context: a\n", wantErr: `cluster "c" has no server (add one, such as https://10.0.0.10:6443)`},
		"unknown_user":    {text: cluster + user + "contexts:\n- name: a\n  context: {cluster: c, user: z}\ncurrent-context: a\n", wantErr: `context "a" names user "z", which the file does not define (add it under users:)`},
		"not_yaml":        {text: "clusters: [", wantErr: "not a kubeconfig: "},
		"insecure_https":  {text: "clusters:\n- name: c\n  cluster: {server: https://127.0.0.1:6443, insecure-skip-tls-verify: true}\n" + user + "contexts:\n- name: a\n  context: {cluster: c, user: u}\ncurrent-context: a\n", wantErr: `cluster "c" sets insecure-skip-tls-verify, which kplay does not honour (remove it and give certificate-authority or certificate-authority-data, the CA of the server's certificate)`},
		"missing_ca_file": {text: "clusters:\n- name: c\n  cluster: {server: https://127.0.0.1:6443, certificate-authority: no-ca.pem}\n" + user + "contexts:\n- name: a\n  context: {cluster: c, user: u}\ncurrent-context: a\n", wantErr: "invalid configuration: "},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "kubeconfig")
			if err := os.WriteFile(path, []byte(tt.text), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := New(host.KubeConfig{Kubeconfig: path})
			want := fmt.Sprintf("kubeconfig %q: %s", path, tt.wantErr)
			if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "secret-token") {
				t.Errorf("got  %v\nwant %s…", err, want)
			}
		})
	}
}

// TestKubeconfigRelativeFiles: a kubeconfig's file names are relative
// to its own directory, as client-go's loader has them.
func TestKubeconfigRelativeFiles(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "cluster-ca")
	f := newFakeAPIServer(t, func(f *fakeAPIServer) { f.ca = ca })
	dir := t.TempDir()
	caPEM, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "ca.pem"), string(caPEM))
	path := filepath.Join(dir, "kubeconfig")
	writeFile(t, path, "clusters:\n- name: c\n  cluster: {server: "+f.URL+", certificate-authority: ca.pem}\ncontexts:\n- name: a\n  context: {cluster: c, namespace: team}\ncurrent-context: a\n")
	k := newTestClient(t, host.KubeConfig{Kubeconfig: path})
	lifecycle(t, k, namespace("team"))
	lifecycle(t, k, configMap("", "c"))
	if f.object("/api/v1/namespaces/team/configmaps/c") == nil {
		t.Error("a ConfigMap with no namespace did not go to the context's namespace team")
	}
}

// TestEmptyKubeconfigIgnoresEnvironment is the issue's pod: with
// KUBERNETES_SERVICE_HOST and _PORT set, client-go's usual loader takes
// an empty kubeconfig as "use the pod's service account". Every variable
// that client-go's loaders read points at a fake API server here; an
// empty kubeconfig must still be an error, and the fake must hear
// nothing. (The pod fallback also needs a token file at a fixed path
// under /var/run, which a test cannot make: TestNoEnvironmentLoaders
// shows that the code never calls those loaders.)
//
// t.Setenv makes this test sequential.
func TestEmptyKubeconfigIgnoresEnvironment(t *testing.T) {
	// https, as in a pod, and so that client-go sends a token at all.
	ca := tlstest.NewCA(t, "cluster-ca")
	f := newFakeAPIServer(t, func(f *fakeAPIServer) { f.ca = ca })
	hostPort := strings.TrimPrefix(f.URL, "https://")
	h, port, _ := strings.Cut(hostPort, ":")
	home := t.TempDir()
	valid := writeKubeconfig(t, f.URL, ca.CertFile, "pod-token", "pod-namespace")
	data, err := os.ReadFile(valid)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(home, ".kube"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(home, ".kube", "config"), string(data))
	t.Setenv("KUBERNETES_SERVICE_HOST", h)
	t.Setenv("KUBERNETES_SERVICE_PORT", port)
	t.Setenv("KUBERNETES_MASTER", f.URL)
	t.Setenv("KUBECONFIG", valid)
	t.Setenv("HOME", home)
	t.Setenv("POD_NAMESPACE", "pod-namespace")

	empty := filepath.Join(t.TempDir(), "kubeconfig")
	writeFile(t, empty, "")
	_, err = New(host.KubeConfig{Kubeconfig: empty})
	want := fmt.Sprintf("kubeconfig %q: empty (", empty)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("empty kubeconfig: got %v, want %s…", err, want)
	}

	// A kubeconfig without a namespace means "default", not POD_NAMESPACE.
	plain := writeKubeconfig(t, f.URL, ca.CertFile, "kplay-token", "")
	k := newTestClient(t, host.KubeConfig{Kubeconfig: plain})
	if _, err := k.Create(t.Context(), configMap("", "c")); err != nil {
		t.Fatal(err)
	}
	if f.object("/api/v1/namespaces/default/configmaps/c") == nil {
		t.Error("a ConfigMap with no namespace did not go to namespace default")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.auth != "Bearer kplay-token" {
		t.Errorf("Authorization: got %q, want the plain kubeconfig's token", f.auth)
	}
	if n := f.requests["GET /api/v1/namespaces/pod-namespace/configmaps/c"]; n > 0 {
		t.Errorf("the fake got %d requests in POD_NAMESPACE, want none", n)
	}
}

// TestNoEnvironmentLoaders reads this package's code: it must not call
// the client-go loaders that consult the environment (KUBECONFIG,
// ~/.kube/config, KUBERNETES_SERVICE_*, POD_NAMESPACE,
// KUBERNETES_MASTER) or the environment itself.
func TestNoEnvironmentLoaders(t *testing.T) {
	t.Parallel()
	forbidden := []string{
		"clientcmd.NewNonInteractiveDeferredLoadingClientConfig", "clientcmd.NewInteractiveDeferredLoadingClientConfig",
		"clientcmd.NewDefaultClientConfigLoadingRules", "clientcmd.BuildConfigFromFlags", "clientcmd.BuildConfigFromKubeconfigGetter",
		"clientcmd.ClientConfigLoadingRules", "clientcmd.DefaultClientConfig", "clientcmd.ClusterDefaults", "clientcmd.RecommendedHomeFile",
		"rest.InClusterConfig", "os.Getenv", "os.LookupEnv", "os.Environ",
	}
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var used []string
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && slices.Contains(forbidden, x.Name+"."+sel.Sel.Name) {
					used = append(used, name+": "+x.Name+"."+sel.Sel.Name)
				}
			}
			return true
		})
	}
	if len(used) > 0 {
		t.Errorf("the package uses loaders that read the environment: %q", used)
	}
}
