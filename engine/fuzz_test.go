package engine

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"go.starlark.net/starlark"
)

// FuzzParseVar feeds one --var text to parseVar as each type of VarTypes.
// parseVar must not panic; it must parse a text the same way every time;
// and a value it accepts, written back as text the way a default is
// (defaultText), must parse to the same value: what kplay vars shows and
// a --vars-file holds reads back unchanged.
func FuzzParseVar(f *testing.F) {
	for _, s := range []string{
		"", "x y", "v1.4.0_coreos.0",
		"true", "FALSE", "yes", "No", "1", "0", "maybe",
		"8080", "-1", "+5", "007", "9223372036854775807", "9223372036854775808", "0x10", "1e3",
		"10.0.0.10", "10.0.0.256", "::1", "::ffff:10.0.0.1", "fe80::1%eth0", "010.0.0.1", " 10.0.0.10",
		"10.2.0.0/16", "10.2.0.1/16", "10.2.0.0/33", "10.2.0.0", "fd00::/8", "10.2.0.0/016",
		"http://10.0.0.2:2379", "https://etcd.example.com:2379/", "127.0.0.1:8080", "unix:///run/etcd.sock",
		"http://10.0.0.2:2379,http://10.0.0.3:2379", " http://a:1 , http://b:2 ", "http://a:1,", ",",
		"http://a:1,b:2", "http://[::1]:2379", "http://a b/", "http://a/?q=1,2",
		"./tls", "/etc/kubernetes/ssl", "tls\x00key", "../tls",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		for _, typ := range VarTypes {
			v, err := parseVar(typ, text)
			again, errAgain := parseVar(typ, text)
			if (err == nil) != (errAgain == nil) || err == nil && !valuesEqual(t, v, again) {
				t.Fatalf("parseVar(%q, %q) gave %v, %v and then %v, %v", typ, text, v, err, again, errAgain)
			}
			if err != nil {
				if err.Error() == "" {
					t.Fatalf("parseVar(%q, %q): empty error", typ, text)
				}
				continue
			}
			canon, err := defaultText(typ, v)
			if err != nil {
				t.Fatalf("parseVar(%q, %q) = %v, which defaultText refuses: %v", typ, text, v, err)
			}
			back, err := parseVar(typ, canon)
			if err != nil {
				t.Fatalf("parseVar(%q, %q) = %v, written %q, which does not parse: %v", typ, text, v, canon, err)
			}
			if !valuesEqual(t, v, back) {
				t.Fatalf("parseVar(%q, %q) = %v, written %q, parses to %v", typ, text, v, canon, back)
			}
		}
	})
}

func valuesEqual(t *testing.T, x, y starlark.Value) bool {
	t.Helper()
	eq, err := starlark.Equal(x, y)
	if err != nil {
		t.Fatalf("compare %v and %v: %v", x, y, err)
	}
	return eq
}

// FuzzParseVarsFile feeds a vars file to ParseVarsFile, and a value
// written as NAME="value" with systemd's escapes. It must not panic, must
// read a text the same way every time, and must read the quoted value
// back exactly as it was.
func FuzzParseVarsFile(f *testing.F) {
	for _, s := range []string{
		"", "A=1\n", `K8S_VER="v1.4.0_coreos.0"`, "A='x'\n", "A=x # c\n", "A: 1\n---\nB: 2\n", "A: ~\n", "A: 1\nA: 2\n",
		"\uFEFFA: 1\n", "A:\n  - x\n  - ~\n", "A: &x 1\nB: *x\n", "A: !!binary aGk=\n", `A="a\"b\\c\$d` + "`" + `"`, "; c\n# c\n",
	} {
		f.Add(s, "v1.4.0 # not a comment")
	}
	f.Fuzz(func(t *testing.T, text, value string) {
		got, err := ParseVarsFile("vars", []byte(text))
		again, errAgain := ParseVarsFile("vars", []byte(text))
		if (err == nil) != (errAgain == nil) || !maps.Equal(got, again) || err != nil && err.Error() != errAgain.Error() {
			t.Fatalf("ParseVarsFile(%q) gave %v, %v and then %v, %v", text, got, err, again, errAgain)
		}
		if strings.ContainsAny(value, "\n") {
			return
		}
		quoted := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`").Replace(value)
		got, err = ParseVarsFile("vars", []byte("NAME=\""+quoted+"\"\n"))
		if err != nil || got["NAME"] != value {
			t.Fatalf("NAME=%q read back as %q, %v", quoted, got["NAME"], err)
		}
	})
}

// FuzzJSONDepth holds jsonDepth, which json.decode's bound uses, to
// encoding/json: for any valid JSON text, it is the deepest nesting
// that encoding/json's tokenizer reports.
func FuzzJSONDepth(f *testing.F) {
	for _, s := range []string{`[]`, `{"a":[1,{"b":"]]]"}]}`, `"[[["`, `["\"[", [[]]]`, `[[[[[[[[[[]]]]]]]]]]`, `{"\\":{"x":[]}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if !json.Valid([]byte(text)) {
			if d := jsonDepth(text, MaxDepth); d < 0 || d > MaxDepth+1 {
				t.Fatalf("jsonDepth(%q, %d) = %d, want 0 to %d", text, MaxDepth, d, MaxDepth+1)
			}
			return
		}
		dec := json.NewDecoder(strings.NewReader(text))
		depth, deepest := 0, 0
		for {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			switch tok {
			case json.Delim('['), json.Delim('{'):
				depth++
				deepest = max(deepest, depth)
			case json.Delim(']'), json.Delim('}'):
				depth--
			}
		}
		if got := jsonDepth(text, 1<<30); got != deepest {
			t.Fatalf("jsonDepth(%q) = %d, encoding/json says %d", text, got, deepest)
		}
	})
}
