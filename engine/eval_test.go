package engine_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kplay-dev/kplay/builtins"
	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/etcdv2"
)

// writeTree writes files (name → content) under a new directory and
// returns it.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func eval(t *testing.T, playbook string, vars map[string]string, maxSteps uint64) (*engine.Plan, error) {
	t.Helper()
	return engine.Evaluate(t.Context(), engine.EvalOptions{
		Playbook: playbook, Vars: vars, Builtins: builtins.Predeclared(), MaxSteps: maxSteps,
	})
}

// evalIn evaluates play.star of a tree from inside that directory's
// parent, so positions read "pb/play.star:1:5".
func evalErr(t *testing.T, files map[string]string, vars map[string]string) string {
	t.Helper()
	dir := writeTree(t, files)
	_, err := eval(t, filepath.Join(dir, "pb", "play.star"), vars, 200_000)
	if err == nil {
		t.Fatal("got no error")
	}
	return strings.ReplaceAll(err.Error(), dir+"/", "")
}

func TestLoadResolvesRelativeToTheLoadingFileAndRunsOnce(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{
		"pb/play.star":       `load("lib/a.star", "a")` + "\n" + `load("lib/b.star", "b")` + "\n" + `file("/etc/main", content = a + b)`,
		"pb/lib/a.star":      `load("common.star", "c")` + "\na = c\n",
		"pb/lib/b.star":      `load("common.star", "c")` + "\nb = c\n",
		"pb/lib/common.star": `c = "x"` + "\n" + `file("/etc/common", content = "once")` + "\n",
	})
	plan, err := eval(t, filepath.Join(dir, "pb/play.star"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range plan.Steps {
		got = append(got, s.Meta().Target+"@"+strings.TrimPrefix(s.Meta().Pos.String(), dir+"/"))
	}
	want := []string{"/etc/common@pb/lib/common.star:2:5", "/etc/main@pb/play.star:3:5"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got steps %v, want %v (common.star evaluated once)", got, want)
	}
}

func TestEvaluationErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		files   map[string]string
		wantErr string // regexp on the message with the temp dir cut
	}{
		"load_leaves_tree": {
			files:   map[string]string{"pb/play.star": `load("../outside.star", "x")`, "outside.star": "x = 1"},
			wantErr: `^pb/play.star:1:1: .*load path "../outside.star" leaves the playbook's directory`,
		},
		"load_absolute": {
			files:   map[string]string{"pb/play.star": `load("/etc/x.star", "x")`},
			wantErr: `^pb/play.star:1:1: .*load path "/etc/x.star" must be relative`,
		},
		"load_missing": {
			files:   map[string]string{"pb/play.star": "\n" + `load("lib/nope.star", "x")`},
			wantErr: `^pb/play.star:2:1: .*read pb/lib/nope.star: no such file`,
		},
		"load_cycle": {
			files: map[string]string{
				"pb/play.star":  `load("lib/a.star", "a")`,
				"pb/lib/a.star": `load("b.star", "b")` + "\na = 1",
				"pb/lib/b.star": `load("a.star", "a")` + "\nb = 1",
			},
			wantErr: `load cycle: pb/lib/a.star → pb/lib/b.star → pb/lib/a.star`,
		},
		"error_in_loaded_file_points_there": {
			files: map[string]string{
				"pb/play.star":  `load("lib/a.star", "a")`,
				"pb/lib/a.star": "a = 1\n" + `file("etc/x", content = "")`,
			},
			wantErr: `^pb/lib/a.star:2:5: file: for parameter path: "etc/x" is not absolute`,
		},
		"endless_loop": {
			files:   map[string]string{"pb/play.star": "def f():\n    x = 0\n    for i in range(1 << 62):\n        x += i\nf()\n"},
			wantErr: `^pb/play.star:\d+:\d+: evaluation passed 200000 steps; is there an endless loop\?`,
		},
		"recursion": {
			files:   map[string]string{"pb/play.star": "def f(n):\n    return f(n + 1)\nf(0)\n"},
			wantErr: `^pb/play.star:2:13: function f called recursively`, // at the recursive call
		},
		"no_while": {
			files:   map[string]string{"pb/play.star": "def f():\n    while True:\n        pass\n"},
			wantErr: `^pb/play.star:2:5: .*does not support while loops`,
		},
		"no_global_reassign": {
			files:   map[string]string{"pb/play.star": "x = 1\nx = 2\n"},
			wantErr: `^pb/play.star:2:1: cannot reassign global x`,
		},
		"no_clock_env_or_files": {
			files:   map[string]string{"pb/play.star": "t = time.now()\n"},
			wantErr: `^pb/play.star:1:5: undefined: time`,
		},
		"syntax": {
			files:   map[string]string{"pb/play.star": "file(\n"},
			wantErr: `^pb/play.star:2:1: got end of file, want '\)'`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			msg := evalErr(t, tc.files, nil)
			if !regexp.MustCompile(tc.wantErr).MatchString(msg) {
				t.Errorf("got %q, want match for %q", msg, tc.wantErr)
			}
		})
	}
}

