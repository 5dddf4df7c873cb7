package playbooks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kplay-dev/kplay/builtins"
	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/lint"
)

// starFiles are the .star files of this directory, at any depth.
func starFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".star") {
			files = append(files, p)
		}
		return err
	})
	if err != nil || len(files) == 0 {
		t.Fatalf("no .star files here: %v", err)
	}
	return files
}

// TestPlaybooksAreFormatted: every playbook is as kplay fmt formats it
// (kplay fmt -w playbooks formats them).
func TestPlaybooksAreFormatted(t *testing.T) {
	t.Parallel()
	for _, p := range starFiles(t) {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out, err := lint.Format(p, src)
		if err != nil {
			t.Errorf("%v", err)
		} else if string(out) != string(src) {
			t.Errorf("%s is not formatted: run kplay fmt -w playbooks", p)
		}
	}
}

// TestPlaybooksLintClean: kplay lint finds nothing in the playbooks: in
// their source, nor in master.star, site-fork.star and the demo
// evaluated, with Calico on and off.
func TestPlaybooksLintClean(t *testing.T) {
	t.Parallel()
	for _, p := range starFiles(t) {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		findings, err := lint.Source(p, src)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range findings {
			t.Errorf("%s", f)
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		playbook string
		vars     map[string]string
	}{
		{"master.star", map[string]string{"ADVERTISE_IP": "10.0.0.10", "ETCD_ENDPOINTS": "http://127.0.0.1:2379"}},
		{"master.star", map[string]string{"ADVERTISE_IP": "10.0.0.10", "ETCD_ENDPOINTS": "http://127.0.0.1:2379", "CALICO": "false"}},
		{"site-fork.star", map[string]string{"ADVERTISE_IP": "10.0.0.10", "ETCD_ENDPOINTS": "http://127.0.0.1:2379"}},
		{"examples/demo.star", map[string]string{"ADVERTISE_IP": "10.0.0.10"}},
	} {
		plan, err := engine.Evaluate(t.Context(), engine.EvalOptions{WorkDir: wd, Playbook: tc.playbook, Vars: tc.vars, Builtins: builtins.Predeclared(), KeepGoing: true})
		if err != nil {
			t.Fatalf("%s: %v", tc.playbook, err)
		}
		for _, f := range lint.Plan(plan) {
			t.Errorf("%s %v: %s", tc.playbook, tc.vars, f)
		}
	}
}
