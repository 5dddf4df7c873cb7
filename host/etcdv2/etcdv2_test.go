package etcdv2

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/etcdtest"
	"github.com/kplay-dev/kplay/host/hostiletest"
	"github.com/kplay-dev/kplay/host/tlstest"
)

// etcdPackage is the etcd server the tests of this package share.
var etcdPackage etcdtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	etcdPackage.Stop()
	os.Exit(code)
}

// testEtcd returns the client URL of the shared etcd server, starting it
// at the first call. Without an etcd binary the test is skipped.
func testEtcd(t *testing.T) string { return etcdPackage.URL(t) }

// etcdKey is a new key for each call: the server outlives a test, and
// -count=N runs a test again.
func etcdKey(t *testing.T, name string) string {
	return fmt.Sprintf("/kplay-test/%s-%d/%s", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano(), name)
}

// newTestEtcd is a client of endpoints with the timeouts New gives.
func newTestEtcd(t *testing.T, endpoints ...string) host.Etcd {
	t.Helper()
	e, err := New(host.EtcdConfig{Endpoints: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.(*Client).Close() })
	return e
}

func mustGet(t *testing.T, e host.Etcd, key string) host.EtcdValue {
	t.Helper()
	v, err := e.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustSet(t *testing.T, e host.Etcd, key, value string, ifAbsent bool) bool {
	t.Helper()
	created, err := e.Set(t.Context(), key, value, ifAbsent)
	if err != nil {
		t.Fatal(err)
	}
	return created
}

func TestEtcdGetMissing(t *testing.T) {
	t.Parallel()
	e := newTestEtcd(t, testEtcd(t))
	if got := mustGet(t, e, etcdKey(t, "absent")); got != (host.EtcdValue{}) {
		t.Errorf("got %+v, want host.EtcdValue{}", got)
	}
}

func TestEtcdSetAndGet(t *testing.T) {
	t.Parallel()
	e := newTestEtcd(t, testEtcd(t))
	key := etcdKey(t, "config")
	if !mustSet(t, e, key, `{"Network":"10.2.0.0/16"}`, false) {
		t.Error("first set: got created=false, want true")
	}
	first := mustGet(t, e, key)
	if !first.Exists || first.Value != `{"Network":"10.2.0.0/16"}` || first.ModifiedIndex == 0 {
		t.Fatalf("after set: got %+v, want the value with a ModifiedIndex", first)
	}
	if mustSet(t, e, key, "two", false) {
		t.Error("overwrite: got created=true, want false")
	}
	second := mustGet(t, e, key)
	if second.Value != "two" || second.ModifiedIndex <= first.ModifiedIndex {
		t.Errorf("after overwrite: got %+v, want value \"two\" and ModifiedIndex > %d", second, first.ModifiedIndex)
	}
	if mustSet(t, e, key, "three", true) {
		t.Error("ifAbsent on an existing key: got created=true, want false")
	}
	if got := mustGet(t, e, key); got != second {
		t.Errorf("ifAbsent on an existing key changed it: got %+v, want %+v", got, second)
	}
	if !mustSet(t, e, etcdKey(t, "new"), "v", true) {
		t.Error("ifAbsent on a missing key: got created=false, want true")
	}
}

func TestEtcdSetIfAbsentRace(t *testing.T) {
	t.Parallel()
	url := testEtcd(t)
	key := etcdKey(t, "race")
	clients := []host.Etcd{newTestEtcd(t, url), newTestEtcd(t, url)}
	type result struct {
		created bool
		err     error
	}
	results := make([]result, len(clients))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, e := range clients {
		wg.Go(func() {
			<-start
			created, err := e.Set(t.Context(), key, fmt.Sprint("writer ", i), true)
			results[i] = result{created, err}
		})
	}
	close(start)
	wg.Wait()
	winners := 0
	for i, r := range results {
		if r.err != nil {
			t.Errorf("writer %d: %v", i, r.err)
		}
		if r.created {
			winners++
		}
	}
	if winners != 1 {
		t.Errorf("got %d writers with created=true, want 1: %+v", winners, results)
	}
}

func TestEtcdFirstEndpointDead(t *testing.T) {
	t.Parallel()
	url := testEtcd(t)
	// The client shuffles the endpoints once per client: several clients
	// make it likely that one tries the dead endpoint first.
	for i := range 6 {
		e := newTestEtcd(t, "http://"+hostiletest.DeadAddr(t), url)
		key := etcdKey(t, fmt.Sprint(i))
		if !mustSet(t, e, key, "v", true) {
			t.Errorf("client %d: ifAbsent set: got created=false, want true", i)
		}
		if !mustSet(t, e, key+"-plain", "v", false) {
			t.Errorf("client %d: set: got created=false, want true", i)
		}
		if got := mustGet(t, e, key); got.Value != "v" {
			t.Errorf("client %d: got %+v, want value \"v\"", i, got)
		}
	}
}

func TestEtcdAllEndpointsDead(t *testing.T) {
	t.Parallel()
	dead1, dead2 := "http://"+hostiletest.DeadAddr(t), "http://"+hostiletest.DeadAddr(t)
	e, err := newClient(host.EtcdConfig{Endpoints: []string{dead1, dead2}}, timeouts{request: time.Second, call: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"get", func(ctx context.Context) error { _, err := e.Get(ctx, "/a"); return err }},
		{"set", func(ctx context.Context) error { _, err := e.Set(ctx, "/a", "secret-value", false); return err }},
		{"set_if_absent", func(ctx context.Context) error { _, err := e.Set(ctx, "/a", "secret-value", true); return err }},
	} {
		t.Run(op.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			err := op.call(t.Context())
			took := time.Since(start)
			t.Logf("%s: failed after %s: %v", op.name, took.Round(time.Millisecond), err)
			if err == nil {
				t.Fatalf("%s: got no error, want one", op.name)
			}
			want := fmt.Sprintf("etcd %s,%s: no endpoint answered within 1.5s (is etcd running with --enable-v2?)", dead1, dead2)
			for _, s := range []string{`key "/a"`, want, "connection refused"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%s: got %q, want it to contain %q", op.name, err, s)
				}
			}
			if strings.Contains(err.Error(), "secret-value") {
				t.Errorf("%s: the error shows the value: %q", op.name, err)
			}
			if took < 1400*time.Millisecond || took > 5*time.Second {
				t.Errorf("%s: failed after %s, want about 1.5s", op.name, took)
			}
		})
	}
}

