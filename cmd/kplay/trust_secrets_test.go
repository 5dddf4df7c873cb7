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
	"syscall"
	"testing"

	"github.com/kplay-dev/kplay/host/etcdtest"
	"github.com/kplay-dev/kplay/host/kube/kubetest"
	"github.com/kplay-dev/kplay/host/roottest"
)

// testKey is a private key as a playbook would declare it.
const testKey = `-----BEGIN RSA PRIVATE KEY-----\nMIIEKEYDATA\n-----END RSA PRIVATE KEY-----\n`

// keyedFingerprint is the fingerprint kplay should show for content under
// key: the first 8 bytes of HMAC-SHA256, in hex, computed here apart from
// the engine's code.
func keyedFingerprint(key []byte, content string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(content))
	return hex.EncodeToString(mac.Sum(nil)[:8])
}

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
		"url_credentials_echoed_by_the_server_are_hidden": {
			servers: func(t *testing.T) map[string]string {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					user, pw, _ := r.BasicAuth()
					w.WriteHeader(http.StatusUnauthorized)
					fmt.Fprintf(w, "wrong password %s for %s; token %s; auth=%s", pw, user, r.URL.Query().Get("access_token"), r.Header.Get("Authorization"))
				}))
				t.Cleanup(srv.Close)
				return map[string]string{"HOSTPORT": strings.TrimPrefix(srv.URL, "http://")}
			},
			playbook: `http_post("http://admin:hunter2xyz@{{HOSTPORT}}/pw?access_token=qtoken123456", body="{}")`,
			args:     []string{"run"},
			code:     1,
			stderr:   []string{`answered 401 Unauthorized \(want 200 or 201\): "wrong password \(credential\) for admin; token \(credential\); auth=Basic \(credential\)"$`},
			never:    []string{`hunter2xyz`, `qtoken123456`, `YWRtaW46aHVudGVyMnh5eg`},
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
		"a_dict_made_into_yaml_keeps_a_multi_line_secret_hidden": {
			plant: func(t *testing.T, _, outside string) {
				roottest.WriteFile(t, filepath.Join(outside, "v.yaml"), "PIN: \"first-line-secret\\nsecond-line-secret\"\n", 0o600)
			},
			playbook: pinVar + `manifest({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "spec": {"containers": [{"name": "c", "image": "busybox", "env": [{"name": "PW", "value": PIN}]}]}})`,
			args:     []string{"check", "--vars-file", "{{DIR}}/outside/v.yaml", "-o", "json"},
			code:     2,
			stdout:   []string{`"summary": "\d+ bytes, mode 0600, root:root"`, `"sensitive": true`},
			never:    []string{`first-line-secret`, `second-line-secret`},
		},
		"a_unit_error_never_quotes_a_line_of_a_multi_line_secret": {
			plant: func(t *testing.T, _, outside string) {
				roottest.WriteFile(t, filepath.Join(outside, "v.yaml"), "PIN: \"first-line-secret\\nsecond-line-secret\"\n", 0o600)
			},
			playbook: pinVar + `unit("app.service", "[Service]\nEnvironment=PW=" + PIN + "\nExecStart=/bin/true\n")`,
			args:     []string{"check", "--vars-file", "{{DIR}}/outside/v.yaml"},
			code:     1,
			stderr:   []string{`/trust.star:2:5: unit: for parameter content: line 3: \(not shown: the unit is sensitive\) is not a key=value line$`},
			never:    []string{`first-line-secret`, `second-line-secret`},
		},
		"a_long_secret_folded_by_yaml_is_hidden": {
			playbook: pinVar + `manifest({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "spec": {"containers": [{"name": "c", "image": "busybox", "env": [{"name": "PW", "value": PIN}]}]}})`,
			args:     []string{"run", "--var", "PIN=correct horse battery staple correct horse battery staple correct horse battery staple xyzzy"},
			stdout:   []string{`manifest /etc/kubernetes/manifests/p1.yaml: created \(\d+ bytes, mode 0600, root:root\)`},
			never:    []string{`horse`, `xyzzy`},
		},
		"sensitive_false_never_shows_the_key_it_replaces": {
			plant: func(t *testing.T, root, _ string) {
				roottest.WriteFile(t, filepath.Join(root, "etc/app/signing.pem"), strings.ReplaceAll(testKey, `\n`, "\n"), 0o600)
			},
			playbook: `file("/etc/app/signing.pem", content="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", sensitive=False, ` + own + `)`,
			args:     []string{"check"},
			code:     2,
			stdout:   []string{`file /etc/app/signing.pem: update \(content changed, mode 0600 → 0644`, `^  \(sensitive, \d+ bytes\)$`},
			never:    []string{`KEYDATA`},
		},
		"a_kubeconfig_token_on_the_next_line_is_hidden": {
			plant: func(t *testing.T, root, _ string) {
				roottest.WriteFile(t, filepath.Join(root, "etc/k/kubeconfig"), "users:\n- name: a\n  user:\n    token:\n      ZZTOPSECRETVALUE1\n", 0o644)
			},
			playbook: `file("/etc/k/kubeconfig", content="x\n", ` + own + `)` + "\n" +
				`file("/etc/k/kc", content="users:\n- user:\n    password:\n      ZZTOPSECRETVALUE3\n", ` + own + `)`,
			args:   []string{"check"},
			code:   2,
			stdout: []string{`file /etc/k/kubeconfig: update \(content changed\)\n  \(sensitive`, `file /etc/k/kc: create \(\d+ bytes, mode 0600, `},
			never:  []string{`ZZTOPSECRETVALUE`},
		},
		"sensitive_false_shows_a_change_to_a_closed_file": {
			plant: func(t *testing.T, root, _ string) {
				roottest.WriteFile(t, filepath.Join(root, "root/.ssh/authorized_keys"), "ssh-ed25519 AAAA alice\n", 0o600)
			},
			playbook: `file("/root/.ssh/authorized_keys", content="ssh-ed25519 AAAA alice\nssh-ed25519 BBBB mallory\n", mode=0o600, sensitive=False, ` + own + `)`,
			args:     []string{"check"},
			code:     2,
			stdout:   []string{`^\+ssh-ed25519 BBBB mallory$`},
		},
		"a_shadow_hash_is_hidden": {
			plant: func(t *testing.T, root, _ string) {
				roottest.WriteFile(t, filepath.Join(root, "etc/shadow"), "root:$6$saltsalt$HashOfRootPassword:19000::::::\n", 0o640)
			},
			playbook: `file("/etc/shadow", content="root:*:19000::::::\n", mode=0o640, ` + own + `)`,
			args:     []string{"check"},
			code:     2,
			stdout:   []string{`^  \(sensitive, \d+ bytes\)$`},
			never:    []string{`HashOfRootPassword`},
		},
		"sensitive_false_with_a_sensitive_var_is_still_0600": {
			playbook: pinVar + `file("/etc/app/policy.conf", content="password=" + PIN + "\n", sensitive=False, ` + own + `)`,
			args:     []string{"run", "--var", "PIN=hunter2hunter2"},
			stdout:   []string{`file /etc/app/policy.conf: created \(24 bytes, mode 0600, `},
			never:    []string{`hunter2hunter2`},
			after: func(t *testing.T, root, _ string) {
				wantMode(t, filepath.Join(root, "etc/app/policy.conf"), 0o600)
			},
		},
		"a_multi_line_var_value_is_never_quoted": {
			playbook: pinVar + `file("/etc/ssl/app.key", content=PIN, ` + own + `)`,
			args:     []string{"check", "--var", "9PIN=-----BEGIN PRIVATE KEY-----\nKEYDATA\n-----END PRIVATE KEY-----"},
			code:     1,
			stderr:   []string{`^kplay: --var: the text before "=" is not a var name \(not shown, as it may be a secret\)`},
			never:    []string{`KEYDATA`},
		},
		"url_password_in_content_makes_it_sensitive": {
			playbook: `file("/etc/flannel/options.env", content="FLANNELD_ETCD_ENDPOINTS=http://admin:s3cretpw@127.0.0.1:2379\n", ` + own + `)`,
			args:     []string{"run"},
			stdout:   []string{`file /etc/flannel/options.env: created \(\d+ bytes, mode 0600, `, `^  \(sensitive, \d+ bytes, fingerprint`},
			never:    []string{`s3cretpw`},
		},
		"a_var_turned_sensitive_by_a_later_module_is_redacted_in_targets": {
			plant: func(t *testing.T, _, outside string) {
				roottest.WriteFile(t, filepath.Join(outside, "secrets.star"), `DB_PW = var("DB_PW", sensitive=True)`+"\n", 0o644)
			},
			playbook: `PW = var("DB_PW")` + "\n" + `file("/etc/app-" + PW + ".conf", content="hello\n", ` + own + `)` + "\n" + `load("outside/secrets.star", "DB_PW")`,
			args:     []string{"check", "--var", "DB_PW=hunter2hunter2", "-o", "json"},
			code:     2,
			stdout:   []string{`"target": "/etc/app-\(sensitive\).conf"`},
			never:    []string{`hunter2hunter2`},
		},
		"a_pin_after_an_escaped_newline_is_redacted": {
			playbook: pinVar + `print(repr("[auth]\n" + PIN + "\n"))`,
			args:     []string{"check", "--var", "PIN=4821"},
			stderr:   []string{`\[auth\]\\n\(sensitive\)\\n`},
			never:    []string{`4821`},
		},
		"a_bearer_token_echoed_alone_is_hidden": {
			servers: func(t *testing.T) map[string]string {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
					w.WriteHeader(http.StatusUnprocessableEntity)
					fmt.Fprintf(w, "auth=%s", tok)
				}))
				t.Cleanup(srv.Close)
				return map[string]string{"HTTP": srv.URL}
			},
			playbook: `http_post("{{HTTP}}/x", body="x", headers={"Authorization": "Bearer abcdef0123456789abcdef"})`,
			args:     []string{"run"},
			code:     1,
			stderr:   []string{`"auth=\(header Authorization\)"`},
			never:    []string{`abcdef0123456789abcdef`},
		},
		"a_fingerprint_key_of_another_owner_is_not_used": {
			plant: func(t *testing.T, root, _ string) {
				key := filepath.Join(root, "var/lib/kplay/fingerprint.key")
				roottest.WriteFile(t, key, strings.Repeat("A", 32), 0o600)
				if err := os.Chown(key, 65534, 65534); err != nil {
					t.Skipf("chown to nobody: %v (needs root)", err)
				}
			},
			playbook: pinVar + `file("/etc/pin", content=PIN, ` + own + `)`,
			args:     []string{"run", "--var", "PIN=4821"},
			stdout:   []string{`^  \(sensitive, 4 bytes, fingerprint [0-9a-f]{16}\)$`},
			output: func(t *testing.T, root, stdout string) {
				if strings.Contains(stdout, keyedFingerprint([]byte(strings.Repeat("A", 32)), "4821")) {
					t.Error("the fingerprint was made with the key another user planted")
				}
				fi, err := os.Stat(filepath.Join(root, "var/lib/kplay/fingerprint.key"))
				if err != nil || fi.Sys().(*syscall.Stat_t).Uid != uint32(os.Geteuid()) {
					t.Errorf("the key after the run: %v, want one of the running user", err)
				}
			},
		},
		"a_fingerprint_key_in_a_directory_others_may_write_is_not_used": {
			plant: func(t *testing.T, root, _ string) {
				key := filepath.Join(root, "var/lib/kplay/fingerprint.key")
				roottest.WriteFile(t, key, strings.Repeat("A", 32), 0o600)
				if err := os.Chmod(filepath.Dir(key), 0o777); err != nil {
					t.Fatal(err)
				}
			},
			playbook: pinVar + `file("/etc/pin", content=PIN, ` + own + `)`,
			args:     []string{"run", "--var", "PIN=4821"},
			stdout:   []string{`^  \(sensitive, 4 bytes, fingerprint [0-9a-f]{16}\)$`},
			output: func(t *testing.T, root, stdout string) {
				if strings.Contains(stdout, keyedFingerprint([]byte(strings.Repeat("A", 32)), "4821")) {
					t.Error("the fingerprint was made with a key in a directory anyone may write")
				}
			},
		},
		"a_named_pipe_at_etc_passwd_is_refused_at_once": {
			plant: func(t *testing.T, root, _ string) {
				mustMkdir(t, filepath.Join(root, "etc"))
				if err := syscall.Mkfifo(filepath.Join(root, "etc/passwd"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			playbook: `file("/etc/motd", content="hi\n", owner="core")`,
			args:     []string{"check"},
			code:     1,
			stderr:   []string{`read /etc/passwd: a named pipe, not a regular file \(kplay reads only regular files in the root; remove it\)`},
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
				want := "fingerprint " + keyedFingerprint(key, "1234")
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q, the HMAC-SHA256 of the content under the root's key:\n%s", want, stdout)
				}
				wantMode(t, filepath.Join(root, "etc/pin"), 0o600)
				// Nor does the ledger keep a plain hash of it.
				if ledger, err := os.ReadFile(filepath.Join(root, "var/lib/kplay/managed/trust.json")); err != nil || strings.Contains(string(ledger), "03ac6742") || !strings.Contains(string(ledger), `"sensitive": true`) {
					t.Errorf("ledger: %v\n%s\nwant the file recorded sensitive, with no hash of the PIN", err, ledger)
				}
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
