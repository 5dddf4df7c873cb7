package lint

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bazelbuild/buildtools/build"

	"github.com/kplay-dev/kplay/builtins"
	"github.com/kplay-dev/kplay/engine"
)

func TestFormat(t *testing.T) {
	t.Parallel()
	src := "load(\"lib/b.star\",\"b\")\nload(\"lib/a.star\", \"a\")\ndef   f(x):\n  return x+1\n"
	want := "load(\"lib/a.star\", \"a\")\nload(\"lib/b.star\", \"b\")\n\ndef f(x):\n    return x + 1\n"
	got, err := Format("x.star", []byte(src))
	if err != nil || string(got) != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
	if again, _ := Format("x.star", got); string(again) != want {
		t.Errorf("formatting is not idempotent: %q", again)
	}
	// A syntax error is what check says of it; text that buildifier
	// takes and kplay does not is an error too, not formatted into text
	// that means something else.
	for src, want := range map[string]string{
		"x = (\n":       "bad.star:2:1: got end of file, want primary expression",
		"x = \"\\N\"\n": `bad.star:1:5: invalid escape sequence \N`,
	} {
		if _, err := Format("bad.star", []byte(src)); err == nil || err.Error() != want {
			t.Errorf("%q: got %v, want %s", src, err, want)
		}
		if err := engine.CheckSyntax("bad.star", []byte(src)); err == nil || err.Error() != want {
			t.Errorf("%q: check says %v", src, err)
		}
	}
}

// loadOrder is the modules of the loads of src, in order, each followed by
// "|" when a statement other than a load comes before the next load.
func loadOrder(t *testing.T, src []byte) []string {
	t.Helper()
	f, err := build.ParseDefault("x.star", src)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range f.Stmt {
		switch s := s.(type) {
		case *build.LoadStmt:
			out = append(out, s.Module.Value)
		case *build.CommentBlock:
		default:
			if len(out) == 0 || out[len(out)-1] != "|" {
				out = append(out, "|")
			}
		}
	}
	return out
}

// TestLoadRulesAgreeWithBuildifier holds loadRules, kplay's own, to the
// formatter it stands for: a load finding exactly when buildifier's
// formatting moves or reorders a load.
func TestLoadRulesAgreeWithBuildifier(t *testing.T) {
	t.Parallel()
	for name, src := range map[string]string{
		"sorted":            "load(\"a.star\", \"a\")\nload(\"b.star\", \"b\")\nx = a + b\n",
		"unsorted":          "load(\"b.star\", \"b\")\nload(\"a.star\", \"a\")\nx = a + b\n",
		"after_statement":   "x = 1\nload(\"a.star\", \"a\")\ny = a\n",
		"after_docstring":   "\"\"\"Doc.\"\"\"\n\nload(\"a.star\", \"a\")\nx = a\n",
		"after_comment":     "# A comment.\nload(\"a.star\", \"a\")\nx = a\n",
		"second_string":     "\"\"\"Doc.\"\"\"\n\n\"more\"\n\nload(\"a.star\", \"a\")\nx = a\n",
		"after_call":        "file(\"/x\", content = \"\")\nload(\"a.star\", \"a\")\n",
		"sorted_after_call": "load(\"a.star\", \"a\")\nfile(\"/x\", content = a)\nload(\"b.star\", \"b\")\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f, err := build.ParseDefault("x.star", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			findings := loadRules("x.star", f)
			formatted := build.Format(f)
			moved := !slices.Equal(loadOrder(t, []byte(src)), loadOrder(t, formatted))
			if moved != (len(findings) > 0) {
				t.Errorf("buildifier moves a load: %v; findings: %v\nformatted:\n%s", moved, findings, formatted)
			}
		})
	}
}