func TestLoadRefusesSymlinkOutOfTheTree(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{"pb/play.star": `load("lib/secret.star", "x")`, "secret.star": "x = 1"})
	// pb/lib points at the directory above the playbook's.
	if err := os.Symlink("..", filepath.Join(dir, "pb/lib")); err != nil {
		t.Fatal(err)
	}
	_, err := eval(t, filepath.Join(dir, "pb/play.star"), nil, 0)
	if err == nil || !strings.Contains(err.Error(), "read "+filepath.Join(dir, "pb/lib/secret.star")+": ") {
		t.Fatalf("got %v, want the load through a symlink out of the tree refused", err)
	}
}

func TestVarProblemsAreReportedTogether(t *testing.T) {
	t.Parallel()
	msg := evalErr(t, map[string]string{"pb/play.star": `
ADVERTISE_IP = var("ADVERTISE_IP", type = "ip", doc = "This machine's routable IP")
ETCD_ENDPOINTS = var("ETCD_ENDPOINTS", type = "urls")
PORT = var("PORT", type = "int", default = 8080)
file("/etc/x", content = ADVERTISE_IP + str(PORT))
`}, map[string]string{"PORT": "80a", "ADVERTIZE_IP": "10.0.0.1"})
	want := strings.Join([]string{
		`pb/play.star:2:19: var ADVERTISE_IP is required (ip: This machine's routable IP); add --var ADVERTISE_IP=<ip>`,
		`pb/play.star:3:21: var ETCD_ENDPOINTS is required (urls); add --var ETCD_ENDPOINTS=<urls>`,
		`pb/play.star:4:11: var PORT: "80a" is not an int (want a number such as 8080, or 0o600 in octal)`,
		`--var ADVERTIZE_IP: the playbook declares no such var (did you mean ADVERTISE_IP?)`,
	}, "\n")
	if msg != want {
		t.Errorf("got:\n%s\nwant:\n%s", msg, want)
	}
}

func TestUnknownVarWithoutOtherProblems(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{"play.star": `X = var("X", default = "a")`})
	_, err := eval(t, filepath.Join(dir, "play.star"), map[string]string{"Y": "1"}, 0)
	var verrs engine.VarErrors
	if !errors.As(err, &verrs) || !strings.Contains(err.Error(), "--var Y: the playbook declares no such var") {
		t.Fatalf("got %v, want an unknown var error", err)
	}
}

func TestVarsUnreachedBecauseOfAnErrorAreStillReported(t *testing.T) {
	t.Parallel()
	msg := evalErr(t, map[string]string{"pb/play.star": `
PORT = var("PORT", type = "int")
PER = 1000 // PORT
OTHER = var("OTHER", doc = "never reached")
`}, nil)
	want := strings.Join([]string{
		`pb/play.star:2:11: var PORT is required (int); add --var PORT=<int>`,
		`pb/play.star:4:12: var OTHER is required (string: never reached); add --var OTHER=<string>`,
		`(evaluation stopped early, most likely because of the vars above: pb/play.star:3:12: floored division by zero)`,
	}, "\n")
	if msg != want {
		t.Errorf("got:\n%s\nwant:\n%s", msg, want)
	}
}

func TestVarInAnUntakenBranchIsNotUnknown(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{"play.star": `
CALICO = var("CALICO", type = "bool", default = False)
if CALICO:
    POLICY = var("POLICY")
`})
	if _, err := eval(t, filepath.Join(dir, "play.star"), map[string]string{"POLICY": "x"}, 0); err != nil {
		t.Errorf("got %v, want no error for a var declared under an untaken if", err)
	}
}

func TestPathVarsAreRelativeToTheWorkDir(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{"play.star": `
TLS_DIR = var("TLS_DIR", type = "path", default = "./tls")
ABS = var("ABS", type = "path", default = "/etc/ssl")
file("/etc/x", content = TLS_DIR + " " + ABS)
`})
	plan, err := engine.Evaluate(t.Context(), engine.EvalOptions{
		Playbook: filepath.Join(dir, "play.star"), Builtins: builtins.Predeclared(), WorkDir: "/srv/site",
	})
	if err != nil {
		t.Fatal(err)
	}
	real, err := host.OpenReal(t.TempDir(), false, host.WithEtcd(etcdv2.New))
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	results, err := engine.Check(t.Context(), plan, real, engine.Selection{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(results[0].Change.After); got != "/srv/site/tls /etc/ssl" {
		t.Errorf("got %q, want the relative path joined to the work dir and the absolute one kept", got)
	}
	if got := plan.Vars[0].Default; got != "./tls" {
		t.Errorf("kplay vars shows the default as written: got %q", got)
	}
}

// TestVarSensitiveLaterIsNeverQuoted: a var declared sensitive only in a
// module loaded after its value was found wrong is still not quoted.
func TestVarSensitiveLaterIsNeverQuoted(t *testing.T) {
	t.Parallel()
	msg := evalErr(t, map[string]string{
		"pb/play.star": `load("a.star", "x")` + "\n" + `load("b.star", "y")`,
		"pb/a.star":    `x = var("DB_PASSWORD", type = "int")`,
		"pb/b.star":    `y = var("DB_PASSWORD", type = "int", sensitive = True)`,
	}, map[string]string{"DB_PASSWORD": "hunter2"})
	if strings.Contains(msg, "hunter2") || !strings.Contains(msg, "var DB_PASSWORD: ") {
		t.Errorf("got %q, want the var's error without its value", msg)
	}
}
