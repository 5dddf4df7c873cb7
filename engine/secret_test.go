package engine

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"go.starlark.net/starlark"
)

func TestSensitiveName(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in   string
		want bool
	}{
		"key_pem":     {"/etc/kubernetes/ssl/apiserver-key.pem", true},
		"dot_key":     {"/etc/ssl/private/server.key", true},
		"secret":      {"/etc/app/Secret.env", true},
		"token":       {"/var/lib/kubelet/token", true},
		"unit":        {"/etc/systemd/system/vault-token.service", true},
		"certificate": {"/etc/kubernetes/ssl/apiserver.pem", false},
		"keys_dir":    {"/etc/keys/readme", false},
	}
	for name, tc := range tests {
		if got := SensitiveName(tc.in); got != tc.want {
			t.Errorf("%s: SensitiveName(%q) = %v, want %v", name, tc.in, got, tc.want)
		}
	}
}

func TestSensitiveContent(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in   string
		want bool
	}{
		"rsa_key":         {"-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n", true},
		"pkcs8_key":       {"x\n-----BEGIN PRIVATE KEY-----\nMIIE\n", true},
		"ec_key":          {"-----BEGIN EC PRIVATE KEY-----\n", true},
		"encrypted_key":   {"-----BEGIN ENCRYPTED PRIVATE KEY-----\n", true},
		"openssh_key":     {"-----BEGIN OPENSSH PRIVATE KEY-----\n", true},
		"certificate":     {"-----BEGIN CERTIFICATE-----\nMIIE\n", false},
		"kubeconfig_key":  {"users:\n- name: kubelet\n  user:\n    client-key-data: LS0tLS1CRUdJTi\n", true},
		"kubeconfig_tok":  {"users:\n- name: a\n  user:\n    token: abcdef\n", true},
		"kubeconfig_pass": {"users:\n- name: a\n  user:\n    password: hunter2\n", true},
		"kubeconfig_json": {`{"users":[{"user":{` + "\n" + `"token": "abc"}}]}`, true},
		"kubeconfig_file": {"users:\n- name: kubelet\n  user:\n    client-certificate: /etc/kubernetes/ssl/worker.pem\n    client-key: /etc/kubernetes/ssl/worker-key.pem\n", false},
		"secret_yaml":     {"apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\ndata:\n  a: Yg==\n", true},
		"secret_json":     {`{"apiVersion":"v1","kind":"Secret","data":{"a":"Yg=="}}`, true},
		"configmap":       {"apiVersion: v1\nkind: ConfigMap\n", false},
		"pod":             {"apiVersion: v1\nkind: Pod\nspec:\n  containers: []\n", false},
		"empty_token":     {"token:\n", false},
		"empty_then_next": {"token:\nnext: x\n", false},
		"json_one_line":   {`{"users":[{"user":{"token":"compacttok1"}}]}`, true},
		"yaml_flow_token": {"users: [{name: a, user: {token: flowtok4}}]\n", true},
		"yaml_flow_kind":  {"{apiVersion: v1, kind: Secret, data: {a: Yg==}}\n", true},
		"kind_comment":    {"kind: \"Secret\" # db\n", true},
		"kind_secretlist": {"kind: SecretList2\n", false},
		"pgp_key":         {"-----BEGIN PGP PRIVATE KEY BLOCK-----\n", true},
		"etcd_json":       {`{"password":"jsonpw1"}`, true},
		"oidc_id_token":   {"user:\n  auth-provider:\n    config:\n      id-token: eyJhbGci\n", true},
		"oidc_refresh":    {"      refresh-token: abc\n", true},
		"oidc_secret":     {"      client-secret: abc\n", true},
		"secret_crlf":     {"apiVersion: v1\r\nkind: Secret\r\ndata:\r\n  pw: aHVudGVy\r\n", true},
		"env_password":    {"DB_PASSWORD=hunter2\n", false}, // not a form the rule knows: sensitive=True
		"unit_env_token":  {"[Service]\nEnvironment=ETCD_AUTH_TOKEN=simple\n", false},
		"reset_password":  {"reset_password = false\n", false},
		"nsswitch":        {"passwd:     files ldap\nshadow:     files\n", false},
		"lock_passwd":     {"users:\n- name: core\n  lock_passwd: true\n", false},
		"empty_password":  {"password: \"\"\ntoken: null\n", false},
		"kubeadm_token":   {"etcd:\n  extraArgs:\n    auth-token: simple\n", false},
		"encryption_cfg":  {"- aescbc:\n    keys:\n    - name: key1\n      secret: c2VjcmV0IGlzIHNlY3VyZQ==\n", true},
		"shadow_hash":     {"root:$6$saltsalt$HashOfRootPassword:19000::::::\n", true},
		"shadow_locked":   {"root:*:19000::::::\n", false},
		"redis_url":       {"REDIS=redis://:pw@127.0.0.1:6379\n", true},
		"env_reference":   {"[Service]\nEnvironment=TOKEN=${TOKEN_FILE}\nExecStart=/bin/a --token=$TOKEN\n", false},
		"url_password":    {"FLANNELD_ETCD_ENDPOINTS=http://admin:s3cret@127.0.0.1:2379\n", true},
		"url_user_only":   {"ETCD=http://admin@127.0.0.1:2379\n", false},
		"url_no_userinfo": {"- --etcd-servers=http://127.0.0.1:2379\n", false},
		"token_flag_file": {"ExecStart=/usr/bin/kube-apiserver --token-auth-file=/etc/kubernetes/token.csv\n", false},
		"secret_volume":   {"volumes:\n- name: certs\n  secret:\n    secretName: certs\n", false},
		"token_next_line": {"users:\n- name: a\n  user:\n    token:\n      ZZTOPSECRETVALUE1\n", true},
		"password_block":  {"users:\n- user:\n    password: |-\n      ZZTOPSECRETVALUE3\n", true},
		"secret_list":     {"spec:\n  secret:\n  - a\n", false},
		"automount_token": {"spec:\n  automountServiceAccountToken: false\n", false},
		"unit":            {"[Service]\nExecStart=/usr/bin/kubelet --token-auth-file=/etc/x\n", false},
		"empty":           {"", false},
	}
	for name, tc := range tests {
		if got := SensitiveContent([]byte(tc.in)); got != tc.want {
			t.Errorf("%s: SensitiveContent(%q) = %v, want %v", name, tc.in, got, tc.want)
		}
	}
}