// TestSourceWarnings: buildifier's warnings come with their position and
// rule; a clean file has none.
func TestSourceWarnings(t *testing.T) {
	t.Parallel()
	src := "def f():\n    unused = 1\n    return 2\n\nX = f()\n"
	got, err := Source("x.star", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Rule != "unused-variable" || got[0].Pos != (engine.Pos{File: "x.star", Line: 2, Col: 5}) {
		t.Errorf("got %v, want one unused-variable at x.star:2:5", got)
	}
	if got, err := Source("x.star", []byte("X = 1\n")); err != nil || len(got) != 0 {
		t.Errorf("clean file: got %v, %v", got, err)
	}
	if got, err := Source("x.star", []byte("# buildifier: disable=unused-variable\ndef f():\n    unused = 1  # buildifier: disable=unused-variable\n    return 2\n")); err != nil || len(got) != 0 {
		t.Errorf("a disabled warning: got %v, %v", got, err)
	}
}

// evalPlan evaluates the playbook src (with files beside it) with no vars.
func evalPlan(t *testing.T, src string, files map[string]string) *engine.Plan {
	t.Helper()
	dir := t.TempDir()
	files["main.star"] = src
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	plan, err := engine.Evaluate(t.Context(), engine.EvalOptions{WorkDir: dir, Playbook: filepath.Join(dir, "main.star"), Builtins: builtins.Predeclared(), KeepGoing: true})
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// rules is the rule and line of each finding.
func rules(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s@%d:%d", f.Rule, f.Pos.Line, f.Pos.Col))
	}
	return out
}

func TestPlanRules(t *testing.T) {
	t.Parallel()
	const unit = `unit("app.service", "[Service]\nEnvironmentFile=/etc/app/env\nExecStart=/usr/bin/app --config-dir=/etc/app/conf.d\n")`
	tests := map[string]struct {
		src  string
		want []string
	}{
		"tls_mode": {
			src: `file("/etc/kubernetes/ssl/ca.pem", content = "CA\n")
file("/etc/kubernetes/ssl/k-key.pem", content = "K\n", mode = 0o600)
file("/etc/kubernetes/other.pem", content = "C\n")
`,
			want: []string{"tls-mode@1:5"},
		},
		"var_doc": {
			src:  `A = var("A", default = "a")` + "\n" + `B = var("B", default = "b", doc = "The b")` + "\n",
			want: []string{"var-doc@1:8"},
		},
		"restart_reached": {
			src: `u = ` + unit + `
d = dropin("app.service", "10-x.conf", "[Service]\nNice=1\n")
all = file("/etc/systemd/system/service.d/10-all.conf", content = "[Service]\nNice=2\n")
env = file("/etc/app/env", content = "A=1\n")
conf = file("/etc/app/conf.d/a.conf", content = "a\n")
systemctl("restart", "app.service", on_change = [u, d, all, env, conf])
`,
		},
		"restart_not_reached": {
			src: "u = " + unit + `
other = dropin("other.service", "10-x.conf", "[Service]\nNice=1\n")
stray = file("/etc/stray.conf", content = "s\n")
deep = file("/etc/app/conf.d/sub/x.conf", content = "x\n")
systemctl("restart", "app.service", on_change = [u, other, stray, deep])
systemctl("start", "app.service", on_change = [stray])
`,
			want: []string{"restart-on-change@5:10", "restart-on-change@5:10", "restart-on-change@5:10"},
		},
		"restart_of_a_unit_not_declared": {
			src: `conf = file("/etc/nginx/nginx.conf", content = "x\n")
d = dropin("docker.service", "40-flannel.conf", "[Unit]\nAfter=flanneld.service\n")
daemon = file("/etc/docker/daemon.json", content = "{}\n")
systemctl("reload", "nginx.service", on_change = [conf])
systemctl("restart", "docker.service", on_change = [d, daemon])
`,
		},
		"environment_file_with_a_dash": {
			src: `u = unit("app.service", "[Service]\nEnvironmentFile=-/etc/app/env\nExecStart=/bin/true\n")
env = file("/etc/app/env", content = "A=1\n")
systemctl("restart", "app.service", on_change = [u, env])
`,
		},
		"template_instance": {
			src: `u = unit("web@.service", "[Service]\nEnvironmentFile=/etc/web/%i.env\nExecStart=/bin/true\n")
a = file("/etc/web/site-a.env", content = "A=1\n")
b = file("/etc/web/site-b.env", content = "B=1\n")
systemctl("restart", "web@site-a.service", on_change = [u, a, b])
`,
			want: []string{"restart-on-change@4:10"},
		},
		"through_a_kubeconfig": {
			src: `u = unit("kubelet.service", "[Service]\nExecStart=/usr/bin/kubelet --kubeconfig=/etc/kubernetes/worker-kubeconfig.yaml\n")
kc = file("/etc/kubernetes/worker-kubeconfig.yaml", content = "client-key: /etc/kubernetes/ssl/worker-key.pem\n")
key = file("/etc/kubernetes/ssl/worker-key.pem", content = "k\n", mode = 0o600)
systemctl("restart", "kubelet.service", on_change = [u, kc, key])
`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := rules(Plan(evalPlan(t, tc.src, map[string]string{})))
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPlanRedactsSecrets: a finding quotes no value of a sensitive var.
func TestPlanRedactsSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := `TOKEN = var("TOKEN", sensitive = True, doc = "A token")
file("/etc/kubernetes/ssl/" + TOKEN + ".pem", content = "x\n")
`
	if err := os.WriteFile(filepath.Join(dir, "main.star"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	plan, err := engine.Evaluate(t.Context(), engine.EvalOptions{WorkDir: dir, Playbook: filepath.Join(dir, "main.star"),
		Vars: map[string]string{"TOKEN": "hunter2SECRET"}, Builtins: builtins.Predeclared(), KeepGoing: true})
	if err != nil {
		t.Fatal(err)
	}
	got := Plan(plan)
	if len(got) != 1 || got[0].Rule != "tls-mode" || strings.Contains(got[0].Message, "hunter2") {
		t.Errorf("got %v, want one tls-mode finding without the token", got)
	}
}

func TestSuppressed(t *testing.T) {
	t.Parallel()
	src := []byte("a = 1  # kplay: disable=tls-mode\n# buildifier: disable=var-doc,unused-variable\nb = 2\nc = 3 # disable=\n")
	for _, tc := range []struct {
		line int
		rule string
		want bool
	}{
		{1, "tls-mode", true}, {1, "var-doc", false}, {2, "tls-mode", true}, // the line above line 2 is line 1
		{3, "var-doc", true}, {3, "unused-variable", true}, {3, "tls-mode", false}, {4, "var-doc", false},
	} {
		if got := Suppressed(src, Finding{Pos: engine.Pos{Line: tc.line}, Rule: tc.rule}); got != tc.want {
			t.Errorf("line %d, %s: got %v, want %v", tc.line, tc.rule, got, tc.want)
		}
	}
}
