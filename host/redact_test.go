package host

import "testing"

func TestRedactURLs(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ in, want string }{
		"password":       {"POST http://admin:pw@127.0.0.1:1/a: refused", "POST http://xxxxx@127.0.0.1:1/a: refused"},
		"token_user":     {"https://ghp_abc@host/x", "https://xxxxx@host/x"},
		"at_in_password": {"http://admin:Pa@ssw0rd@127.0.0.1:1/x", "http://xxxxx@127.0.0.1:1/x"},
		"upper_scheme":   {"HTTP://u:Wp@ss@h/", "HTTP://xxxxx@h/"},
		"no_scheme":      {"//admin:pw@h/x", "//xxxxx@h/x"},
		"does_not_parse": {`endpoint "http://admin:pa%zz@h:2379"`, `endpoint "http://xxxxx@h:2379"`},
		"query_tokens":   {"http://h/s?access_token=qtok&api_key=k1&x=1", "http://h/s?access_token=xxxxx&api_key=xxxxx&x=1"},
		"email_kept":     {"mail root@example.org", "mail root@example.org"},
		"plain":          {"http://127.0.0.1:2379", "http://127.0.0.1:2379"},
	}
	for name, tc := range tests {
		if got := RedactURLs(tc.in); got != tc.want {
			t.Errorf("%s: RedactURLs(%q) = %q, want %q", name, tc.in, got, tc.want)
		}
	}
	for param, want := range map[string]bool{"access_token": true, "api_key": true, "X-Amz-Signature": true, "page": false, "name": false} {
		if got := CredentialParam(param); got != want {
			t.Errorf("CredentialParam(%q) = %v, want %v", param, got, want)
		}
	}
}
