package kube

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/hostiletest"
	"github.com/kplay-dev/kplay/host/tlstest"
	"github.com/kplay-dev/kplay/sandbox"
)

// apiserverVersion is the kube-apiserver that .ci/kube-apiserver builds.
const apiserverVersion = "v1.37.2"

// TestAPIServer runs the client against a real kube-apiserver (and etcd),
// started once for all its subtests and stopped at its end. It runs in
// parallel with the fake server's tests.
func TestAPIServer(t *testing.T) {
	t.Parallel()
	s := startAPIServer(t)
	kubeconfig := writeKubeconfig(t, s.url, s.servingCA, s.token, "")
	k := newTestClient(t, host.KubeConfig{Kubeconfig: kubeconfig})

	t.Run("live", func(t *testing.T) {
		t.Run("namespace_lifecycle", func(t *testing.T) {
			t.Parallel()
			lifecycle(t, k, namespace("kplay-lifecycle"))
		})
		t.Run("concurrent_create", func(t *testing.T) {
			t.Parallel()
			// Fresh clients, so that discovery races too.
			const n = 2
			var wg sync.WaitGroup
			created := make([]bool, n)
			errs := make([]error, n)
			for i := range n {
				k := newTestClient(t, host.KubeConfig{Kubeconfig: kubeconfig})
				wg.Go(func() { created[i], errs[i] = k.Create(t.Context(), namespace("kplay-race")) })
			}
			wg.Wait()
			wins := 0
			for i := range n {
				if errs[i] != nil {
					t.Errorf("Create %d: %v", i, errs[i])
				}
				if created[i] {
					wins++
				}
			}
			if wins != 1 {
				t.Errorf("%d of %d concurrent Creates said created, want exactly 1", wins, n)
			}
		})
		t.Run("configmap_in_namespace", func(t *testing.T) {
			t.Parallel()
			if _, err := k.Create(t.Context(), namespace("kplay-cm")); err != nil {
				t.Fatal(err)
			}
			lifecycle(t, k, configMap("kplay-cm", "settings"))
			// No metadata.namespace: the kubeconfig context's.
			kns := newTestClient(t, host.KubeConfig{Kubeconfig: writeKubeconfig(t, s.url, s.servingCA, s.token, "kplay-cm")})
			if created, err := kns.Create(t.Context(), configMap("", "other")); err != nil || !created {
				t.Fatalf("Create(ConfigMap other) = %v, %v; want true, nil", created, err)
			}
			if exists, err := k.Exists(t.Context(), configMap("kplay-cm", "other")); err != nil || !exists {
				t.Errorf("Exists(kplay-cm/other) = %v, %v; want true, nil", exists, err)
			}
			_, err := k.Create(t.Context(), configMap("kplay-missing", "c"))
			want := "kube " + s.url + `: create v1 ConfigMap "c" in namespace "kplay-missing": 404 Not Found: namespaces "kplay-missing" not found`
			if err == nil || err.Error() != want {
				t.Errorf("missing namespace: got %v\nwant %s", err, want)
			}
		})
		t.Run("unknown_kind", func(t *testing.T) {
			t.Parallel()
			for obj, want := range map[[2]string]string{
				{"v1", "Foo"}:        "kind Foo (v1) is not served by " + s.url,
				{"v1", "Deployment"}: "kind Deployment (v1) is not served by " + s.url + ` (try apiVersion "apps/v1")`,
			} {
				_, err := k.Exists(t.Context(), map[string]any{"apiVersion": obj[0], "kind": obj[1], "metadata": map[string]any{"name": "x"}})
				if err == nil || err.Error() != want {
					t.Errorf("got %v, want %s", err, want)
				}
			}
		})
		t.Run("fake_answers_alike", func(t *testing.T) {
			t.Parallel()
			compareWithFake(t, s)
		})
		t.Run("sandbox_fake_answers_alike", func(t *testing.T) {
			t.Parallel()
			// kplay test's in-memory API server (sandbox.FakeKube)
			// answers each call as the real client against the real
			// server does. The real one starts with namespace default.
			fake := sandbox.NewFakeKube()
			if _, err := fake.Create(t.Context(), namespace("default")); err != nil {
				t.Fatal(err)
			}
			calls := []struct {
				create bool
				obj    map[string]any
			}{
				{false, namespace("kplay-sbx")}, {true, namespace("kplay-sbx")}, {true, namespace("kplay-sbx")},
				{false, namespace("kplay-sbx")},
				// The namespace is ignored for a cluster-scoped kind.
				{false, map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "kplay-sbx", "namespace": "elsewhere"}}},
				// A ConfigMap without a namespace is in default.
				{true, configMap("", "kplay-sbx-cm")}, {false, configMap("default", "kplay-sbx-cm")},
				{false, configMap("kplay-sbx", "kplay-sbx-cm")},
				{true, configMap("kplay-sbx", "kplay-sbx-cm")}, {true, configMap("kplay-sbx", "kplay-sbx-cm")},
			}
			for i, c := range calls {
				call := func(k host.Kube) (bool, error) {
					if c.create {
						return k.Create(t.Context(), c.obj)
					}
					return k.Exists(t.Context(), c.obj)
				}
				got, gerr := call(fake)
				want, werr := call(k)
				if got != want || (gerr == nil) != (werr == nil) {
					t.Errorf("call %d (create=%v %v): fake %v, %v; real %v, %v", i, c.create, c.obj, got, gerr, want, werr)
				}
			}
			for _, obj := range []map[string]any{{"kind": "Namespace"}, {"apiVersion": "v1", "metadata": map[string]any{"name": "x"}}, {"apiVersion": "v1", "kind": "Namespace"}} {
				_, ferr := fake.Exists(t.Context(), obj)
				_, rerr := k.Exists(t.Context(), obj)
				if ferr == nil || rerr == nil || ferr.Error() != rerr.Error() {
					t.Errorf("%v: fake %v, real %v; want the same error", obj, ferr, rerr)
				}
			}
		})
		t.Run("server_with_ca_and_client_cert", func(t *testing.T) {
			t.Parallel()
			// kube_create(server=, ca=, cert=, key_file=) against the
			// apiserver's own serving CA and a client certificate of
			// the CA it trusts (--client-ca-file), as a master's
			// admin.pem.
			certFile, keyFile, _ := s.clientCA.IssueClient(t, "kplay-admin", "system:masters")
			k := newTestClient(t, host.KubeConfig{Server: s.url, TLS: host.TLSFiles{CAFile: s.servingCA, CertFile: certFile, KeyFile: keyFile}})
			lifecycle(t, k, namespace("kplay-tls"))

			// Without a client certificate: the real server's answer
			// to system:anonymous, over a verified connection.
			anon := newTestClient(t, host.KubeConfig{Server: s.url, TLS: host.TLSFiles{CAFile: s.servingCA}})
			_, err := anon.Exists(t.Context(), namespace("kplay-tls"))
			want := "kube " + s.url + ": discover v1 Namespace: 403 Forbidden"
			if err == nil || !strings.HasPrefix(err.Error(), want) || !apierrors.IsForbidden(err) {
				t.Errorf("anonymous: got %v\nwant %s", err, want)
			}

			// Without the CA: the serving certificate does not verify.
			noCA := newTestClient(t, host.KubeConfig{Server: s.url, TLS: host.TLSFiles{CertFile: certFile, KeyFile: keyFile}})
			_, err = noCA.Exists(t.Context(), namespace("kplay-tls"))
			want = "kube " + s.url + ": discover v1 Namespace: tls: failed to verify certificate: x509: certificate signed by unknown authority"
			if err == nil || err.Error() != want {
				t.Errorf("no CA: got %v\nwant %s", err, want)
			}
		})
	})

	s.stop(t)
	t.Run("server_down", func(t *testing.T) {
		// k has done discovery: this is the GET itself failing.
		_, err := k.Exists(t.Context(), namespace("kplay-lifecycle"))
		want := "kube " + s.url + ": no answer (connection refused); is the API server up?"
		if err == nil || err.Error() != want {
			t.Errorf("got %v, want %s", err, want)
		}
		// A fresh client fails at discovery, with the same message.
		k := newTestClient(t, host.KubeConfig{Kubeconfig: kubeconfig})
		if _, err := k.Create(t.Context(), namespace("x")); err == nil || err.Error() != want {
			t.Errorf("fresh client: got %v, want %s", err, want)
		}
	})
}

