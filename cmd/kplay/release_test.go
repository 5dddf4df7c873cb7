package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReleaseIsReproducible builds the release of this commit twice, by
// .ci/release from two clones at different paths, and wants the same
// bytes and SHA256SUMS; the binary is static and its version line names
// the commit. One architecture (amd64): the other is built with the same
// flags, and compiling every dependency for it would take minutes.
func TestReleaseIsReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kplay twice: not with -short")
	}
	top, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(top, ".git")); err != nil {
		t.Skip("not a git checkout: .ci/release builds a commit")
	}
	head := strings.TrimSpace(gitOutput(t, top, "rev-parse", "HEAD"))
	var sums [2][]byte
	var bins [2]string
	for i, dir := range []string{"a", filepath.Join("b", "deeper")} {
		clone := filepath.Join(t.TempDir(), dir, "kplay")
		gitOutput(t, top, "clone", "-q", "--no-hardlinks", top, clone)
		out := filepath.Join(clone, "out")
		cmd := exec.Command("bash", ".ci/release", out)
		cmd.Dir = clone
		cmd.Env = append(os.Environ(), "ARCHES=amd64")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf(".ci/release in %s: %v\n%s", clone, err, b)
		}
		if sums[i], err = os.ReadFile(filepath.Join(out, "SHA256SUMS")); err != nil {
			t.Fatal(err)
		}
		matches, _ := filepath.Glob(filepath.Join(out, "kplay-*-linux-amd64"))
		if len(matches) != 1 {
			t.Fatalf("want one linux/amd64 binary in %s, got %v", out, matches)
		}
		bins[i] = matches[0]
	}
	if !bytes.Equal(sums[0], sums[1]) {
		t.Errorf("two builds of one commit differ:\n%s\n%s", sums[0], sums[1])
	}
	b, err := exec.Command(bins[0], "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	// Before the first tag the version is v0.0.0-<commit>, and the
	// commit is not repeated.
	want := regexp.MustCompile(`^kplay v\S+ \((commit [0-9a-f]{12}, )?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)\n$`)
	if !want.Match(b) || !bytes.Contains(b, []byte(head[:12])) {
		t.Errorf("version: got %q, want it to match %s and name commit %s", b, want, head[:12])
	}
	if elf, err := os.ReadFile(bins[0]); err != nil {
		t.Fatal(err)
	} else if bytes.Contains(elf, []byte("/lib64/ld-linux")) {
		t.Errorf("%s names a dynamic loader: want a static binary", bins[0])
	}
}

// gitOutput runs git in dir and returns its output, failing the test on
// an error.
func gitOutput(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return string(b)
}
