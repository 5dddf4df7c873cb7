package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/spf13/cobra"

	"github.com/kplay-dev/kplay/host/hostiletest"
	"github.com/kplay-dev/kplay/host/roottest"
	"github.com/kplay-dev/kplay/host/tlstest"
)

// TestTrustServers runs the hostile-server and terminal cases of issue 10
// end to end, on servers of the test's own on 127.0.0.1: a redirect of a
// POST to another host, bodies without end from etcd, an API server and
// an HTTP server, an empty kubeconfig, a https wait with a private CA,
// and escape codes in a root file, a playbook's content and a path. The
// unit tests of host, host/kube and ui hold each rule in detail; here
// the whole command must hold it.
func TestTrustServers(t *testing.T) {
	t.Parallel()
	uid := strconv.Itoa(os.Getuid())
	own := `owner="` + uid + `", group="` + uid + `"`
	var otherGot atomic.Int64 // requests the redirect's target saw
	endless := func(prefix string) func(t *testing.T) map[string]string {
		return func(t *testing.T) map[string]string {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				hostiletest.Endless(w, prefix, ' ', 256<<20, nil)
			}))
			t.Cleanup(srv.Close)
			return map[string]string{"URL": srv.URL}
		}
	}
	tests := map[string]trustCase{
		"post_redirect_to_another_host_sends_nothing_there": {
			servers: func(t *testing.T) map[string]string {
				other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { otherGot.Add(1) }))
				t.Cleanup(other.Close)
				srv := httptest.NewServer(http.RedirectHandler(other.URL+"/v1/secret", http.StatusTemporaryRedirect))
				t.Cleanup(srv.Close)
				return map[string]string{"URL": srv.URL}
			},
			playbook: `http_post("{{URL}}/v1/secret", body="s3cr3t-body", headers={"X-Vault-Token": "hvs.tok"})`,
			args:     []string{"run"},
			code:     1,
			stderr:   []string{`/trust.star:1:10: http_post POST http://127.0.0.1:\d+/v1/secret: answered 307 Temporary Redirect, a redirect to http://127.0.0.1:\d+ \(want 200 or 201; kplay does not follow the redirect of a POST`},
			never:    []string{`s3cr3t-body`, `hvs\.tok`},
			output: func(t *testing.T, _, _ string) {
				if n := otherGot.Load(); n != 0 {
					t.Errorf("the host the POST was redirected to got %d requests, want none", n)
				}
			},
		},
		"endless_http_body": {
			servers:  endless(""),
			playbook: `http_post("{{URL}}/x", body="b")`,
			args:     []string{"run"},
			code:     1,
			stderr:   []string{`/trust.star:1:10: http_post POST http://127.0.0.1:\d+/x: .*response body larger than 1 MiB`},
		},
		"endless_etcd_body": {
			servers:  endless(`{"action":"get","node":{"key":"/k","value":"`),
			playbook: `etcd_put("/k", "v", endpoints=["{{URL}}"])`,
			args:     []string{"check"},
			code:     1,
			stderr:   []string{`/trust.star:1:9: etcd_put /k: get key "/k": etcd http://127.0.0.1:\d+: response body larger than 16 MiB`},
		},
		"endless_kube_body": {
			servers:  endless(`{`),
			playbook: `kube_create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}, server="{{URL}}")`,
			args:     []string{"check"},
			code:     1,
			stderr:   []string{`/trust.star:1:12: kube_create Namespace/x: kube http://127.0.0.1:\d+: .*response body larger than 64 MiB`},
		},
		"empty_kubeconfig_is_an_error": {
			plant: func(t *testing.T, _, outside string) {
				roottest.WriteFile(t, filepath.Join(outside, "admin.conf"), "", 0o600)
			},
			playbook: `kube_create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}, kubeconfig="outside/admin.conf")`,
			args:     []string{"check"},
			code:     1,
			stderr:   []string{`kubeconfig ".*/outside/admin.conf": empty \(give a kubeconfig with a current-context`},
		},
		"https_wait_with_a_private_ca": {
			servers: func(t *testing.T) map[string]string {
				ca := tlstest.NewCA(t, "cluster-ca")
				srv := ca.NewServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), false)
				return map[string]string{"URL": srv.URL, "CA": ca.CertFile}
			},
			playbook: `wait_http("{{URL}}/healthz", ca="{{CA}}", timeout="10s")` + "\n" + `wait_http("{{URL}}/healthz", timeout="10s")`,
			args:     []string{"run", "-v"},
			code:     1,
			stdout:   []string{`/trust.star:1:10: wait_http https://127.0.0.1:\d+/healthz: unchanged \(waited\)`},
			stderr:   []string{`/trust.star:2:10: wait_http https://127.0.0.1:\d+/healthz: .*certificate signed by unknown authority \(give ca= the CA certificate`},
		},
		"a_kubeconfig_token_echoed_by_the_server_is_hidden": {
			servers: func(t *testing.T) map[string]string {
				ca := tlstest.NewCA(t, "cluster-ca")
				srv := ca.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					switch r.URL.Path {
					case "/api":
						fmt.Fprint(w, `{"kind":"APIVersions","versions":["v1"]}`)
					case "/apis":
						fmt.Fprint(w, `{"kind":"APIGroupList","apiVersion":"v1","groups":[]}`)
					case "/api/v1":
						fmt.Fprint(w, `{"kind":"APIResourceList","groupVersion":"v1","resources":[{"name":"namespaces","singularName":"namespace","namespaced":false,"kind":"Namespace","verbs":["create","get"]}]}`)
					default:
						w.WriteHeader(http.StatusForbidden)
						fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":%q,"reason":"Forbidden","code":403}`, "bad credentials "+r.Header.Get("Authorization"))
					}
				}), false)
				kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
				roottest.WriteFile(t, kubeconfig, "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: "+srv.URL+", certificate-authority: "+ca.CertFile+"}\nusers:\n- name: u\n  user: {token: kubetokenABCDEF123456}\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\ncurrent-context: a\n", 0o600)
				return map[string]string{"KUBECONFIG": kubeconfig}
			},
			playbook: `kube_create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}, kubeconfig="{{KUBECONFIG}}")`,
			args:     []string{"check", "-o", "json"},
			code:     1,
			stdout:   []string{`403 Forbidden: bad credentials Bearer \(credential\)`},
			never:    []string{`kubetokenABCDEF123456`},
		},
		"escape_codes_are_shown_escaped": {
			plant: func(t *testing.T, root, _ string) {
				roottest.WriteFile(t, filepath.Join(root, "etc/motd"), "old\x1b]0;pwned\x07\n", 0o644)
			},
			playbook: `file("/etc/motd", content="new\x1b[2K\r\n", ` + own + `)` + "\n" + `file("/etc/x\x1b[6Ay\nz", content="a\n", ` + own + `)`,
			args:     []string{"check"},
			code:     2,
			stdout:   []string{`^-old\\x1b\]0;pwned\\a$`, `^\+new\\x1b\[2K\\r$`, `file /etc/x\\x1b\[6Ay\\nz: create`},
			never:    []string{"\x1b", "\r", "\a"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runTrustCase(t, tc)
		})
	}
}

// TestPanicExitsOne: a panic is a bug of kplay, reported as one with exit
// 1, never 2, which check uses for "changes found" (issue 11).
func TestPanicExitsOne(t *testing.T) {
	t.Parallel()
	cmd := &cobra.Command{Use: "boom", SilenceErrors: true, SilenceUsage: true, RunE: func(*cobra.Command, []string) error {
		var steps []int
		_ = steps[len(steps)-1] // index out of range [-1], as an empty plan once did
		return nil
	}}
	cmd.SetArgs(nil)
	var stderr bytes.Buffer
	if code := execute(t.Context(), cmd, &stderr); code != exitError {
		t.Errorf("exit %d, want %d", code, exitError)
	}
	if want := "kplay: internal error: runtime error: index out of range [-1] (a bug of kplay: please report it with this message)\n"; !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("stderr:\n%s\nwant it to start %q", stderr.String(), want)
	}
}