// compareWithFake sends the same requests to the real server and to the
// fake and checks that status codes, content types and metav1.Status
// bodies agree.
func compareWithFake(t *testing.T, s *apiServer) {
	f := newFakeAPIServer(t, nil)
	tests := []struct {
		name, method, path, accept string
		body                       map[string]any
		wantCode                   int
	}{
		{"aggregated_api", "GET", "/api", contentAggregated + ",application/json", nil, 200},
		{"aggregated_apis", "GET", "/apis", contentAggregated + ",application/json", nil, 200},
		{"legacy_api", "GET", "/api", "application/json", nil, 200},
		{"get_missing", "GET", "/api/v1/namespaces/kplay-nothing", "application/json", nil, 404},
		{"create", "POST", "/api/v1/namespaces", "application/json", namespace("kplay-compare"), 201},
		{"create_again", "POST", "/api/v1/namespaces", "application/json", namespace("kplay-compare"), 409},
		{"create_cluster_scoped_with_namespace", "POST", "/api/v1/namespaces", "application/json", namespaceIn("kplay-compare-2", "ignored"), 201},
		{"create_in_missing", "POST", "/api/v1/namespaces/kplay-nothing/configmaps", "application/json", configMap("", "c"), 404},
	}
	for _, tc := range tests {
		live := s.do(t, tc.method, tc.path, tc.accept, tc.body)
		fake := do(t, http.DefaultClient, f.URL, "", tc.method, tc.path, tc.accept, tc.body)
		if live.code != tc.wantCode {
			t.Errorf("%s: real server: status %d, want %d", tc.name, live.code, tc.wantCode)
		}
		if fake.code != live.code || fake.contentType != live.contentType {
			t.Errorf("%s: fake answers %d %q, the real server %d %q", tc.name, fake.code, fake.contentType, live.code, live.contentType)
		}
		if live.code < 300 {
			continue
		}
		var rs, fs metav1.Status
		if err := json.Unmarshal(live.body, &rs); err != nil {
			t.Fatalf("%s: real server: %v", tc.name, err)
		}
		if err := json.Unmarshal(fake.body, &fs); err != nil {
			t.Fatalf("%s: fake: %v", tc.name, err)
		}
		if rj, fj := mustJSON(t, rs), mustJSON(t, fs); rj != fj {
			t.Errorf("%s: Status bodies differ\nreal: %s\nfake: %s", tc.name, rj, fj)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type answer struct {
	code        int
	contentType string
	body        []byte
}

func do(t *testing.T, c *http.Client, base, token, method, path, accept string, body map[string]any) answer {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = strings.NewReader(mustJSON(t, body))
	}
	req, err := http.NewRequestWithContext(t.Context(), method, base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", accept)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header.Get("Content-Type"), b}
}

// apiServer is a running kube-apiserver with its own etcd.
type apiServer struct {
	url   string // https://127.0.0.1:PORT
	token string // of a system:masters user
	http  *http.Client
	// servingCA is the file of the CA that signed the apiserver's own
	// serving certificate (it makes both in --cert-dir).
	servingCA string
	// clientCA is the CA of the client certificates the apiserver
	// trusts (--client-ca-file).
	clientCA *tlstest.CA

	stopOnce sync.Once
	procs    []*proc // stopped in reverse order
}

func (s *apiServer) do(t *testing.T, method, path, accept string, body map[string]any) answer {
	t.Helper()
	return do(t, s.http, s.url, s.token, method, path, accept, body)
}

// stop stops the apiserver, then etcd; later calls do nothing.
func (s *apiServer) stop(t *testing.T) {
	s.stopOnce.Do(func() {
		for i := len(s.procs) - 1; i >= 0; i-- {
			if err := s.procs[i].stop(); err != nil {
				t.Errorf("stop %s: %v", s.procs[i].name, err)
			}
		}
	})
}

// apiserverBinary finds kube-apiserver: $KPLAY_KUBE_APISERVER, else the
// path .ci/kube-apiserver builds to. It skips the test when neither is
// there.
func apiserverBinary(t *testing.T) string {
	if p := os.Getenv("KPLAY_KUBE_APISERVER"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("KPLAY_KUBE_APISERVER: %v", err)
		}
		return p
	}
	cache := os.Getenv("KPLAY_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Skipf("kube-apiserver not built (run bash .ci/kube-apiserver): %v", err)
		}
		cache = filepath.Join(home, ".cache", "kplay")
	}
	p := filepath.Join(cache, "kube-apiserver-"+apiserverVersion)
	if _, err := os.Stat(p); err != nil {
		t.Skip("kube-apiserver not built (run bash .ci/kube-apiserver)")
	}
	return p
}

// startAPIServer starts etcd and kube-apiserver on free loopback ports,
// with their data, certificates and logs in a temp dir, waits until the
// apiserver is ready, and stops both when the test ends.
func startAPIServer(t *testing.T) *apiServer {
	t.Helper()
	bin := apiserverBinary(t)
	etcdBin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not installed (apt-get install etcd-server)")
	}
	dir := t.TempDir()
	s := &apiServer{
		token: randomHex(t),
		http: &http.Client{
			Timeout:   5 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		},
	}
	t.Cleanup(func() { s.stop(t) })

	client, peer := hostiletest.DeadAddr(t), hostiletest.DeadAddr(t)
	start := time.Now()
	etcd := startProc(t, dir, "etcd", etcdBin,
		"--name=kplay-test", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls=http://"+client, "--advertise-client-urls=http://"+client,
		"--listen-peer-urls=http://"+peer, "--initial-advertise-peer-urls=http://"+peer,
		"--initial-cluster=kplay-test=http://"+peer)
	s.procs = append(s.procs, etcd)
	etcd.waitReady(t, 30*time.Second, func(ctx context.Context) bool {
		a, err := get(ctx, http.DefaultClient, "http://"+client+"/health", "")
		return err == nil && a.code == 200 && bytes.Contains(a.body, []byte(`"health":"true"`))
	})
	t.Logf("etcd ready in %s", time.Since(start).Round(time.Millisecond))

	writeFile(t, filepath.Join(dir, "tokens.csv"), s.token+",admin,1000,system:masters\n")
	saKey := filepath.Join(dir, "sa.key")
	writeFile(t, saKey, rsaKeyPEM(t))
	addr := hostiletest.DeadAddr(t)
	_, port, _ := strings.Cut(addr, ":")
	s.url = "https://" + addr
	start = time.Now()
	s.clientCA = tlstest.NewCA(t, "client-ca")
	kas := startProc(t, dir, "kube-apiserver", bin,
		"--etcd-servers=http://"+client, "--cert-dir="+filepath.Join(dir, "certs"),
		"--client-ca-file="+s.clientCA.CertFile,
		"--bind-address=127.0.0.1", "--secure-port="+port,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+saKey, "--service-account-signing-key-file="+saKey,
		"--token-auth-file="+filepath.Join(dir, "tokens.csv"), "--authorization-mode=RBAC")
	s.procs = append(s.procs, kas)
	kas.waitReady(t, 90*time.Second, func(ctx context.Context) bool {
		a, err := get(ctx, s.http, s.url+"/readyz", s.token)
		return err == nil && a.code == 200 && string(a.body) == "ok"
	})
	t.Logf("kube-apiserver %s ready in %s", apiserverVersion, time.Since(start).Round(time.Millisecond))
	s.servingCA = servingCA(t, filepath.Join(dir, "certs", "apiserver.crt"))
	return s
}

