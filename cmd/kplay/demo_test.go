package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoBuild builds kplay as .ci/demo does (-tags kplay_demo) and
// wants it to converge the demo playbook like the full build, and to say
// what it leaves out, and how to get it, where a user reaches for it:
// fmt, lint and a kube_create step.
func TestDemoBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kplay: not with -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "kplay")
	build := exec.Command("go", "build", "-tags", "kplay_demo", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags kplay_demo: %v\n%s", err, out)
	}
	kplay := func(args ...string) (string, int) {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	const full = "this kplay is the demo's build (-tags kplay_demo); CGO_ENABLED=0 go install ./cmd/kplay builds the full one"
	for _, cmd := range []string{"fmt", "lint"} {
		out, code := kplay(cmd, "-d", "playbooks")
		if want := "kplay: " + cmd + ": " + full + "\n"; code != 1 || out != want {
			t.Errorf("kplay %s: exit %d, %q; want exit 1, %q", cmd, code, out, want)
		}
	}

	root := filepath.Join(dir, "root")
	if out, code := kplay("run", "../../playbooks/examples/demo.star", "--root", root, "--var", "ADVERTISE_IP=10.0.0.10"); code != 0 {
		t.Fatalf("run of the demo playbook: exit %d\n%s", code, out)
	}
	if out, code := kplay("check", "../../playbooks/examples/demo.star", "--root", root, "--var", "ADVERTISE_IP=10.0.0.10"); code != 0 || !strings.Contains(out, "0 to update") {
		t.Errorf("check after run: exit %d, want 0 and nothing to change\n%s", code, out)
	}

	pb := filepath.Join(dir, "ns.star")
	src := `kube_create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}, server = "http://127.0.0.1:1")` + "\n"
	if err := os.WriteFile(pb, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := kplay("check", pb, "--root", root)
	if want := "no Kubernetes client (this build of kplay cannot talk to API servers)"; code != 1 || !strings.Contains(out, want) {
		t.Errorf("check of a kube_create step: exit %d, want 1 and %q\n%s", code, want, out)
	}
}
