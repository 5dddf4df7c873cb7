package engine

import (
	"maps"
	"strings"
	"testing"

	"go.starlark.net/starlark"
)

func TestParseVar(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		typ, in string
		want    string // the value's Starlark repr
		wantErr string
	}{
		"string":          {typ: "string", in: "x y", want: `"x y"`},
		"bool_yes":        {typ: "bool", in: "YES", want: "True"},
		"bool_zero":       {typ: "bool", in: "0", want: "False"},
		"bool_bad":        {typ: "bool", in: "maybe", wantErr: "is not a bool (want true, false, yes, no, 1 or 0)"},
		"int":             {typ: "int", in: "-8", want: "-8"},
		"int_bad":         {typ: "int", in: "8k", wantErr: "is not an int"},
		"ip4":             {typ: "ip", in: "10.0.0.10", want: `"10.0.0.10"`},
		"ip6":             {typ: "ip", in: "fd00::1", want: `"fd00::1"`},
		"ip_bad":          {typ: "ip", in: "10.0.0.300", wantErr: "is not an IP address (want one such as 10.0.0.10)"},
		"cidr":            {typ: "cidr", in: "10.3.0.0/24", want: `"10.3.0.0/24"`},
		"cidr_host_bits":  {typ: "cidr", in: "10.3.0.1/24", wantErr: "has host bits set (did you mean 10.3.0.0/24?)"},
		"cidr_bad":        {typ: "cidr", in: "10.3.0.0", wantErr: "is not a CIDR"},
		"url":             {typ: "url", in: "http://127.0.0.1:8080", want: `"http://127.0.0.1:8080"`},
		"url_no_scheme":   {typ: "url", in: "127.0.0.1:8080", wantErr: "is not an absolute URL"},
		"urls":            {typ: "urls", in: "http://a:2379, http://b:2379", want: `["http://a:2379", "http://b:2379"]`},
		"urls_one_bad":    {typ: "urls", in: "http://a:2379,b:2379", wantErr: `has "b:2379", which is not an absolute URL`},
		"urls_empty_item": {typ: "urls", in: "http://a:2379,", wantErr: `has "", which is not an absolute URL`},
		"path":            {typ: "path", in: "./tls", want: `"./tls"`},
		"path_empty":      {typ: "path", in: "", wantErr: "is not a path"},
	}
	for name, tc := range tests {
		v, err := parseVar(tc.typ, tc.in)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: got %v, %v; want error containing %q", name, v, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("%s: unexpected error %v", name, err)
		case v.String() != tc.want:
			t.Errorf("%s: got %s, want %s", name, v, tc.want)
		}
	}
}

func TestPlaceholdersHaveTheirType(t *testing.T) {
	t.Parallel()
	for _, typ := range VarTypes {
		v := placeholder(typ)
		if _, err := parseVar(typ, textOf(v)); err != nil {
			t.Errorf("%s: placeholder %s does not parse: %v", typ, v, err)
		}
	}
}

func textOf(v starlark.Value) string {
	if l, ok := v.(*starlark.List); ok {
		s, _ := starlark.AsString(l.Index(0))
		return s
	}
	if s, ok := starlark.AsString(v); ok {
		return s
	}
	return strings.ToLower(v.String())
}

func TestSuggest(t *testing.T) {
	t.Parallel()
	names := []string{"ADVERTISE_IP", "ETCD_ENDPOINTS", "K8S_VER", "POD_NETWORK"}
	tests := map[string]struct{ in, want string }{
		"case":      {"advertise_ip", "ADVERTISE_IP"},
		"typo":      {"ADVERTISE_PI", "ADVERTISE_IP"},
		"missing_s": {"ETCD_ENDPOINT", "ETCD_ENDPOINTS"},
		"far":       {"CALICO", ""},
		"prefix":    {"K8S_VE", "K8S_VER"},
		"swap":      {"ADVERTISE_PI", "ADVERTISE_IP"},
	}
	for name, tc := range tests {
		if got := Suggest(tc.in, names); got != tc.want {
			t.Errorf("%s: Suggest(%q) = %q, want %q", name, tc.in, got, tc.want)
		}
	}
}

