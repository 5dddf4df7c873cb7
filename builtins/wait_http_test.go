package builtins

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host/tlstest"
)

func TestWaitHTTP(t *testing.T) {
	t.Parallel()
	var tries atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Comes up on the fourth try.
		if tries.Add(1) < 4 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `{"major":"1"}`)
	}))
	defer srv.Close()
	plan := mustEvaluate(t, fmt.Sprintf(`wait_http(%q, interval = "10ms", timeout = "1m")`, srv.URL+"/version"))

	results := mustApply(t, plan, t.TempDir(), true)
	if r := results[0]; r.Status != engine.Skipped || r.Reason != "check does not wait" {
		t.Fatalf("check: got %v %q, want skipped (check does not wait)", r.Status, r.Reason)
	}
	if n := tries.Load(); n != 0 {
		t.Fatalf("check polled %d times", n)
	}
	results = mustApply(t, plan, t.TempDir(), false)
	if r := results[0]; r.Status != engine.Unchanged || r.Reason != "waited" || r.Change.Action != engine.Wait {
		t.Errorf("run: got %v %v %q, want a wait listed as unchanged (waited)", r.Status, r.Change.Action, r.Reason)
	}
	if n := tries.Load(); n != 4 {
		t.Errorf("tries: got %d, want 4", n)
	}
}

func TestWaitHTTPTimesOut(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	plan := mustEvaluate(t, fmt.Sprintf(`wait_http(%q, interval = "10ms", timeout = "200ms")`, srv.URL+"/version"))
	_, err := apply(t, plan, t.TempDir(), false)
	if err == nil || !strings.HasPrefix(relErr(err), "play.star:1:10: wait_http "+srv.URL+"/version: ") || !strings.Contains(err.Error(), "503") {
		t.Errorf("got %v, want a timeout error with the last status at play.star:1:10", err)
	}
}

// TestWaitHTTPS is the issue's API server with no insecure port: a
// playbook waits for https on 127.0.0.1 with the cluster's CA, given
// relative to the playbook's directory.
func TestWaitHTTPS(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "cluster-ca")
	caPEM := readFile(t, ca.CertFile)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	srv := ca.NewServer(t, ok, false)
	mutual := ca.NewServer(t, ok, true)
	certFile, keyFile, _ := ca.Issue(t, "kplay", false)
	tests := map[string]struct {
		src     string // %s is the server's URL
		wantErr string // %s is the server's URL
	}{
		"ca": {src: `wait_http("%s/healthz", ca = "tls/ca.pem", timeout = "1h")`},
		// An hour: only failing at once ends the test.
		"no_ca": {src: `wait_http("%s/healthz", timeout = "1h")`,
			wantErr: "play.star:1:10: wait_http %s/healthz: wait %s/healthz: tls: failed to verify certificate: x509: certificate signed by unknown authority (give ca= the CA certificate that signed the server's certificate)"},
		"client_cert": {src: fmt.Sprintf(`wait_http("%%s/healthz", ca = "tls/ca.pem", cert = %q, key_file = %q, timeout = "1h")`, certFile, keyFile)},
		"no_client_cert": {src: `wait_http("%s/healthz", ca = "tls/ca.pem", timeout = "1h")`,
			wantErr: "play.star:1:10: wait_http %s/healthz: wait %s/healthz: remote error: tls: certificate required (the server refused the TLS handshake: does it want a client certificate, cert= and key_file=?)"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := srv.URL
			if strings.Contains(name, "client_cert") {
				url = mutual.URL
			}
			path := playbook(t, strings.ReplaceAll(tt.src, "%s", url), map[string]string{"tls/ca.pem": caPEM})
			plan, err := evaluate(t, path, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = apply(t, plan, t.TempDir(), false)
			want := strings.ReplaceAll(tt.wantErr, "%s", url)
			if (err == nil) != (tt.wantErr == "") || err != nil && relErr(err) != want {
				t.Errorf("got  %v\nwant %s", err, want)
			}
		})
	}
}

func TestWaitHTTPCheckReadsTLSFiles(t *testing.T) {
	t.Parallel()
	// check does not wait, but a missing CA file is an error there too.
	plan := mustEvaluate(t, `wait_http("https://127.0.0.1:1/healthz", ca = "missing.pem")`)
	_, err := apply(t, plan, t.TempDir(), true)
	if err == nil || !strings.HasPrefix(relErr(err), "play.star:1:10: wait_http https://127.0.0.1:1/healthz: read CA file ") || !strings.HasSuffix(err.Error(), "missing.pem: no such file or directory") {
		t.Errorf("got %v, want the missing CA file at play.star:1:10", err)
	}
}
