package builtins

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kplay-dev/kplay/host/tlstest"
)

// recorder is an httptest handler that records the requests it gets and
// answers each path with a fixed status.
type recorder struct {
	mu       sync.Mutex
	requests []string
	status   map[string]int
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.requests = append(rec.requests, fmt.Sprintf("%s %s %s %s", r.Method, r.URL.Path, r.Header.Get("Content-Type"), body))
	status, ok := rec.status[r.Method+" "+r.URL.Path]
	rec.mu.Unlock()
	if !ok {
		status = http.StatusNotFound
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, "answer to %s %s", r.Method, r.URL.Path)
}

func (rec *recorder) got() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.requests)
}

func TestHTTPPost(t *testing.T) {
	t.Parallel()
	rec := &recorder{status: map[string]int{"POST /api/v1/namespaces": 201}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	plan := mustEvaluate(t, fmt.Sprintf(`http_post(%q, json = {"metadata": {"name": "kube-system"}, "kind": "Namespace"}, headers = {"Authorization": "Bearer SECRET"})`, srv.URL+"/api/v1/namespaces"))

	results := mustApply(t, plan, t.TempDir(), true)
	if got := actions(results); !slices.Equal(got, []string{"run"}) {
		t.Fatalf("check: got %v, want [run]", got)
	}
	if got := rec.got(); len(got) != 0 {
		t.Fatalf("check sent %q", got)
	}
	mustApply(t, plan, t.TempDir(), false)
	want := []string{`POST /api/v1/namespaces application/json {"kind":"Namespace","metadata":{"name":"kube-system"}}`}
	if got := rec.got(); !slices.Equal(got, want) {
		t.Errorf("run sent %q, want %q", got, want)
	}
}

func TestHTTPPostUnlessGet(t *testing.T) {
	t.Parallel()
	rec := &recorder{status: map[string]int{"GET /exists": 200, "POST /create": 201}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	exists := mustEvaluate(t, fmt.Sprintf(`http_post(%q, body = "x", unless_get = %q)`, srv.URL+"/create", srv.URL+"/exists"))
	if got := actions(mustApply(t, exists, t.TempDir(), false)); !slices.Equal(got, []string{"-"}) {
		t.Errorf("unless_get 200: got %v, want unchanged", got)
	}
	absent := mustEvaluate(t, fmt.Sprintf(`http_post(%q, body = "x", unless_get = %q)`, srv.URL+"/create", srv.URL+"/absent"))
	if got := actions(mustApply(t, absent, t.TempDir(), false)); !slices.Equal(got, []string{"run"}) {
		t.Errorf("unless_get 404: got %v, want run", got)
	}
	want := []string{"GET /exists  ", "GET /exists  ", "GET /absent  ", "GET /absent  ", "POST /create  x"}
	if got := rec.got(); !slices.Equal(got, want) {
		t.Errorf("requests (a dry pass, then the run):\n got %q\nwant %q", got, want)
	}
}

func TestHTTPPostUnexpectedStatus(t *testing.T) {
	t.Parallel()
	rec := &recorder{status: map[string]int{"POST /x": 500, "GET /broken": 503}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	plan := mustEvaluate(t, fmt.Sprintf(`http_post(%q, body = "x")`, srv.URL+"/x"))
	_, err := apply(t, plan, t.TempDir(), false)
	if err == nil || !strings.Contains(err.Error(), `answered 500 Internal Server Error (want 200 or 201): "answer to POST /x"`) {
		t.Errorf("got %v, want the status and body in the error", err)
	}
	plan = mustEvaluate(t, fmt.Sprintf(`http_post(%q, body = "x", unless_get = %q)`, srv.URL+"/x", srv.URL+"/broken"))
	_, err = apply(t, plan, t.TempDir(), true)
	if err == nil || !strings.Contains(err.Error(), "answered 503 Service Unavailable (want 200 or 404)") {
		t.Errorf("unless_get 503: got %v", err)
	}
}

func TestHTTPBadArguments(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ src, wantErr string }{
		"relative_url":     {`http_post("/api", body = "x")`, `http_post: for parameter url: "/api" is not an absolute URL (want one such as http://127.0.0.1:8080/api/v1/namespaces)`},
		"json_and_body":    {`http_post("http://h/x", json = {}, body = "x")`, `give json or body, not both`},
		"bad_expect":       {`http_post("http://h/x", expect = [99])`, `99 is not an HTTP status`},
		"bad_header":       {`http_post("http://h/x", headers = {"A": 1})`, `headers: want string names and values`},
		"bad_unless_get":   {`http_post("http://h/x", unless_get = "x")`, `http_post: for parameter "unless_get": "x" is not an absolute URL`},
		"wait_bad_url":     {`wait_http("localhost:8080")`, `wait_http: for parameter url: "localhost:8080" is not an absolute URL`},
		"wait_bad_timeout": {`wait_http("http://h/version", timeout = "forever")`, `timeout "forever" is not a duration`},
		// A password in a URL that is not absolute is not shown either.
		"no_scheme_password":     {`wait_http(url = "admin:hunter2@h/version")`, `wait_http: for parameter "url": "xxxxx@h/version" is not an absolute URL`},
		"no_host_password":       {`http_post("http://admin:hunter2@/x", body = "x")`, `"http://xxxxx@/x" is not an absolute URL`},
		"endpoint_password":      {`etcd_put("/k", "v", endpoints = "root:hunter2@10.0.0.1:2379")`, `"xxxxx@10.0.0.1:2379" is not an absolute URL`},
		"kube_server_password":   {`kube_create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}, server = "u:hunter2@h:6443")`, `"xxxxx@h:6443" is not an absolute URL`},
		"unless_get_token_no_at": {`http_post("http://h/x", unless_get = "h/x?access_token=hunter2")`, `is not an absolute URL`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := evaluate(t, playbook(t, tc.src, nil), nil)
			if err == nil || !strings.HasPrefix(relErr(err), "play.star:1:") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want play.star:1:...%s", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// TestHTTPPostRedirects is the issue's example: a POST answered by a 307
// to another host must not carry its body and X-Vault-Token there.
func TestHTTPPostRedirects(t *testing.T) {
	t.Parallel()
	other := &recorder{status: map[string]int{}}
	otherSrv := httptest.NewServer(other)
	t.Cleanup(otherSrv.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherSrv.URL+"/stolen", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)
	post := fmt.Sprintf(`http_post(%q, json = {"secret": "value"}, headers = {"X-Vault-Token": "s3cr3t"}`, srv.URL+"/v1/secret")
	tests := map[string]struct {
		src     string
		check   bool
		wantErr string
	}{
		"post": {src: post + ")",
			wantErr: "play.star:1:10: http_post POST " + srv.URL + "/v1/secret: answered 307 Temporary Redirect, a redirect to " + otherSrv.URL + " (want 200 or 201; kplay does not follow the redirect of a POST, which would send its body and headers there: give the URL it redirects to)"},
		"post_expecting_the_redirect": {src: post + ", expect = [307])"},
		"unless_get": {src: post + fmt.Sprintf(", unless_get = %q)", srv.URL+"/v1/secret/x"), check: true,
			wantErr: "play.star:1:10: http_post POST " + srv.URL + "/v1/secret: GET " + srv.URL + "/v1/secret/x: the server redirects to " + otherSrv.URL + ", another server than " + srv.URL + " (kplay follows a redirect only to the same scheme, host and port: give the URL it redirects to)"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := apply(t, mustEvaluate(t, tt.src), t.TempDir(), tt.check)
			if (err == nil) != (tt.wantErr == "") || err != nil && relErr(err) != tt.wantErr {
				t.Errorf("got  %v\nwant %s", err, tt.wantErr)
			}
		})
	}
	t.Cleanup(func() {
		if got := other.got(); len(got) > 0 {
			t.Errorf("the other host got %q, want nothing", got)
		}
	})
}

// TestHTTPPostEndlessBody: an answer whose body does not end is an error
// that names the URL and the bound, and kplay stops reading.
func TestHTTPPostEndlessBody(t *testing.T) {
	t.Parallel()
	const max = 1 << 30 // the server stops here, whatever the client does
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		chunk := []byte(strings.Repeat("x", 64<<10))
		for sent.Load() < max {
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	_, err := apply(t, mustEvaluate(t, fmt.Sprintf(`http_post(%q, body = "x")`, srv.URL+"/x")), t.TempDir(), false)
	want := "play.star:1:10: http_post POST " + srv.URL + "/x: POST " + srv.URL + "/x: answered 500 Internal Server Error with a response body larger than 1 MiB (kplay reads no more; is this the right URL?)"
	if err == nil || relErr(err) != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	srv.Close() // waits for the handler
	// Socket buffers hold a few MiB that the client never read.
	if n := sent.Load(); n > 32<<20 {
		t.Errorf("the server sent %d MiB before kplay went away, want about 1 MiB", n>>20)
	}
}

func TestHTTPPostHTTPS(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "cluster-ca")
	rec := &recorder{status: map[string]int{"POST /api/v1/namespaces": 201, "GET /api/v1/namespaces/x": 404}}
	srv := ca.NewServer(t, rec, true)
	certFile, keyFile, _ := ca.Issue(t, "kplay", false)
	src := fmt.Sprintf(`http_post(%q, body = "x", unless_get = %q, ca = %q, cert = %q, key_file = %q)`,
		srv.URL+"/api/v1/namespaces", srv.URL+"/api/v1/namespaces/x", ca.CertFile, certFile, keyFile)
	if got := actions(mustApply(t, mustEvaluate(t, src), t.TempDir(), false)); !slices.Equal(got, []string{"run"}) {
		t.Errorf("got %v, want run", got)
	}
	// A dry pass, then the run.
	want := []string{"GET /api/v1/namespaces/x  ", "GET /api/v1/namespaces/x  ", "POST /api/v1/namespaces  x"}
	if got := rec.got(); !slices.Equal(got, want) {
		t.Errorf("the server got %q, want %q", got, want)
	}
	_, err := apply(t, mustEvaluate(t, fmt.Sprintf(`http_post(%q, body = "x", unless_get = %q)`, srv.URL+"/api/v1/namespaces", srv.URL+"/api/v1/namespaces/x")), t.TempDir(), true)
	if err == nil || !strings.HasSuffix(err.Error(), "x509: certificate signed by unknown authority (give ca= the CA certificate that signed the server's certificate)") {
		t.Errorf("without ca: got %v, want an unknown authority error with the hint", err)
	}
}

func TestTLSArguments(t *testing.T) {
	t.Parallel()
	const ns = `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}`
	tests := map[string]struct{ src, wantErr string }{
		"wait_cert_only":      {`wait_http("https://h/healthz", cert = "c.pem")`, `wait_http: give both cert and key_file, or neither`},
		"post_key_only":       {`http_post("https://h/x", key_file = "k.pem")`, `http_post: give both cert and key_file, or neither`},
		"kube_cert_only":      {`kube_create(` + ns + `, server = "https://h", cert = "c.pem")`, `kube_create: give both cert and key_file, or neither`},
		"kube_kubeconfig_ca":  {`kube_create(` + ns + `, kubeconfig = "admin.conf", ca = "ca.pem")`, `kube_create: give ca, cert and key_file with server, not with kubeconfig (a kubeconfig names its own CA and client certificate)`},
		"wait_ca_not_string":  {`wait_http("https://h/healthz", ca = 1)`, `wait_http: for parameter "ca": got int, want string`},
		"wait_ca_over_http":   {`wait_http("http://h/healthz", ca = "ca.pem")`, `wait_http: ca, cert and key_file are for https, but http://h/healthz is not https (write https://…, or leave them out)`},
		"post_unless_http":    {`http_post("https://h/x", unless_get = "http://u:pw@h/x", ca = "ca.pem")`, `http_post: ca, cert and key_file are for https, but http://xxxxx@h/x is not https (write https://…, or leave them out)`},
		"kube_cert_over_http": {`kube_create(` + ns + `, server = "http://h:8080", cert = "c.pem", key_file = "k.pem")`, `kube_create: ca, cert and key_file are for https, but http://h:8080 is not https (write https://…, or leave them out)`},
		"etcd_ca_over_http":   {`etcd_put("/k", "v", endpoints = "https://a:2379,http://b:2379", ca = "ca.pem")`, `etcd_put: ca, cert and key_file are for https, but http://b:2379 is not https (write https://…, or leave them out)`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := evaluate(t, playbook(t, tc.src, nil), nil)
			if err == nil || !strings.HasPrefix(relErr(err), "play.star:1:") || !strings.HasSuffix(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want play.star:1:...%s", err, tc.wantErr)
			}
		})
	}
}