func TestParseVarsFile(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in      string
		want    map[string]string
		wantErr string
	}{
		"assignments": {
			in:   "# site vars\nADVERTISE_IP=10.0.0.10\n\nK8S_VER=v1.4.0_coreos.0\nEMPTY=\n",
			want: map[string]string{"ADVERTISE_IP": "10.0.0.10", "K8S_VER": "v1.4.0_coreos.0", "EMPTY": ""},
		},
		"yaml": {
			in:   "ADVERTISE_IP: 10.0.0.10\nCALICO: false\nETCD_ENDPOINTS:\n  - http://a:2379\n  - http://b:2379\n",
			want: map[string]string{"ADVERTISE_IP": "10.0.0.10", "CALICO": "false", "ETCD_ENDPOINTS": "http://a:2379,http://b:2379"},
		},
		"empty":        {in: "", want: map[string]string{}},
		"yaml_list":    {in: "- a\n- b\n", wantErr: "vars.yaml:1: want a mapping"},
		"yaml_nested":  {in: "A:\n  b: c\n", wantErr: "vars.yaml:2: A: want a plain value or a list"},
		"not_anything": {in: "A: [\n", wantErr: "vars.yaml: not NAME=value lines, nor YAML"},

		// Issue 11, item 9: quotes as systemd's EnvironmentFile= reads
		// them, for every type; a # after a value is no comment.
		"double_quotes":     {in: `K8S_VER="v1.4.0_coreos.0"` + "\nCALICO=\"true\"\n", want: map[string]string{"K8S_VER": "v1.4.0_coreos.0", "CALICO": "true"}},
		"single_quotes":     {in: `K8S_VER='v1.4.0_coreos.0'` + "\n", want: map[string]string{"K8S_VER": "v1.4.0_coreos.0"}},
		"quoted_escapes":    {in: `MSG="say \"hi\" \\ \$HOME \n"` + "\n", want: map[string]string{"MSG": `say "hi" \ $HOME \n`}},
		"quoted_hash":       {in: `PASS="abc #x"` + "\n", want: map[string]string{"PASS": "abc #x"}},
		"single_literal":    {in: `RAW='a\"b\\c'` + "\n", want: map[string]string{"RAW": `a\"b\\c`}},
		"empty_quotes":      {in: "A=\"\"\nB=''\n", want: map[string]string{"A": "", "B": ""}},
		"inner_quote":       {in: `A=a"b` + "\n", want: map[string]string{"A": `a"b`}},
		"hash_no_space":     {in: "A=a#b\nB=#c\n", want: map[string]string{"A": "a#b", "B": "#c"}},
		"semicolon_comment": {in: "; systemd's other comment\nA=1\n", want: map[string]string{"A": "1"}},
		"last_wins":         {in: "A=1\nA=2\n", want: map[string]string{"A": "2"}},
		"unclosed_double":   {in: "A=1\nK8S_VER=\"v1.4.0\n", wantErr: `vars.yaml:2: K8S_VER: the value opens a quote it does not close (write NAME="value")`},
		"unclosed_single":   {in: "K8S_VER='v1.4.0\n", wantErr: `vars.yaml:1: K8S_VER: the value opens a quote it does not close at its end`},
		"after_quote":       {in: `K8S_VER="v1" # pinned` + "\n", wantErr: `vars.yaml:1: K8S_VER: text after the closing quote`},
		"trailing_comment":  {in: "K8S_VER=v1.4.0 # pinned\n", wantErr: "vars.yaml:1: K8S_VER: a # after a value is not a comment but part of it"},
		"tab_comment":       {in: "K8S_VER=v1.4.0\t# pinned\n", wantErr: "vars.yaml:1: K8S_VER: a # after a value is not a comment"},

		"space_after_equals": {in: "A= \"x\"\nB=  y\n", want: map[string]string{"A": "x", "B": "y"}},
		"bad_line":           {in: "A=x\nB = 5\n", wantErr: "vars.yaml:2: not a NAME=value line"},
		"export_line":        {in: "# vars\nA=x\nexport B=5\n", wantErr: "vars.yaml:3: not a NAME=value line"},
		"yaml_custom_tag":    {in: "P: !Secr3t\n", wantErr: "vars.yaml:1: P: a YAML tag (!…) is not part of a value"},
		"yaml_tag_and_value": {in: "P: !Secr3t rest\n", wantErr: "vars.yaml:1: P: a YAML tag"},
		"yaml_binary":        {in: "A: !!binary aGVsbG8=\n", wantErr: "vars.yaml:1: A: a YAML tag"},
		"yaml_str_tag":       {in: "A: !!str 0o600\nB: '!x'\n", want: map[string]string{"A": "0o600", "B": "!x"}},
		"yaml_anchor":        {in: "A: &a v1\nB: *a\n", want: map[string]string{"A": "v1", "B": "v1"}},
		"yaml_timestamp":     {in: "VER: 2016-10-01\n", want: map[string]string{"VER": "2016-10-01"}},

		// Issue 11, item 10: YAML that would be misread is an error; a
		// byte order mark is skipped, in either form.
		"yaml_second_doc":  {in: "A: 1\n---\nB: 2\n", wantErr: "vars.yaml:2: a second YAML document, which kplay does not read"},
		"yaml_second_bad":  {in: "A: 1\n---\nB: [\n", wantErr: "vars.yaml: a second YAML document, which kplay does not read"},
		"yaml_duplicate":   {in: "A: 1\nB: 2\nA: 3\n", wantErr: "vars.yaml:3: A is given twice (first on line 1): keep one"},
		"yaml_tilde":       {in: "A: ~\n", wantErr: "vars.yaml:1: A: null is not a value (give one, or leave A out for its default)"},
		"yaml_null":        {in: "A: null\n", wantErr: "vars.yaml:1: A: null is not a value"},
		"yaml_empty_value": {in: "A:\n", wantErr: "vars.yaml:1: A: null is not a value"},
		"yaml_null_item":   {in: "A:\n  - ~\n", wantErr: "vars.yaml:2: A: want a list of plain values"},
		"yaml_quoted_null": {in: "A: \"null\"\nB: '~'\n", want: map[string]string{"A": "null", "B": "~"}},
		"yaml_doc_start":   {in: "---\nA: 1\n", want: map[string]string{"A": "1"}},
		"yaml_bom":         {in: "\uFEFFA: 1\n", want: map[string]string{"A": "1"}},
		"assignments_bom":  {in: "\uFEFFA=1\n", want: map[string]string{"A": "1"}},
	}
	for name, tc := range tests {
		got, err := ParseVarsFile("vars.yaml", []byte(tc.in))
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: got %v, %v; want error containing %q", name, got, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("%s: unexpected error %v", name, err)
		case !maps.Equal(got, tc.want):
			t.Errorf("%s: got %v, want %v", name, got, tc.want)
		}
	}
}