func TestSensitivityDecide(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		set       Sensitivity
		names     []string
		content   string
		mode      fs.FileMode
		modeGiven bool
		want      Sensitivity
	}{
		"name":               {names: []string{"/etc/a-key.pem"}, mode: 0o644, want: SensitiveYes},
		"src_name":           {names: []string{"/etc/a.pem", "tls/a.key"}, mode: 0o644, want: SensitiveYes},
		"content":            {names: []string{"/etc/a"}, content: "-----BEGIN PRIVATE KEY-----", want: SensitiveYes},
		"closed_mode":        {names: []string{"/etc/a"}, mode: 0o600, modeGiven: true, want: SensitiveYes},
		"closed_mode_400":    {names: []string{"/etc/a"}, mode: 0o400, modeGiven: true, want: SensitiveYes},
		"group_mode":         {names: []string{"/etc/a"}, mode: 0o640, modeGiven: true, want: SensitiveAuto},
		"default_mode":       {names: []string{"/etc/a"}, mode: 0o600, want: SensitiveAuto},
		"plain":              {names: []string{"/etc/motd"}, content: "hi", mode: 0o644, modeGiven: true, want: SensitiveAuto},
		"false_wins":         {set: SensitiveNo, names: []string{"/etc/a-key.pem"}, mode: 0o600, modeGiven: true, want: SensitiveNo},
		"true_wins":          {set: SensitiveYes, names: []string{"/etc/motd"}, mode: 0o644, want: SensitiveYes},
		"no_names_no_secret": {want: SensitiveAuto},
	}
	for name, tc := range tests {
		if got := tc.set.Decide(tc.names, []byte(tc.content), tc.mode, tc.modeGiven); got != tc.want {
			t.Errorf("%s: got %v, want %v", name, got, tc.want)
		}
	}
}

