package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kplay-dev/kplay/host/etcdtest"
	"github.com/kplay-dev/kplay/host/kube/kubetest"
	"github.com/kplay-dev/kplay/host/roottest"
)

// testKey is a private key as a playbook would declare it.
const testKey = `-----BEGIN RSA PRIVATE KEY-----\nMIIEKEYDATA\n-----END RSA PRIVATE KEY-----\n`

// echoServer answers GET with 200 and any other method with 500 and the
// request's body echoed back, as a server that quotes what it got does.
func echoServer(t *testing.T) map[string]string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusInternalServerError)
		w.Write(append([]byte("cannot take "), body...))
	}))
	t.Cleanup(srv.Close)
	return map[string]string{"HTTP": srv.URL, "HOSTPORT": strings.TrimPrefix(srv.URL, "http://")}
}

// echoHeadersServer answers every request 401 with its headers quoted
// back, as a server that logs what it refused does.
func echoHeadersServer(t *testing.T) map[string]string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, "refused: Authorization=%s X-Vault-Token=%s", r.Header.Get("Authorization"), r.Header.Get("X-Vault-Token"))
	}))
	t.Cleanup(srv.Close)
	return map[string]string{"HTTP": srv.URL}
}

// TestTrustSecrets runs the secret cases of issue 10: each builtin's
// content under the one secret rule (names, content, mode, flow from a
// sensitive var), URL credentials, and fingerprints. No case may print
// the secret in text or JSON, store it in the journal, or make a file
// with it readable by others.
func TestTrustSecrets(t *testing.T) {
	t.Parallel()
	uid := strconv.Itoa(os.Getuid())
	own := `owner="` + uid + `", group="` + uid + `"`
	pinVar := `PIN = var("PIN", sensitive=True)` + "\n"
	tests := map[string]trustCase{
		"key_without_mode_is_created_0600": {
			playbook: `file("/etc/kubernetes/ssl/apiserver-key.pem", content="` + testKey + `", ` + own + `)`,
			args:     []string{"run"},
			stdout:   []string{`/trust.star:1:5: file /etc/kubernetes/ssl/apiserver-key.pem: created \(74 bytes, mode 0600, `, `^  \(sensitive, 74 bytes, fingerprint [0-9a-f]{16}\)$`},
			never:    []string{`KEYDATA`},
			after: func(t *testing.T, root, _ string) {
				wantMode(t, filepath.Join(root, "etc/kubernetes/ssl/apiserver-key.pem"), 0o600)
				wantMode(t, filepath.Join(root, "var/lib/kplay/fingerprint.key"), 0o600)
			},
		},
		"private_key_from_src_without_key_name_is_0600": {
			plant: func(t *testing.T, _, outside string) {
				roottest.WriteFile(t, filepath.Join(outside, "apiserver.pem"), strings.ReplaceAll(testKey, `\n`, "\n"), 0o644)
			},
			playbook: `file("/etc/kubernetes/ssl/apiserver.pem", src="outside/apiserver.pem", ` + own + `)`,
			args:     []string{"run"},
			stdout:   []string{`^  \(sensitive, 74 bytes, fingerprint [0-9a-f]{16}\)$`},
			never:    []string{`KEYDATA`},
			after: func(t *testing.T, root, _ string) {
				wantMode(t, filepath.Join(root, "etc/kubernetes/ssl/apiserver.pem"), 0o600)
			},
		},
		"world_readable_mode_on_a_key_is_an_error": {
			playbook: `file("/etc/kubernetes/ssl/apiserver-key.pem", content="` + testKey + `", mode=0o644, ` + own + `)`,
			args:     []string{"check"},
			code:     1,
			stderr:   []string{`/trust.star:1:5: file: mode 0644 lets every user read /etc/kubernetes/ssl/apiserver-key.pem, which is sensitive \(give mode=0o600, or 0o640 with a group; or sensitive=False if it is not secret\)$`},
			never:    []string{`KEYDATA`},
		},
		"world_readable_mode_on_a_key_from_src_is_an_error_before_any_write": {
			plant: func(t *testing.T, _, outside string) {
				roottest.WriteFile(t, filepath.Join(outside, "k.pem"), strings.ReplaceAll(testKey, `\n`, "\n"), 0o600)
			},
			playbook: `file("/etc/motd", content="hi\n", ` + own + `)` + "\n" + `file("/etc/kubernetes/ssl/apiserver.pem", src="outside/k.pem", mode=0o644, ` + own + `)`,
			args:     []string{"run"},
			code:     1,
			stderr:   []string{`/trust.star:2:5: file /etc/kubernetes/ssl/apiserver.pem: mode 0644 lets every user read`},
			never:    []string{`KEYDATA`},
			after: func(t *testing.T, root, _ string) {
				wantAbsent(t, filepath.Join(root, "etc/motd"))
			},
		},
		"sensitive_false_keeps_0644_and_the_diff": {
			playbook: `file("/etc/ssl/ca-key.pem", content="PUBLIC\n", sensitive=False, ` + own + `)`,
			args:     []string{"run"},
			stdout:   []string{`^\+PUBLIC$`},
			after: func(t *testing.T, root, _ string) {
				wantMode(t, filepath.Join(root, "etc/ssl/ca-key.pem"), 0o644)
			},
		},
		"unit_named_token_is_hidden_and_0600": {
			playbook: `unit("vault-token.service", "[Service]\nExecStart=/bin/true\nEnvironment=VAULT=UNITSECRET\n")`,
			args:     []string{"check"},
			code:     2,
			stdout:   []string{`/trust.star:1:5: unit /etc/systemd/system/vault-token.service: create \(\d+ bytes, mode 0600, root:root\)$`, `^  \(sensitive, \d+ bytes\)$`},
			never:    []string{`UNITSECRET`},
		},
		"dropin_with_a_sensitive_var_is_hidden_and_0600": {
			playbook: pinVar + `dropin("etcd.service", "40-auth.conf", subst("[Service]\nEnvironment=ETCD_PASSWORD=${P}\n", {"P": PIN}))`,
			args:     []string{"check", "--var", "PIN=hunter2pw"},
			code:     2,
			stdout:   []string{`dropin /etc/systemd/system/etcd.service.d/40-auth.conf: create \(\d+ bytes, mode 0600, root:root\)$`, `^  \(sensitive, \d+ bytes\)$`},
			never:    []string{`hunter2pw`},
		},
		"manifest_with_closed_mode_is_hidden": {
			playbook: `manifest("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: i\n    env:\n    - name: A\n      value: MANIFESTSECRET\n", mode=0o600)`,
			args:     []string{"check"},
			code:     2,
			stdout:   []string{`^  \(sensitive, \d+ bytes\)$`},
			never:    []string{`MANIFESTSECRET`},
		},
		"kubernetes_secret_object_is_hidden": {
			servers: func(t *testing.T) map[string]string {
				// The fake serves namespaces only: add secrets to its discovery.
				fake := kubetest.NewFakeAPIServer()
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == "/api/v1" {
						fmt.Fprint(w, `{"kind":"APIResourceList","groupVersion":"v1","resources":[{"name":"secrets","singularName":"secret","namespaced":true,"kind":"Secret","verbs":["create","get"]}]}`)
						return
					}
					fake.ServeHTTP(w, r)
				}))
				t.Cleanup(srv.Close)
				return map[string]string{"KUBE": srv.URL}
			},
			playbook: `kube_create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x", "namespace": "kube-system"}, "stringData": {"a": "KUBESECRET"}}, server="{{KUBE}}")`,
			args:     []string{"check", "-o", "json"},
			code:     2,
			stdout:   []string{`"sensitive": true`},
			never:    []string{`KUBESECRET`},
		},
		"etcd_value_from_a_sensitive_var_is_hidden": {
			servers: func(t *testing.T) map[string]string {
				return map[string]string{"ETCD": etcdtest.Start(t).URL}
			},
			playbook: pinVar + `etcd_put("/kplay/pin", PIN, endpoints=["{{ETCD}}"])`,
			args:     []string{"check", "--var", "PIN=etcdpin42"},
			code:     2,
			stdout:   []string{`/trust.star:2:9: etcd_put /kplay/pin: create \(\d+ bytes\)$`, `^  \(sensitive, \d+ bytes\)$`},
			never:    []string{`etcdpin42`},
		},
		"http_body_echoed_in_an_error_is_redacted": {
			servers:  echoServer,
			playbook: pinVar + `http_post("{{HTTP}}/x", body=PIN)`,
			args:     []string{"run", "--var", "PIN=bodypin42"},
			code:     1,
			stderr:   []string{`answered 500 Internal Server Error \(want 200 or 201\): \(answer not shown: the request is sensitive\)$`},
			never:    []string{`bodypin42`},
		},
		"http_post_sensitive_hides_the_answer": {
			servers:  echoServer,
			playbook: `http_post("{{HTTP}}/x", body="PLAINBODY", sensitive=True)`,
			args:     []string{"run"},
			code:     1,
			stderr:   []string{`answered 500 Internal Server Error \(want 200 or 201\): \(answer not shown: the request is sensitive\)$`},
			never:    []string{`PLAINBODY`},
		},
		"http_post_of_a_secret_object_hides_the_answer": {
			servers:  echoServer,
			playbook: `http_post("{{HTTP}}/api/v1/namespaces/kube-system/secrets", json={"apiVersion": "v1", "kind": "Secret", "stringData": {"a": "POSTSECRET"}})`,
			args:     []string{"run", "-o", "json"},
			code:     1,
			stdout:   []string{`\(answer not shown: the request is sensitive\)`},
			never:    []string{`POSTSECRET`},
		},
		"etcd_put_sensitive_true_hides_old_and_new_values": {
			servers: func(t *testing.T) map[string]string {
				etcd := etcdtest.Start(t)
				etcdtest.Put(t, etcd.URL, "/kplay/x", "ETCDOLD")
				return map[string]string{"ETCD": etcd.URL}
			},
			playbook: `etcd_put("/kplay/x", "ETCDNEW", endpoints=["{{ETCD}}"], sensitive=True)`,
			args:     []string{"check"},
			code:     2,
			stdout:   []string{`etcd_put /kplay/x: update \(value changed\)$`, `^  \(sensitive, 8 bytes\)$`},
			never:    []string{`ETCDOLD`, `ETCDNEW`},
		},
		"escaped_forms_of_a_sensitive_var_are_hidden": {
			servers: func(t *testing.T) map[string]string {
				return map[string]string{"ETCD": etcdtest.Start(t).URL}
			},
			playbook: pinVar + `etcd_put("/app/cfg", {"db": {"user": "app", "pass": PIN}}, endpoints=["{{ETCD}}"])` + "\n" +
				`manifest({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "api4"}, "spec": {"containers": [{"name": "a", "image": "i", "env": [{"name": "P", "value": PIN}]}]}})` + "\n" +
				`file("/etc/app.conf", content="pw=%r\n" % PIN, ` + own + `)`,
			args:   []string{"check", "--var", `PIN=it's: <b>&"c\9`},
			code:   2,
			stdout: []string{`etcd_put /app/cfg: create \(\d+ bytes\)\n  \(sensitive, \d+ bytes\)`, `manifest /etc/kubernetes/manifests/api4.yaml: create \(\d+ bytes, mode 0600, root:root\)\n  \(sensitive`, `file /etc/app.conf: create \(\d+ bytes, mode 0600, \d+:\d+\)\n  \(sensitive`},
			never:  []string{`it's`, `it''s`, `u003cb`, `<b>`, `c\\\\9`},
		},
		"print_of_a_sensitive_var_is_redacted": {
			playbook: pinVar + `print("pin is", PIN, {"p": PIN})`,
			args:     []string{"check", "--var", "PIN=printpin7"},
			stderr:   []string{`trust.star:2:6: pin is \(sensitive\) \{"p": "\(sensitive\)"\}`},
			never:    []string{`printpin7`},
		},
		"a_var_is_sensitive_from_its_first_declaration": {
			playbook: `A = var("PW", default="orderpw1")` + "\n" + `file("/etc/x-" + A, content="x\n", ` + own + `)` + "\n" + `B = var("PW", default="orderpw1", sensitive=True)`,
			args:     []string{"check"},
			code:     2,
			stdout:   []string{`file /etc/x-\(sensitive\): create`},
			never:    []string{`orderpw1`},
		},
		"old_content_of_a_closed_file_is_hidden": {
			plant: func(t *testing.T, root, _ string) {
				roottest.WriteFile(t, filepath.Join(root, "etc/app/app.conf"), "db_pass=hunter2\n", 0o600)
			},
			playbook: `file("/etc/app/app.conf", content="db_host=x\n", ` + own + `)`,
			args:     []string{"check"},
			code:     2,
			stdout:   []string{`file /etc/app/app.conf: update \(content changed, mode 0600 → 0644`, `^  \(sensitive, 10 bytes\)$`},
			never:    []string{`hunter2`},
		},
		"src_holding_a_sensitive_var_is_created_0600": {
			plant: func(t *testing.T, _, outside string) {
				roottest.WriteFile(t, filepath.Join(outside, "f.txt"), "token=srcpin99\n", 0o644)
			},
			playbook: pinVar + `file("/etc/x/f", src="outside/f.txt", ` + own + `)`,
			args:     []string{"run", "--var", "PIN=srcpin99"},
			stdout:   []string{`file /etc/x/f: created \(15 bytes, mode 0600, `},
			never:    []string{`srcpin99`},
			after: func(t *testing.T, root, _ string) {
				wantMode(t, filepath.Join(root, "etc/x/f"), 0o600)
			},
		},
		"a_one_letter_secret_does_not_blank_out_words": {
			playbook: pinVar + `file("/etc/motd", content="hello e\n", ` + own + `)`,
			args:     []string{"check", "--var", "PIN=e"},
			code:     2,
			stdout:   []string{`file /etc/motd: create \(8 bytes, mode 0600, `, `^  \(sensitive, 8 bytes\)$`},
			never:    []string{`/\(sensitive\)tc`, `byt\(sensitive\)s`},
		},
		"kube_secret_echoed_by_the_server_is_hidden": {
			servers: func(t *testing.T) map[string]string {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					switch {
					case r.URL.Path == "/api":
						fmt.Fprint(w, `{"kind":"APIVersions","versions":["v1"]}`)
					case r.URL.Path == "/apis":
						fmt.Fprint(w, `{"kind":"APIGroupList","apiVersion":"v1","groups":[]}`)
					case r.URL.Path == "/api/v1":
						fmt.Fprint(w, `{"kind":"APIResourceList","groupVersion":"v1","resources":[{"name":"secrets","singularName":"secret","namespaced":true,"kind":"Secret","verbs":["create","get"]}]}`)
					case r.Method == http.MethodGet:
						w.WriteHeader(http.StatusNotFound)
						fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`)
					default:
						body, _ := io.ReadAll(r.Body)
						w.WriteHeader(http.StatusUnprocessableEntity)
						fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":%q,"reason":"Invalid","code":422}`, "invalid: body was "+string(body))
					}
				}))
				t.Cleanup(srv.Close)
				return map[string]string{"KUBE": srv.URL}
			},
			playbook: `kube_create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x", "namespace": "kube-system"}, "stringData": {"p": "kubesec1"}}, server="{{KUBE}}")`,
			args:     []string{"run"},
			code:     1,
			stderr:   []string{`422 Unprocessable Entity \(the server's answer is not shown: the object is sensitive\)$`},
			never:    []string{`kubesec1`},
		},
		"header_values_echoed_by_the_server_are_hidden": {
			servers:  echoHeadersServer,
			playbook: `http_post("{{HTTP}}/x", body="x", headers={"X-Vault-Token": "hvs.SuperSecret1", "Authorization": "Bearer abc.def.ghi"})`,
			args:     []string{"run"},
			code:     1,
			stderr:   []string{`answered 401 Unauthorized \(want 200 or 201\): .*\(header Authorization\).*\(header X-Vault-Token\)`},
			never:    []string{`SuperSecret1`, `abc\.def\.ghi`},
		},
		"query_tokens_are_redacted": {
			servers:  echoServer,
			playbook: `http_post("{{HTTP}}/status?access_token=qtok123&api_key=k1&x=1", body="b")`,
			args:     []string{"check", "-o", "json"},
			code:     2,
			stdout:   []string{`"target": "POST http://127.0.0.1:\d+/status\?access_token=xxxxx\\u0026api_key=xxxxx\\u0026x=1"`},
			never:    []string{`qtok123`, `=k1`},
		},
		"unit_syntax_error_of_a_sensitive_unit_quotes_no_line": {
			playbook: `unit("vault-token.service", content="[Service]\nExecStart=/bin/a\nTOKEN hvs.CAESIsecret\n")`,
			args:     []string{"check"},
			code:     1,
			stderr:   []string{`unit: for parameter content: line 3: \(not shown: the unit is sensitive\) is not a key=value line$`},
			never:    []string{`CAESIsecret`},
		},
		"url_credentials_never_printed_or_journaled": {
			servers:  echoServer,
			playbook: `f = file("/etc/motd", content="hi\n", ` + own + `)` + "\n" + `http_post("http://admin:URLPASS@{{HOSTPORT}}/x", body="b", on_change=[f])` + "\n" + `wait_http("http://waiter:WAITPASS@{{HOSTPORT}}/healthz")`,
			args:     []string{"run"},
			code:     1,
			stdout:   []string{`/trust.star:1:9: file /etc/motd: created`},
			stderr:   []string{`/trust.star:2:10: http_post POST http://xxxxx@127.0.0.1:\d+/x: answered 500`},
			never:    []string{`URLPASS`, `WAITPASS`, `admin`},
			after: func(t *testing.T, root, _ string) {
				journal := filepath.Join(root, "var/lib/kplay/pending.json")
				wantMode(t, journal, 0o600)
				data, _ := os.ReadFile(journal)
				if !strings.Contains(string(data), `"http_post POST http://xxxxx@127.0.0.1:`) || strings.Contains(string(data), "URLPASS") {
					t.Errorf("journal holds %s, want the owed POST with its credentials redacted", data)
				}
			},
		},
		"url_credentials_never_in_json": {
			servers:  echoServer,
			playbook: `wait_http("http://waiter:WAITPASS@{{HOSTPORT}}/healthz")` + "\n" + `http_post("http://admin:URLPASS@{{HOSTPORT}}/x", body="b")`,
			args:     []string{"check", "-o", "json"},
			code:     2,
			stdout:   []string{`"target": "POST http://xxxxx@127.0.0.1:\d+/x"`, `"target": "http://xxxxx@127.0.0.1:\d+/healthz"`},
			never:    []string{`URLPASS`, `WAITPASS`},
		},
		"short_secret_fingerprint_is_keyed": {
			playbook: pinVar + `file("/etc/pin", content=PIN, ` + own + `)`,
			args:     []string{"run", "--var", "PIN=1234"},
			stdout:   []string{`^  \(sensitive, 4 bytes, fingerprint [0-9a-f]{16}\)$`},
			never:    []string{`1234`, `03ac6742`}, // and sha256("1234") starts 03ac6742
			output: func(t *testing.T, root, stdout string) {
				key, err := os.ReadFile(filepath.Join(root, "var/lib/kplay/fingerprint.key"))
				if err != nil || len(key) != 32 {
					t.Fatalf("fingerprint key: %d bytes, %v; want 32", len(key), err)
				}
				mac := hmac.New(sha256.New, key)
				mac.Write([]byte("1234"))
				want := "fingerprint " + hex.EncodeToString(mac.Sum(nil)[:8])
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q, the HMAC-SHA256 of the content under the root's key:\n%s", want, stdout)
				}
				wantMode(t, filepath.Join(root, "etc/pin"), 0o600)
			},
		},
		"sensitive_var_value_never_quoted_in_var_errors": {
			playbook: `N = var("N", type="int", sensitive=True)`,
			args:     []string{"check", "--var", "N=notanumber-secret"},
			code:     1,
			stderr:   []string{`var N: the value given is not a valid int \(not shown: the var is sensitive\)`},
			never:    []string{`notanumber-secret`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runTrustCase(t, tc)
		})
	}
}