func TestEtcdParentContext(t *testing.T) {
	t.Parallel()
	e := newTestEtcd(t, "http://"+hostiletest.DeadAddr(t))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := e.Get(ctx, "/a")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want an error wrapping context.Canceled", err)
	}
}

func TestEtcdWithoutV2(t *testing.T) {
	t.Parallel()
	// What etcd 3.4 without --enable-v2 answers on /v2/keys/...
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	e := newTestEtcd(t, srv.URL)
	start := time.Now()
	_, err := e.Get(t.Context(), "/coreos.com/network/config")
	want := fmt.Sprintf(`get key "/coreos.com/network/config": etcd %s: %s has no v2 keys API (404 on /v2/keys; start etcd 3.4 or 3.5 with --enable-v2=true, 3.6 has none)`, srv.URL, srv.URL)
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s, want no retries", took)
	}
	_, err = e.Set(t.Context(), "/a", "secret-value", true)
	if err == nil || !strings.Contains(err.Error(), "--enable-v2=true") || strings.Contains(err.Error(), "secret-value") {
		t.Errorf("ifAbsent set: got %v, want the --enable-v2=true hint without the value", err)
	}
}

func TestEtcdErrorAnswerNamesKeyNotValue(t *testing.T) {
	t.Parallel()
	e := newTestEtcd(t, testEtcd(t))
	dir := etcdKey(t, "dir")
	mustSet(t, e, dir+"/inner", "v", false)
	_, err := e.Set(t.Context(), dir, "secret-value", false)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("set key %q", dir)) || !strings.Contains(err.Error(), "etcd error 102") || strings.Contains(err.Error(), "secret-value") {
		t.Errorf("set on a directory: got %v, want an etcd error 102 naming the key, not the value", err)
	}
	_, err = e.Get(t.Context(), dir)
	if err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("get of a directory: got %v, want \"is a directory\"", err)
	}
}

func TestEtcdConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		cfg     host.EtcdConfig
		wantErr string
	}{
		"no_endpoints":     {cfg: host.EtcdConfig{}, wantErr: "etcd: no endpoints (give at least one client URL such as http://127.0.0.1:2379)"},
		"no_scheme":        {cfg: host.EtcdConfig{Endpoints: []string{"127.0.0.1:2379"}}, wantErr: `etcd endpoint "127.0.0.1:2379": not a client URL (write one such as http://127.0.0.1:2379)`},
		"path":             {cfg: host.EtcdConfig{Endpoints: []string{"http://127.0.0.1:2379/v2"}}, wantErr: `etcd endpoint "http://127.0.0.1:2379/v2": not a client URL`},
		"missing_ca":       {cfg: host.EtcdConfig{Endpoints: []string{"https://e:2379"}, TLS: host.TLSFiles{CAFile: filepath.Join(dir, "nope.pem")}}, wantErr: "etcd: read CA file " + filepath.Join(dir, "nope.pem") + ": no such file or directory"},
		"ca_not_pem":       {cfg: host.EtcdConfig{Endpoints: []string{"https://e:2379"}, TLS: host.TLSFiles{CAFile: notPEM}}, wantErr: "etcd: CA file " + notPEM + " holds no PEM certificate"},
		"cert_without_key": {cfg: host.EtcdConfig{Endpoints: []string{"https://e:2379"}, TLS: host.TLSFiles{CertFile: notPEM}}, wantErr: "etcd: client certificate " + notPEM + " has no key file (give both)"},
		"key_without_cert": {cfg: host.EtcdConfig{Endpoints: []string{"https://e:2379"}, TLS: host.TLSFiles{KeyFile: notPEM}}, wantErr: "etcd: key file " + notPEM + " has no client certificate (give both)"},
		"bad_pair":         {cfg: host.EtcdConfig{Endpoints: []string{"https://e:2379"}, TLS: host.TLSFiles{CertFile: notPEM, KeyFile: notPEM}}, wantErr: "etcd: client certificate " + notPEM + " and key " + notPEM + ": tls: "},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := newClient(tt.cfg, timeouts{request: time.Second, call: time.Second})
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Errorf("got  %v\nwant %s", err, tt.wantErr)
			}
		})
	}
}

func TestEtcdKeyErrors(t *testing.T) {
	t.Parallel()
	e := newTestEtcd(t, "http://"+hostiletest.DeadAddr(t))
	_, err := e.Get(t.Context(), "coreos.com/network/config")
	want := `get key "coreos.com/network/config": an etcd key starts with "/" and names something below it (write "/coreos.com/network/config")`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

// fakeV2Keys answers GET /v2/keys/a as etcd does for a key holding "v".
func fakeV2Keys(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v2/keys/a" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Etcd-Index", "7")
	fmt.Fprint(w, `{"action":"get","node":{"key":"/a","value":"v","modifiedIndex":7,"createdIndex":7}}`)
}