func TestSecretsRedact(t *testing.T) {
	t.Parallel()
	s := &Secrets{}
	s.add(starlark.String("1234"))
	s.add(starlark.String("hunter2-long"))
	s.add(starlark.String(""))
	s.add(starlark.NewList([]starlark.Value{starlark.String("http://u:listpw@h:1")}))
	tests := map[string]struct{ in, want string }{
		"value":          {"PIN=1234\n", "PIN=(sensitive)\n"},
		"longest_first":  {"x hunter2-long y", "x (sensitive) y"},
		"list_item":      {"get http://u:listpw@h:1/x", "get (sensitive)/x"},
		"url_password":   {"POST http://admin:pw@127.0.0.1:80/a: refused", "POST http://xxxxx@127.0.0.1:80/a: refused"},
		"url_token":      {"https://ghp_abc@host/x and etcd://t@h", "https://xxxxx@host/x and etcd://xxxxx@h"},
		"at_in_password": {"POST http://admin:Pa@ssw0rd@127.0.0.1:1/x", "POST http://xxxxx@127.0.0.1:1/x"},
		"upper_scheme":   {"HTTP://u:Wp@ss@h/", "HTTP://xxxxx@h/"},
		"no_scheme":      {"url //admin:pw@h/x", "url //xxxxx@h/x"},
		"query_tokens":   {"GET http://h/s?access_token=qtok&api_key=k1&x=1", "GET http://h/s?access_token=xxxxx&api_key=xxxxx&x=1"},
		"short_in_word":  {"file /etc/1234x: 1234 bytes", "file /etc/1234x: (sensitive) bytes"},
		"after_escape":   {`"[auth]\n1234\n"`, `"[auth]\n(sensitive)\n"`},
		"after_hex":      {`"\x1b1234" "\x001234" "\u20281234" "\U0001f6001234"`, `"\x1b(sensitive)" "\x00(sensitive)" "\u2028(sensitive)" "\U0001f600(sensitive)"`},
		"email_kept":     {"mail root@example.org", "mail root@example.org"},
		"nothing":        {"file /etc/motd", "file /etc/motd"},
	}
	for name, tc := range tests {
		if got := s.Redact(tc.in); got != tc.want {
			t.Errorf("%s: Redact(%q) = %q, want %q", name, tc.in, got, tc.want)
		}
	}
	for text, want := range map[string]bool{
		"pin 1234.":       true,  // a short value, as a word
		"a1234b":          false, // a short value inside a word: not it
		"1234 bytes":      true,
		"x hunter2-longy": true, // a long value, anywhere
		"123":             false,
	} {
		if got := s.In([]byte(text)); got != want {
			t.Errorf("In(%q) = %v, want %v", text, got, want)
		}
	}
	var none *Secrets
	if none.In([]byte("1234")) || none.Redact("u://a:b@h") != "u://xxxxx@h" {
		t.Error("a nil Secrets holds no value but still redacts URLs")
	}
	err := s.redactError(fs.ErrNotExist)
	if err != fs.ErrNotExist {
		t.Errorf("an error without secrets is returned as it is, got %v", err)
	}
	err = s.redactError(&Error{Err: errors.New("key 1234 is bad")})
	var perr *Error
	if err.Error() != "key (sensitive) is bad" || !errors.As(err, &perr) {
		t.Errorf("redacted error: %q, still an *Error: %v", err, errors.As(err, &perr))
	}
}

func TestSecretsEscapedForms(t *testing.T) {
	t.Parallel()
	s := &Secrets{}
	s.add(starlark.String(`a<b>&c"d'e\f`))
	tests := map[string]string{
		"raw":           `a<b>&c"d'e\f`,
		"json":          `{"p":"a\u003cb\u003e\u0026c\"d'e\\f"}`,
		"json_no_html":  `{"p":"a<b>&c\"d'e\\f"}`,
		"go_quote":      `"a<b>&c\"d'e\\f"`,
		"yaml_single":   `p: 'a<b>&c"d''e\f'`,
		"url_query":     `?p=a%3Cb%3E%26c%22d%27e%5Cf`,
		"starlark_repr": starlark.String(`a<b>&c"d'e\f`).String(),
	}
	for name, text := range tests {
		if !s.In([]byte(text)) {
			t.Errorf("%s: In(%q) = false, want the value found in its escaped form", name, text)
		}
		// No part of the value holds a "c" but the value itself.
		if got := s.Redact(text); strings.Contains(got, "c") || !strings.Contains(got, "(sensitive)") {
			t.Errorf("%s: Redact(%q) = %q, want the value gone", name, text, got)
		}
	}
}

func TestFingerprintIsKeyed(t *testing.T) {
	t.Parallel()
	a, b := fingerprint([]byte("key-a"), []byte("1234")), fingerprint([]byte("key-b"), []byte("1234"))
	if a == b || len(a) != 16 {
		t.Errorf("fingerprints of one content under two keys: %q and %q, want two different 16-digit ones", a, b)
	}
	if fingerprint(nil, []byte("1234")) != "" {
		t.Error("no key, want no fingerprint")
	}
	if fingerprint([]byte("key-a"), []byte("1234")) != a {
		t.Error("a fingerprint must be stable for one key")
	}
}
