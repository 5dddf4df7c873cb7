package builtins

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// FuzzSubst checks expand against substScan, a plain scanner of the same
// rules. It must not panic; with no values it reports every placeholder
// missing and changes only "$$"; with a value for every name it reports
// none missing, gives the scanner's text, and (unless "$$" made one on
// purpose) leaves no ${NAME} or $NAME behind.
func FuzzSubst(f *testing.F) {
	for _, s := range []string{
		"", "no placeholders\n",
		"FLANNELD_IFACE=${ADVERTISE_IP}\nFLANNELD_ETCD_ENDPOINTS=${ETCD_ENDPOINTS}\n",
		"--hostname-override=$ADVERTISE_IP --etcd-servers=${ETCD_ENDPOINTS}",
		"image: quay.io/coreos/hyperkube:$K8S_VER-x",
		"cost $$5 $${NOT} $$$A", "a $ b $1 ${1} ${} ${A ${A-B} $", "${A}${A}$A$A_1",
		"${ADVERTISE_IP", "$\n{A}", "é$Ñ ${é} $_", "\xff${A}\xfe",
	} {
		f.Add(s)
	}
	validLeft := regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_]`)
	f.Fuzz(func(t *testing.T, text string) {
		names := placeholderNames(text)

		out, missing := expand(text, nil)
		var want []string
		for _, n := range names {
			want = append(want, "$"+n)
		}
		slices.Sort(want)
		if !slices.Equal(missing, want) {
			t.Fatalf("expand(%q, nil) missing %q, want %q", text, missing, want)
		}
		if want := substScan(text, nil); out != want {
			t.Fatalf("expand(%q, nil) = %q, want %q", text, out, want)
		}

		values := map[string]string{}
		for _, n := range names {
			values[n] = "<" + strings.ToLower(n) + ">"
		}
		out, missing = expand(text, values)
		if len(missing) > 0 {
			t.Fatalf("expand(%q) with every name given: missing %q", text, missing)
		}
		if want := substScan(text, values); out != want {
			t.Fatalf("expand(%q) = %q, want %q", text, out, want)
		}
		if !strings.Contains(text, "$$") {
			if left := validLeft.FindString(out); left != "" {
				t.Fatalf("expand(%q) = %q, which still holds %q", text, out, left)
			}
		}
	})
}

// substScan expands text by subst's rules, written as a scanner rather
// than a regexp: "$$" is "$", then ${NAME}, then $NAME with the longest
// name. A name missing from values is left as it is.
func substScan(text string, values map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(text); {
		if text[i] != '$' {
			b.WriteByte(text[i])
			i++
			continue
		}
		if strings.HasPrefix(text[i:], "$$") {
			b.WriteByte('$')
			i += 2
			continue
		}
		end, name := placeholderAt(text, i)
		if name == "" {
			b.WriteByte('$')
			i++
			continue
		}
		if v, ok := values[name]; ok {
			b.WriteString(v)
		} else {
			b.WriteString(text[i:end])
		}
		i = end
	}
	return b.String()
}

// placeholderNames returns the names of text's placeholders, without
// repeats, by substScan's rules.
func placeholderNames(text string) []string {
	var names []string
	for i := 0; i < len(text); {
		switch {
		case strings.HasPrefix(text[i:], "$$"):
			i += 2
		case text[i] == '$':
			end, name := placeholderAt(text, i)
			if name == "" {
				i++
				continue
			}
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
			i = end
		default:
			i++
		}
	}
	return names
}

// placeholderAt reads a ${NAME} or $NAME at text[i] (a '$') and returns
// where it ends and its name, or "" if there is none.
func placeholderAt(text string, i int) (end int, name string) {
	isStart := func(c byte) bool { return c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' }
	isPart := func(c byte) bool { return isStart(c) || '0' <= c && c <= '9' }
	j := i + 1
	braced := j < len(text) && text[j] == '{'
	if braced {
		j++
	}
	if j >= len(text) || !isStart(text[j]) {
		return i, ""
	}
	k := j + 1
	for k < len(text) && isPart(text[k]) {
		k++
	}
	if braced {
		if k >= len(text) || text[k] != '}' {
			return i, ""
		}
		return k + 1, text[j:k]
	}
	return k, text[j:k]
}

// FuzzUnitText checks checkUnitText: it must not panic; its error says
// which line is wrong; and hiding the lines changes the message, not the
// verdict. (go-systemd's parser is no oracle: it refuses texts systemd
// reads; see TestGoSystemdRefusesWhatSystemdReads.)
func FuzzUnitText(f *testing.F) {
	for _, s := range []string{
		"",
		"[Service]\nExecStart=/usr/lib/coreos/kubelet-wrapper\nRestart=always\nRestartSec=10\n",
		"[Unit]\nDescription=Kubelet\nAfter=flanneld.service\n\n[Service]\nEnvironment=KUBELET_VERSION=v1.4.0_coreos.0\nExecStart=/usr/lib/coreos/kubelet-wrapper \\\n  --api-servers=http://127.0.0.1:8080 \\\n  --register-schedulable=false\n\n[Install]\nWantedBy=multi-user.target\n",
		"[Service]\nExecStartPre=/usr/bin/ln -sf /etc/flannel/options.env /run/flannel/options.env\n",
		"# comment\n; comment\n[Service]\nKey = value with spaces \n",
		"Restart=always\n",
		"[Service]\nRestart always\n",
		"[Service\nX=1\n",
		"[]\nX=1\n",
		"[Service]\nBad Key=1\n",
		"[Service]\nX=a\\",
		"[Service]\nX=" + strings.Repeat("a", 3000) + "\n",
		"\r\n[Service]\r\nX=1\r\n",
		"[Service]\n=value\n",
		"[Service]\nX=1\n\\\n",
		"[Service]\nExecStart=/bin/echo --one \\\n# --two\n  --three\n",
		"\uFEFF[X-A]\nwords\r[Servce]\x00A=\\\\\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		err := checkUnitText(text, false)
		if hidden := checkUnitText(text, true); (err == nil) != (hidden == nil) {
			t.Fatalf("checkUnitText(%q): %v, but hiding the lines: %v", text, err, hidden)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "line") {
			t.Fatalf("checkUnitText(%q): %q does not say which line", text, err)
		}
	})
}