// writePEM writes blocks of type typ to a new file in dir.
func writePEM(t *testing.T, dir, name, typ string, ders ...[]byte) string {
	t.Helper()
	var buf bytes.Buffer
	for _, der := range ders {
		if err := pem.Encode(&buf, &pem.Block{Type: typ, Bytes: der}); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEtcdTLS(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var clientCerts int
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		clientCerts = len(r.TLS.PeerCertificates)
		mu.Unlock()
		fakeV2Keys(w, r)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake without CA fails on purpose
	srv.StartTLS()
	t.Cleanup(srv.Close)

	// The test server's certificate and key serve as CA, and as client
	// certificate too: the server asks for one but does not verify it.
	cert := srv.TLS.Certificates[0]
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile := writePEM(t, dir, "ca.pem", "CERTIFICATE", cert.Certificate[0])
	keyFile := writePEM(t, dir, "key.pem", "PRIVATE KEY", key)

	e, err := newClient(host.EtcdConfig{Endpoints: []string{srv.URL}, TLS: host.TLSFiles{CAFile: caFile, CertFile: caFile, KeyFile: keyFile}}, timeouts{request: 5 * time.Second, call: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Get(t.Context(), "/a")
	if err != nil {
		t.Fatal(err)
	}
	if want := (host.EtcdValue{Exists: true, Value: "v", ModifiedIndex: 7}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	mu.Lock()
	if clientCerts != 1 {
		t.Errorf("the server saw %d client certificates, want 1", clientCerts)
	}
	mu.Unlock()

	// Without the CA the certificate does not verify: that fails at
	// once, with a hint, rather than after 10s of retries.
	e, err = newClient(host.EtcdConfig{Endpoints: []string{srv.URL}}, timeouts{request: 5 * time.Second, call: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = e.Get(t.Context(), "/a")
	if err == nil || !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), "(check the CA file, client certificate and key)") {
		t.Errorf("without CA: got %v, want a certificate error with a hint", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("without CA: took %s, want no retries", took)
	}
}

func TestEtcdEndlessBody(t *testing.T) {
	t.Parallel()
	// An endpoint that answers a get like etcd, then streams its body
	// without end: the issue saw check reach 2.5 GB in 2s.
	srv := hostiletest.NewEndlessServer(t, 512<<20, func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Etcd-Index", "7")
	})
	e := newTestEtcd(t, srv.URL)
	_, err := e.Get(t.Context(), "/coreos.com/network/config")
	want := `get key "/coreos.com/network/config": etcd ` + srv.URL + `: response body larger than 16 MiB (kplay reads no more; is this an etcd v2 keys API? check the endpoints)`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	srv.CheckStopped(t, bodyLimit)
}

func TestEtcdRedirects(t *testing.T) {
	t.Parallel()
	// The v2 client would follow a redirect itself, to any server, with
	// the request's body (a Set's value) and the client certificate.
	ca := tlstest.NewCA(t, "etcd-ca")
	var handshakes atomic.Int64
	var mu sync.Mutex
	var otherGot []string
	other := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		otherGot = append(otherGot, r.Method+" "+r.URL.Path+" "+string(body))
		mu.Unlock()
		fakeV2Keys(w, r)
	}))
	_, _, pair := ca.Issue(t, "other", true)
	other.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequestClientCert,
		VerifyConnection: func(tls.ConnectionState) error { handshakes.Add(1); return nil }}
	other.StartTLS()
	t.Cleanup(other.Close)
	srv := ca.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/keys/here" {
			http.Redirect(w, r, "/v2/keys/a", http.StatusTemporaryRedirect)
			return
		}
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}), true)
	certFile, keyFile, _ := ca.Issue(t, "kplay", false)
	e, err := newClient(host.EtcdConfig{Endpoints: []string{srv.URL}, TLS: host.TLSFiles{CAFile: ca.CertFile, CertFile: certFile, KeyFile: keyFile}},
		timeouts{request: 5 * time.Second, call: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	hint := " (etcd does not redirect, and kplay follows no redirect from an etcd endpoint: give etcd's own client URL)"
	_, err = e.Set(t.Context(), "/a", "secret-value", false)
	want := `set key "/a": etcd ` + srv.URL + ": " + srv.URL + " answered 307 Temporary Redirect, a redirect to " + other.URL + hint
	if err == nil || err.Error() != want {
		t.Errorf("set:\n got %v\nwant %s", err, want)
	}
	_, err = e.Get(t.Context(), "/here")
	want = `get key "/here": etcd ` + srv.URL + ": " + srv.URL + " answered 307 Temporary Redirect, a redirect to " + srv.URL + hint
	if err == nil || err.Error() != want {
		t.Errorf("get redirected to the same server:\n got %v\nwant %s", err, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(otherGot) > 0 || handshakes.Load() > 0 {
		t.Errorf("the other server got %q and %d TLS handshakes, want none", otherGot, handshakes.Load())
	}
}

func TestEtcdEndpointPasswordNotShown(t *testing.T) {
	t.Parallel()
	dead := strings.TrimPrefix("http://"+hostiletest.DeadAddr(t), "http://")
	e, err := newClient(host.EtcdConfig{Endpoints: []string{"http://root:secret-pass@" + dead}}, timeouts{request: 100 * time.Millisecond, call: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Get(t.Context(), "/a")
	if want := `get key "/a": etcd http://xxxxx@` + dead + ": no endpoint answered"; err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "secret-pass") {
		t.Errorf("got  %v\nwant %s…, without the password", err, want)
	}
	_, err = newClient(host.EtcdConfig{Endpoints: []string{"http://root:secret-pass@" + dead + "/v2"}}, timeouts{request: time.Second, call: time.Second})
	if err == nil || strings.Contains(err.Error(), "secret-pass") {
		t.Errorf("config error: got %v, want one without the password", err)
	}
}