// TestParseVarsFileNeverQuotesValues: a vars file may hold secrets, so no
// error of ParseVarsFile shows a value.
func TestParseVarsFileNeverQuotesValues(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"PASS=\"hunter2secret\n", "PASS='hunter2secret\n", "PASS=\"hunter2secret\" x\n", "PASS=hunter2secret #x\n",
		"PASS: hunter2secret\nPASS: hunter2secret\n", "PASS: [hunter2secret, {a: b}]\n", "PASS: hunter2secret\n---\nX: hunter2secret\n", "PASS: !hunter2secret\n", "A=1\nPASS hunter2secret\n",
	} {
		_, err := ParseVarsFile("vars", []byte(in))
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParseVarsFile(%q) = %v; want an error that does not quote the value", in, err)
		}
	}
}

func TestParseVarFlags(t *testing.T) {
	t.Parallel()
	got, err := ParseVarFlags([]string{"A=1", "B=x=y", "A=2", "KEY=-----BEGIN PRIVATE KEY-----\nMC4C\n-----END PRIVATE KEY-----\n"})
	want := map[string]string{"A": "2", "B": "x=y", "KEY": "-----BEGIN PRIVATE KEY-----\nMC4C\n-----END PRIVATE KEY-----\n"}
	if err != nil || !maps.Equal(got, want) {
		t.Errorf("got %v, %v; want the last A, B=x=y and a value of several lines", got, err)
	}
	for flag, wantErr := range map[string]string{
		"hunter2secret":                     `--var without "=" (not shown, as it may be a secret): want NAME=value (such as --var ADVERTISE_IP=10.0.0.10)`,
		"9BAD=-----BEGIN KEY-----\n":        `--var: the text before "=" is not a var name (not shown, as it may be a secret): want NAME=value with a name of letters, digits and _, such as --var ADVERTISE_IP=10.0.0.10`,
		"-----BEGIN PRIVATE KEY-----\nMII=": `--var: the text before "=" is not a var name (not shown, as it may be a secret): want NAME=value with a name of letters, digits and _, such as --var ADVERTISE_IP=10.0.0.10`,
	} {
		if _, err := ParseVarFlags([]string{flag}); err == nil || err.Error() != wantErr {
			t.Errorf("ParseVarFlags(%q): got %v, want %s", flag, err, wantErr)
		}
	}
}