// servingCA writes the last certificate of the apiserver's self-signed
// chain, its CA, to a file beside it and returns that file.
func servingCA(t *testing.T, chainFile string) string {
	t.Helper()
	data, err := os.ReadFile(chainFile)
	if err != nil {
		t.Fatal(err)
	}
	var last []byte
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		last = pem.EncodeToMemory(block)
	}
	if last == nil {
		t.Fatalf("%s holds no certificate", chainFile)
	}
	caFile := filepath.Join(filepath.Dir(chainFile), "serving-ca.pem")
	writeFile(t, caFile, string(last))
	return caFile
}

func get(ctx context.Context, c *http.Client, url, token string) (answer, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return answer{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, body: b}, err
}

// proc is a server process started by a test, its output in a log file.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{} // closed when it has exited; then err is set
	err    error
}

func startProc(t *testing.T, dir, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, log: filepath.Join(dir, name+".log"), exited: make(chan struct{})}
	out, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	// If the test binary dies, so do the servers.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log (last lines):\n%s", name, tail(p.log, 30))
		}
	})
	return p
}

// waitReady polls ready every 100ms until it holds; it fails the test if
// the process exits or timeout passes first.
func (p *proc) waitReady(t *testing.T, timeout time.Duration, ready func(context.Context) bool) {
	t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !ready(t.Context()) {
		select {
		case <-p.exited:
			t.Fatalf("%s exited before it was ready (%v); its log:\n%s", p.name, p.err, tail(p.log, 30))
		case <-deadline:
			t.Fatalf("%s not ready after %s; its log:\n%s", p.name, timeout, tail(p.log, 30))
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM and waits up to 30s for the process to exit, then
// kills it.
func (p *proc) stop() error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("did not exit within 30s of SIGTERM; killed")
	}
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// rsaKeyPEM returns a new RSA private key for signing service account
// tokens, which the apiserver requires.
func rsaKeyPEM(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
}
